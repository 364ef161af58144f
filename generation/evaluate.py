"""MKR against the same backbone without knowledge, on the same selling points and seeds.

Why: the question MKR must answer is whether knowledge helps. For each selling point and seed two
videos are made with ONE loaded backbone:

- `mkr`: `generation.api.generate` as users run it: SAR's references, the knowledge prompt (scene,
  motion, negative prompt from rejected clips) and the best reference's motion in the initial noise
  (`motion_strength` > 0).
- `plain`: the same backbone, seed, frames, size and steps, prompted with the product name and
  selling-point text only (the knowledge prompt's `subject`), the fixed generic negative prompt
  (`generation.prompt.ARTEFACT_TERMS`, no graph knowledge) and `motion_strength` 0 (plain
  text-to-video).

Both are measured with `generation.metrics` (read back from their mp4, i.e. what a user gets):
alignment to the SAME text (the subject, so the knowledge prompt's extra words earn MKR nothing by
themselves), motion fidelity to the SAME reference clip (the one MKR used, resampled as the motion
prior saw it), temporal consistency and runtime (MKR's includes retrieval and prompt building).
The summary gives mean ± std per metric and variant, and the mean ± std of the paired difference
(mkr − plain over the same selling point and seed).

Evaluation videos stay out of the graph: they are written to a scratch folder (default
`<data>/cache/generation-eval/<UTC time>/`, with MKR's JSON sidecars) and no `GeneratedVideo`
provenance is recorded, so the ACKB and `<data>/media/generated/` are left exactly as they were.

Default selling points: `count` of those SAR held out when it was trained (no approved link of
theirs was seen in training), drawn with `sample_seed`, topped up with other selling points when
fewer were held out.
"""

from __future__ import annotations

from kdcvg.errors import BadInputError
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import imageio.v3 as iio
import numpy as np
from tqdm import tqdm

from generation.backbones import backbone_family
from generation.batch import error_message
from generation.generator import Generator
from generation.metrics import (
    CLIP_UNAVAILABLE,
    motion_fidelity,
    runtime_s,
    temporal_consistency,
    text_video_alignment,
)
from generation.motion_prior import read_reference
from generation.pipeline import generate_frames, validate_request, write_mp4
from generation.prompt import ARTEFACT_TERMS
from retrieval.clip_image import OpenClipEncoder
from retrieval.graph import AckbGraph

METRICS = ("text_video_alignment", "motion_fidelity", "temporal_consistency", "runtime_s")
VARIANTS = ("mkr", "plain")
PLAIN_NEGATIVE = ", ".join(ARTEFACT_TERMS)


class EvaluationError(BadInputError):
    """The evaluation cannot run: unknown selling points, none to evaluate, or every pair failed."""


def default_videos_dir(cache_dir: Path) -> Path:
    """A fresh scratch folder for one evaluation's videos, under the (recomputable) cache."""
    return cache_dir / "generation-eval" / datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def pick_selling_points(graph: AckbGraph, train_ids: list[str] | None, count: int, sample_seed: int = 0) -> list[str]:
    """`count` selling points with a product: SAR's held-out ones first (seeded draw), then others."""
    if count < 1:
        raise EvaluationError(f"the number of selling points must be at least 1, got {count}")
    owned = sorted(sp for sp in graph.ids("SellingPoint") if graph.product_of_selling_point.get(sp))
    trained = set(train_ids or [])
    held_out = [sp for sp in owned if sp not in trained]
    rest = [sp for sp in owned if sp in trained]
    rng = random.Random(sample_seed)
    picks = rng.sample(held_out, min(count, len(held_out)))
    picks += rng.sample(rest, min(count - len(picks), len(rest)))
    if not picks:
        raise EvaluationError("the ACKB has no selling point with a product to evaluate")
    return picks


def parse_selling_points(value: str, graph: AckbGraph) -> list[str]:
    """Selling point ids from a file (one per line, '#' comments) or a comma-separated list, all checked."""
    path = Path(value)
    if path.is_file():
        items = [line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines()]
        source = str(path)
    else:
        items = [item.strip() for item in value.split(",")]
        source = "--selling-points"
    ids = list(dict.fromkeys(item for item in items if item))
    if not ids:
        raise EvaluationError(f"{source}: no selling point ids")
    unknown = [sp for sp in ids if sp not in graph.index("SellingPoint")]
    orphans = [sp for sp in ids if sp not in unknown and not graph.product_of_selling_point.get(sp)]
    if unknown or orphans:
        problems = [f"no SellingPoint with id {sp!r}" for sp in unknown] + [
            f"selling point {sp!r} has no product" for sp in orphans
        ]
        raise EvaluationError(f"{source}: " + "; ".join(problems))
    return ids


def _read_video(path: Path) -> np.ndarray:
    """(T, H, W, 3) uint8 frames of an mp4 we wrote."""
    return np.asarray(iio.imread(path, index=None))[..., :3]


def _reference_frames(path: Path, frames: np.ndarray) -> np.ndarray:
    """The reference clip as the motion prior saw it (same frames, size and crop), uint8."""
    tensor = read_reference(path, len(frames), frames.shape[1], frames.shape[2])
    return ((tensor + 1.0) * 127.5).round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()


def measure(
    frames: np.ndarray, text: str, reference: np.ndarray | None, timings: dict[str, float], clip_encoder: OpenClipEncoder | None
) -> dict[str, float | None]:
    """Every metric of one video; None where it cannot be measured (no CLIP model, no reference clip)."""
    return {
        "text_video_alignment": text_video_alignment(frames, text, clip_encoder) if clip_encoder is not None else None,
        "motion_fidelity": motion_fidelity(frames, reference) if reference is not None else None,
        "temporal_consistency": temporal_consistency(frames),
        "runtime_s": runtime_s(timings),
    }


