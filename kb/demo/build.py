"""Build the demo ACKB: render its clips, measure their motion, write the interchange directory.

Why: the project needs a realistic knowledge base to develop and test against without any private
data: 5 categories, 12 filmed products with 60 selling points, 10 motion types and 300 real MP4 clips,
each clip with a caption, tags, its *measured* motion descriptors and an ILLUSTRATES annotation; 12
briefed products (60 more selling points, no footage yet: what the ads are to be made for); and
SAME_CLAIM relations between selling points of different products (approved, proposed, rejected).

What: `build_demo_ackb(out_dir)` plans every clip deterministically from `kb.demo.spec` (which
selling point, which motion, scene, length, caption, tags, annotation), renders the clips in a
process pool (`kb.demo.clips`), measures each written file with `kb.motion.measure_motion`, and
writes the directory in the format of docs/ackb-format.md. The JSONL files are byte-identical from
one build to the next (fixed timestamps, sorted rows and keys), and so are the MP4s.

The build goes to a temporary sibling directory which is renamed into place only when complete, so
an interrupted build never leaves a half-written `out_dir`. A second call whose `out_dir` already
holds a complete build of the same content (same fingerprint, all checksums right) returns at once.

Run: `python -m kb.demo.build OUT_DIR [--workers N] [--products KEY,...] [--limit-clips-per-product N]`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import shutil
import sys
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kb.demo import clips as clip_renderer
from kb.demo.spec import (
    ANNOTATORS,
    BRIEFED_PRODUCTS,
    CATEGORIES,
    CLIPS_PER_SELLING_POINT,
    FPS,
    ILLUSTRATION_MIX,
    MOTIONS,
    NUM_FRAMES_CHOICES,
    PRODUCTS,
    SAME_CLAIMS,
    SCENES,
    TIMESTAMP,
    spec_data,
)
from kb.interchange import FORMAT, sha256_file, write_ackb
from kb.motion import measure_motion
from kb.processes import process_alive
from kb.schema import NODE_TYPES, REL_TYPES
from kdcvg.errors import BadInputError, TargetExistsError

SOURCE = "kb.demo.build (KD-CVG demo ACKB generator)"
MEDIA_DIR = "media"
CLIP_DIR = "clips"

MIN_CAPTION_WORDS, MAX_CAPTION_WORDS = 6, 12
MAX_TAGS = 6

Row = dict[str, Any]


# --------------------------------------------------------------------------------------------
# Ids


def category_id(key: str) -> str:
    return f"cat-{key}"


def product_id(key: str) -> str:
    return f"prod-{key}"


def selling_point_id(product_key: str, sp_key: str) -> str:
    return f"sp-{product_key}-{sp_key}"


def motion_id(key: str) -> str:
    return f"motion-{key}"


def clip_id(number: int) -> str:
    return f"clip-{number:04d}"


# --------------------------------------------------------------------------------------------
# Planning: everything about a clip except its measured motion


@dataclass(frozen=True)
class ClipPlan:
    """One clip to render, fully determined by the spec and its number."""

    id: str
    number: int
    product: str  # product key
    selling_point: str  # selling point key
    motion: str  # motion key
    scene: str  # scene key
    seed: int
    num_frames: int
    caption: str
    tags: tuple[str, ...]
    status: str
    score: float
    annotator: str

    @property
    def video_path(self) -> str:
        """Relative to the ACKB's media/ folder."""
        return f"{CLIP_DIR}/{self.id}.mp4"


def clip_seed(identifier: str) -> int:
    """A stable 32-bit seed from a clip id (Python's hash() is salted per process, so not that)."""
    return int.from_bytes(hashlib.sha256(f"kd-cvg-demo/{identifier}".encode()).digest()[:4], "big")


