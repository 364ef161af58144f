"""Overhead of MKR's cached motion priors on a real local backbone: plain vs spectral vs inversion, warm cache.

Why: the motion prior must cost next to nothing once a reference clip's latents (spectral) or
inverted noise (inversion) are cached (target ≤ 5 % over plain). The backbone is loaded once; a
warm-up call per variant fills the reference cache; then `--rounds` rounds each time plain,
spectral and inversion back to back (order rotated per round, so drift on a shared machine hits
every variant alike) with `generation.pipeline.generate_frames`, as `kdcvg generate` calls it.
Reported: each variant's median wall and CPU seconds (`time.process_time`, this process: on a
shared machine CPU time is what other jobs disturb least) and the median of its per-round ratios
to plain.

    python benchmarks/prior_overhead.py --model generation/demo_model --rounds 15 --out overhead.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from generation.backbones import load_backbone
from generation.pipeline import generate_frames
from generation.reference_cache import ReferenceCache
from kb.demo.clips import render_clip

PROMPT, NEGATIVE = "a red bottle on a marble table, slow pan", "blurry, low quality"
VARIANTS = {"plain": ("spectral", 0.0), "spectral": ("spectral", 0.5), "inversion": ("inversion", 0.7)}


def main() -> None:
    """Time the three variants in rotated rounds and print medians and ratios to plain."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="local diffusers pipeline directory")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pipe = load_backbone(args.model)
    with tempfile.TemporaryDirectory() as scratch:
        clip = render_clip(Path(scratch) / "ref.mp4", motion="pan_right", seed=1, num_frames=16)
        cache = ReferenceCache(Path(scratch) / "cache")
        options = {"num_frames": args.frames, "height": args.size, "width": args.size, "steps": args.steps, "seed": 0}

        def run(variant: str) -> tuple[float, float, dict]:
            method, strength = VARIANTS[variant]
            started, cpu = time.perf_counter(), time.process_time()
            _, info = generate_frames(pipe, PROMPT, NEGATIVE, reference_video=clip if strength else None, motion_strength=strength,
                                      method=method, cache=cache, model_dir=args.model, **options)  # fmt: skip
            return time.perf_counter() - started, time.process_time() - cpu, info

        warm = {variant: run(variant)[2].get("reference_cache") for variant in VARIANTS}  # fills the cache
        times: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
        cpu_times: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
        hits: dict[str, list] = {variant: [] for variant in VARIANTS}
        names = list(VARIANTS)
        for round_ in range(args.rounds):
            for variant in names[round_ % 3 :] + names[: round_ % 3]:
                seconds, cpu_seconds, info = run(variant)
                times[variant].append(seconds)
                cpu_times[variant].append(cpu_seconds)
                hits[variant].append(info.get("reference_cache"))
    ratios = {v: statistics.median(t / p for t, p in zip(times[v], times["plain"])) for v in VARIANTS}
    cpu_ratios = {v: statistics.median(t / p for t, p in zip(cpu_times[v], cpu_times["plain"])) for v in VARIANTS}
    report = {
        "machine": f"{platform.machine()}, torch threads {args.threads}, torch {torch.__version__}",
        "model": str(args.model), "options": {**options, "rounds": args.rounds},
        "warm_up_cache": warm, "cache_in_timed_runs": {v: hits[v][-1] for v in VARIANTS},
        "median_s": {v: statistics.median(t) for v, t in times.items()},
        "min_s": {v: min(t) for v, t in times.items()}, "max_s": {v: max(t) for v, t in times.items()},
        "median_ratio_to_plain": ratios, "seconds": times,
        "median_cpu_s": {v: statistics.median(t) for v, t in cpu_times.items()}, "median_cpu_ratio_to_plain": cpu_ratios,
        "cpu_seconds": cpu_times,
    }  # fmt: skip
    print("| variant | median wall s (min–max) | wall ratio to plain | median CPU s | CPU ratio to plain | CPU overhead |")
    print("|---|---|---|---|---|---|")
    for v in VARIANTS:
        wall = f"{report['median_s'][v]:.3f} ({report['min_s'][v]:.3f}–{report['max_s'][v]:.3f})"
        cpu = report["median_cpu_s"][v]
        print(f"| {v} | {wall} | {ratios[v]:.3f} | {cpu:.3f} | {cpu_ratios[v]:.3f} | {cpu_ratios[v] - 1:+.1%} |")
    print(f"cache in timed runs: {report['cache_in_timed_runs']}")
    if args.out:
        args.out.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")


if __name__ == "__main__":
    main()
