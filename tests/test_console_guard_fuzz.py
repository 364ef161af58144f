"""Property-based fuzz of the console guard: whatever it accepts, run through the worker, reads and writes no file.

Queries are valid reads mixed with the clauses that touch files, settings or data (LOAD, COPY,
EXPORT, IMPORT, CHECKPOINT, INSTALL, ATTACH, CALL, CREATE, MERGE, SET, DELETE, REMOVE), then
disguised: random case, comments and odd whitespace between tokens, digits glued to keywords,
backtick quoting and unicode lookalike letters. File targets point at a sentinel holding a unique
marker and at an output folder; the marker must never come back and no file may appear or change.
"""

from __future__ import annotations

import hashlib
import random
import re
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kb.query_worker import run_analyst_query
from kb.readonly import check_read_only
from kb.store import ReadOnlyError, StoreError
from tests.conftest import ladybug_world

MARKER = f"kdcvg-sentinel-{uuid.uuid4().hex}"

READS = [
    "MATCH (p:Product) RETURN p.name AS name ORDER BY name LIMIT 3",
    "MATCH (p:Product)-[:HAS_SELLING_POINT]->(s:SellingPoint) RETURN p.id, count(s) AS n",
    "UNWIND [1, 2, 3] AS x WITH x WHERE x > 1 RETURN sum(x) AS total",
    "MATCH (c:CreativeClip) WHERE c.caption CONTAINS 'zoom' RETURN c.id LIMIT 2",
    "WITH 1 AS x LIMIT 1 MATCH (k:Category) RETURN k.name",
    "CALL show_tables() RETURN *",
]

DANGERS = [
    "LOAD FROM '{sentinel}' (header=false) RETURN *",
    "LOAD WITH HEADERS (line STRING) FROM '{sentinel}' RETURN line",
    "COPY (MATCH (p:Product) RETURN p.id) TO '{out}/copy.csv'",
    "COPY Category FROM '{sentinel}'",
    "EXPORT DATABASE '{out}/export'",
    "IMPORT DATABASE '{out}/export'",
    "CHECKPOINT",
    "INSTALL json",
    "ATTACH '{out}/other.lbug' AS other (dbtype lbug)",
    "CALL read_csv_serial('{sentinel}') RETURN *",
    "CALL current_setting('threads') RETURN *",
    "CALL threads=1",
    "CREATE (:Category {id: 'fuzz', name: 'fuzz'})",
    "MERGE (k:Category {id: 'fuzz'}) RETURN k",
    "MATCH (p:Product) SET p.name = 'fuzz' RETURN p",
    "MATCH (p:Product) DETACH DELETE p",
    "MATCH (p:Product) REMOVE p.brand RETURN p",
]

PLACES = [
    "{danger}",
    "{danger} {read}",
    "WITH 1 AS x LIMIT 1 {danger}",
    "WITH 1 AS x LIMIT 1{danger}",  # a digit glued to the clause keyword, as Ladybug's lexer splits it
    "{read} UNION ALL {danger}",
    "MATCH (p:Product) {danger}",
]

# Separators the databases treat alike, or not: nothing (gluing tokens), comments, unicode and control whitespace.
SEPARATORS = ["", "  ", "\t", "\n", "\r\n", "/* c */", "/**/", "/* **/", "// c\n", "// \\u000a", "\r", "\u00a0", "\u2003", "\x0b", "\u2028"]
LOOKALIKES = {
    "A": "\u0410",
    "C": "\u0421",
    "E": "\u0415",
    "O": "\u041e",
    "L": "\uff2c",
    "a": "\u0430",
    "e": "\u0435",
    "o": "\u043e",
}
PIECE = re.compile(r"'[^']*'|[A-Za-z_][A-Za-z0-9_]*|[0-9]+[A-Za-z_][A-Za-z0-9_]*|[0-9]+|\S")  # a glued digit stays glued


def _disguise(template: str, rnd: random.Random) -> str:
    """`template` with, at a random rate, words' case, quoting and letters varied and odd separators between pieces."""
    rate = rnd.choice([0.0, 0.02, 0.05, 0.1, 0.3])
    text = ""
    for piece in PIECE.findall(template):
        if piece[0].isalpha() or piece[0] == "_":
            piece = "".join(c.upper() if rnd.random() < 0.5 else c.lower() for c in piece) if rnd.random() < 0.5 else piece
            if rnd.random() < rate:
                piece = f"`{piece}`"
            if rnd.random() < rate:
                piece = "".join(LOOKALIKES.get(c, c) for c in piece)
        text += piece + (rnd.choice(SEPARATORS) if rnd.random() < rate else " ")
    return text


@st.composite
def queries(draw: st.DrawFn, sentinel: str, out: str) -> str:
    """A read, or a read mixed with a dangerous clause, disguised."""
    read = draw(st.sampled_from(READS))
    danger = draw(st.one_of(st.none(), st.sampled_from(DANGERS)))
    template = read if danger is None else draw(st.sampled_from(PLACES)).replace("{danger}", danger).replace("{read}", read)
    return _disguise(template.replace("{sentinel}", sentinel).replace("{out}", out), draw(st.randoms(use_true_random=False)))


def _tree(root: Path) -> dict[str, str]:
    """Every file under `root` with a digest of its bytes."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_whatever_the_guard_accepts_reads_no_file_and_writes_none(
    tmp_path_factory: pytest.TempPathFactory, small_ackb: Path
) -> None:
    root = tmp_path_factory.mktemp("fuzz")
    world = ladybug_world(root / "world", small_ackb)
    sentinel = root / "sentinel.csv"
    sentinel.write_text(f"{MARKER}\n")
    out = root / "out"
    out.mkdir()
    before = _tree(root)
    seen: dict[str, int] = {"accepted": 0, "refused": 0}
    answers: dict[str, str] = {}

    @settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(queries(str(sentinel), str(out)))
    def accepted_queries_are_harmless(query: str) -> None:
        try:
            check_read_only(query)
        except ReadOnlyError:
            seen["refused"] += 1
            return
        seen["accepted"] += 1
        if query not in answers:
            try:
                answers[query] = repr(run_analyst_query(world, query, {}, 10))
            except StoreError as exc:
                answers[query] = str(exc)
        assert MARKER not in answers[query], query
        assert _tree(root) == before, query

    accepted_queries_are_harmless()
    assert seen["accepted"] and seen["refused"], seen  # both sides of the guard were exercised
