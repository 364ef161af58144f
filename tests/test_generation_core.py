"""Generation core on CPU: tiny AnimateDiff backbone, motion prior (FreeInit-style mix), mp4 output."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from generation.backbones import BackboneError, load_backbone
from generation.motion_prior import (
    MotionPriorError,
    encode_reference,
    low_pass_mask,
    noise_prior,
    spectral_mix,
)
from generation.pipeline import GenerationError, generate_frames, to_uint8, write_mp4
from generation.reference_video import ReferenceVideoError, read_reference
from kb.demo.clips import render_clip
from kb.motion import measure_motion

PROMPT, NEGATIVE = "slow pan over a red bottle", "blurry"


@pytest.fixture(scope="module")
def reference_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render_clip(tmp_path_factory.mktemp("ref") / "pan.mp4", motion="pan_right", seed=1, num_frames=16)


def test_tiny_backbone_is_small_and_loads(tiny_dir: Path, pipe) -> None:
    size = sum(p.stat().st_size for p in tiny_dir.rglob("*") if p.is_file())
    assert size < 30 * 2**20
    assert json.loads((tiny_dir / "model_index.json").read_text())["_class_name"] == "AnimateDiffPipeline"
    assert type(pipe).__name__ == "AnimateDiffPipeline"
    assert pipe.unet.dtype == torch.float32


def test_missing_backbone_folder_and_components(tiny_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(BackboneError, match="does not exist"):
        load_backbone(tmp_path / "nowhere")
    with pytest.raises(BackboneError, match="model_index.json"):
        load_backbone(tmp_path)
    broken = tmp_path / "broken"
    shutil.copytree(tiny_dir, broken)
    shutil.rmtree(broken / "vae")
    shutil.rmtree(broken / "motion_adapter")
    with pytest.raises(BackboneError, match="missing: motion_adapter, vae"):
        load_backbone(broken)
    index = json.loads((broken / "model_index.json").read_text())
    index["_class_name"] = "MysteryPipeline"
    (broken / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(BackboneError, match="unknown pipeline class 'MysteryPipeline'"):
        load_backbone(broken)


def test_strength_zero_equals_plain_pipeline_bit_for_bit(pipe) -> None:
    frames, info = generate_frames(pipe, PROMPT, NEGATIVE, motion_strength=0.0, steps=2, seed=3)
    plain = pipe(
        PROMPT, negative_prompt=NEGATIVE, num_frames=8, height=64, width=64, num_inference_steps=2,
        guidance_scale=7.5, generator=torch.Generator().manual_seed(3), output_type="np",
    ).frames[0]
    assert frames.shape == (8, 64, 64, 3) and frames.dtype == np.uint8
    assert np.array_equal(frames, to_uint8(plain))
    assert info["pipeline_s"] > 0 and info["reference_encode_s"] == 0.0


def test_generate_write_mp4_and_measure(pipe, reference_clip: Path, tmp_path: Path) -> None:
    frames, info = generate_frames(pipe, PROMPT, NEGATIVE, reference_video=reference_clip, motion_strength=0.6)
    assert frames.shape == (8, 64, 64, 3)
    assert info["reference_encode_s"] > 0 and info["mix_s"] >= 0
    path = write_mp4(frames, tmp_path / "out.mp4", fps=8)
    measured = measure_motion(path)
    assert measured["num_frames"] == 8 and (measured["width"], measured["height"]) == (64, 64)


def _temporal_correlation(latents: torch.Tensor, reference: torch.Tensor) -> float:
    """Correlation of frame-to-frame differences of two (1, C, F, h, w) latent videos."""
    a = (latents[:, :, 1:] - latents[:, :, :-1]).flatten().double()
    b = (reference[:, :, 1:] - reference[:, :, :-1]).flatten().double()
    return float(torch.corrcoef(torch.stack([a, b]))[0, 1])


def test_higher_strength_moves_output_latents_toward_reference_motion(pipe, reference_clip: Path) -> None:
    reference = encode_reference(pipe, read_reference(reference_clip, 8, 64, 64))
    assert reference.shape == (1, 4, 8, 16, 16)
    correlations = []
    for strength in (0.0, 0.5, 1.0):
        latents, _ = generate_frames(
            pipe, PROMPT, NEGATIVE, reference_latents=reference, motion_strength=strength, steps=2,
            output_type="latent",
        )
        correlations.append(_temporal_correlation(latents.unsqueeze(0), reference))
    # Random tiny weights: the effect is small but must grow monotonically with strength.
    assert correlations[0] < correlations[1] < correlations[2], correlations
    assert correlations[2] - correlations[0] > 0.005, correlations


def test_spectral_mix_properties() -> None:
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(1, 4, 8, 16, 16, generator=generator)
    reference = 3.0 * torch.randn(1, 4, 8, 16, 16, generator=generator) + 0.5
    assert spectral_mix(noise, reference, 0.0) is noise
    for strength in (0.3, 1.0):
        mixed = spectral_mix(noise, reference, strength)
        assert mixed.shape == noise.shape and mixed.dtype == noise.dtype
        assert abs(float(mixed.std()) - float(noise.std())) < 1e-4
    # Box filter, strength 1: inside the pass band the spectrum is the reference's (up to the one
    # global rescale to unit variance); outside it is the noise's.
    mixed = spectral_mix(noise, reference, 1.0, cutoff=0.4, kind="box")
    band = low_pass_mask((8, 16, 16), 0.4, "box").bool()
    dims = (2, 3, 4)
    mixed_f, ref_f, noise_f = (torch.fft.fftn(x.double(), dim=dims) for x in (mixed, reference, noise))
    low_ratio = mixed_f[..., band] / ref_f[..., band]
    high_ratio = mixed_f[..., ~band] / noise_f[..., ~band]
    assert torch.allclose(low_ratio, low_ratio.flatten()[0], rtol=1e-4)
    assert torch.allclose(high_ratio, high_ratio.flatten()[0], rtol=1e-4)
    assert abs(low_ratio.imag).max() < 1e-4
    with pytest.raises(MotionPriorError, match="strength"):
        spectral_mix(noise, reference, 1.5)
    with pytest.raises(MotionPriorError, match="do not match"):
        spectral_mix(noise, reference[:, :, :4], 0.5)


def test_noise_prior_variant() -> None:
    noise = torch.randn(1, 4, 8, 16, 16, generator=torch.Generator().manual_seed(1))
    reference = torch.randn(1, 4, 8, 16, 16, generator=torch.Generator().manual_seed(2))
    assert noise_prior(noise, reference, 0.0, 0.5) is noise
    mixed = noise_prior(noise, reference, 0.7, 1.0, generator=torch.Generator().manual_seed(3))
    expected = 0.7**0.5 * reference / reference.pow(2).mean().sqrt() + 0.3**0.5 * noise
    assert torch.allclose(mixed, expected, atol=1e-5)
    with pytest.raises(MotionPriorError):
        noise_prior(noise, reference, -0.1, 0.5)


def test_unreadable_reference_video(pipe, tmp_path: Path) -> None:
    bogus = tmp_path / "not_a_video.mp4"
    bogus.write_bytes(b"this is not an mp4")
    with pytest.raises(ReferenceVideoError, match="not a readable video"):
        read_reference(bogus, 8, 64, 64)
    with pytest.raises(ReferenceVideoError, match="does not exist"):
        read_reference(tmp_path / "missing.mp4", 8, 64, 64)
    with pytest.raises(ReferenceVideoError, match="not a readable video"):
        generate_frames(pipe, PROMPT, reference_video=bogus, motion_strength=0.5)


def test_read_reference_resamples_time_and_size(reference_clip: Path) -> None:
    frames = read_reference(reference_clip, 5, 48, 40)
    assert frames.shape == (5, 3, 48, 40) and frames.dtype == torch.float32
    assert -1.0 <= float(frames.min()) and float(frames.max()) <= 1.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_frames": 0}, "num_frames"),
        ({"num_frames": 65}, "num_frames"),
        ({"height": 60}, "height"),
        ({"width": 16}, "width"),
        ({"width": 1032}, "width"),
        ({"motion_strength": 0.5}, "reference"),
        ({"motion_strength": 2.0}, "motion_strength"),
    ],
)
def test_request_validation(pipe, kwargs: dict, match: str) -> None:
    with pytest.raises(GenerationError, match=match):
        generate_frames(pipe, PROMPT, **kwargs)