def select_products(products: Sequence[str] | None) -> list[dict[str, Any]]:
    """The spec's products, filmed then briefed, named by key or id (all of them for None), in spec order."""
    every = [*PRODUCTS, *BRIEFED_PRODUCTS]
    if products is None:
        return every
    wanted = {p.removeprefix("prod-") for p in products}
    known = {p["key"] for p in every}
    unknown = sorted(wanted - known)
    if unknown:
        raise BadInputError(f"unknown demo product(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return [p for p in every if p["key"] in wanted]


def plan_clips(products: Sequence[dict[str, Any]], limit_clips_per_product: int | None = None) -> list[ClipPlan]:
    """All clips of the given filmed products, numbered as in the full demo (clip ids never shift).

    Briefed products (`BRIEFED_PRODUCTS`) have no footage, so they get no clips.

    Clip j of a product (0-based) shows selling point j % 5 in its r = j // 5-th take; the motion
    is (k + 2r + 3p) mod 10 for selling point k of product p, so each selling point gets 5 different
    motions and every motion appears 5-8 times per category. The first clips of a product cover all
    of its selling points, which is what `limit_clips_per_product` keeps.
    """
    per_product = CLIPS_PER_SELLING_POINT * len(PRODUCTS[0]["selling_points"])
    limit = per_product if limit_clips_per_product is None else max(0, min(per_product, limit_clips_per_product))
    index = {p["key"]: i for i, p in enumerate(PRODUCTS)}
    plans = []
    for product in products:
        p = index.get(product["key"])
        if p is None:
            continue  # briefed: no footage yet
        for j in range(limit):
            plans.append(_plan_clip(product, p, j))
    return plans


def _plan_clip(product: dict[str, Any], p: int, j: int) -> ClipPlan:
    take, k = divmod(j, len(product["selling_points"]))
    selling_point = product["selling_points"][k]
    motion = MOTIONS[(k + 2 * take + 3 * p) % len(MOTIONS)]
    number = p * CLIPS_PER_SELLING_POINT * len(product["selling_points"]) + j + 1
    identifier = clip_id(number)
    seed = clip_seed(identifier)
    rng = np.random.default_rng([seed, 7])  # planning stream; rendering uses default_rng(seed)
    scene = SCENES[int(rng.integers(len(SCENES)))]
    num_frames = int(NUM_FRAMES_CHOICES[int(rng.integers(len(NUM_FRAMES_CHOICES)))])
    caption = make_caption(product, selling_point, motion, scene, rng)
    status, score, annotator = _annotation(rng)
    return ClipPlan(
        id=identifier, number=number, product=product["key"], selling_point=selling_point["key"],
        motion=motion["key"], scene=scene["key"], seed=seed, num_frames=num_frames, caption=caption,
        tags=make_tags(product, selling_point, motion), status=status, score=score, annotator=annotator,
    )


def make_caption(product: dict[str, Any], selling_point: dict[str, Any], motion: dict[str, Any],
                 scene: dict[str, Any], rng: np.random.Generator) -> str:
    """A short script line: motion + subject's selling point (+ scene when it still fits 12 words)."""
    opening = motion["phrases"][int(rng.integers(len(motion["phrases"])))]
    noun = product["noun"]
    possessive = f"{noun}'" if noun.endswith("s") else f"{noun}'s"
    base = f"{opening} the {possessive} {selling_point['feature']}"
    for candidate in (f"{base} {scene['phrase']}", base):
        if MIN_CAPTION_WORDS <= len(candidate.split()) <= MAX_CAPTION_WORDS:
            return candidate
    raise BadInputError(f"caption {base!r} is not {MIN_CAPTION_WORDS}-{MAX_CAPTION_WORDS} words; shorten the spec")


def make_tags(product: dict[str, Any], selling_point: dict[str, Any], motion: dict[str, Any]) -> tuple[str, ...]:
    """Product kind, category, selling-point keywords, motion keyword: 3-6 distinct lowercase tags."""
    category = next(c for c in CATEGORIES if c["key"] == product["category"])
    candidates = [product["noun"], category["name"], *selling_point["tags"]][: MAX_TAGS - 1] + [motion["tag"]]
    tags: list[str] = []
    for tag in (t.lower() for t in candidates):
        if tag not in tags:
            tags.append(tag)
    return tuple(tags)


def _annotation(rng: np.random.Generator) -> tuple[str, float, str]:
    draw = float(rng.random())
    cumulative = 0.0
    for status, probability, (low, high) in ILLUSTRATION_MIX:
        cumulative += probability
        if draw < cumulative or status == ILLUSTRATION_MIX[-1][0]:
            score = round(float(rng.uniform(low, high)), 3)
            return status, score, ANNOTATORS[int(rng.integers(len(ANNOTATORS)))]
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------------------------
# Rendering (runs in worker processes)


def _find(items: Iterable[dict[str, Any]], key: str) -> dict[str, Any]:
    return next(item for item in items if item["key"] == key)


def render_and_measure(job: tuple[ClipPlan, str]) -> tuple[str, dict[str, float | int]]:
    """Render one planned clip to `path` and measure the written file. Top level: picklable."""
    plan, path = job
    product = _find(PRODUCTS, plan.product)
    clip_renderer.render_clip(
        path, motion=plan.motion, seed=plan.seed, num_frames=plan.num_frames, fps=FPS,
        product=product, selling_point=_find(product["selling_points"], plan.selling_point), scene=plan.scene,
    )
    return plan.id, measure_motion(path)


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)  # one process per core already


