"""Benchmark: bulk-load 100k nodes + 300k relationships into each present backend, then time a 2-hop query.

Prints nodes/s, relationships/s, the full `import_ackb` time of the same data (validation
included) and a no-op re-import, and p50/p95 latency of a parameterised 2-hop query (selling
point -> clips -> motions) over 200 runs. Ladybug always; Neo4j when NEO4J_URI is set (its
database is WIPED). Run: `make benchmark` or `python benchmarks/kb_load.py [--json]`.
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

from kb import migrate
from kb.ladybug_store import LadybugStore
from kb.schema import NODE_TYPES, REL_TYPES
from kb.store import GraphStore
from kb.interchange import import_ackb, write_ackb
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
            from kb.neo4j_store import Neo4jStore

            def neo4j() -> Neo4jStore:
                return Neo4jStore(os.environ["NEO4J_URI"], user=os.environ.get("NEO4J_USER", "neo4j"), password=os.environ.get("NEO4J_PASSWORD"))

            with neo4j() as store:
                store.run("MATCH (n) DETACH DELETE n")
                results["neo4j"] = bench_store(store, nodes, rels, work)
                store.run("MATCH (n) DETACH DELETE n")
                results["neo4j"].update(bench_import(store, work / "ackb", work / "media"))
        else:
            results["neo4j"] = {"skipped": "NEO4J_URI is not set"}
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
