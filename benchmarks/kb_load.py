"""Benchmark: bulk-load 100k nodes + 300k relationships into each present backend, then time a 2-hop query.

Prints nodes/s, relationships/s, the full `import_ackb` time of the same data (validation
included) and a no-op re-import, and p50/p95 latency of a parameterised 2-hop query (selling
point -> clips -> motions) over 200 runs. Ladybug always; Neo4j on the server NEO4J_URI names (its
database is WIPED), else on a local server started for the run (kb.neo4j_server, when Java and
Maven are present; its start time is reported). On Neo4j the full import is also compared with a
raw driver load of the same rows (`UNWIND $rows` batches of 10k, one transaction each).
Run: `make benchmark` or `python benchmarks/kb_load.py [--json]`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path

from kb import migrate, neo4j_server
from kb.interchange import import_ackb, write_ackb
from kb.ladybug_store import LadybugStore
from kb.schema import NODE_TYPES, REL_TYPES
from kb.store import GraphStore
from kb.synthetic import synthetic_rows

TWO_HOP = (
    "MATCH (s:SellingPoint {id: $id})<-[:ILLUSTRATES]-(c:CreativeClip)-[:HAS_MOTION]->(m:Motion) "
    "RETURN c.id AS clip, m.name AS motion"
)
RUNS = 200


def sizes() -> dict[str, int]:
    """Exactly 100,000 nodes and 300,000 relationships (see kb.synthetic.synthetic_rows)."""
    products, sps, clips_per, categories = 2_000, 5, 44, 20
    nodes = categories + products * (1 + sps + clips_per) + 10
    clips = products * clips_per
    rels = products * (1 + sps) + 3 * clips
    return {
        "products": products,
        "selling_points_per_product": sps,
        "clips_per_product": clips_per,
        "categories": categories,
        "second_illustrations": 300_000 - rels,
        "same_claims": 0,  # the load measured before SAME_CLAIM existed: same shape, comparable figures
        "_nodes": nodes,
    }


def _percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def bench_store(store: GraphStore, nodes: dict, rels: dict, workdir: Path) -> dict[str, float]:
    migrate.migrate(store)
    n_nodes = sum(map(len, nodes.values()))
    n_rels = sum(map(len, rels.values()))
    started = time.perf_counter()
    store.write(lambda tx: [store.bulk_create_nodes(tx, label, nodes[label]) for label in NODE_TYPES])
    node_s = time.perf_counter() - started
    started = time.perf_counter()
    store.write(lambda tx: [store.bulk_create_relationships(tx, t, rels[t]) for t in REL_TYPES])
    rel_s = time.perf_counter() - started

    sp_ids = [row["id"] for row in nodes["SellingPoint"]]
    rng = random.Random(1)
    for _ in range(10):  # warm-up
        store.read(lambda tx: tx.run(TWO_HOP, id=rng.choice(sp_ids)))
    latencies, returned = [], 0
    for _ in range(RUNS):
        sp = rng.choice(sp_ids)
        t0 = time.perf_counter()
        rows = store.read(lambda tx: tx.run(TWO_HOP, id=sp))
        latencies.append((time.perf_counter() - t0) * 1000)
        returned += len(rows)
    assert returned > 0, "the 2-hop query returned nothing: the load is wrong"
    return {
        "nodes": n_nodes,
        "relationships": n_rels,
        "node_load_s": node_s,
        "nodes_per_s": n_nodes / node_s,
        "relationship_load_s": rel_s,
        "relationships_per_s": n_rels / rel_s,
        "two_hop_p50_ms": _percentile(latencies, 50),
        "two_hop_p95_ms": _percentile(latencies, 95),
        "two_hop_mean_rows": returned / RUNS,
    }


def bench_import(store: GraphStore, ackb_dir: Path, media: Path) -> dict[str, float]:
    migrate.migrate(store)
    started = time.perf_counter()
    import_ackb(store, ackb_dir, media)
    first = time.perf_counter() - started
    started = time.perf_counter()
    import_ackb(store, ackb_dir, media)
    return {"import_s": first, "reimport_noop_s": time.perf_counter() - started}


RAW_BATCH = 10_000


def raw_driver_load(uri: str, user: str, password: str | None, nodes: dict, rels: dict) -> dict[str, float]:
    """The same rows loaded with the bare driver (no validation, no diff against stored rows): the floor to compare with."""
    import neo4j

    from kb.neo4j_store import _endpoints_and_props, _without_nulls

    with neo4j.GraphDatabase.driver(uri, auth=(user, password or "")) as driver, driver.session(database="neo4j") as session:
        started = time.perf_counter()
        for label in NODE_TYPES:
            rows = [_without_nulls(row) for row in nodes.get(label, [])]
            for start in range(0, len(rows), RAW_BATCH):
                batch = rows[start : start + RAW_BATCH]
                session.execute_write(lambda tx, b=batch: tx.run(f"UNWIND $rows AS row CREATE (n:{label}) SET n = row", rows=b).consume())
        for spec in REL_TYPES.values():
            rows = [_endpoints_and_props(row) for row in rels.get(spec.type, [])]
            query = (
                f"UNWIND $rows AS row MATCH (a:{spec.source} {{id: row.from}}) MATCH (b:{spec.target} {{id: row.to}}) "
                f"CREATE (a)-[r:{spec.type}]->(b) SET r = row.props"
            )
            for start in range(0, len(rows), RAW_BATCH):
                batch = rows[start : start + RAW_BATCH]
                session.execute_write(lambda tx, b=batch: tx.run(query, rows=b).consume())
        return {"raw_driver_load_s": time.perf_counter() - started}


def _empty_neo4j(store: GraphStore) -> None:
    """Delete every node in batches (one huge delete transaction would need the heap for 400k rows)."""
    store.query("MATCH (n) CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS")


def bench_neo4j(uri: str, user: str, password: str | None, nodes: dict, rels: dict, work: Path) -> dict[str, float]:
    from kb.neo4j_store import Neo4jStore

    with Neo4jStore(uri, user=user, password=password) as store:
        _empty_neo4j(store)
        figures = bench_store(store, nodes, rels, work)
        _empty_neo4j(store)
        migrate.migrate(store)
        figures.update(raw_driver_load(uri, user, password, nodes, rels))
        _empty_neo4j(store)
        figures.update(bench_import(store, work / "ackb", work / "media"))
        figures["import_vs_raw"] = figures["import_s"] / figures["raw_driver_load_s"]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    shape = sizes()
    nodes, rels = synthetic_rows(**{k: v for k, v in shape.items() if not k.startswith("_")})
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_ackb(work / "ackb", nodes, rels)
        with LadybugStore(work / "bulk" / "ackb.lbug") as store:
            results["ladybug"] = bench_store(store, nodes, rels, work)
        with LadybugStore(work / "import" / "ackb.lbug") as store:
            results["ladybug"].update(bench_import(store, work / "ackb", work / "media"))
        if os.environ.get("NEO4J_URI"):
            uri, user, password = os.environ["NEO4J_URI"], os.environ.get("NEO4J_USER", "neo4j"), os.environ.get("NEO4J_PASSWORD")
            results["neo4j"] = bench_neo4j(uri, user, password, nodes, rels, work)
        elif neo4j_server.java_available() is None:
            home = work / "neo4j"
            started = time.perf_counter()
            server = neo4j_server.start(home, port=neo4j_server.free_port())
            first_start = time.perf_counter() - started
            try:
                neo4j_server.stop(home)
                started = time.perf_counter()
                server = neo4j_server.start(home, port=server.port)
                restart = time.perf_counter() - started
                results["neo4j"] = bench_neo4j(server.uri, server.user, server.password, nodes, rels, work)
                results["neo4j"].update({"server_first_start_s": first_start, "server_restart_s": restart})
            finally:
                neo4j_server.stop(home)
        else:
            results["neo4j"] = {"skipped": f"NEO4J_URI is not set and {neo4j_server.java_available()}"}
    machine = {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}
    if args.json:
        print(json.dumps({"machine": machine, "results": results}, indent=2))
        return
    print(f"machine: {machine}")
    for backend, figures in results.items():
        print(f"\n[{backend}]")
        for key, value in figures.items():
            print(f"  {key:22s} {value:,.2f}" if isinstance(value, float) else f"  {key:22s} {value}")


if __name__ == "__main__":
    main()
