"""Merge `kdcvg generation eval --out` reports run in parallel (e.g. one per selling point and seed) into one.

Why: on a shared machine one process per pair gets more of the cores than one process for all; the
pooled pairs are summarised with the evaluation's own functions (`summarise`, `min_max_scores`,
`speed_against_reference`, `table_rows`), so the merged report reads exactly like a single run's.

    python benchmarks/merge_eval.py eval-*.json --out merged.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from generation.evaluate import min_max_scores, speed_against_reference, summarise, table_rows


def main() -> None:
    """Pool the reports' pairs (same variants required), summarise and print the two tables as Markdown."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reports", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, help="write the merged report as JSON here")
    args = parser.parse_args()
    reports = [json.loads(path.read_text(encoding="utf-8")) for path in args.reports]
    variants = tuple(reports[0]["options"]["variants"])
    different = [str(p) for p, r in zip(args.reports, reports) if tuple(r["options"]["variants"]) != variants]
    if different:
        sys.exit(f"these reports compare other variants than {args.reports[0]}: {', '.join(different)}")
    pairs = [pair for report in reports for pair in report["pairs"]]
    summary = summarise(pairs, variants)
    merged = {
        **reports[0], "pairs": pairs, "skipped": [s for r in reports for s in r["skipped"]], "summary": summary,
        "min_max": min_max_scores(summary, variants), "speed": speed_against_reference(pairs, variants),
        "selling_points": sorted({p["selling_point"] for p in pairs}),
        "options": {**reports[0]["options"], "seeds": sorted({p["seed"] for p in pairs})}, "merged_from": [str(p) for p in args.reports],
    }  # fmt: skip
    for header, rows in table_rows(merged):
        print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
        print("\n".join("| " + " | ".join(row) + " |" for row in rows) + "\n")
    if args.out:
        args.out.write_text(json.dumps(merged, indent=2, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
