"""The semantic prior (generation.prompt): deterministic prompts built only from graph knowledge."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from generation.prompt import ARTEFACT_TERMS, TEMPLATE_WORDS, PromptPlan, build_prompt, caption_scene
from kb.demo.build import build_rows, plan_clips, select_products
from kb.graph import AckbGraph, graph_from_directory
from kb.interchange import write_ackb
from kb.store import NotFoundError

PRODUCTS = ["aquasonic-electric-toothbrush", "hydraglow-sheet-mask"]
TOOTHBRUSH = "prod-aquasonic-electric-toothbrush"
SONIC = "sp-aquasonic-electric-toothbrush-sonic-strokes"  # clip-0011 is rejected for it


def _words(text: str) -> set[str]:
    return set(re.findall(r"[\w'-]+", text.casefold()))


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory) -> AckbGraph:
    """The demo's planned rows for two products (real captions, tags, judgements), no videos."""
    directory = tmp_path_factory.mktemp("prompt") / "ackb"
    selected = select_products(PRODUCTS)
    plans = plan_clips(selected)
    nodes, rels = build_rows(selected, plans, {plan.id: {} for plan in plans})
    for row in nodes["CreativeClip"]:
        row.pop("video_path")
    write_ackb(directory, nodes, rels)
    return graph_from_directory(directory)


def _clip(graph: AckbGraph, clip_id: str) -> dict:
    return graph.nodes["CreativeClip"][graph.index("CreativeClip")[clip_id]]


def _mask_clips(graph: AckbGraph) -> list[str]:
    return [c for c in graph.ids("CreativeClip") if graph.product_of_clip[c] == "prod-hydraglow-sheet-mask"]


def _with_scene(graph: AckbGraph) -> list[str]:
    return [c for c in _mask_clips(graph) if caption_scene(_clip(graph, c)["caption"])]


def test_caption_scene_rule() -> None:
    assert caption_scene("Slow zoom in on the toothbrush's soft bristles against a brick wall") == "against a brick wall"
    assert caption_scene("Camera pans left across the bottle's lid in front of a window.") == "in front of a window"
    assert caption_scene("Slow zoom in on the toothbrush's soft bristles") is None  # the opening's "on" is not a scene
    assert caption_scene("Camera orbits around the mask's built-in serum") is None
    assert caption_scene("Still shot of the mug on") is None  # a preposition alone is no scene


def test_subject_from_the_new_product_motion_and_scene_from_the_best_reference(graph: AckbGraph) -> None:
    best = _with_scene(graph)[0]
    plan = build_prompt(graph, TOOTHBRUSH, SONIC, [best, _mask_clips(graph)[0]])
    assert isinstance(plan, PromptPlan)
    assert plan.subject == "AquaSonic Pro Electric Toothbrush, 40,000 sonic strokes per minute"
    motion = graph.nodes["Motion"][graph.index("Motion")[graph.motion_of_clip[best]]]
    assert plan.motion == f"{motion['name'].replace('_', ' ')}. {motion['description'].rstrip('.')}"
    assert plan.scene == caption_scene(_clip(graph, best)["caption"]) and plan.scene in _clip(graph, best)["caption"]
    assert plan.prompt == f"{plan.subject}, {plan.scene}. Camera motion: {plan.motion}."
    assert "sheet mask" not in plan.prompt  # the reference's subject is swapped out
    assert plan.reference_clip_ids == [best, _mask_clips(graph)[0]]
    assert plan.sources["subject"] == [f"Product:{TOOTHBRUSH}.name", f"SellingPoint:{SONIC}.text"]
    assert plan.sources["scene"] == [f"CreativeClip:{best}.caption"]
    assert plan.sources["motion"] == [f"Motion:{motion['id']}.name", f"Motion:{motion['id']}.description"]


