"""Benchmark SAR serving: ClipIndex build time, top-10 latency, filtered latency, recall, memory.

Synthetic, seeded clip embeddings (d=128): random unit vectors drawn around 1,000 random centres
(clustered, as real clip embeddings are; `--uniform` draws them uniformly on the sphere, the
worst case for any ANN index). Queries are unit vectors near random clips. Per size: build time,
top-10 query latency p50/p95 over 500 queries, recall@10 against an exact scan (100 queries),
top-10 latency with `allowed` = a random 1% of the clips, usearch's memory and file size, and
the process RSS. `--train` adds training time per epoch of the SAR model (`retrieval.model.SarGAT`)
on a synthetic heterograph of 100k nodes / 500k edges (with reverses), full batch, InfoNCE loss.

    python benchmarks/retrieval.py [--sizes 10000,100000,1000000] [--train] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from retrieval.index import ClipIndex  # loads usearch (torch first) when an index is built or searched by HNSW

DIM = 128
QUERIES = 500
RECALL_QUERIES = 100
CENTRES = 1_000
CLIP_NOISE = 0.6  # expected norm of a clip's offset from its centre (the centre has norm 1)
QUERY_NOISE = 0.3  # expected norm of a query's offset from the clip it was drawn near
SIZES = (10_000, 100_000, 1_000_000)
TARGET_P50_MS = {100_000: 5.0, 1_000_000: 20.0}


def rss_mb() -> float:
    """Resident set size of this process, MiB (from /proc)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def embeddings(n: int, *, uniform: bool, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if uniform:
        return _unit(rng.standard_normal((n, DIM), dtype=np.float32))
    centres = _unit(rng.standard_normal((CENTRES, DIM), dtype=np.float32))
    x = centres[rng.integers(0, CENTRES, n)]
    x += rng.standard_normal((n, DIM), dtype=np.float32) * np.float32(CLIP_NOISE / np.sqrt(DIM))
    return _unit(x)


def queries(x: np.ndarray, count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    near = x[rng.integers(0, len(x), count)]
    return _unit(near + rng.standard_normal(near.shape, dtype=np.float32) * np.float32(QUERY_NOISE / np.sqrt(DIM)))


def _percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def _latencies(run, items) -> list[float]:
    for item in items[:20]:  # warm-up
        run(item)
    result = []
    for item in items:
        started = time.perf_counter()
        run(item)
        result.append((time.perf_counter() - started) * 1000)
    return result


def bench_size(n: int, *, uniform: bool) -> dict[str, float]:
    x = embeddings(n, uniform=uniform)
    ids = [f"clip-{i:08d}" for i in range(n)]
    rss_before = rss_mb()
    started = time.perf_counter()
    index = ClipIndex.build(ids, x)
    build_s = time.perf_counter() - started
    del x  # the index holds the normalised copy
    q = queries(index.embeddings, QUERIES, seed=n)
    plain = _latencies(lambda v: index.search(v, 10), list(q))

    hits = 0
    for v in q[:RECALL_QUERIES]:
        truth = set(np.argpartition(-(index.embeddings @ v), 10)[:10].tolist())
        hits += len(truth & {index.row_of[c] for c, _ in index.search(v, 10)})

    rng = np.random.default_rng(n + 1)
    allowed = {ids[i] for i in rng.choice(n, size=max(1, n // 100), replace=False)}
    filtered = _latencies(lambda v: index.search(v, 10, allowed), list(q))

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        index.save(tmp)
        save_s = time.perf_counter() - started
        file_mb = sum(p.stat().st_size for p in Path(tmp).iterdir()) / 2**20
        index_file_mb = (Path(tmp) / "clips.usearch").stat().st_size / 2**20
        started = time.perf_counter()
        loaded = ClipIndex.load(tmp)
        load_s = time.perf_counter() - started
        assert loaded.search(q[0], 10) == index.search(q[0], 10)
        del loaded
    figures = {
        "clips": n,
        "build_s": build_s,
        "build_per_s": n / build_s,
        "top10_p50_ms": _percentile(plain, 50),
        "top10_p95_ms": _percentile(plain, 95),
        "recall_at_10": hits / (10 * RECALL_QUERIES),
        "filtered_1pct_p50_ms": _percentile(filtered, 50),
        "filtered_1pct_p95_ms": _percentile(filtered, 95),
        "usearch_memory_mb": index.index.memory_usage / 2**20,
        "index_file_mb": index_file_mb,
        "saved_files_mb": file_mb,
        "save_s": save_s,
        "load_s": load_s,
        "rss_mb": rss_mb(),
        "rss_growth_mb": rss_mb() - rss_before,
    }
    if n in TARGET_P50_MS:
        figures["target_p50_ms"] = TARGET_P50_MS[n]
    return figures


def synthetic_heterodata(nodes: int = 100_000, edges: int = 500_000, feature_dim: int = 384, seed: int = 0):
    """A HeteroData shaped like the ACKB: `nodes` nodes, `edges` edges counting each reverse."""
    import torch
    from torch_geometric.data import HeteroData

    from retrieval.hetero import edge_types

    g = torch.Generator().manual_seed(seed)
    counts = {"Category": 20, "Motion": 10, "Product": 2_000, "SellingPoint": 10_000}
    counts["CreativeClip"] = nodes - sum(counts.values())
    forward = edges // 2
    sizes = {
        "IN_CATEGORY": counts["Product"],
        "HAS_SELLING_POINT": counts["SellingPoint"],
        "FEATURES": counts["CreativeClip"],
        "HAS_MOTION": counts["CreativeClip"],
    }
    sizes["ILLUSTRATES"] = forward - sum(sizes.values())
    data = HeteroData()
    for label, count in counts.items():
        data[label].x = torch.randn(count, feature_dim, generator=g)
    for source, relation, target in edge_types():
        if relation.startswith("rev_"):
            continue
        m = sizes[relation]
        index = torch.stack([torch.randint(counts[source], (m,), generator=g), torch.randint(counts[target], (m,), generator=g)])
        data[source, relation, target].edge_index = index
        data[target, f"rev_{relation}", source].edge_index = index.flip(0)
    return data


def bench_training(epochs: int = 3, pairs: int = 4_096) -> dict[str, float]:
    """Seconds per full-batch epoch (forward, InfoNCE over `pairs` ILLUSTRATES edges, backward, step)."""
    import torch
    import torch.nn.functional as F

    from retrieval.hetero import edge_types
    from retrieval.model import SarGAT

    data = synthetic_heterodata()
    model = SarGAT(list(data.node_types), edge_types(), {t: data[t].x.shape[1] for t in data.node_types})
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    positives = data["CreativeClip", "ILLUSTRATES", "SellingPoint"].edge_index
    g = torch.Generator().manual_seed(1)
    times = []
    for _ in range(epochs):
        started = time.perf_counter()
        model.train()
        optimiser.zero_grad()
        out = model(data)
        batch = positives[:, torch.randperm(positives.shape[1], generator=g)[:pairs]]
        logits = out["SellingPoint"][batch[1]] @ out["CreativeClip"][batch[0]].T / 0.07
        loss = F.cross_entropy(logits, torch.arange(logits.shape[0]))
        loss.backward()
        optimiser.step()
        times.append(time.perf_counter() - started)
    return {
        "nodes": sum(data[t].num_nodes for t in data.node_types),
        "edges": sum(data[t].edge_index.shape[1] for t in data.edge_types),
        "parameters": sum(p.numel() for p in model.parameters()),
        "first_epoch_s": times[0],
        "epoch_s": statistics.mean(times[1:]) if len(times) > 1 else times[0],
        "torch_threads": torch.get_num_threads(),
        "rss_mb": rss_mb(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="comma-separated clip counts (default %(default)s)")
    parser.add_argument(
        "--uniform", action="store_true", help="uniform random unit vectors (ANN worst case) instead of clustered"
    )
    parser.add_argument("--train", action="store_true", help="also time SarGAT training epochs on a 100k-node / 500k-edge graph")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    results: dict = {"machine": {"cpus": os.cpu_count()}, "data": "uniform" if args.uniform else "clustered", "index": []}
    for n in sizes:
        results["index"].append(bench_size(n, uniform=args.uniform))
        if not args.json:
            print(f"  done {n:,} clips", file=sys.stderr, flush=True)
    if args.train:
        results["training"] = bench_training()
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"ClipIndex (usearch HNSW, cosine, f32, d={DIM}, {results['data']} data), {os.cpu_count()} CPUs")
    columns = (
        ("clips", "{:,}"),
        ("build_s", "{:.1f}"),
        ("top10_p50_ms", "{:.2f}"),
        ("top10_p95_ms", "{:.2f}"),
        ("recall_at_10", "{:.3f}"),
        ("filtered_1pct_p50_ms", "{:.2f}"),
        ("filtered_1pct_p95_ms", "{:.2f}"),
        ("usearch_memory_mb", "{:.0f}"),
        ("saved_files_mb", "{:.0f}"),
        ("rss_mb", "{:.0f}"),
    )
    print(" | ".join(name for name, _ in columns))
    for row in results["index"]:
        print(" | ".join(fmt.format(row[name]) for name, fmt in columns))
    if "training" in results:
        t = results["training"]
        print(
            f"SarGAT training, {t['nodes']:,} nodes / {t['edges']:,} edges, {t['parameters']:,} parameters, "
            f"{t['torch_threads']} threads: {t['epoch_s']:.2f} s/epoch (first {t['first_epoch_s']:.2f} s), RSS {t['rss_mb']:.0f} MiB"
        )


if __name__ == "__main__":
    main()
