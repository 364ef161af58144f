"""A realistic evaluation ACKB: products whose selling points make recurring claims, shown by clips in other words.

Deterministic for (products, selling points per product, clips per product, seed); writes the
interchange format (docs/ackb-format.md) without media files. Built from the hand-written
vocabularies in `kb.eval_vocabulary`:

- 15 categories; each product claims a few IDEAS of its category (some ideas, such as waterproof or
  fast charging, recur across categories), each selling point one idea in one ad-copy phrasing;
- clips show an idea with FOOTAGE descriptions that avoid the claim's words (`token_overlap`
  measures how few they share); a few clips show two ideas and illustrate two selling points;
- per product, many B-roll clips (unboxing, logo, lifestyle) illustrate nothing;
- ILLUSTRATES links are approved (the clips of the selling point's idea), rejected (a clip of
  another idea of the same product: a hard negative) or proposed (unjudged, true or not);
- SAME_CLAIM relations join selling points of different products that share an idea (mostly
  approved, some only proposed), with rejected hard negatives (same category, different idea) and
  proposed wrong pairs.

Every vocabulary list is split by index parity and the seed's parity picks the half, so ACKBs
with seeds of different parity share ideas but no selling-point text or caption (generalisation).
"""

from __future__ import annotations

import itertools
import random
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from kb.eval_vocabulary import B_ROLL, CATEGORIES, IDEAS, CategorySpec
from kb.interchange import write_ackb
from kb.schema import MOTION_DESCRIPTORS, NODE_TYPES, REL_TYPES
from kdcvg.errors import BadInputError

STAMP = "2026-01-01T00:00:00.000000Z"
MOTION_NAMES = ("zoom_in", "zoom_out", "pan_left", "pan_right", "tilt_up", "tilt_down", "orbit", "shake", "static", "reveal")
SHOTS = ("close-up", "wide", "medium", "overhead", "handheld", "slow-motion")
ANNOTATORS = ("annotator-ana", "annotator-ben", "annotator-chen")
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "of",
        "to",
        "in",
        "on",
        "at",
        "by",
        "for",
        "from",
        "with",
        "without",
        "into",
        "onto",
        "over",
        "under",
        "as",
        "is",
        "are",
        "be",
        "it",
        "its",
        "it's",
        "this",
        "that",
        "your",
        "you",
        "yours",
        "our",
        "we",
        "all",
        "every",
        "each",
        "no",
        "not",
        "than",
        "then",
        "so",
        "too",
        "very",
        "just",
        "one",
        "two",
        "any",
    ]
)
DEFAULT_PRODUCTS = 48
DEFAULT_SELLING_POINTS = 5
DEFAULT_CLIPS = 22

Rows = dict[str, list[dict[str, Any]]]


def vocabulary_half(seed: int) -> int:
    """Which half (0 or 1) of every phrasing and footage list a seed uses: its parity."""
    return seed % 2


def tokens(text: str) -> set[str]:
    """Lower-cased word tokens of `text` without stop words: what lexical matching sees."""
    return {t for t in re.findall(r"[a-z0-9]+", text.lower()) if t not in STOPWORDS and len(t) > 1}


def token_overlap(nodes: Rows, rels: Rows) -> dict[str, float | int]:
    """How many words approved (clip, selling point) pairs share: a lexical ranker's cue.

    `mean_overlap`: mean share of the selling point's tokens found in the clip's caption + tags;
    `pairs_sharing_a_token`: share of pairs with at least one common token.
    """
    text = {row["id"]: row["text"] for row in nodes["SellingPoint"]}
    caption = {row["id"]: " ".join([row["caption"], *row.get("tags", [])]) for row in nodes["CreativeClip"]}
    shares = []
    for row in rels["ILLUSTRATES"]:
        if row["status"] == "approved":
            claim = tokens(text[row["to"]])
            shares.append(len(claim & tokens(caption[row["from"]])) / max(len(claim), 1))
    if not shares:
        return {"pairs": 0, "mean_overlap": 0.0, "pairs_sharing_a_token": 0.0}
    return {
        "pairs": len(shares),
        "mean_overlap": round(sum(shares) / len(shares), 4),
        "pairs_sharing_a_token": round(sum(s > 0 for s in shares) / len(shares), 4),
    }


