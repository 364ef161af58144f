"""`kdcvg generation eval`: MKR vs the same backbone without knowledge, measured, summarised, and kept out of the graph."""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from generation.evaluate import PLAIN_NEGATIVE, EvaluationError, evaluate_generation, parse_selling_points, pick_selling_points
from generation.generator import Generator
from generation.metrics import CLIP_UNAVAILABLE, temporal_consistency, text_video_alignment
from kb.store import open_store
from kdcvg.config import Settings
from retrieval.checkpoint import load_checkpoint
from retrieval.clip_image import OpenClipEncoder
from retrieval.graph import AckbGraph, graph_from_store
from tests.conftest import generated_state, kdcvg_in

LEAK, ANC = "sp-thermopeak-insulated-bottle-leak-proof", "sp-airbeat-wireless-earbuds-anc"
SMALL = {"num_frames": 4, "size": 32, "steps": 1}


@pytest.fixture(scope="module")
def graph(mkr_world: tuple[Settings, Path]) -> AckbGraph:
    settings, _ = mkr_world
    with open_store(settings, read_only=True) as store:
        return graph_from_store(store, settings.media_dir)


def test_eval_pairs_mkr_with_plain_on_the_same_seeds_and_measures_both(
    mkr_world: tuple[Settings, Path], graph: AckbGraph, tiny_clip: tuple[str, Path], tmp_path: Path
) -> None:
    settings, model = mkr_world
    before = generated_state(settings)
    encoder, generator = OpenClipEncoder(*tiny_clip), Generator(model, settings)
    report = evaluate_generation(generator, [LEAK, ANC], seeds=[0, 1], videos_dir=tmp_path / "videos",
                                 clip_encoder=encoder, motion_strength=1.0, **SMALL)  # fmt: skip
    assert generated_state(settings) == before  # no provenance, nothing in media/generated
    pairs = report["pairs"]
    assert [(p["selling_point"], p["seed"]) for p in pairs] == [(LEAK, 0), (LEAK, 1), (ANC, 0), (ANC, 1)] and not report[
        "skipped"
    ]
    leak = pairs[0]
    product = graph.nodes["Product"][graph.index("Product")[leak["product"]]]
    assert leak["text"] == f"{product['name']}, Leak-proof lid" == leak["plain"]["prompt"]  # product + selling point only
    assert leak["plain"]["negative_prompt"] == PLAIN_NEGATIVE and "Camera motion" in leak["mkr"]["prompt"]
    assert leak["reference_video"].startswith("clips/")
    for pair in pairs:
        mkr, plain = (iio.imread(pair[v]["video_path"], index=None) for v in ("mkr", "plain"))
        assert Path(pair["mkr"]["video_path"]).is_relative_to(tmp_path / "videos") and mkr.shape == plain.shape == (4, 32, 32, 3)
        assert not np.array_equal(mkr, plain)  # knowledge changed the video
        # The recorded numbers are the metrics of the written videos, for the same text.
        assert pair["plain"]["metrics"]["text_video_alignment"] == pytest.approx(
            text_video_alignment(plain, pair["text"], encoder), abs=1e-6
        )
        assert pair["mkr"]["metrics"]["temporal_consistency"] == pytest.approx(temporal_consistency(mkr))
        assert all(
            pair[v]["metrics"]["motion_fidelity"] is not None and pair[v]["metrics"]["runtime_s"] > 0 for v in ("mkr", "plain")
        )
    for metric, stats in report["summary"].items():
        mkr = [p["mkr"]["metrics"][metric] for p in pairs]
        plain = [p["plain"]["metrics"][metric] for p in pairs]
        assert stats["mkr"]["mean"] == pytest.approx(np.mean(mkr)) and stats["plain"]["std"] == pytest.approx(
            np.std(plain, ddof=1)
        )
        assert stats["difference"]["mean"] == pytest.approx(np.mean(np.subtract(mkr, plain))) and stats["difference"]["n"] == 4
    assert report["unavailable"] == {}
    # Same seed, same backbone: the plain baseline is reproducible.
    again = evaluate_generation(generator, [LEAK], seeds=[0], videos_dir=tmp_path / "again", motion_strength=1.0, **SMALL)
    first, second = (iio.imread(r["plain"]["video_path"], index=None) for r in (pairs[0], again["pairs"][0]))
    assert np.array_equal(first, second)
    assert (
        again["pairs"][0]["plain"]["metrics"]["text_video_alignment"] is None and "text_video_alignment" in again["unavailable"]
    )


def test_cli_eval_defaults_to_held_out_selling_points_and_says_what_is_unavailable(
    mkr_world: tuple[Settings, Path], graph: AckbGraph, tmp_path: Path
) -> None:
    settings, model = mkr_world
    before = generated_state(settings)
    out = tmp_path / "report.json"
    result = kdcvg_in(settings, "generation", "eval", "--model", str(model), "-n", "2", "--seeds", "3", "--frames", "4", "--size", "32",
                   "--steps", "1", "--videos-dir", str(tmp_path / "videos"), "--out", str(out))  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    _, _, meta = load_checkpoint(settings.models_dir / "sar")
    held_out = set(graph.ids("SellingPoint")) - set(meta["train_selling_points"])
    assert len(report["selling_points"]) == 2 and len(set(report["selling_points"]) & held_out) == min(2, len(held_out)) > 0
    assert [p["seed"] for p in report["pairs"]] == [3, 3]
    assert all(p[v]["metrics"]["text_video_alignment"] is None for p in report["pairs"] for v in ("mkr", "plain"))
    assert report["unavailable"]["text_video_alignment"] == CLIP_UNAVAILABLE
    flat = " ".join(result.stdout.split())
    assert "KDCVG_CLIP_MODEL" in flat and "temporal_consistency" in flat and "n/a" in flat and "MKR − plain" in flat
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
    assert result.exit_code == 2 and "height must be a multiple of 8" in result.stderr and not videos.exists()
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
