"""Benchmark: the curation app's paged reads (kb.browse, kb.audit) on a 100k-clip Ladybug store.

Builds a synthetic ACKB of 100,000 clips (2,000 products x 50 clips, 10,000 selling points, 20
categories, 10 motions; kb.synthetic) bulk-loaded into a fresh Ladybug store, plus 20,000 audit
events, then prints p50/p95 latency (ms) of the first page and of a deep page (a cursor 90% of
the way through the filtered results) for each clip filter, the product listing, a selling
point's review queue, a clip's detail and the audit trail. Run: `python benchmarks/browse.py [--runs N] [--json]`.
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
from collections.abc import Callable
from pathlib import Path

from kb import browse, migrate
from kb.audit import list_audit, record_audit
from kb.ladybug_store import LadybugStore
from kb.schema import NODE_TYPES, REL_TYPES
from kb.store import GraphStore, Transaction
from kb.synthetic import synthetic_rows

SHAPE = {"products": 2_000, "selling_points_per_product": 5, "clips_per_product": 50, "categories": 20}
AUDIT_EVENTS = 20_000
DEEP = 0.9  # where the deep page's cursor sits in the filtered results


def _percentiles(values: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[49], cuts[94]


def _time(call: Callable[[], object], runs: int) -> dict[str, float]:
    call()  # warm-up
    latencies = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        latencies.append((time.perf_counter() - started) * 1000)
    p50, p95 = _percentiles(latencies)
    return {"p50_ms": round(p50, 2), "p95_ms": round(p95, 2)}


def _clip_filters(nodes: dict, rels: dict) -> dict[str, tuple[dict, list[str]]]:
    """filter kwargs -> the sorted clip ids they select, computed from the generated rows."""
    category_of_product = {r["from"]: r["to"] for r in rels["IN_CATEGORY"]}
    category = {r["from"]: category_of_product[r["to"]] for r in rels["FEATURES"]}
    motion = {r["from"]: r["to"] for r in rels["HAS_MOTION"]}
    approved = {r["from"] for r in rels["ILLUSTRATES"] if r["status"] == "approved"}
    sp_links = [r for r in rels["ILLUSTRATES"] if r["to"] == "sp-0000100-0"]
    clips = nodes["CreativeClip"]
    selections = {
        "all": ({}, [c["id"] for c in clips]),
        "category": ({"category_id": "cat-0003"}, [c for c, v in category.items() if v == "cat-0003"]),
        "motion": ({"motion_id": "motion-zoom_in"}, [c for c, v in motion.items() if v == "motion-zoom_in"]),
        "status": ({"status": "approved"}, list(approved)),
        "tag": ({"tag": "pan_left"}, [c["id"] for c in clips if "pan_left" in c["tags"]]),
        "selling_point": ({"selling_point_id": "sp-0000100-0"}, [r["from"] for r in sp_links]),
        "search": ({"search": "zoom out"}, [c["id"] for c in clips if "zoom out" in c["caption"]]),
        "category+motion+status": (
            {"category_id": "cat-0003", "motion_id": "motion-zoom_in", "status": "approved"},
            [c for c, v in category.items() if v == "cat-0003" and motion[c] == "motion-zoom_in" and c in approved],
        ),
    }
    return {name: (kwargs, sorted(ids)) for name, (kwargs, ids) in selections.items()}


def _deep_cursor(ids: list[str]) -> str | None:
    return ids[int(len(ids) * DEEP) - 1] if len(ids) > 1 else None


def _load(store: GraphStore, nodes: dict, rels: dict) -> dict[str, float]:
    started = time.perf_counter()
    migrate.migrate(store)
    store.write(lambda tx: [store.bulk_create_nodes(tx, label, nodes[label]) for label in NODE_TYPES])
    store.write(lambda tx: [store.bulk_create_relationships(tx, t, rels[t]) for t in REL_TYPES])
    loaded = time.perf_counter() - started
    rng = random.Random(3)
    clip_ids = [c["id"] for c in nodes["CreativeClip"]]

    def audit(tx: Transaction) -> None:
        for i in range(AUDIT_EVENTS):
            record_audit(tx, actor=f"annotator-{i % 7}", action=("update", "set_status")[i % 2], entity_label="CreativeClip",
                         entity_id=rng.choice(clip_ids), before={"caption": "old"}, after={"caption": "new"})

    started = time.perf_counter()
    store.write(audit)
    return {"load_s": round(loaded, 1), "audit_write_s": round(time.perf_counter() - started, 1)}


def run(store: GraphStore, runs: int) -> dict[str, dict]:
    """Build the store and time every read; returns {case: {p50_ms, p95_ms, rows}}."""
    nodes, rels = synthetic_rows(**SHAPE)
    results: dict[str, dict] = {"build": _load(store, nodes, rels)}
    results["build"]["clips"] = len(nodes["CreativeClip"])
    for name, (kwargs, ids) in _clip_filters(nodes, rels).items():
        for depth, cursor in (("first", None), ("deep", _deep_cursor(ids))):
            if depth == "deep" and cursor is None:
                continue
            page = browse.clips(store, **kwargs, cursor=cursor)
            expected = ids[ids.index(cursor) + 1 :][:24] if cursor else ids[:24]
            assert [c["id"] for c in page.items] == expected, f"clips {name} {depth}: wrong page"
            timed = _time(lambda kwargs=kwargs, cursor=cursor: browse.clips(store, **kwargs, cursor=cursor), runs)
            results[f"clips[{name}] {depth} page"] = {**timed, "matching": len(ids)}
    product_ids = sorted(p["id"] for p in nodes["Product"])
    for depth, cursor in (("first", None), ("deep", _deep_cursor(product_ids))):
        results[f"products {depth} page"] = _time(lambda cursor=cursor: browse.products(store, cursor=cursor), runs)
    results["products[category] first page"] = _time(lambda: browse.products(store, category_id="cat-0003"), runs)
    results["products[search] first page"] = _time(lambda: browse.products(store, search="product 19"), runs)
    results["categories"] = _time(lambda: browse.categories(store), runs)
    results["selling_points(product)"] = _time(lambda: browse.selling_points(store, "prod-0000100"), runs)
    results["links_for_selling_point"] = _time(lambda: browse.links_for_selling_point(store, "sp-0000100-0"), runs)
    results["clip_detail"] = _time(lambda: browse.clip_detail(store, "clip-0001500-010"), runs)
    newest = list_audit(store, limit=50)
    deep_cursor = list_audit(store, limit=500, cursor=None).events[-1].id
    assert len(newest.events) == 50 and newest.next_cursor
    results["audit first page"] = _time(lambda: list_audit(store), runs)
    results["audit page after 500"] = _time(lambda: list_audit(store, cursor=deep_cursor), runs)
    results["audit[actor] first page"] = _time(lambda: list_audit(store, actor="annotator-3"), runs)
    results["audit[entity_id]"] = _time(lambda: list_audit(store, entity_id="clip-0001500-010"), runs)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="timed runs per case (default 30)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, LadybugStore(Path(tmp) / "ackb.lbug") as store:
        results = run(store, args.runs)
    machine = {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}
    if args.json:
        print(json.dumps({"machine": machine, "backend": "ladybug", "results": results}, indent=2))
        return
    print(f"machine: {machine}\nbackend: ladybug")
    for case, figures in results.items():
        print(f"  {case:44s} " + "  ".join(f"{k}={v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
