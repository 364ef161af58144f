"""`kdcvg generation eval`: MKR's priors vs the same backbone without knowledge, measured, summarised, kept out of the graph."""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from generation.evaluate import (
    PLAIN_NEGATIVE,
    EvaluationError,
    check_variants,
    evaluate_generation,
    min_max_scores,
    parse_selling_points,
    pick_selling_points,
)
from generation.generator import Generator
from generation.metrics import CLIP_UNAVAILABLE, motion_magnitude, motion_smoothness, temporal_consistency, text_video_alignment
from generation.motion_lora import MotionLoraConfig, train_clip_lora
from generation.request import GenerationOptions, GenerationRequest
from kb.backends import open_store
from kb.graph import AckbGraph, graph_from_store
from kdcvg.config import Settings
from retrieval.checkpoint import load_checkpoint
from retrieval.clip_image import OpenClipEncoder
from tests.conftest import generated_state, kdcvg_in

LEAK, ANC = "sp-thermopeak-insulated-bottle-leak-proof", "sp-airbeat-wireless-earbuds-anc"
SMALL = {"options": GenerationOptions(frames=4, height=32, width=32, steps=1)}


@pytest.fixture(scope="module")
def graph(mkr_world: tuple[Settings, Path]) -> AckbGraph:
    settings, _ = mkr_world
    with open_store(settings, read_only=True) as store:
        return graph_from_store(store, settings.media_dir)


def test_eval_compares_every_variant_with_plain_on_the_same_seeds_and_measures_them(
    mkr_world: tuple[Settings, Path], graph: AckbGraph, tiny_clip: tuple[str, Path], tmp_path: Path
) -> None:
    settings, model = mkr_world
    before = generated_state(settings)
    encoder, generator = OpenClipEncoder(*tiny_clip), Generator(model, settings)
    report = evaluate_generation(generator, [LEAK, ANC], seeds=[0, 1], videos_dir=tmp_path / "videos",
                                 clip_encoder=encoder, **SMALL)  # fmt: skip
    assert generated_state(settings) == before  # no provenance, nothing in media/generated
    pairs = report["pairs"]
    assert [(p["selling_point"], p["seed"]) for p in pairs] == [(LEAK, 0), (LEAK, 1), (ANC, 0), (ANC, 1)] and not report["skipped"]
    assert report["options"]["variants"] == ["plain", "spectral", "inversion"]
    leak = pairs[0]
    product = graph.nodes["Product"][graph.index("Product")[leak["product"]]]
    assert leak["text"] == f"{product['name']}, Leak-proof lid" == leak["plain"]["prompt"]  # product + selling point only
    assert leak["plain"]["negative_prompt"] == PLAIN_NEGATIVE == leak["spectral"]["negative_prompt"]
    assert leak["spectral"]["prompt"] == leak["inversion"]["prompt"] == leak["text"]  # the motion rows differ from plain by motion only
    assert leak["reference_video"].startswith("clips/")
    assert leak["spectral"]["motion_prior"]["strength"] == 0.5 and leak["inversion"]["motion_prior"]["strength"] == 0.7
    for pair in pairs:
        videos = {v: iio.imread(pair[v]["video_path"], index=None) for v in ("plain", "spectral", "inversion")}
        assert Path(pair["inversion"]["video_path"]).is_relative_to(tmp_path / "videos")
        assert all(video.shape == (4, 32, 32, 3) for video in videos.values())
        assert not np.array_equal(videos["spectral"], videos["plain"]) and not np.array_equal(videos["inversion"], videos["spectral"])
        # The recorded numbers are the metrics of the written videos, for the same text.
        assert pair["plain"]["metrics"]["text_video_alignment"] == pytest.approx(
            text_video_alignment(videos["plain"], pair["text"], encoder), abs=1e-6
        )
        assert pair["spectral"]["metrics"]["temporal_consistency"] == pytest.approx(temporal_consistency(videos["spectral"]))
        assert pair["inversion"]["metrics"]["motion_smoothness"] == pytest.approx(motion_smoothness(videos["inversion"]))
        assert pair["inversion"]["metrics"]["dynamic_degree"] in (0.0, 1.0) and pair["reference_motion_magnitude"] > 0
        assert pair["plain"]["metrics"]["motion_magnitude"] == pytest.approx(motion_magnitude(videos["plain"]))
        assert all(pair[v]["metrics"]["motion_fidelity"] is not None and pair[v]["metrics"]["runtime_s"] > 0 for v in videos)
    for metric, stats in report["summary"].items():
        values = {v: [p[v]["metrics"][metric] for p in pairs] for v in ("plain", "spectral", "inversion")}
        assert stats["spectral"]["mean"] == pytest.approx(np.mean(values["spectral"]))
        assert stats["plain"]["std"] == pytest.approx(np.std(values["plain"], ddof=1))
        difference = stats["difference"]["inversion"]
        assert difference["mean"] == pytest.approx(np.mean(np.subtract(values["inversion"], values["plain"]))) and difference["n"] == 4
    assert set(report["min_max"]["scores"]) == {"plain", "spectral", "inversion"}
    assert report["min_max"]["metrics"] and max(report["min_max"]["scores"].values()) <= 100.0
    ratio = report["speed"]["ratio"]["plain"]
    assert ratio == pytest.approx(report["summary"]["motion_magnitude"]["plain"]["mean"] / report["speed"]["reference_magnitude"]["mean"])
    assert report["unavailable"] == {}
    # Same seed, same backbone: the plain baseline is reproducible.
    again = evaluate_generation(generator, [LEAK], seeds=[0], videos_dir=tmp_path / "again", variants=("spectral",), **SMALL)
    first, second = (iio.imread(r["plain"]["video_path"], index=None) for r in (pairs[0], again["pairs"][0]))
    assert np.array_equal(first, second) and "inversion" not in again["pairs"][0]
    assert (
        again["pairs"][0]["plain"]["metrics"]["text_video_alignment"] is None and "text_video_alignment" in again["unavailable"]
    )


