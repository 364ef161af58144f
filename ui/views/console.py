"""Analysts' Cypher console: read-only statements with a timeout, a table, CSV download and a graph view.

The same path as `kdcvg cypher` (`SharedStore.read_only_query` -> `kb.query_worker.run_analyst_query`):
the allow-list guard accepts only statements it can prove read, and they run in a separate worker
process with memory, CPU and wall-clock limits on a read-only connection (docs/security.md).
"""

from __future__ import annotations

import streamlit as st

from kb.store import StoreError
from ui import state
from ui.render import graph_dot, md_escape, table_rows, to_csv

EXAMPLE = (
    "MATCH (p:Product)-[r:HAS_SELLING_POINT]->(s:SellingPoint)\n"
    "RETURN p, r, s\n"
    "LIMIT 20"
)
MAX_TABLE_ROWS = 10_000


def page() -> None:
    """The console: statement, timeout, run; then the last result."""
    state.require("console")
    shared = state.shared_store()
    st.header("Cypher console")
    st.caption(
        "Read-only: only reading clauses and listed functions are accepted; the statement runs in a separate, "
        "memory- and time-limited process on a read-only connection."
    )
    text = st.text_area("Cypher statement", value=EXAMPLE, height=140, key="console_query")
    limit = float(shared.settings.query_timeout_s)
    timeout = st.number_input("Timeout (seconds)", min_value=0.1, max_value=limit, value=limit, step=1.0, key="console_timeout")
    if st.button("Run query", type="primary", key="console_run", shortcut="Ctrl+Enter"):
        st.session_state.pop("console_result", None)
        try:
            result = shared.read_only_query(text, {}, float(timeout))
        except StoreError as exc:
            st.error(md_escape(exc))
        else:
            st.session_state["console_result"] = result
    result = st.session_state.get("console_result")
    if result is None:
        return
    shown = result.rows[:MAX_TABLE_ROWS]
    st.caption(f"{len(result.rows)} row(s)" + (f", first {MAX_TABLE_ROWS} shown" if len(result.rows) > MAX_TABLE_ROWS else ""))
    st.dataframe(table_rows(result.columns, shown), width="stretch", key="console_table")
    st.download_button("Download CSV", to_csv(result.columns, result.rows), file_name="query.csv", mime="text/csv", key="console_csv")
    dot = graph_dot(result.rows)
    if dot is not None:
        st.subheader("Graph view")
        st.graphviz_chart(dot)


page()