class _Cycler:
    """Hands out a list's items in turn from a seeded start, so repeats come as late as possible."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.position: dict[str, int] = {}

    def next(self, key: str, items: tuple[str, ...]) -> str:
        if key not in self.position:
            self.position[key] = self.rng.randrange(len(items))
        self.position[key] += 1
        return items[self.position[key] % len(items)]


def _clip_row(clip_id: str, caption: str, rng: random.Random) -> tuple[dict[str, Any], str]:
    """A clip row (caption, tags, motion descriptors) and its motion name; nothing in it names an idea."""
    motion = MOTION_NAMES[rng.randrange(len(MOTION_NAMES))]
    descriptors = {name: round(rng.uniform(-2, 2), 6) for name in MOTION_DESCRIPTORS}
    descriptors["motion_magnitude"] = abs(descriptors["motion_magnitude"])
    descriptors["motion_jitter"] = abs(descriptors["motion_jitter"])
    tags = [motion.replace("_", " "), SHOTS[rng.randrange(len(SHOTS))]]
    row = {"id": clip_id, "caption": caption[0].upper() + caption[1:], "tags": tags, **descriptors}
    return row, motion


def _claim_text(idea: str, phrasings: tuple[str, ...], cycler: _Cycler, rng: random.Random) -> str:
    """A selling point's text: one phrasing of the idea, or (as ad copy often does) a headline and a second line.

    Pairs make exact repeats across products rare while the claim stays the same.
    """
    headline = cycler.next("sp:" + idea, phrasings)
    if rng.random() < 0.35:
        return headline
    second = rng.choice([p for p in phrasings if p != headline])
    return f"{headline}{'' if headline[-1] in '.!?' else '.'} {second}{'' if second[-1] in '.!?' else '.'}"


def _judged(rng: random.Random, clip: str, sp: str, status: str) -> dict[str, Any]:
    low, high = {"approved": (0.6, 1.0), "rejected": (0.0, 0.5), "proposed": (0.3, 0.8)}[status]
    row = {"from": clip, "to": sp, "status": status, "score": round(rng.uniform(low, high), 4), "updated_at": STAMP}
    if status != "proposed":
        row["annotator"] = ANNOTATORS[rng.randrange(len(ANNOTATORS))]
    return row


def eval_rows(
    *,
    products: int = DEFAULT_PRODUCTS,
    selling_points_per_product: int = DEFAULT_SELLING_POINTS,
    clips_per_product: int = DEFAULT_CLIPS,
    seed: int = 0,
) -> tuple[Rows, Rows, dict[str, str]]:
    """Node rows per label, relationship rows per type, and each selling point's idea (the ground truth)."""
    if products < 2:
        raise BadInputError(
            f"products must be at least 2 (SAME_CLAIM joins selling points of different products), got {products}"
        )
    if not 1 <= selling_points_per_product <= 5:
        raise BadInputError(f"selling points per product must be between 1 and 5, got {selling_points_per_product}")
    if clips_per_product < 1:
        raise BadInputError(f"clips per product must be at least 1, got {clips_per_product}")
    rng = random.Random(seed)
    half = vocabulary_half(seed)
    phrasings = {key: idea.phrasings[half::2] for key, idea in IDEAS.items()}
    footage = {key: idea.footage[half::2] for key, idea in IDEAS.items()}
    b_roll = B_ROLL[half::2]
    cycler = _Cycler(rng)
    audit = {"created_at": STAMP, "updated_at": STAMP, "version": 1}
    nodes: Rows = {label: [] for label in NODE_TYPES}
    rels: Rows = {type_: [] for type_ in REL_TYPES}
    idea_of: dict[str, str] = {}
    category_of: dict[str, str] = {}
    product_of: dict[str, str] = {}

    used = sorted({c.key for i, c in enumerate(CATEGORIES) if i < products})
    for spec in CATEGORIES:
        if spec.key in used:
            nodes["Category"].append({"id": f"cat-{spec.key}", "name": spec.name, **audit})
    for name in MOTION_NAMES:
        nodes["Motion"].append({"id": f"motion-{name}", "name": name.replace("_", " "), **audit})

    for p in range(products):
        spec: CategorySpec = CATEGORIES[p % len(CATEGORIES)]
        round_ = p // len(CATEGORIES)
        noun = spec.nouns[rng.randrange(len(spec.nouns))]
        brand = spec.brands[round_ % len(spec.brands)]
        product_id = f"prod-{p:03d}"
        name = f"{brand} {spec.models[(round_ + p) % len(spec.models)]} {noun.title()}"
        nodes["Product"].append({"id": product_id, "name": name, "brand": brand, "description": f"A {noun} by {brand}.", **audit})
        rels["IN_CATEGORY"].append({"from": product_id, "to": f"cat-{spec.key}"})
        ideas = rng.sample(spec.ideas, min(selling_points_per_product, len(spec.ideas)))
        sp_ids = [f"sp-{p:03d}-{s}" for s in range(len(ideas))]
        for sp_id, idea in zip(sp_ids, ideas):
            nodes["SellingPoint"].append({"id": sp_id, "text": _claim_text(idea, phrasings[idea], cycler, rng), **audit})
            rels["HAS_SELLING_POINT"].append({"from": product_id, "to": sp_id})
            idea_of[sp_id], category_of[sp_id], product_of[sp_id] = idea, spec.key, product_id

        def shows(idea: str, noun: str = noun) -> str:
            return cycler.next("clip:" + idea, footage[idea]).format(noun=noun)

        # (caption, [(selling point, status)]) per clip of this product
        plan: list[tuple[str, list[tuple[str, str]]]] = []
        approved_of: dict[str, list[int]] = defaultdict(list)
        for sp_id, idea in zip(sp_ids, ideas):
            for _ in range(rng.choice((2, 2, 2, 3))):
                approved_of[sp_id].append(len(plan))
                plan.append((shows(idea), [(sp_id, "approved")]))
            if rng.random() < 0.3:  # a clip of the idea nobody judged yet
                plan.append((shows(idea), [(sp_id, "proposed")]))
        if len(sp_ids) > 1 and rng.random() < 0.6:  # one clip showing two ideas, approved for both
            a, b = rng.sample(range(len(sp_ids)), 2)
            caption = f"{shows(ideas[a])}; then {shows(ideas[b])}"
            for sp_id in (sp_ids[a], sp_ids[b]):
                approved_of[sp_id].append(len(plan))
            plan.append((caption, [(sp_ids[a], "approved"), (sp_ids[b], "approved")]))
        for sp_id in sp_ids:
            others = [
                i for other in sp_ids if other != sp_id for i in approved_of[other] if sp_id not in {s for s, _ in plan[i][1]}
            ]
            if others and rng.random() < 0.5:  # another idea's clip judged wrong for this one: a hard negative
                plan[rng.choice(others)][1].append((sp_id, "rejected"))
        b_roll_start = len(plan)
        for _ in range(max(clips_per_product - len(plan), 3)):
            plan.append((cycler.next(f"broll:{p}", b_roll).format(noun=noun), []))
        for sp_id in sp_ids:
            if rng.random() < 0.2:  # B-roll proposed by a weak model, never judged
                plan[rng.randrange(b_roll_start, len(plan))][1].append((sp_id, "proposed"))

        order = list(range(len(plan)))
        rng.shuffle(order)  # clip ids say nothing about which clips are linked
        for k, i in enumerate(order):
            caption, links = plan[i]
            clip_id = f"clip-{p:03d}-{k:02d}"
            row, motion = _clip_row(clip_id, caption, rng)
            nodes["CreativeClip"].append({**row, **audit})
            rels["FEATURES"].append({"from": clip_id, "to": product_id})
            rels["HAS_MOTION"].append({"from": clip_id, "to": f"motion-{motion}"})
            for sp_id, status in links:
                rels["ILLUSTRATES"].append(_judged(rng, clip_id, sp_id, status))

    rels["SAME_CLAIM"] = _same_claims(idea_of, category_of, product_of, rng)
    return nodes, rels, idea_of


