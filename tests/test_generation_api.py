"""The whole MKR path on CPU: retrieve -> priors -> generate (tiny random backbone) -> mp4 -> provenance."""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from typer.testing import CliRunner

from generation.api import generate
from generation.backbones import BackboneError
from generation.pipeline import GenerationError
from generation.tiny import write_tiny_animatediff
from kb.motion import measure_motion
from kb.store import NotFoundError, open_store
from kdcvg.cli import app
from kdcvg.config import Settings, load_settings

PRODUCTS = "thermopeak-insulated-bottle,airbeat-wireless-earbuds,aquasonic-electric-toothbrush"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Path]:
    """A small demo ACKB with a trained SAR checkpoint, and a tiny random-weight AnimateDiff."""
    root = tmp_path_factory.mktemp("mkr")
    env = {"KDCVG_DATA": str(root / "data"), "XDG_CONFIG_HOME": str(root / "config")}
    runner = CliRunner()
    for args in (["kb", "demo", "--products", PRODUCTS, "--clips-per-product", "6"], ["retrieval", "train", "--epochs", "5"]):
        result = runner.invoke(app, args, env=env)
        assert result.exit_code == 0, result.output
    settings = load_settings(environ=env, config_file=root / "absent.toml")
    return settings, write_tiny_animatediff(root / "tiny-animatediff")


def _generated(settings: Settings) -> tuple[list[str], list[str]]:
    folder = settings.media_dir / "generated"
    files = sorted(p.name for p in folder.glob("*")) if folder.is_dir() else []
    with open_store(settings, read_only=True) as store:
        nodes = [row[0] for row in store.query("MATCH (g:GeneratedVideo) RETURN g.id ORDER BY g.id").rows]
    return files, nodes


def test_generate_writes_video_sidecar_and_provenance(world: tuple[Settings, Path]) -> None:
    settings, model = world
    result = generate("prod-thermopeak-insulated-bottle", "Leak-proof lid", model_dir=model, k=3, seed=7, settings=settings)
    motion = measure_motion(result.video_path)
    assert motion["num_frames"] == 8 and motion["width"] == 64 and motion["height"] == 64
    sidecar = json.loads(result.sidecar_path.read_text())
    assert sidecar["reference_clips"] == result.reference_clips and len(result.reference_clips) == 3
    assert sidecar["prompt"]["prompt"] == result.prompt.prompt and "ThermoPeak" in result.prompt.prompt
    assert result.parameters["reference_video"].startswith("clips/") and result.timings["total_s"] > 0
    with open_store(settings, read_only=True) as store:
        rows = store.query(
            "MATCH (g:GeneratedVideo {id: $id})-[r:REFERENCED]->(c:CreativeClip) MATCH (g)-[:GENERATED_FOR]->(s:SellingPoint) "
            "RETURN r.rank, c.id, s.text, g.seed, g.video_path ORDER BY r.rank",
            {"id": result.video_id},
        ).rows
    assert [(rank, clip) for rank, clip, *_ in rows] == list(enumerate(result.reference_clips, start=1))
    assert {(text, seed, path) for *_, text, seed, path in rows} == {("Leak-proof lid", 7, f"generated/{result.video_id}.mp4")}


def test_same_seed_same_frames_and_strength_zero_differs_from_prior(world: tuple[Settings, Path]) -> None:
    settings, model = world
    first = generate("prod-airbeat-wireless-earbuds", "Active noise cancellation", model_dir=model, seed=3, settings=settings)
    second = generate("prod-airbeat-wireless-earbuds", "Active noise cancellation", model_dir=model, seed=3, settings=settings)
    plain = generate("prod-airbeat-wireless-earbuds", "Active noise cancellation", model_dir=model, seed=3, motion_strength=0.0, settings=settings)
    assert first.video_id != second.video_id  # two requests, two records
    assert np.array_equal(iio.imread(first.video_path, index=None), iio.imread(second.video_path, index=None))
    assert not np.array_equal(iio.imread(first.video_path, index=None), iio.imread(plain.video_path, index=None))


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"product_id": "prod-nope", "selling_point": "Leak-proof lid"}, NotFoundError, "prod-nope"),
        ({"product_id": "prod-thermopeak-insulated-bottle", "selling_point": "flies to the moon"}, NotFoundError, "no selling point"),
        ({"product_id": "prod-thermopeak-insulated-bottle", "selling_point": "Leak-proof lid", "num_frames": 500}, GenerationError, "frames"),
        ({"product_id": "prod-thermopeak-insulated-bottle", "selling_point": "Leak-proof lid", "motion_strength": 1.5}, GenerationError, "motion_strength"),
        ({"product_id": "prod-thermopeak-insulated-bottle", "selling_point": "Leak-proof lid", "k": 0}, ValueError, "k must be"),
    ],
)
def test_bad_input_writes_nothing(world: tuple[Settings, Path], kwargs: dict, error: type, message: str) -> None:
    settings, model = world
    before = _generated(settings)
    with pytest.raises(error, match=message):
        generate(model_dir=model, settings=settings, **kwargs)
    assert _generated(settings) == before


def test_missing_model_directory_is_a_clear_error(world: tuple[Settings, Path], tmp_path: Path) -> None:
    settings, _ = world
    before = _generated(settings)
    with pytest.raises(BackboneError, match="no-model-here"):
        generate("prod-thermopeak-insulated-bottle", "Leak-proof lid", model_dir=tmp_path / "no-model-here", settings=settings)
    assert _generated(settings) == before
