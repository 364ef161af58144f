"""MKR's semantic prior without an LLM: a deterministic, rule-based prompt from graph knowledge only.

The paper's recipe (see docs/decisions.md#paper-what-we-follow-of-the-kd-cvg-method): split the best reference clip's script into {subject,
scene, motion}, keep the motion, swap in the new product's subject, write the final prompt. Here:

- subject: the product's `name` and the selling point's `text` ("<name>, <text>").
- motion: the best reference clip's Motion node (`HAS_MOTION`): its `name` (underscores read as
  spaces), then its `description` when it has one. A clip without a Motion node keeps the camera
  phrase that opens its caption instead (see "opening" below).
- scene, rule-based from the reference's caption:
  1. the caption's *opening* (its camera phrase, e.g. "Slow zoom in on") is every word up to and
     including the first word of `MOTION_LINKS`; it is dropped (no such word: nothing dropped);
  2. in the rest, the scene is the text from the LAST scene preposition of `SCENE_PREPOSITIONS`
     ("in front of", "next to", "beside", "against", "on", "over", ...) to the end, if it has at
     least one word after the preposition ("against a brick wall", "on fresh grass");
  3. no such phrase: a tag starting with one of `SCENE_TAG_PREFIXES` ("scene:", "background:"),
     prefix removed.
  The scene comes from the best reference that has one, in rank order; none: the prompt has no scene.
- negative prompt, from REJECTED knowledge: for each clip annotators rejected for this selling point
  (ILLUSTRATES status "rejected", in id order), its scene (same rule) and its tags, except those that
  also describe what is wanted: the chosen scene, scenes and tags of clips APPROVED for the same
  selling point, and tags whose words all occur in the positive prompt; then the fixed
  `ARTEFACT_TERMS`. Duplicates are dropped, first occurrence kept. (Rejected clips share the
  product's own tags, e.g. its category; the approved clips' tags keep those out.)

The prompt is `"<subject>, <scene>. Camera motion: <motion>."` (", <scene>" left out when there is
none): apart from graph text, only the words of `TEMPLATE_WORDS` and `ARTEFACT_TERMS` appear.
Same graph and inputs, same strings.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kb.graph import AckbGraph
from kb.store import NotFoundError, Row
from kdcvg.errors import BadInputError

# Words that end a caption's opening camera phrase ("Camera pans left across", "Still shot of").
MOTION_LINKS: tuple[str, ...] = ("on", "of", "from", "across", "over", "along", "around", "showing")
# Prepositions that start a scene phrase, longest first so "in front of" wins over "in".
SCENE_PREPOSITIONS: tuple[str, ...] = (
    "in front of", "next to", "beside", "against", "on", "over", "at", "in", "under", "near", "inside", "among", "by",
)
SCENE_TAG_PREFIXES: tuple[str, ...] = ("scene:", "background:")
# Generic video-generation artefacts, always in the negative prompt.
ARTEFACT_TERMS: tuple[str, ...] = (
    "blurry", "low quality", "distorted", "deformed", "flickering", "watermark", "text overlay", "jpeg artifacts",
)
TEMPLATE_WORDS: frozenset[str] = frozenset({"camera", "motion"})  # the only words the template adds

_SCENE = re.compile(r"(?:^|(?<=\s))(" + "|".join(re.escape(p) for p in SCENE_PREPOSITIONS) + r")(?=\s)", re.IGNORECASE)
_EDGE_PUNCTUATION = " \t.,;:!?"


@dataclass(frozen=True)
class PromptPlan:
    """A generation prompt and where each part of it came from."""

    prompt: str
    negative_prompt: str
    subject: str
    scene: str | None
    motion: str
    reference_clip_ids: list[str]
    # part ("subject", "scene", "motion", "negative_prompt") -> graph facts used, as
    # "Label:id.property" (or "ILLUSTRATES:clip->sp" and "fixed:ARTEFACT_TERMS")
    sources: dict[str, list[str]] = field(default_factory=dict)
    # how the prompt was finalised (generation.rewrite): rewriter, status, reason; empty before rewriting
    rewrite: dict[str, Any] = field(default_factory=dict)


def _clean(text: str) -> str:
    return " ".join(text.split()).strip(_EDGE_PUNCTUATION)


def caption_opening(caption: str) -> str:
    """The caption's camera phrase: words up to and including the first of MOTION_LINKS ('' if none)."""
    words = caption.split()
    for i, word in enumerate(words):
        if word.lower().strip(_EDGE_PUNCTUATION) in MOTION_LINKS:
            return " ".join(words[: i + 1])
    return ""


def caption_scene(caption: str) -> str | None:
    """The scene phrase of a caption by the module's rule (steps 1-2), or None."""
    words = caption.split()
    opening = caption_opening(caption)
    rest = " ".join(words[len(opening.split()) :])
    matches = list(_SCENE.finditer(rest))
    if not matches:
        return None
    last = matches[-1]
    scene = _clean(rest[last.start() :])
    return scene if len(scene.split()) > len(last.group(1).split()) else None


def clip_scene(clip: Row) -> tuple[str | None, str | None]:
    """(scene, the property it came from: 'caption' or 'tags') of a clip row."""
    scene = caption_scene(clip.get("caption") or "")
    if scene:
        return scene, "caption"
    for tag in clip.get("tags") or []:
        for prefix in SCENE_TAG_PREFIXES:
            if tag.lower().startswith(prefix) and _clean(tag[len(prefix) :]):
                return _clean(tag[len(prefix) :]), "tags"
    return None, None


