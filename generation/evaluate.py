"""MKR's motion priors against the same backbone without knowledge, on the same selling points and seeds.

Why: the question MKR must answer is whether knowledge helps, and which part of it. For each
selling point and seed one video per variant is made with ONE loaded backbone:

- `plain`: the same backbone, seed, frames, size and steps, prompted with the product name and
  selling-point text only (the knowledge prompt's `subject`), the fixed generic negative prompt
  (`generation.prompt.ARTEFACT_TERMS`, no graph knowledge) and no motion prior (plain
  text-to-video).
The paper's ablation, one component added at a time (each row differs from the one it builds on
by that component only):

- `spectral`, `inversion`: `generation.api.generate` with SAR's references and the best
  reference's motion through that motion prior (`motion_strength` given, else each prior's
  default: 0.5 spectral, β = 0.7 inversion), prompted like plain (subject and generic negative
  prompt): the motion prior alone.
- `lora`, `inversion+lora`: the motion LoRA trained on the best reference clip (a MotionLora
  TRAINED_ON it: `kdcvg generation train-motion-lora --clip ID`; "auto" lookup) alone, or with
  inversion; prompted like plain. A pair whose best reference has no LoRA is skipped, with the reason.
- `full` (full MKR, as users run it): inversion + LoRA + the knowledge prompt finalised by the
  configured rewriter (an LLM's rewrite of the best reference's script when one is configured, the
  deterministic graph prompt otherwise; each video's `rewrite` status says which).

Every video is measured with `generation.metrics` (read back from its mp4, i.e. what a user gets):
alignment to the SAME text (the subject, so the knowledge prompt's extra words earn nothing by
themselves), motion fidelity to the SAME reference clip (the one MKR used, resampled as the motion
prior saw it), temporal consistency, VBench's dynamic degree and motion smoothness, motion
magnitude (compared with the reference's: `speed`) and runtime. The summary gives mean ± std per
metric and variant, the paired difference of each variant from plain (same selling point and
seed), and the paper's Min-Max score: each quality metric's variant means min-max normalised
across the compared variants, averaged over metrics, ×100 (a metric on which all variants tie is
left out; runtime and magnitude are not quality).

Evaluation videos stay out of the graph: they are written to a scratch folder (default
`<data>/cache/generation-eval/<UTC time>/`, with MKR's JSON sidecars) and no `GeneratedVideo`
provenance is recorded, so the ACKB and `<data>/media/generated/` are left exactly as they were.

Default selling points: `count` of those SAR held out when it was trained (no approved link of
theirs was seen in training), drawn with `sample_seed`, topped up with other selling points when
fewer were held out.
"""

from __future__ import annotations

import random
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import imageio.v3 as iio
import numpy as np
from tqdm import tqdm

from generation.backbones import backbone_family, check_request
from generation.batch import error_message
from generation.generator import Generator
from generation.metrics import (
    CLIP_UNAVAILABLE,
    dynamic_degree,
    motion_fidelity,
    motion_magnitude,
    motion_smoothness,
    runtime_s,
    temporal_consistency,
    text_video_alignment,
)
from generation.pipeline import generate_frames, write_mp4
from generation.prompt import ARTEFACT_TERMS, PromptPlan
from generation.reference_video import read_reference
from generation.request import GenerationOptions, GenerationRequest
from generation.rewrite import RewriteRequest
from kb.graph import AckbGraph
from kdcvg.errors import BadInputError
from retrieval.clip_image import OpenClipEncoder

METRICS = (
    "text_video_alignment", "motion_fidelity", "temporal_consistency", "dynamic_degree", "motion_smoothness",
    "motion_magnitude", "runtime_s",
)  # fmt: skip
MIN_MAX_METRICS = ("text_video_alignment", "motion_fidelity", "temporal_consistency", "dynamic_degree", "motion_smoothness")
PLAIN_NEGATIVE = ", ".join(ARTEFACT_TERMS)


class PlainPrompt:
    """A rewriter that drops the knowledge prompt: the subject and the generic negative prompt, as plain has."""

    name = "plain"

    def rewrite(self, plan: PromptPlan, request: RewriteRequest) -> PromptPlan:
        return replace(plan, prompt=plan.subject, negative_prompt=PLAIN_NEGATIVE,
                       rewrite={"rewriter": self.name, "status": "ablation: no knowledge prompt", "reason": None})  # fmt: skip