def test_min_max_score_is_the_papers_aggregate() -> None:
    def stats(mean: float | None) -> dict:
        return {"mean": mean, "std": 0.0, "n": 1}

    variants = ("plain", "spectral", "inversion")
    summary = {
        "text_video_alignment": {"plain": stats(0.20), "spectral": stats(0.25), "inversion": stats(0.30)},
        "motion_fidelity": {"plain": stats(0.0), "spectral": stats(0.4), "inversion": stats(0.2)},
        "temporal_consistency": {"plain": stats(0.9), "spectral": stats(0.9), "inversion": stats(0.9)},  # a tie: left out
        "dynamic_degree": {"plain": stats(None), "spectral": stats(1.0), "inversion": stats(1.0)},  # unmeasured: left out
        "motion_smoothness": {"plain": stats(0.99), "spectral": stats(0.97), "inversion": stats(0.98)},
    }
    result = min_max_scores(summary, variants)
    assert result["metrics"] == ["text_video_alignment", "motion_fidelity", "motion_smoothness"]
    assert result["scores"] == pytest.approx({"plain": 100 * (0 + 0 + 1) / 3, "spectral": 100 * (0.5 + 1 + 0) / 3, "inversion": 100 * (1 + 0.5 + 0.5) / 3})
    with pytest.raises(EvaluationError, match="unknown variant.*'mkr'"):
        check_variants(("inversion", "mkr"))
    with pytest.raises(EvaluationError, match="at least one MKR variant"):
        check_variants(("plain",))
    assert check_variants(("inversion", "spectral")) == variants
    assert check_variants(("inversion+lora", "lora")) == ("plain", "lora", "inversion+lora")
    assert check_variants(("full", "spectral")) == ("plain", "spectral", "full")


def test_the_ablation_adds_the_lora_then_the_knowledge_prompt(mkr_world: tuple[Settings, Path], tmp_path: Path) -> None:
    settings, model = mkr_world
    generator = Generator(model, settings)
    probe = GenerationRequest(product="prod-thermopeak-insulated-bottle", selling_point=LEAK, motion_strength=0.0, frames=4,
                              height=32, width=32, steps=1)  # fmt: skip
    best = generator.generate(probe, scratch_dir=tmp_path / "probe").reference_clips[0]
    with open_store(settings) as store:
        lora = train_clip_lora(store, generator.pipe, best, model_dir=model, media_dir=settings.media_dir, cache_dir=settings.cache_dir,
                               config=MotionLoraConfig(steps=1), num_frames=4, height=32, width=32)  # fmt: skip
    try:
        report = evaluate_generation(generator, [LEAK], seeds=[0], videos_dir=tmp_path / "videos", variants=("inversion+lora", "full"), **SMALL)
    finally:  # the shared world keeps no LoRA (other tests expect none)
        with open_store(settings) as store:
            store.write(lambda tx: tx.run("MATCH (m:MotionLora {id: $id}) DETACH DELETE m", id=lora.id))
        lora.weights.unlink()
    (pair,) = report["pairs"]
    assert report["options"]["variants"] == ["plain", "inversion+lora", "full"] and not report["skipped"]
    assert pair["inversion+lora"]["prompt"] == pair["text"] and pair["inversion+lora"]["prompt_rewrite"]["rewriter"] == "plain"
    assert "Camera motion" in pair["full"]["prompt"] and pair["full"]["prompt_rewrite"]["rewriter"] == "graph"
    assert pair["inversion+lora"]["motion_lora"]["id"] == pair["full"]["motion_lora"]["id"] == lora.id
    assert pair["full"]["motion_prior"]["method"] == "inversion" and pair["full"]["motion_prior"]["strength"] == 0.7