def _row(graph: AckbGraph, label: str, id: str) -> Row:
    position = graph.index(label).get(id)
    if position is None:
        raise NotFoundError(f"no {label} with id {id!r} in the graph")
    return graph.nodes[label][position]


def resolve_selling_point(graph: AckbGraph, product_id: str, selling_point: str) -> Row:
    """The selling point named by id, or by its exact text (case and spacing aside) among the product's."""
    if not isinstance(selling_point, str) or not selling_point.strip():
        raise BadInputError("selling_point must be a non-empty selling point id or text")
    if selling_point in graph.index("SellingPoint"):
        owner = graph.product_of_selling_point.get(selling_point)
        if owner != product_id:
            raise BadInputError(f"selling point {selling_point!r} belongs to product {owner!r}, not {product_id!r}")
        return _row(graph, "SellingPoint", selling_point)
    wanted = " ".join(selling_point.split()).casefold()
    for row in graph.nodes["SellingPoint"]:
        if graph.product_of_selling_point.get(row["id"]) == product_id and " ".join(row["text"].split()).casefold() == wanted:
            return row
    raise NotFoundError(f"product {product_id!r} has no selling point with id or text {selling_point!r}")


def _words(text: str) -> set[str]:
    return set(re.findall(r"[\w'-]+", text.casefold()))


def build_prompt(graph: AckbGraph, product_id: str, selling_point: str, references: Sequence[str]) -> PromptPlan:
    """The prompt for `product_id`'s `selling_point` (id or text) from ranked reference clip ids.

    Raises NotFoundError (a KeyError) for an unknown product, selling point or reference clip, and
    ValueError for no references, repeated references or a selling point of another product.
    """
    product = _row(graph, "Product", product_id)
    sp = resolve_selling_point(graph, product_id, selling_point)
    references = list(references)
    if not references:
        raise BadInputError("at least one reference clip is needed (ranked, best first)")
    if len(set(references)) != len(references):
        raise BadInputError("reference clip ids must not repeat")
    clips = [_row(graph, "CreativeClip", clip_id) for clip_id in references]
    best = clips[0]

    subject = f"{_clean(product['name'])}, {_clean(sp['text'])}"
    sources: dict[str, list[str]] = {
        "subject": [f"Product:{product['id']}.name", f"SellingPoint:{sp['id']}.text"],
        "scene": [],
        "motion": [],
        "negative_prompt": [],
    }

    motion_id = graph.motion_of_clip.get(best["id"])
    if motion_id is not None and motion_id in graph.index("Motion"):
        motion_row = _row(graph, "Motion", motion_id)
        motion = _clean(motion_row["name"].replace("_", " "))
        sources["motion"].append(f"Motion:{motion_id}.name")
        if motion_row.get("description"):
            motion = f"{motion}. {_clean(motion_row['description'])}"
            sources["motion"].append(f"Motion:{motion_id}.description")
    else:
        motion = _clean(caption_opening(best["caption"]))
        if not motion:
            raise BadInputError(f"reference clip {best['id']!r} has no Motion node and its caption no camera phrase")
        sources["motion"].append(f"CreativeClip:{best['id']}.caption")

    scene = None
    for clip in clips:
        scene, prop = clip_scene(clip)
        if scene:
            sources["scene"].append(f"CreativeClip:{clip['id']}.{prop}")
            break

    prompt = f"{subject}, {scene}. Camera motion: {motion}." if scene else f"{subject}. Camera motion: {motion}."

    positive = _words(prompt)
    wanted_scenes = {(scene or "").casefold()}
    wanted_tags: set[str] = set()
    for clip_id in graph.judgements("approved").get(sp["id"], ()):
        approved = _row(graph, "CreativeClip", clip_id)
        wanted_scenes.add((clip_scene(approved)[0] or "").casefold())
        wanted_tags.update(tag.casefold() for tag in approved.get("tags") or [])
    negatives: list[str] = []

    def add(term: str) -> bool:
        term = _clean(term)
        if term and term.casefold() not in {n.casefold() for n in negatives}:
            negatives.append(term)
            return True
        return False

    for clip_id in sorted(graph.judgements("rejected").get(sp["id"], ())):
        clip = _row(graph, "CreativeClip", clip_id)
        rejected_scene, prop = clip_scene(clip)
        if rejected_scene and rejected_scene.casefold() not in wanted_scenes and add(rejected_scene):
            sources["negative_prompt"].append(f"CreativeClip:{clip_id}.{prop}")
        used_tags = [
            tag for tag in clip.get("tags") or [] if tag.casefold() not in wanted_tags and not _words(tag) <= positive and add(tag)
        ]
        if used_tags:
            sources["negative_prompt"].append(f"CreativeClip:{clip_id}.tags")
        if rejected_scene or used_tags:
            sources["negative_prompt"].append(f"ILLUSTRATES:{clip_id}->{sp['id']}")
    for term in ARTEFACT_TERMS:
        add(term)
    sources["negative_prompt"].append("fixed:ARTEFACT_TERMS")

    return PromptPlan(
        prompt=prompt,
        negative_prompt=", ".join(negatives),
        subject=subject,
        scene=scene,
        motion=motion,
        reference_clip_ids=references,
        sources=sources,
    )