def test_scene_falls_back_to_the_next_reference_and_may_be_absent(graph: AckbGraph) -> None:
    plain = [c for c in _mask_clips(graph) if not caption_scene(_clip(graph, c)["caption"])]
    scenic = _with_scene(graph)[0]
    plan = build_prompt(graph, TOOTHBRUSH, SONIC, [plain[0], scenic])
    assert plan.sources["scene"] == [f"CreativeClip:{scenic}.caption"]
    assert plan.sources["motion"][0] == f"Motion:{graph.motion_of_clip[plain[0]]}.name"  # motion: still the best
    alone = build_prompt(graph, TOOTHBRUSH, SONIC, [plain[0]])
    assert alone.scene is None and alone.sources["scene"] == []
    assert alone.prompt == f"{alone.subject}. Camera motion: {alone.motion}."


def test_same_inputs_give_the_same_strings(graph: AckbGraph, tmp_path: Path) -> None:
    refs = _mask_clips(graph)[:4]
    first = build_prompt(graph, TOOTHBRUSH, SONIC, refs)
    assert build_prompt(graph, TOOTHBRUSH, SONIC, refs) == first
    # a graph read afresh from the same rows gives the same plan too
    again = AckbGraph({k: [dict(r) for r in v] for k, v in graph.nodes.items()}, {k: [dict(r) for r in v] for k, v in graph.relationships.items()})
    assert build_prompt(again, TOOTHBRUSH, SONIC, refs) == first
    # the selling point may be named by its text
    assert build_prompt(graph, TOOTHBRUSH, "  40,000 SONIC strokes per minute ", refs) == first


def test_every_word_comes_from_the_graph_or_the_fixed_lists(graph: AckbGraph) -> None:
    fixed = set(TEMPLATE_WORDS) | set().union(*(_words(t) for t in ARTEFACT_TERMS))
    for sp in [s for s in graph.ids("SellingPoint") if graph.product_of_selling_point[s] == TOOTHBRUSH]:
        for refs in (_mask_clips(graph)[:3], _with_scene(graph)[-2:]):
            plan = build_prompt(graph, TOOTHBRUSH, sp, refs)
            known = set(fixed)
            for fact in [f for facts in plan.sources.values() for f in facts if not f.startswith(("fixed:", "ILLUSTRATES:"))]:
                label_id, prop = fact.rsplit(".", 1)
                label, id_ = label_id.split(":", 1)
                value = graph.nodes[label][graph.index(label)[id_]][prop]
                known |= _words(" ".join(value) if isinstance(value, list) else value.replace("_", " "))
            assert _words(plan.prompt) <= known, _words(plan.prompt) - known
            assert _words(plan.negative_prompt) <= known, _words(plan.negative_prompt) - known


def test_negative_prompt_from_rejected_clips_and_artefact_terms(graph: AckbGraph) -> None:
    rejected = graph.judgements("rejected")[SONIC]
    assert rejected == {"clip-0011"}
    rejected_clip = _clip(graph, "clip-0011")
    rejected_motion = graph.motion_of_clip["clip-0011"]
    # references whose motion differs from the rejected clip's motion
    refs = [c for c in _mask_clips(graph) if graph.motion_of_clip[c] != rejected_motion][:2]
    plan = build_prompt(graph, TOOTHBRUSH, SONIC, refs)
    approved_tags = {t for c in graph.judgements("approved")[SONIC] for t in _clip(graph, c)["tags"]}
    expected_tags = [t for t in rejected_clip["tags"] if t not in approved_tags and not _words(t) <= _words(plan.prompt)]
    assert expected_tags  # the rejected clip's motion tag, which no approved clip of this selling point has
    terms = plan.negative_prompt.split(", ")
    assert terms == expected_tags + list(ARTEFACT_TERMS)
    assert "oral care" not in terms  # shared with approved clips: what is wanted is never negative
    assert plan.sources["negative_prompt"] == ["CreativeClip:clip-0011.tags", f"ILLUSTRATES:clip-0011->{SONIC}", "fixed:ARTEFACT_TERMS"]
    # a selling point with no rejected clip gets the artefact terms only
    quiet = next(s for s in graph.ids("SellingPoint") if graph.product_of_selling_point[s] == TOOTHBRUSH and s not in graph.judgements("rejected"))
    assert build_prompt(graph, TOOTHBRUSH, quiet, refs).negative_prompt == ", ".join(ARTEFACT_TERMS)


