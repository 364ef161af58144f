"""CogVideoX family on CPU: tiny random DiT + causal 3-D VAE (4x time) + T5 built offline, MKR motion prior on (B, F, C, h, w)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline

from generation.backbones import FAMILIES, BackboneError, load_backbone
from generation.inversion import inverse_scheduler, invert_latents
from generation.motion_prior import MotionPriorError, encode_reference, low_pass_mask, spectral_mix
from generation.reference_video import read_reference
from generation.pipeline import GenerationError, family_call_kwargs, generate_frames, initial_noise, to_uint8
from generation.tiny import write_tiny_cogvideox
from kb.demo.clips import render_clip

PROMPT, NEGATIVE = "slow pan over a red bottle", "blurry"
FRAMES = 9  # 4·2 + 1 -> 3 latent frames


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny CogVideoX written to disk once for the module (loading is tested from there)."""
    return write_tiny_cogvideox(tmp_path_factory.mktemp("tiny") / "cogvideox")


@pytest.fixture(scope="module")
def pipe(tiny_dir: Path) -> DiffusionPipeline:
    """Loaded through `load_backbone`, float32 on CPU, shared by the module's tests."""
    return load_backbone(tiny_dir)


@pytest.fixture(scope="module")
def reference_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A zooming clip longer than the generated video (read_reference resamples it to 4k + 1 frames)."""
    return render_clip(tmp_path_factory.mktemp("ref") / "zoom.mp4", motion="zoom_in", seed=2, num_frames=2 * FRAMES)


def test_tiny_cogvideox_is_small_offline_and_loads(tiny_dir: Path, pipe) -> None:
    size = sum(p.stat().st_size for p in tiny_dir.rglob("*") if p.is_file())
    assert size < 5 * 2**20
    assert json.loads((tiny_dir / "model_index.json").read_text())["_class_name"] == "CogVideoXPipeline"
    assert not list(tiny_dir.rglob("spiece.model"))  # tokenizer built without sentencepiece
    assert type(pipe).__name__ == "CogVideoXPipeline" and pipe.kdcvg_family is FAMILIES["CogVideoXPipeline"]
    assert pipe.transformer.dtype == torch.float32 and pipe.vae_scale_factor_temporal == 4
    ids = pipe.tokenizer("slow pan, 4K!").input_ids
    assert ids[-1] == pipe.tokenizer.eos_token_id and pipe.tokenizer.unk_token_id not in ids


def test_missing_component_is_named(tiny_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_dir, broken)
    shutil.rmtree(broken / "transformer")
    with pytest.raises(BackboneError, match="missing: transformer"):
        load_backbone(broken)


def test_strength_zero_equals_plain_pipeline_bit_for_bit(pipe) -> None:
    frames, info = generate_frames(pipe, PROMPT, NEGATIVE, num_frames=FRAMES, motion_strength=0.0, steps=2, seed=3)
    plain = pipe(
        PROMPT, negative_prompt=NEGATIVE, num_frames=FRAMES, height=64, width=64, num_inference_steps=2,
        guidance_scale=7.5, generator=torch.Generator().manual_seed(3), output_type="np",
        max_sequence_length=pipe.transformer.config.max_text_seq_length,
    ).frames[0]  # fmt: skip
    assert frames.shape == (FRAMES, 64, 64, 3) and info["family"] == "cogvideox"
    assert np.array_equal(frames, to_uint8(plain))


def test_reference_latents_match_the_pipelines_noise_layout(pipe, reference_clip: Path) -> None:
    reference = encode_reference(pipe, read_reference(reference_clip, FRAMES, 64, 64))
    noise = initial_noise(pipe, FRAMES, 64, 64, torch.Generator().manual_seed(0))
    assert reference.shape == noise.shape == (1, 3, 4, 8, 8)  # (B, (F - 1) // 4 + 1, C, h, w)
    with pytest.raises(MotionPriorError, match="4·k \\+ 1"):
        encode_reference(pipe, read_reference(reference_clip, 8, 64, 64))


def test_spectral_mix_filters_frames_and_space_not_channels() -> None:
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(1, 3, 4, 8, 8, generator=generator)
    reference = torch.randn(1, 3, 4, 8, 8, generator=generator)
    mixed = spectral_mix(noise, reference, 1.0, cutoff=0.5, kind="box", layout="BFCHW")
    band = low_pass_mask((3, 8, 8), 0.5, "box").bool()  # over (F, h, w), channel axis 2 untouched
    dims = (1, 3, 4)
    mixed_f, ref_f, noise_f = (torch.fft.fftn(x.double(), dim=dims).permute(0, 2, 1, 3, 4) for x in (mixed, reference, noise))
    low, high = mixed_f[..., band] / ref_f[..., band], mixed_f[..., ~band] / noise_f[..., ~band]
    assert torch.allclose(low, low.flatten()[0], rtol=1e-4) and torch.allclose(high, high.flatten()[0], rtol=1e-4)


def test_motion_prior_changes_output_and_is_deterministic(pipe, reference_clip: Path) -> None:
    plain, _ = generate_frames(pipe, PROMPT, NEGATIVE, num_frames=FRAMES, steps=2, seed=5)
    mkr = {"num_frames": FRAMES, "steps": 2, "seed": 5, "reference_video": reference_clip, "motion_strength": 0.8}
    (first, info), (second, _) = (generate_frames(pipe, PROMPT, NEGATIVE, **mkr) for _ in range(2))
    assert first.shape == (FRAMES, 64, 64, 3) and info["reference_encode_s"] > 0
    assert np.array_equal(first, second) and not np.array_equal(first, plain)


def test_noise_prior_is_refused_under_zero_terminal_snr(pipe, reference_clip: Path) -> None:
    # CogVideoX's scheduler reaches ᾱ = 0 at its first (trailing) timestep: the forward-noised
    # reference would be pure noise, so the MotionDirector variant would only swap one noise for another.
    with pytest.raises(GenerationError, match="no reference signal"):
        generate_frames(pipe, PROMPT, num_frames=FRAMES, reference_video=reference_clip, motion_strength=0.5, method="noise_prior")


def test_inversion_prior_under_v_prediction_and_zero_terminal_snr(pipe, reference_clip: Path) -> None:
    """DDIM inversion with CogVideoX's own (SNR-shifted) ᾱ: it ends at ᾱ = 0, where x_T is the predicted noise."""
    reference = encode_reference(pipe, read_reference(reference_clip, FRAMES, 64, 64))
    inverted = invert_latents(pipe, reference, 2, **family_call_kwargs(pipe))
    assert inverted.shape == reference.shape == (1, 3, 4, 8, 8) and torch.isfinite(inverted).all()
    assert inverse_scheduler(pipe).alphas_cumprod[-1] == pipe.scheduler.alphas_cumprod[-1] == 0
    plain, _ = generate_frames(pipe, PROMPT, NEGATIVE, num_frames=FRAMES, steps=2, seed=5)
    mkr = {"num_frames": FRAMES, "steps": 2, "seed": 5, "reference_video": reference_clip, "method": "inversion"}
    zero, _ = generate_frames(pipe, PROMPT, NEGATIVE, motion_strength=0.0, **mkr)
    (first, info), (second, _) = (generate_frames(pipe, PROMPT, NEGATIVE, motion_strength=0.7, **mkr) for _ in range(2))
    assert np.array_equal(zero, plain) and np.array_equal(first, second) and not np.array_equal(first, plain)
    assert info["inversion_s"] > 0 and info["motion_strength"] == 0.7


def test_higher_strength_moves_initial_latents_toward_reference(pipe, reference_clip: Path) -> None:
    reference = encode_reference(pipe, read_reference(reference_clip, FRAMES, 64, 64))
    noise = initial_noise(pipe, FRAMES, 64, 64, torch.Generator().manual_seed(0))
    correlations = [
        float(torch.corrcoef(torch.stack([spectral_mix(noise, reference, s, layout="BFCHW").flatten(), reference.flatten()]))[0, 1])
        for s in (0.0, 0.5, 1.0)
    ]
    assert correlations[0] < correlations[1] < correlations[2], correlations


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"num_frames": 8}, "4·k \\+ 1"), ({"height": 72}, "multiple of 16"), ({"width": 40}, "multiple of 16")]
)
def test_family_request_rules(pipe, kwargs: dict, match: str) -> None:
    with pytest.raises(GenerationError, match=match):
        generate_frames(pipe, PROMPT, **{"num_frames": FRAMES, **kwargs})


def test_ip_adapter_is_refused_for_cogvideox(tiny_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(BackboneError, match="do not support IP-Adapter"):
        load_backbone(tiny_dir, ip_adapter=tmp_path)
