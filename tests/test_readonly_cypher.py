"""Analysts' Cypher is read-only twice over: a clear early refusal, and a read-only connection."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from kb.interchange import import_ackb
from kb.readonly import check_read_only
from kb.store import GraphStore, QueryTimeoutError, ReadOnlyError

WRITES = [
    "CREATE (p:Product {id: 'x', name: 'x'})",
    "MERGE (p:Product {id: 'x'}) RETURN p",
    "MATCH (p:Product) DELETE p",
    "MATCH (p:Product) DETACH DELETE p",
    "MATCH (p:Product) SET p.name = 'hacked'",
    "match (p:Product) set p.name = 'lower case'",
    "MATCH (p:Product) REMOVE p.name",
    "DROP TABLE Product",
    "COPY Product FROM 'file.csv'",
    "LOAD CSV FROM 'file:///etc/passwd' AS row RETURN row",
    "MATCH (p:Product) WITH p LIMIT 1 CREATE (q:Product {id: 'y'})",
    "UNWIND [1, 2] AS x FOREACH (i IN [1] | CREATE (:Category {id: toString(x)}))",
    "CALL apoc.create.node(['Product'], {id: 'z'})",
    "CALL db.createLabel('Evil')",
    "CALL create_fts_index('CreativeClip', 'caption_fts', ['caption'])",
    "CALL dbms.security.createUser('eve', 'pw', false)",
    "MATCH (n) RETURN n; MATCH (m) DETACH DELETE m",
    "ALTER TABLE Product ADD colour STRING",
    "",
    "// only a comment",
]


@pytest.mark.parametrize("query", WRITES)
def test_write_clauses_and_write_procedures_are_refused(query: str) -> None:
    with pytest.raises(ReadOnlyError):
        check_read_only(query)


@pytest.mark.parametrize(
    "query",
    [
        "MATCH (p:Product) RETURN p.name",
        "MATCH (p:Product) WHERE p.name = 'CREATE something; DELETE it' RETURN p",  # keywords inside strings are data
        "MATCH (p:Product) RETURN p.name AS `SET` ORDER BY p.name",
        "MATCH (c:CreativeClip) WHERE c.caption CONTAINS 'merge' RETURN c.id // DELETE in a comment",
        "MATCH (p:Product)-[:HAS_SELLING_POINT]->(s) RETURN p.id, collect(s.text) AS sps;",
        "CALL show_tables() RETURN *",
        "CALL db.labels()",
        "MATCH (n:Product) RETURN n.created_at AS created, n.version",
    ],
)
def test_read_queries_pass_the_check(query: str) -> None:
    check_read_only(query)


def test_read_only_connection_refuses_writes_even_without_the_check(
    store: GraphStore, small_ackb: Path, media_dir: Path, reopen_read_only: Callable[[], GraphStore]
) -> None:
    import_ackb(store, small_ackb, media_dir)
    with reopen_read_only() as read_only:
        for query in ("CREATE (c:Category {id: 'sneaky', name: 'x'})", "MATCH (p:Product) SET p.name = 'x'", "MATCH (c:CreativeClip) DETACH DELETE c"):
            with pytest.raises(ReadOnlyError):
                read_only.query(query)
        rows = read_only.query("MATCH (p:Product) RETURN count(p) AS n").rows
        assert rows == [[6]]
        names = read_only.query("MATCH (p:Product) RETURN p.name ORDER BY p.name LIMIT 1").rows
        assert names == [["Product 0"]]
        with pytest.raises(ReadOnlyError):
            read_only.write(lambda tx: tx.run("CREATE (c:Category {id: 'via-write', name: 'x'})"))
        assert read_only.query("MATCH (c:Category) RETURN count(c)").rows == [[3]]


def test_long_query_is_cancelled_by_the_timeout(store: GraphStore) -> None:
    with pytest.raises(QueryTimeoutError, match="timeout"):
        store.query("UNWIND range(1, 100000) AS x UNWIND range(1, 100000) AS y RETURN sum(x * y)", timeout_s=0.2)
    assert store.query("RETURN 1 AS one").rows == [[1]]  # the connection is still usable


def test_query_returns_columns_and_plain_values(store: GraphStore, small_ackb: Path, media_dir: Path) -> None:
    import_ackb(store, small_ackb, media_dir)
    result = store.query(
        "MATCH (p:Product {id: $id})-[r:HAS_SELLING_POINT]->(s:SellingPoint) RETURN p, s.text AS text, r ORDER BY text LIMIT 2",
        {"id": "prod-0000000"},
    )
    assert result.columns == ["p", "text", "r"]
    product, text, rel = result.rows[0]
    assert product["_label"] == "Product" and product["id"] == "prod-0000000" and product["version"] == 1
    assert text == "selling point 0 of product 0" and rel["_type"] == "HAS_SELLING_POINT"