PLAIN_PROMPT = PlainPrompt()
# variant -> its GenerationRequest fields; plain (first: the baseline of every difference) is generated apart, without knowledge
VARIANT_OPTIONS: dict[str, dict[str, Any]] = {
    "plain": {},
    "spectral": {"motion_prior": "spectral"},
    "inversion": {"motion_prior": "inversion"},
    "lora": {"motion_prior": "spectral", "motion_strength": 0.0, "motion_lora": "auto"},
    "inversion+lora": {"motion_prior": "inversion", "motion_lora": "auto"},
    "full": {"motion_prior": "inversion", "motion_lora": "auto"},
}
# The variants prompted like plain (one component added at a time); the others use the configured rewriter.
PLAIN_PROMPTED = frozenset({"spectral", "inversion", "lora", "inversion+lora"})
VARIANTS = tuple(VARIANT_OPTIONS)
DEFAULT_VARIANTS = ("plain", "spectral", "inversion")  # the LoRA variants need LoRAs trained per reference clip


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
    """Every metric of one video; None where it cannot be measured (no CLIP model, no reference clip, < 3 frames)."""
    return {
        "text_video_alignment": text_video_alignment(frames, text, clip_encoder) if clip_encoder is not None else None,
        "motion_fidelity": motion_fidelity(frames, reference) if reference is not None else None,
        "temporal_consistency": temporal_consistency(frames),
        "dynamic_degree": dynamic_degree(frames),
        "motion_smoothness": motion_smoothness(frames) if len(frames) >= 3 else None,
        "motion_magnitude": motion_magnitude(frames),
        "runtime_s": runtime_s(timings),
    }


def _stats(values: list[float]) -> dict[str, float | int | None]:
    """Mean, sample standard deviation and count (None when there is no value)."""
    if not values:
        return {"mean": None, "std": None, "n": 0}
    array = np.asarray(values, dtype=np.float64)
    return {"mean": float(array.mean()), "std": float(array.std(ddof=1)) if len(array) > 1 else 0.0, "n": len(array)}


def summarise(pairs: list[dict[str, Any]], variants: tuple[str, ...]) -> dict[str, Any]:
    """Per metric: mean ± std of each variant, and of each variant's paired difference from plain."""
    summary: dict[str, Any] = {}
    for metric in METRICS:
        values = {v: [p[v]["metrics"][metric] for p in pairs if p[v]["metrics"][metric] is not None] for v in variants}
        differences = {}
        for variant in variants[1:]:
            both = [p for p in pairs if p[variant]["metrics"][metric] is not None and p["plain"]["metrics"][metric] is not None]
            differences[variant] = _stats([p[variant]["metrics"][metric] - p["plain"]["metrics"][metric] for p in both])
        summary[metric] = {**{v: _stats(values[v]) for v in variants}, "difference": differences}
    return summary


def min_max_scores(summary: dict[str, Any], variants: tuple[str, ...]) -> dict[str, Any]:
    """The paper's aggregate: per quality metric, variant means min-max normalised across variants; mean ×100."""
    used: list[str] = []
    normalised: dict[str, list[float]] = {v: [] for v in variants}
    for metric in MIN_MAX_METRICS:
        means = {v: summary[metric][v]["mean"] for v in variants}
        if any(mean is None for mean in means.values()):
            continue
        low, high = min(means.values()), max(means.values())
        if high - low <= 1e-12:
            continue  # every variant ties: the metric does not separate them
        used.append(metric)
        for variant, mean in means.items():
            normalised[variant].append((mean - low) / (high - low))
    scores = {v: 100.0 * float(np.mean(normalised[v])) if used else None for v in variants}
    return {"scores": scores, "metrics": used}


def speed_against_reference(pairs: list[dict[str, Any]], variants: tuple[str, ...]) -> dict[str, Any]:
    """Mean motion magnitude of the references and, per variant, its ratio to it (1 = as fast as the reference)."""
    references = [p["reference_motion_magnitude"] for p in pairs if p["reference_motion_magnitude"] is not None]
    reference = _stats(references)
    ratios: dict[str, float | None] = {}
    for variant in variants:
        mean = _stats([p[variant]["metrics"]["motion_magnitude"] for p in pairs])["mean"]
        ratios[variant] = mean / reference["mean"] if reference["mean"] and mean is not None else None
    return {"reference_magnitude": reference, "ratio": ratios}


