"""The whole MKR path on CPU: retrieve -> priors -> generate (tiny random backbone) -> mp4 -> provenance."""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from generation.api import generate_for
from generation.backbones import BackboneError
from generation.pipeline import GenerationError
from kb.backends import open_store
from kb.motion import measure_motion
from kb.store import NotFoundError
from kdcvg.config import Settings
from tests.conftest import generated_state as _generated


def test_generate_writes_video_sidecar_and_provenance(mkr_world: tuple[Settings, Path]) -> None:
    settings, model = mkr_world
    result = generate_for("prod-thermopeak-insulated-bottle", "Leak-proof lid", model=model, k=3, seed=7, settings=settings)
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


def test_same_seed_same_frames_and_strength_zero_differs_from_prior(mkr_world: tuple[Settings, Path]) -> None:
    settings, model = mkr_world
    first = generate_for("prod-airbeat-wireless-earbuds", "Active noise cancellation", model=model, seed=3, settings=settings)
    second = generate_for("prod-airbeat-wireless-earbuds", "Active noise cancellation", model=model, seed=3, settings=settings)
    plain = generate_for("prod-airbeat-wireless-earbuds", "Active noise cancellation", model=model, seed=3, motion_strength=0.0, settings=settings)
    assert first.video_id != second.video_id  # two requests, two records
    assert np.array_equal(iio.imread(first.video_path, index=None), iio.imread(second.video_path, index=None))
    assert not np.array_equal(iio.imread(first.video_path, index=None), iio.imread(plain.video_path, index=None))


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"product": "prod-nope", "selling_point": "Leak-proof lid"}, NotFoundError, "prod-nope"),
        ({"product": "prod-thermopeak-insulated-bottle", "selling_point": "flies to the moon"}, NotFoundError, "no selling point"),
        ({"product": "prod-thermopeak-insulated-bottle", "selling_point": "Leak-proof lid", "frames": 500}, GenerationError, "frames"),
        ({"product": "prod-thermopeak-insulated-bottle", "selling_point": "Leak-proof lid", "motion_strength": 1.5}, GenerationError, "motion_strength"),
        ({"product": "prod-thermopeak-insulated-bottle", "selling_point": "Leak-proof lid", "k": 0}, ValueError, "k: Input should be greater than or equal to 1"),
    ],
)
def test_bad_input_writes_nothing(mkr_world: tuple[Settings, Path], kwargs: dict, error: type, message: str) -> None:
    settings, model = mkr_world
    before = _generated(settings)
    with pytest.raises(error, match=message):
        generate_for(model=model, settings=settings, **kwargs)
    assert _generated(settings) == before


def test_missing_model_directory_is_a_clear_error(mkr_world: tuple[Settings, Path], tmp_path: Path) -> None:
    settings, _ = mkr_world
    before = _generated(settings)
    with pytest.raises(BackboneError, match="no-model-here"):
        generate_for("prod-thermopeak-insulated-bottle", "Leak-proof lid", model=tmp_path / "no-model-here", settings=settings)
    assert _generated(settings) == before


def test_ip_adapter_keyframe_conditioning_is_used_and_recorded(mkr_world: tuple[Settings, Path], tmp_path: Path) -> None:
    from generation.tiny import write_tiny_ip_adapter

    settings, model = mkr_world
    adapter_settings = settings.model_copy(update={"ip_adapter": write_tiny_ip_adapter(tmp_path / "ip-adapter", model)})
    request = {"product": "prod-aquasonic-electric-toothbrush", "model": model, "seed": 4, "steps": 2, "frames": 4, "height": 32, "width": 32}
    plain = generate_for(selling_point=_first_selling_point(settings), settings=settings, **request)
    with_image = generate_for(selling_point=_first_selling_point(settings), settings=adapter_settings, **request)
    text_only = json.loads(plain.sidecar_path.read_text())["parameters"]["image_conditioning"]
    assert text_only == {"used": False, "adapter": None, "scale": None, "keyframe": None, "reason": "no IP-Adapter configured"}
    recorded = with_image.parameters["image_conditioning"]
    assert recorded == {"used": True, "adapter": "ip-adapter_tiny.safetensors", "scale": 0.5, "keyframe": "middle", "reason": None}
    assert with_image.reference_clips == plain.reference_clips
    assert not np.array_equal(iio.imread(with_image.video_path, index=None), iio.imread(plain.video_path, index=None))
    with open_store(settings, read_only=True) as store:
        stored = store.query("MATCH (g:GeneratedVideo {id: $id}) RETURN g.parameters", {"id": with_image.video_id}).rows[0][0]
    assert json.loads(stored)["image_conditioning"]["used"] is True
    with pytest.raises(GenerationError, match="ip_adapter_scale"):
        generate_for(selling_point=_first_selling_point(settings), settings=adapter_settings, ip_adapter_scale=2.0, **request)


def _first_selling_point(settings: Settings) -> str:
    """The id of the toothbrush's first selling point in the demo graph."""
    with open_store(settings, read_only=True) as store:
        rows = store.query(
            "MATCH (p:Product {id: 'prod-aquasonic-electric-toothbrush'})-[:HAS_SELLING_POINT]->(s:SellingPoint) RETURN s.id ORDER BY s.id"
        ).rows
    return rows[0][0]


def test_cogvideox_backbone_end_to_end_skips_the_adapter_and_says_why(mkr_world: tuple[Settings, Path], tmp_path: Path) -> None:
    from generation.tiny import write_tiny_cogvideox

    settings, _ = mkr_world
    model = write_tiny_cogvideox(tmp_path / "tiny-cogvideox")
    configured = settings.model_copy(update={"ip_adapter": tmp_path / "any-adapter"})  # never read for CogVideoX
    result = generate_for(
        "prod-thermopeak-insulated-bottle", "Leak-proof lid", model=model, seed=2, steps=2, frames=9, height=32,
        width=32, settings=configured,
    )  # fmt: skip
    assert measure_motion(result.video_path)["num_frames"] == 9
    assert result.parameters["image_conditioning"]["used"] is False
    assert result.parameters["image_conditioning"]["reason"] == "cogvideox backbones do not support IP-Adapter"
    with pytest.raises(GenerationError, match="4·k \\+ 1"):
        generate_for("prod-thermopeak-insulated-bottle", "Leak-proof lid", model=model, frames=8, settings=settings)


def test_generate_reads_and_records_through_the_store_it_is_given(mkr_world: tuple[Settings, Path]) -> None:
    """The app hands its open store in: generate must not open a second handle (Ladybug refuses one in-process)."""
    settings, model = mkr_world
    with open_store(settings) as store:
        result = generate_for("prod-thermopeak-insulated-bottle", "Leak-proof lid", model=model, seed=11, settings=settings, store=store)
        recorded = store.query("MATCH (g:GeneratedVideo {id: $id}) RETURN g.seed", {"id": result.video_id}).rows
    assert recorded == [[11]]