def _stats(values: list[float]) -> dict[str, float | int | None]:
    """Mean, sample standard deviation and count (None when there is no value)."""
    if not values:
        return {"mean": None, "std": None, "n": 0}
    array = np.asarray(values, dtype=np.float64)
    return {"mean": float(array.mean()), "std": float(array.std(ddof=1)) if len(array) > 1 else 0.0, "n": len(array)}


def summarise(pairs: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float | int | None]]]:
    """Per metric: mean ± std of each variant and of the paired difference (mkr − plain)."""
    summary: dict[str, dict[str, dict[str, float | int | None]]] = {}
    for metric in METRICS:
        values = {v: [p[v]["metrics"][metric] for p in pairs if p[v]["metrics"][metric] is not None] for v in VARIANTS}
        both = [p for p in pairs if all(p[v]["metrics"][metric] is not None for v in VARIANTS)]
        differences = [p["mkr"]["metrics"][metric] - p["plain"]["metrics"][metric] for p in both]
        summary[metric] = {**{v: _stats(values[v]) for v in VARIANTS}, "difference": _stats(differences)}
    return summary


def evaluate_generation(
    generator: Generator,
    selling_points: list[str],
    *,
    seeds: list[int],
    videos_dir: Path,
    clip_encoder: OpenClipEncoder | None = None,
    k: int = 3,
    motion_strength: float = 0.5,
    num_frames: int = 8,
    size: int = 64,
    steps: int = 4,
    progress: bool = False,
) -> dict[str, Any]:
    """Generate and measure MKR and plain videos for every selling point × seed; the report (JSON-ready)."""
    if not 0.0 < motion_strength <= 1.0:
        raise EvaluationError(f"MKR's motion_strength must be in (0, 1] (0 is the plain baseline), got {motion_strength}")
    if not seeds:
        raise EvaluationError("at least one seed is needed")
    validate_request(num_frames, size, size, steps, backbone_family(generator.pipe))  # before any pair is generated
    graph = generator.sar.graph
    options = {"num_frames": num_frames, "height": size, "width": size, "steps": steps}
    pairs: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    jobs = [(sp, seed) for sp in selling_points for seed in seeds]
    for sp, seed in tqdm(jobs, desc="generation eval", unit="pair", file=sys.stderr, disable=not progress):
        product = graph.product_of_selling_point[sp]
        try:
            mkr = generator.generate(
                product, sp, scratch_dir=videos_dir / "mkr", k=k, seed=seed, motion_strength=motion_strength, **options
            )
            started = time.perf_counter()
            frames, info = generate_frames(
                generator.pipe, mkr.prompt.subject, PLAIN_NEGATIVE, motion_strength=0.0, seed=seed, **options
            )
            plain_path = write_mp4(frames, videos_dir / "plain" / f"{sp}-seed{seed}.mp4")
            plain_timings = {
                **{key: v for key, v in info.items() if key.endswith("_s")},
                "total_s": time.perf_counter() - started,
            }
        except Exception as error:  # noqa: BLE001 - report the pair, evaluate the others
            skipped.append({"selling_point": sp, "seed": seed, "error": f"{type(error).__name__}: {error_message(error)}"})
            continue
        mkr_frames, plain_frames = _read_video(mkr.video_path), _read_video(plain_path)
        relative = mkr.parameters.get("reference_video")
        reference_path = generator.settings.media_dir / relative if relative else None
        reference = _reference_frames(reference_path, mkr_frames) if reference_path else None
        text = mkr.prompt.subject
        pairs.append({
            "selling_point": sp, "product": product, "seed": seed, "text": text, "reference_video": relative,
            "mkr": {"video_path": str(mkr.video_path), "prompt": mkr.prompt.prompt, "negative_prompt": mkr.prompt.negative_prompt,
                    "metrics": measure(mkr_frames, text, reference, mkr.timings, clip_encoder)},
            "plain": {"video_path": str(plain_path), "prompt": text, "negative_prompt": PLAIN_NEGATIVE,
                      "metrics": measure(plain_frames, text, reference, plain_timings, clip_encoder)},
        })  # fmt: skip
    if not pairs:
        raise EvaluationError(
            "nothing was evaluated: " + "; ".join(f"{s['selling_point']} seed {s['seed']}: {s['error']}" for s in skipped)
        )
    return {
        "model": str(generator.model_dir),
        "options": {
            "seeds": seeds,
            "k": k,
            "motion_strength": motion_strength,
            "frames": num_frames,
            "size": size,
            "steps": steps,
        },
        "selling_points": selling_points,
        "videos_dir": str(videos_dir),
        "provenance": "not recorded: evaluation videos stay in videos_dir, out of the graph",
        "unavailable": {} if clip_encoder is not None else {"text_video_alignment": CLIP_UNAVAILABLE},
        "pairs": pairs,
        "skipped": skipped,
        "summary": summarise(pairs),
    }


def _cell(stats: dict[str, float | int | None], signed: bool = False) -> str:
    if stats["mean"] is None:
        return "n/a"
    return f"{stats['mean']:{'+' if signed else ''}.3f} ± {stats['std']:.3f}"


def table_rows(report: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """(metric, mkr, plain, paired difference, n pairs) per metric, as printed by `kdcvg generation eval`."""
    rows = []
    for metric in METRICS:
        stats = report["summary"][metric]
        rows.append(
            (
                metric,
                _cell(stats["mkr"]),
                _cell(stats["plain"]),
                _cell(stats["difference"], signed=True),
                str(stats["difference"]["n"]),
            )
        )
    return rows