def check_variants(variants: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The variants to compare in canonical order, plain first; EvaluationError for unknown ones."""
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise EvaluationError(f"unknown variant(s) {', '.join(map(repr, unknown))}; known: {', '.join(VARIANTS)}")
    chosen = tuple(v for v in VARIANTS if v in variants or v == "plain")
    if len(chosen) < 2:
        raise EvaluationError(f"at least one MKR variant ({', '.join(VARIANTS[1:])}) is needed besides plain")
    return chosen


def evaluate_generation(
    generator: Generator,
    selling_points: list[str],
    *,
    seeds: list[int],
    videos_dir: Path,
    clip_encoder: OpenClipEncoder | None = None,
    options: GenerationOptions | None = None,
    variants: tuple[str, ...] = DEFAULT_VARIANTS,
    progress: bool = False,
) -> dict[str, Any]:
    """Generate and measure every variant for every selling point × seed with `options`; the report (JSON-ready)."""
    options = options or GenerationOptions()
    if options.motion_strength == 0.0:
        raise EvaluationError("MKR's motion_strength must be in (0, 1] (0 is the plain baseline), got 0.0")
    if not seeds:
        raise EvaluationError("at least one seed is needed")
    variants = check_variants(variants)
    check_request(options, backbone_family(generator.pipe))  # before any pair is generated
    graph = generator.sar.graph
    pairs: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    jobs = [(sp, seed) for sp in selling_points for seed in seeds]
    for sp, seed in tqdm(jobs, desc="generation eval", unit="pair", file=sys.stderr, disable=not progress):
        product = graph.product_of_selling_point[sp]
        try:
            results = {
                variant: generator.generate(
                    GenerationRequest.parse({"product": product, "selling_point": sp, "seed": seed, **VARIANT_OPTIONS[variant]}, options),
                    scratch_dir=videos_dir / variant, rewriter=PLAIN_PROMPT if variant in PLAIN_PROMPTED else None,
                )
                for variant in variants[1:]
            }
            first = next(iter(results.values()))
            started = time.perf_counter()
            frames, info = generate_frames(
                generator.pipe, first.prompt.subject, PLAIN_NEGATIVE, motion_strength=0.0, seed=seed, **options.frame_options()
            )
            plain_path = write_mp4(frames, videos_dir / "plain" / f"{sp}-seed{seed}.mp4")
            plain_timings = {
                **{key: v for key, v in info.items() if key.endswith("_s")},
                "total_s": time.perf_counter() - started,
            }
        except Exception as error:  # noqa: BLE001 - report the pair, evaluate the others
            skipped.append({"selling_point": sp, "seed": seed, "error": f"{type(error).__name__}: {error_message(error)}"})
            continue
        relative = first.parameters.get("reference_video")
        reference_path = generator.settings.media_dir / relative if relative else None
        text = first.prompt.subject
        pair: dict[str, Any] = {"selling_point": sp, "product": product, "seed": seed, "text": text, "reference_video": relative}
        plain_frames = _read_video(plain_path)
        reference = _reference_frames(reference_path, plain_frames) if reference_path else None
        pair["reference_motion_magnitude"] = motion_magnitude(reference) if reference is not None else None
        pair["plain"] = {"video_path": str(plain_path), "prompt": text, "negative_prompt": PLAIN_NEGATIVE,
                         "metrics": measure(plain_frames, text, reference, plain_timings, clip_encoder)}  # fmt: skip
        for variant, result in results.items():
            pair[variant] = {
                "video_path": str(result.video_path), "prompt": result.prompt.prompt, "negative_prompt": result.prompt.negative_prompt,
                "motion_prior": result.parameters["motion_prior"], "motion_lora": result.parameters["motion_lora"],
                "prompt_rewrite": result.prompt.rewrite,
                "metrics": measure(_read_video(result.video_path), text, reference, result.timings, clip_encoder),
            }  # fmt: skip
        pairs.append(pair)
    if not pairs:
        raise EvaluationError(
            "nothing was evaluated: " + "; ".join(f"{s['selling_point']} seed {s['seed']}: {s['error']}" for s in skipped)
        )
    summary = summarise(pairs, variants)
    unavailable = {} if clip_encoder is not None else {"text_video_alignment": CLIP_UNAVAILABLE}
    return {
        "model": str(generator.model_dir),
        "options": {
            "seeds": seeds, "variants": list(variants), **options.model_dump(mode="json", exclude={"model", "seed"}),
        },
        "selling_points": selling_points,
        "videos_dir": str(videos_dir),
        "provenance": "not recorded: evaluation videos stay in videos_dir, out of the graph",
        "unavailable": unavailable,
        "pairs": pairs,
        "skipped": skipped,
        "summary": summary,
        "min_max": min_max_scores(summary, variants),
        "speed": speed_against_reference(pairs, variants),
    }


def _cell(stats: dict[str, float | int | None], signed: bool = False) -> str:
    if stats["mean"] is None:
        return "n/a"
    return f"{stats['mean']:{'+' if signed else ''}.3f} ± {stats['std']:.3f}"


Table = tuple[list[str], list[list[str]]]


def table_rows(report: dict[str, Any]) -> tuple[Table, Table]:
    """Two (header, rows) tables as printed by `kdcvg generation eval`: per-variant values, and differences from plain.

    The first ends with the Min-Max score (×100) and the motion speed relative to the reference clips.
    """
    variants = report["options"]["variants"]
    values: list[list[str]] = []
    differences: list[list[str]] = []
    for metric in METRICS:
        stats = report["summary"][metric]
        values.append([metric, *[_cell(stats[v]) for v in variants]])
        pairs = str(max(stats["difference"][v]["n"] for v in variants[1:]))
        differences.append([metric, *[_cell(stats["difference"][v], signed=True) for v in variants[1:]], pairs])
    scores = report["min_max"]["scores"]
    values.append(["Min-Max score ×100", *[f"{scores[v]:.1f}" if scores[v] is not None else "n/a" for v in variants]])
    ratio = report["speed"]["ratio"]
    values.append(["speed / reference", *[f"{ratio[v]:.2f}" if ratio[v] is not None else "n/a" for v in variants]])
    return (["metric", *variants], values), (["metric", *variants[1:], "pairs"], differences)