def render_all(plans: Sequence[ClipPlan], clip_dir: Path, *, workers: int, progress: bool) -> dict[str, dict[str, Any]]:
    """Render and measure every planned clip into `clip_dir`; returns measurements by clip id."""
    from tqdm import tqdm

    jobs = [(plan, str(clip_dir / f"{plan.id}.mp4")) for plan in plans]
    results: dict[str, dict[str, Any]] = {}
    with tqdm(total=len(jobs), desc="demo clips", unit="clip", disable=not progress, file=sys.stderr) as bar:
        if workers <= 1 or len(jobs) <= 1:
            for job in jobs:
                identifier, measured = render_and_measure(job)
                results[identifier] = measured
                bar.update()
        else:
            context = multiprocessing.get_context("spawn")  # no fork of a threaded parent
            with context.Pool(min(workers, len(jobs)), initializer=_init_worker) as pool:
                for identifier, measured in pool.imap_unordered(render_and_measure, jobs, chunksize=1):
                    results[identifier] = measured
                    bar.update()
    return results


# --------------------------------------------------------------------------------------------
# Rows


def _audit(row: Row) -> Row:
    return {**row, "created_at": TIMESTAMP, "updated_at": TIMESTAMP, "version": 1}


def build_rows(products: Sequence[dict[str, Any]], plans: Sequence[ClipPlan],
               measured: dict[str, dict[str, Any]]) -> tuple[dict[str, list[Row]], dict[str, list[Row]]]:
    """Node rows by label and relationship rows by type, each sorted as the format requires."""
    category_keys = {p["category"] for p in products}
    nodes: dict[str, list[Row]] = {label: [] for label in NODE_TYPES}
    rels: dict[str, list[Row]] = {type_: [] for type_ in REL_TYPES}
    for category in CATEGORIES:
        if category["key"] in category_keys:
            nodes["Category"].append(_audit({"id": category_id(category["key"]), "name": category["name"],
                                             "description": category["description"]}))
    for product in products:
        pid = product_id(product["key"])
        nodes["Product"].append(_audit({"id": pid, "name": product["name"], "brand": product["brand"],
                                        "description": product["description"]}))
        rels["IN_CATEGORY"].append({"from": pid, "to": category_id(product["category"])})
        for sp in product["selling_points"]:
            sid = selling_point_id(product["key"], sp["key"])
            nodes["SellingPoint"].append(_audit({"id": sid, "text": sp["text"]}))
            rels["HAS_SELLING_POINT"].append({"from": pid, "to": sid})
    for motion in MOTIONS:
        nodes["Motion"].append(_audit({"id": motion_id(motion["key"]), "name": motion["key"],
                                       "description": motion["description"]}))
    for plan in plans:
        nodes["CreativeClip"].append(_audit({"id": plan.id, "caption": plan.caption, "tags": list(plan.tags),
                                             "video_path": plan.video_path, **measured[plan.id]}))
        rels["ILLUSTRATES"].append({"from": plan.id, "to": selling_point_id(plan.product, plan.selling_point),
                                    "status": plan.status, "score": plan.score, "annotator": plan.annotator,
                                    "updated_at": TIMESTAMP})
        rels["FEATURES"].append({"from": plan.id, "to": product_id(plan.product)})
        rels["HAS_MOTION"].append({"from": plan.id, "to": motion_id(plan.motion)})
    rels["SAME_CLAIM"] = same_claim_rows(products)
    for rows in nodes.values():
        rows.sort(key=lambda row: row["id"])
    for rows in rels.values():
        rows.sort(key=lambda row: (row["from"], row["to"]))
    return nodes, rels