def _same_claims(
    idea_of: dict[str, str], category_of: dict[str, str], product_of: dict[str, str], rng: random.Random
) -> list[dict[str, Any]]:
    """SAME_CLAIM rows, once per pair (from < to): same idea (approved, some proposed), hard negatives rejected, wrong pairs proposed."""
    pairs: dict[tuple[str, str], str] = {}
    by_idea: dict[str, list[str]] = defaultdict(list)
    for sp in sorted(idea_of):
        by_idea[idea_of[sp]].append(sp)
    for members in by_idea.values():
        for a, b in itertools.combinations(members, 2):
            if product_of[a] != product_of[b]:
                pairs[(a, b)] = "approved" if rng.random() < 0.85 else "proposed"
    sps = sorted(idea_of)
    for a in sps:
        same_category = [
            b for b in sps if category_of[b] == category_of[a] and idea_of[b] != idea_of[a] and product_of[b] != product_of[a]
        ]
        if same_category and rng.random() < 0.5:
            pairs.setdefault(tuple(sorted((a, rng.choice(same_category)))), "rejected")  # type: ignore[arg-type]
        if rng.random() < 0.2:
            b = rng.choice(sps)
            if idea_of[b] != idea_of[a] and product_of[b] != product_of[a]:
                pairs.setdefault(tuple(sorted((a, b))), "proposed")  # type: ignore[arg-type]
    return [_judged(rng, a, b, status) for (a, b), status in sorted(pairs.items())]


def make_eval_ackb(
    directory: Path,
    *,
    products: int = DEFAULT_PRODUCTS,
    selling_points_per_product: int = DEFAULT_SELLING_POINTS,
    clips_per_product: int = DEFAULT_CLIPS,
    seed: int = 0,
) -> dict[str, Any]:
    """Write the evaluation ACKB to `directory` (absent or empty); returns rows per label/type and the token overlap."""
    directory = Path(directory)
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise BadInputError(f"{directory} exists and is not an empty directory; pick a new one")
    nodes, rels, idea_of = eval_rows(
        products=products, selling_points_per_product=selling_points_per_product, clips_per_product=clips_per_product, seed=seed
    )
    overlap = token_overlap(nodes, rels)
    generator = {
        "products": products,
        "selling_points_per_product": selling_points_per_product,
        "clips_per_product": clips_per_product,
        "seed": seed,
        "vocabulary_half": vocabulary_half(seed),
        "ideas": len(set(idea_of.values())),
    }
    counts = write_ackb(
        directory, nodes, rels, extra={"source": "kb.eval_ackb", "generator": generator, "token_overlap": overlap}
    )
    return {"counts": counts, "token_overlap": overlap, "generator": generator}
