"""The annotators' curation app: `kdcvg ui` (or `streamlit run ui/app.py`) starts it.

Signs the user in, opens the server's one store, and offers the pages the user's roles allow
(ui/auth.py says which). Each page lives in ui/views/ (not pages/, which Streamlit would list before sign-in).
"""

from __future__ import annotations

import streamlit as st

from kb.migrate import MigrationError
from kb.store import StoreError
from kdcvg.config import ConfigError, load_settings
from ui import auth, state
from ui.render import md_escape

# (file, title, icon, capability)
PAGES: tuple[tuple[str, str, str, str], ...] = (
    ("views/browse.py", "Browse", ":material/search:", "read"),
    ("views/curate.py", "Curate", ":material/edit:", "curate"),
    ("views/review.py", "Review queue", ":material/fact_check:", "review"),
    ("views/generate.py", "Generate", ":material/movie:", "generate"),
    ("views/audit.py", "Audit trail", ":material/history:", "read"),
    ("views/console.py", "Cypher console", ":material/terminal:", "console"),
)


def main() -> None:
    """Sign in, open the store, show the navigation for the user's roles."""
    st.set_page_config(page_title="KD-CVG curation", page_icon=":material/movie:", layout="wide")
    try:
        settings = load_settings()
        users = auth.load_users(settings.ui_users_path)
    except (ConfigError, auth.UsersFileError) as exc:
        st.error(md_escape(exc))
        st.stop()
    user = auth.sign_in(users)
    if user is None:
        st.session_state.pop("user", None)
        st.stop()
    st.session_state["user"] = user
    try:
        state.shared_store(settings)
    except (StoreError, MigrationError) as exc:
        st.error(md_escape(exc))
        st.stop()
    with st.sidebar:
        st.markdown(f"Signed in as **{md_escape(user.name)}**")
        st.caption("roles: " + ", ".join(user.roles))
    auth.sign_out_button()
    pages = [st.Page(path, title=title, icon=icon) for path, title, icon, capability in PAGES if user.can(capability)]
    st.navigation(pages).run()


main()
