"""Synthetic ACKBs of any size in the interchange format, for tests and benchmarks (no media files).

Deterministic for a given size and seed. Shape mirrors the demo ACKB: categories, products with
selling points, clips that feature a product, illustrate its selling points and have a motion.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from kb.interchange import FORMAT, FORMAT_VERSION, MANIFEST, _json_line, _sha256
from kb.schema import MOTION_DESCRIPTORS

MOTION_NAMES = ("zoom_in", "zoom_out", "pan_left", "pan_right", "tilt_up", "tilt_down", "orbit", "shake", "static", "reveal")
STAMP = "2026-01-01T00:00:00.000000Z"


def synthetic_ackb(
    directory: Path,
    *,
    products: int = 100,
    selling_points_per_product: int = 5,
    clips_per_product: int = 25,
    categories: int = 10,
    seed: int = 0,
) -> dict[str, int]:
    """Write a synthetic ACKB to `directory`; returns rows per label/type.

    Nodes = categories + products·(1 + sp + clips) + motions; relationships = products·(1 + sp) +
    3 per clip. products=2,500 with 5 + 25 gives ~80k nodes and ~240k relationships.
    """
    rng = random.Random(seed)
    audit = {"created_at": STAMP, "updated_at": STAMP, "version": 1}
    nodes: dict[str, list[dict]] = {"Category": [], "Product": [], "SellingPoint": [], "CreativeClip": [], "Motion": []}
    rels: dict[str, list[dict]] = {"IN_CATEGORY": [], "HAS_SELLING_POINT": [], "ILLUSTRATES": [], "FEATURES": [], "HAS_MOTION": []}
    for c in range(categories):
        nodes["Category"].append({"id": f"cat-{c:04d}", "name": f"Category {c}", **audit})
    for name in MOTION_NAMES:
        nodes["Motion"].append({"id": f"motion-{name}", "name": name.replace("_", " "), **audit})
    for p in range(products):
        product_id = f"prod-{p:07d}"
        nodes["Product"].append({"id": product_id, "name": f"Product {p}", "brand": f"Brand {p % 37}", **audit})
        rels["IN_CATEGORY"].append({"from": product_id, "to": f"cat-{p % categories:04d}"})
        sp_ids = [f"sp-{p:07d}-{s}" for s in range(selling_points_per_product)]
        for s, sp_id in enumerate(sp_ids):
            nodes["SellingPoint"].append({"id": sp_id, "text": f"selling point {s} of product {p}", **audit})
            rels["HAS_SELLING_POINT"].append({"from": product_id, "to": sp_id})
        for k in range(clips_per_product):
            clip_id = f"clip-{p:07d}-{k:03d}"
            motion = MOTION_NAMES[rng.randrange(len(MOTION_NAMES))]
            descriptors = {name: round(rng.uniform(-2, 2), 6) for name in MOTION_DESCRIPTORS}
            descriptors["motion_magnitude"] = abs(descriptors["motion_magnitude"])
            descriptors["motion_jitter"] = abs(descriptors["motion_jitter"])
            nodes["CreativeClip"].append(
                {"id": clip_id, "caption": f"{motion.replace('_', ' ')} shot of product {p}", "tags": [motion, f"p{p}"], **descriptors, **audit}
            )
            rels["FEATURES"].append({"from": clip_id, "to": product_id})
            rels["HAS_MOTION"].append({"from": clip_id, "to": f"motion-{motion}"})
            status = rng.choice(("approved", "approved", "proposed", "rejected"))
            rels["ILLUSTRATES"].append(
                {"from": clip_id, "to": sp_ids[k % len(sp_ids)], "status": status, "score": round(rng.random(), 6), "updated_at": STAMP}
            )
    directory = Path(directory)
    manifest: dict = {"format": FORMAT, "format_version": FORMAT_VERSION, "nodes": {}, "relationships": {}}
    counts = {}
    for section, groups in (("nodes", nodes), ("relationships", rels)):
        (directory / section).mkdir(parents=True, exist_ok=True)
        for name, rows in groups.items():
            relative = f"{section}/{name}.jsonl"
            key = (lambda r: r["id"]) if section == "nodes" else (lambda r: (r["from"], r["to"]))
            (directory / relative).write_text("".join(_json_line(r) + "\n" for r in sorted(rows, key=key)), encoding="utf-8")
            manifest[section][name] = {"file": relative, "count": len(rows), "sha256": _sha256(directory / relative)}
            counts[name] = len(rows)
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return counts