def same_claim_rows(products: Sequence[dict[str, Any]]) -> list[Row]:
    """The spec's SAME_CLAIM relations whose two products are among `products`: each pair once, smaller id first, sorted."""
    keys = {p["key"] for p in products}
    rows = []
    for product_a, sp_a, product_b, sp_b, status, score, annotator in SAME_CLAIMS:
        if product_a in keys and product_b in keys:
            first, second = sorted((selling_point_id(product_a, sp_a), selling_point_id(product_b, sp_b)))
            rows.append({"from": first, "to": second, "status": status, "score": score, "annotator": annotator, "updated_at": TIMESTAMP})
    return sorted(rows, key=lambda row: (row["from"], row["to"]))


# --------------------------------------------------------------------------------------------
# Writing the directory


def fingerprint(products: Sequence[dict[str, Any]], limit_clips_per_product: int | None) -> str:
    """Identifies the content of a build: spec, renderer settings and selection."""
    renderer = {name: getattr(clip_renderer, name) for name in ("CANVAS", "VIEW", "PRODUCT_SCALE", "CRF")}
    payload = {"spec": spec_data(), "renderer": renderer, "products": [p["key"] for p in products],
               "limit_clips_per_product": limit_clips_per_product}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=list).encode()).hexdigest()


def _media_entries(root: Path, plans: Sequence[ClipPlan]) -> dict[str, Any]:
    media = root / MEDIA_DIR
    return {plan.video_path: {"bytes": (media / plan.video_path).stat().st_size,
                              "sha256": sha256_file(media / plan.video_path)} for plan in plans}