def test_rejected_scene_goes_to_the_negative_prompt(graph: AckbGraph) -> None:
    nodes = {k: [dict(r) for r in v] for k, v in graph.nodes.items()}
    for row in nodes["CreativeClip"]:
        if row["id"] == "clip-0011":
            row["caption"] = row["caption"] + " next to a busy road"
            row["tags"] = row["tags"] + ["scene:ignored because the caption has one"]
    edited = AckbGraph(nodes, {k: [dict(r) for r in v] for k, v in graph.relationships.items()})
    plan = build_prompt(edited, TOOTHBRUSH, SONIC, _mask_clips(graph)[:1])
    assert plan.negative_prompt.split(", ")[0] == "next to a busy road"
    assert plan.sources["negative_prompt"][0] == "CreativeClip:clip-0011.caption"


def test_background_tag_is_a_scene_when_the_caption_has_none(graph: AckbGraph) -> None:
    plain = next(c for c in _mask_clips(graph) if not caption_scene(_clip(graph, c)["caption"]))
    nodes = {k: [dict(r) for r in v] for k, v in graph.nodes.items()}
    for row in nodes["CreativeClip"]:
        if row["id"] == plain:
            row["tags"] = row["tags"] + ["background: marble countertop"]
    edited = AckbGraph(nodes, {k: [dict(r) for r in v] for k, v in graph.relationships.items()})
    plan = build_prompt(edited, TOOTHBRUSH, SONIC, [plain])
    assert plan.scene == "marble countertop" and plan.sources["scene"] == [f"CreativeClip:{plain}.tags"]


def test_clip_without_motion_node_keeps_its_caption_opening(graph: AckbGraph) -> None:
    clip = _mask_clips(graph)[0]
    relationships = {k: [dict(r) for r in v] for k, v in graph.relationships.items()}
    relationships["HAS_MOTION"] = [r for r in relationships["HAS_MOTION"] if r["from"] != clip]
    edited = AckbGraph({k: [dict(r) for r in v] for k, v in graph.nodes.items()}, relationships)
    plan = build_prompt(edited, TOOTHBRUSH, SONIC, [clip])
    caption = _clip(graph, clip)["caption"]
    assert caption.startswith(plan.motion) and plan.sources["motion"] == [f"CreativeClip:{clip}.caption"]


def test_errors(graph: AckbGraph) -> None:
    refs = _mask_clips(graph)[:2]
    with pytest.raises(KeyError, match="no Product with id 'prod-nope'"):
        build_prompt(graph, "prod-nope", SONIC, refs)
    with pytest.raises(KeyError, match="no selling point with id or text 'glows in the dark'"):
        build_prompt(graph, TOOTHBRUSH, "glows in the dark", refs)
    with pytest.raises(ValueError, match="belongs to product 'prod-hydraglow-sheet-mask'"):
        build_prompt(graph, TOOTHBRUSH, "sp-hydraglow-sheet-mask-bamboo-sheet", refs)
    with pytest.raises(ValueError, match="non-empty"):
        build_prompt(graph, TOOTHBRUSH, " ", refs)
    with pytest.raises(ValueError, match="at least one reference"):
        build_prompt(graph, TOOTHBRUSH, SONIC, [])
    with pytest.raises(ValueError, match="must not repeat"):
        build_prompt(graph, TOOTHBRUSH, SONIC, [refs[0], refs[0]])
    with pytest.raises(NotFoundError, match="no CreativeClip with id 'clip-9999'"):
        build_prompt(graph, TOOTHBRUSH, SONIC, [refs[0], "clip-9999"])
