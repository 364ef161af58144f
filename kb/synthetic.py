"""Synthetic ACKBs of any size in the interchange format, for tests and benchmarks (no media files).

Deterministic for a given size and seed. Shape mirrors the demo ACKB: categories, products with
selling points, clips that feature a product, illustrate its selling points and have a motion.
"""

from __future__ import annotations

import random
from pathlib import Path

from kb.interchange import write_ackb
from kb.schema import MOTION_DESCRIPTORS, NODE_TYPES, REL_TYPES

MOTION_NAMES = ("zoom_in", "zoom_out", "pan_left", "pan_right", "tilt_up", "tilt_down", "orbit", "shake", "static", "reveal")
STAMP = "2026-01-01T00:00:00.000000Z"


Rows = dict[str, list[dict]]


def synthetic_rows(
    *,
    products: int = 100,
    selling_points_per_product: int = 5,
    clips_per_product: int = 25,
    categories: int = 10,
    second_illustrations: int = 0,
    same_claims: int = 3,
    seed: int = 0,
) -> tuple[Rows, Rows]:
    """Node rows per label and relationship rows per type.

    Nodes = categories + products·(1 + sp + clips) + 10 motions; relationships = products·(1 + sp)
    + 3 per clip + `second_illustrations` (that many clips also illustrate a second selling point)
    + `same_claims` SAME_CLAIM relations (fewer when there are not that many pairs; see `same_claim_rows`).
    """
    rng = random.Random(seed)
    audit = {"created_at": STAMP, "updated_at": STAMP, "version": 1}
    # every schema label and type, empty ones included, so files match an export of the same data
    nodes: dict[str, list[dict]] = {label: [] for label in NODE_TYPES}
    rels: dict[str, list[dict]] = {type_: [] for type_ in REL_TYPES}
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
            if len(sp_ids) > 1 and p * clips_per_product + k < second_illustrations:
                second = sp_ids[(k + 1) % len(sp_ids)]
                rels["ILLUSTRATES"].append({"from": clip_id, "to": second, "status": "proposed", "score": round(rng.random(), 6), "updated_at": STAMP})
    rels["SAME_CLAIM"] = same_claim_rows(products, selling_points_per_product, same_claims)
    return nodes, rels


def same_claim_rows(products: int, selling_points_per_product: int, count: int) -> list[dict]:
    """`count` SAME_CLAIM rows: selling point s of product i with selling point s of product i + 1, the
    next pair one product and one selling point on; statuses cycle approved, proposed, rejected.

    There are at most (products - 1)·selling points such pairs; with fewer products nothing repeats.
    """
    pairs = (products - 1) * selling_points_per_product
    rows = []
    for n in range(min(count, max(pairs, 0))):
        p = n % (products - 1)
        s = (n // (products - 1) + p) % selling_points_per_product  # (p, round) is unique, so is (p, s)
        status = ("approved", "proposed", "rejected")[n % 3]
        rows.append(
            {"from": f"sp-{p:07d}-{s}", "to": f"sp-{p + 1:07d}-{s}", "status": status, "score": round(0.9 - 0.1 * (n % 5), 6), "updated_at": STAMP}
        )
    return sorted(rows, key=lambda row: (row["from"], row["to"]))


def synthetic_ackb(directory: Path, **sizes: int) -> dict[str, int]:
    """Write a synthetic ACKB (sizes as in `synthetic_rows`) to `directory`; returns rows per label/type."""
    nodes, rels = synthetic_rows(**sizes)
    return write_ackb(directory, nodes, rels)