def _read_manifest(out_dir: Path) -> dict[str, Any] | None:
    try:
        manifest = json.loads((out_dir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def existing_build_matches(out_dir: Path, content_fp: str) -> bool:
    """True when `out_dir` holds a complete demo build with this fingerprint and right checksums."""
    manifest = _read_manifest(out_dir)
    if not manifest or manifest.get("format") != FORMAT:
        return False
    if (manifest.get("demo") or {}).get("fingerprint") != content_fp:
        return False
    try:
        files = [(out_dir / e["file"], e["sha256"]) for section in ("nodes", "relationships")
                 for e in manifest[section].values()]
        files += [(out_dir / MEDIA_DIR / path, e["sha256"]) for path, e in manifest["media"].items()]
        return all(path.is_file() and sha256_file(path) == digest for path, digest in files)
    except (KeyError, TypeError, AttributeError):
        return False


def _check_replaceable(out_dir: Path) -> None:
    """Refuse to replace a directory that is neither empty nor an earlier demo build."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise TargetExistsError(f"{out_dir} exists and is not a directory")
    manifest = _read_manifest(out_dir)
    if any(out_dir.iterdir()) and not (manifest and "demo" in manifest and manifest.get("source") == SOURCE):
        raise TargetExistsError(f"{out_dir} exists and is not an earlier demo ACKB build; refusing to replace it")


def _remove_stale_temporaries(out_dir: Path) -> None:
    """Delete `.NAME.building-PID-*` / `.NAME.old-PID-*` siblings left by builds that were killed."""
    for prefix in (f".{out_dir.name}.building-", f".{out_dir.name}.old-"):
        for path in out_dir.parent.glob(f"{prefix}*"):
            pid = path.name[len(prefix):].split("-", 1)[0]
            if pid.isdigit() and int(pid) != os.getpid() and not process_alive(int(pid)):
                shutil.rmtree(path, ignore_errors=True)


def _swap_into_place(built: Path, out_dir: Path) -> None:
    """Rename the finished build to `out_dir`, replacing an earlier build only after it is complete."""
    if out_dir.exists():
        old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        os.rename(out_dir, old)
        os.rename(built, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(built, out_dir)


def _summary(out_dir: Path, manifest: dict[str, Any], *, reused: bool, seconds: float) -> dict[str, Any]:
    size = sum(p.stat().st_size for p in out_dir.rglob("*") if p.is_file())
    return {
        "out_dir": str(out_dir),
        "reused": reused,
        "seconds": round(seconds, 2),
        "bytes": size,
        "nodes": {label: e["count"] for label, e in manifest["nodes"].items()},
        "relationships": {type_: e["count"] for type_, e in manifest["relationships"].items()},
        "clips": len(manifest["media"]),
        "fingerprint": manifest["demo"]["fingerprint"],
    }


def build_demo_ackb(
    out_dir: Path,
    *,
    workers: int = 2,
    progress: bool = True,
    products: Sequence[str] | None = None,
    limit_clips_per_product: int | None = None,
) -> dict[str, Any]:
    """Build (or reuse) the demo ACKB in `out_dir`; returns a summary.

    `products` (keys like "airbeat-wireless-earbuds" or ids "prod-...") and
    `limit_clips_per_product` build a smaller demo (tests); clip ids are those of the full demo.
    The summary has `out_dir`, `reused`, `seconds`, `bytes` (whole directory), `nodes` and
    `relationships` (row counts), `clips` and `fingerprint`.
    """
    started = time.perf_counter()
    out_dir = Path(out_dir).absolute()
    selected = select_products(products)
    content_fp = fingerprint(selected, limit_clips_per_product)
    if existing_build_matches(out_dir, content_fp):
        return _summary(out_dir, _read_manifest(out_dir) or {}, reused=True, seconds=time.perf_counter() - started)
    _check_replaceable(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(out_dir)
    plans = plan_clips(selected, limit_clips_per_product)
    building = out_dir.parent / f".{out_dir.name}.building-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    building.mkdir()  # (not mkdtemp: that would make the final directory private, mode 0700)
    try:
        clip_dir = building / MEDIA_DIR / CLIP_DIR
        clip_dir.mkdir(parents=True)
        measured = render_all(plans, clip_dir, workers=workers, progress=progress)
        nodes, rels = build_rows(selected, plans, measured)
        extra = {
            "source": SOURCE,
            "demo": {"fingerprint": content_fp, "products": [product_id(p["key"]) for p in selected],
                     "limit_clips_per_product": limit_clips_per_product},
            "media": _media_entries(building, plans),  # informational: each media file's size and checksum
        }
        write_ackb(building, nodes, rels, extra=extra)
        _swap_into_place(building, out_dir)
    finally:
        if building.exists():
            shutil.rmtree(building, ignore_errors=True)
    return _summary(out_dir, _read_manifest(out_dir) or {}, reused=False, seconds=time.perf_counter() - started)


# --------------------------------------------------------------------------------------------
# Command line


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m kb.demo.build", description="Build the demo ACKB directory.")
    parser.add_argument("out_dir", type=Path, help="directory to write (replaced if it holds an older demo build)")
    parser.add_argument("--workers", type=int, default=2, help="render processes (default 2)")
    parser.add_argument("--products", default=None, help="comma-separated product keys or ids (default: all)")
    parser.add_argument("--limit-clips-per-product", type=int, default=None, help="at most N clips per product")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    products = [p.strip() for p in args.products.split(",") if p.strip()] if args.products else None
    summary = build_demo_ackb(args.out_dir, workers=args.workers, progress=not args.no_progress,
                              products=products, limit_clips_per_product=args.limit_clips_per_product)
    verb = "reused existing build" if summary["reused"] else "built"
    print(f"{verb}: {summary['out_dir']} in {summary['seconds']:.1f} s, {summary['bytes'] / 1e6:.1f} MB")
    print("nodes:         " + ", ".join(f"{k} {v}" for k, v in summary["nodes"].items()))
    print("relationships: " + ", ".join(f"{k} {v}" for k, v in summary["relationships"].items()))
    print(f"clips:         {summary['clips']} MP4 files under {MEDIA_DIR}/{CLIP_DIR}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