def test_cli_eval_defaults_to_held_out_selling_points_and_says_what_is_unavailable(
    mkr_world: tuple[Settings, Path], graph: AckbGraph, tmp_path: Path
) -> None:
    settings, model = mkr_world
    before = generated_state(settings)
    out = tmp_path / "report.json"
    result = kdcvg_in(settings, "generation", "eval", "--model", str(model), "-n", "2", "--seeds", "3", "--frames", "4", "--size", "32",
                   "--steps", "1", "--variants", "inversion", "--videos-dir", str(tmp_path / "videos"), "--out", str(out))  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    _, _, meta = load_checkpoint(settings.models_dir / "sar")
    held_out = set(graph.ids("SellingPoint")) - set(meta["train_selling_points"])
    assert len(report["selling_points"]) == 2 and len(set(report["selling_points"]) & held_out) == min(2, len(held_out)) > 0
    assert [p["seed"] for p in report["pairs"]] == [3, 3]
    assert all(p[v]["metrics"]["text_video_alignment"] is None for p in report["pairs"] for v in ("plain", "inversion"))
    assert report["unavailable"]["text_video_alignment"] == CLIP_UNAVAILABLE
    flat = " ".join(result.stdout.split())
    assert "KDCVG_CLIP_MODEL" in flat and "temporal_consistency" in flat and "n/a" in flat and "variant − plain" in flat
    assert "Min-Max score" in flat and "speed / reference" in flat
    assert generated_state(settings) == before


def test_bad_selling_points_and_strength_are_clear_errors(
    mkr_world: tuple[Settings, Path], graph: AckbGraph, tmp_path: Path
) -> None:
    settings, model = mkr_world
    out = tmp_path / "report.json"
    result = kdcvg_in(
        settings, "generation", "eval", "--model", str(model), "--selling-points", f"{LEAK},sp-nope", "--out", str(out)
    )
    assert result.exit_code == 2 and "no SellingPoint with id 'sp-nope'" in result.stderr and not out.exists()
    result = kdcvg_in(settings, "generation", "eval", "--model", str(model), "--selling-points", LEAK, "--motion-strength", "0")
    assert result.exit_code == 2 and "(0 is the plain baseline)" in result.stderr
    videos = tmp_path / "videos"
    result = kdcvg_in(
        settings,
        "generation",
        "eval",
        "--model",
        str(model),
        "--selling-points",
        LEAK,
        "--size",
        "36",
        "--videos-dir",
        str(videos),
    )
    assert result.exit_code == 2 and "--size: Input should be a multiple of 8" in result.stderr and not videos.exists()
    result = kdcvg_in(settings, "generation", "eval", "--model", str(tmp_path / "no-model"))
    assert result.exit_code == 2 and "make demo" in result.stderr and "train-demo" in result.stderr
    listing = tmp_path / "sps.txt"
    listing.write_text(f"# held out\n{ANC}\n\n{LEAK}  # the bottle\n{ANC}\n")
    assert parse_selling_points(str(listing), graph) == [ANC, LEAK]
    with pytest.raises(EvaluationError, match="no selling point ids"):
        parse_selling_points(" , ", graph)


def test_pick_selling_points_prefers_held_out_then_tops_up(graph: AckbGraph) -> None:
    everything = graph.ids("SellingPoint")
    trained = everything[:-2]
    picks = pick_selling_points(graph, trained, 4, sample_seed=1)
    assert set(picks[:2]) == set(everything[-2:]) and len(set(picks)) == 4 and set(picks[2:]) <= set(trained)
    assert picks == pick_selling_points(graph, trained, 4, sample_seed=1)  # seeded
    with pytest.raises(EvaluationError, match="at least 1"):
        pick_selling_points(graph, trained, 0)
