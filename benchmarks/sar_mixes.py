"""NDCG@10 of SAR's served score over a grid of text and vote shares, on the cold-start protocol's held-out products.

Why: the shares SAR serves are chosen per ACKB by cross-validation over the training products
(`retrieval.crossval.choose_mixes`); this shows, for one ACKB, what each candidate pair would give on
the held-out products, next to the selling-point kNN baseline, from the same trained GATs. Run it
on a tuning ACKB only (`kdcvg kb make-eval DIR --seed 1`): reading it on the ACKB you report is
choosing on the test split.

Run: `python benchmarks/sar_mixes.py DIR [--seeds 5] [--text 0,0.5,1] [--vote 0,0.5,1,2]`.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's packages, not benchmarks/retrieval.py

from kb.graph import graph_from_directory
from retrieval.baselines import sp_knn_scores
from retrieval.evaluate import TASKS
from retrieval.features import TextEncoder, build_features
from retrieval.metrics import per_query_metrics
from retrieval.sar import SarRetriever
from retrieval.train import SarConfig, train_sar


def ndcg(scores: np.ndarray, relevant: list[set[int]]) -> list[float]:
    """Per scored query (one with a relevant clip), NDCG@10."""
    return [m["NDCG@10"] for m in per_query_metrics(scores, relevant, (10,)) if m is not None]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--text", default="0,0.5,1")
    parser.add_argument("--vote", default="0,0.5,1,2")
    args = parser.parse_args()
    pairs = [(float(t), float(v)) for t in args.text.split(",") for v in args.vote.split(",")]
    graph = graph_from_directory(args.directory)
    features = build_features(graph, TextEncoder(), None)
    knn: list[float] = []
    served: dict[tuple[float, float], list[float]] = {pair: [] for pair in pairs}
    for seed in range(args.seeds):
        task = TASKS["cold-start"](graph, features, seed=seed)
        queries = list(task.split.test)
        knn += ndcg(sp_knn_scores(task.graph, task.features, task.split, queries), task.relevant)
        config = replace(SarConfig(), seed=seed)
        model, _ = train_sar(task.graph, task.features, task.split, config, progress=False)
        for text, vote in pairs:
            retriever = SarRetriever.for_config(model, task.graph, task.features, set(task.split.train), config, text_mix=text, vote_mix=vote)
            served[(text, vote)] += ndcg(retriever.score_matrix(queries), task.relevant)
        print(f"seed {seed} done", flush=True)
    base = float(np.mean(knn))
    print(f"sp-knn NDCG@10 {base:.3f} over {len(knn)} queries")
    print("text  vote  NDCG@10  vs sp-knn")
    for (text, vote), values in served.items():
        mean = float(np.mean(values))
        print(f"{text:4g}  {vote:4g}  {mean:.3f}    {mean - base:+.3f} ({100 * (mean - base) / base:+.1f} %)")


if __name__ == "__main__":
    main()
