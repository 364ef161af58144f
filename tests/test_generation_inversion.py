"""The inversion motion prior: DDIM inversion along the sampler's ODE, the β mix, and its content-addressed cache."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from generation.api import generate_for
from generation.batch import BatchError, read_requests
from generation.inversion import invert_latents
from generation.motion_prior import MotionPriorError, encode_reference, inversion_mix
from generation.reference_video import read_reference
from generation.pipeline import family_call_kwargs, generate_frames, to_uint8
from generation.reference_cache import ReferenceCache, folder_content_hash
from generation.request import GenerationOptions
from kb.backends import open_store
from kdcvg.config import Settings
from tests.conftest import kdcvg_in

PROMPT = "slow pan over a red bottle"
SMALL = {"num_frames": 4, "height": 32, "width": 32, "steps": 2}
BOTTLE, LEAK = "prod-thermopeak-insulated-bottle", "Leak-proof lid"


def test_inversion_mix_properties() -> None:
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(1, 4, 4, 8, 8, generator=generator)
    inverted = 5.0 * torch.randn(1, 4, 4, 8, 8, generator=generator)
    assert inversion_mix(noise, inverted, 0.0) is noise
    full = inversion_mix(noise, inverted, 1.0)
    scale = noise.pow(2).mean().sqrt() / inverted.pow(2).mean().sqrt()
    assert torch.allclose(full, inverted * scale, atol=1e-5)  # β = 1: the inverted noise, at the noise's RMS
    mixed = inversion_mix(noise, inverted, 0.7)
    expected = 0.7**0.5 * inverted * scale + 0.3**0.5 * noise
    assert torch.allclose(mixed, expected, atol=1e-5)
    assert abs(float(mixed.std()) - 1.0) < 0.1
    with pytest.raises(MotionPriorError, match="strength"):
        inversion_mix(noise, inverted, 1.2)
    with pytest.raises(MotionPriorError, match="do not match"):
        inversion_mix(noise, inverted[:, :, :2], 0.5)


def test_inversion_reconstructs_the_reference_better_than_fresh_noise(pipe, reference_clip: Path) -> None:
    """DDIM inversion then DDIM sampling with the same (empty) prompt and no guidance returns close to the reference."""
    reference = encode_reference(pipe, read_reference(reference_clip, 4, 32, 32))
    inverted = invert_latents(pipe, reference, 4, **family_call_kwargs(pipe))
    assert inverted.shape == reference.shape and torch.isfinite(inverted).all()
    assert not torch.allclose(inverted, reference)

    def sample(start: torch.Tensor) -> torch.Tensor:
        return pipe(prompt="", num_frames=4, height=32, width=32, num_inference_steps=4, guidance_scale=1.0,
                    latents=start.clone(), output_type="latent").frames  # fmt: skip

    fresh = torch.randn(reference.shape, generator=torch.Generator().manual_seed(0))
    error_inverted = float((sample(inverted) - reference).pow(2).mean())
    error_fresh = float((sample(fresh) - reference).pow(2).mean())
    assert error_inverted < 0.25 * error_fresh, (error_inverted, error_fresh)


def test_strength_zero_is_the_plain_pipeline_and_touches_no_cache(pipe, tiny_dir: Path, reference_clip: Path, tmp_path: Path) -> None:
    cache = ReferenceCache(tmp_path / "cache")
    frames, info = generate_frames(
        pipe, PROMPT, reference_video=reference_clip, motion_strength=0.0, method="inversion", seed=3,
        cache=cache, model_dir=tiny_dir, **SMALL,
    )  # fmt: skip
    plain = pipe(PROMPT, num_frames=4, height=32, width=32, num_inference_steps=2, guidance_scale=7.5,
                 generator=torch.Generator().manual_seed(3), output_type="np").frames[0]  # fmt: skip
    assert np.array_equal(frames, to_uint8(plain))
    assert info["reference_cache"] is None and not (tmp_path / "cache").exists()


def test_second_generation_reads_the_cache(pipe, tiny_dir: Path, reference_clip: Path, tmp_path: Path) -> None:
    cache = ReferenceCache(tmp_path / "cache")
    options = {"reference_video": reference_clip, "motion_strength": 0.7, "method": "inversion", "cache": cache,
               "model_dir": tiny_dir, "output_type": "latent", **SMALL}  # fmt: skip
    first, info = generate_frames(pipe, PROMPT, **options)
    assert info["reference_cache"] == {"latents": "miss", "inverted": "miss"} and info["inversion_s"] > 0
    entries = sorted(cache.root.glob("*.pt"))
    assert len(entries) == 2
    again, info = generate_frames(pipe, PROMPT, **options)
    assert info["reference_cache"] == {"inverted": "hit"} and info["inversion_s"] == 0.0
    assert torch.equal(first, again)
    # The entry is what generation reads: replace it and the output follows the file.
    key = cache.key(reference_clip, tiny_dir, "inverted", frames=4, height=32, width=32, steps=2, scheduler="DDIMScheduler")
    stored = torch.load(cache.path(key), weights_only=True)
    torch.save(-stored, cache.path(key))
    flipped, _ = generate_frames(pipe, PROMPT, **options)
    assert not torch.equal(flipped, first)
    # A damaged entry is recomputed and rewritten, never trusted.
    cache.path(key).write_bytes(b"not a tensor")
    repaired, info = generate_frames(pipe, PROMPT, **options)
    assert info["reference_cache"] == {"latents": "hit", "inverted": "miss"}
    assert torch.allclose(torch.load(cache.path(key), weights_only=True), stored, atol=1e-4)
    assert torch.allclose(repaired, first, atol=1e-4)


def test_cache_key_follows_clip_backbone_and_parameters(tiny_dir: Path, reference_clip: Path, tmp_path: Path) -> None:
    cache = ReferenceCache(tmp_path / "cache")
    base = cache.key(reference_clip, tiny_dir, "inverted", frames=4, steps=2)
    assert cache.key(reference_clip, tiny_dir, "inverted", frames=4, steps=2) == base
    assert cache.key(reference_clip, tiny_dir, "inverted", frames=4, steps=3) != base
    assert cache.key(reference_clip, tiny_dir, "latents", frames=4, steps=2) != base
    other_clip = tmp_path / "clip.mp4"
    other_clip.write_bytes(reference_clip.read_bytes() + b"\0")
    assert cache.key(other_clip, tiny_dir, "inverted", frames=4, steps=2) != base
    backbone = tmp_path / "backbone"
    shutil.copytree(tiny_dir, backbone)
    assert folder_content_hash(backbone) == folder_content_hash(tiny_dir)  # content, not path
    copy_key = cache.key(reference_clip, backbone, "inverted", frames=4, steps=2)
    assert copy_key == base
    config = backbone / "scheduler" / "scheduler_config.json"
    config.write_text(config.read_text().replace('"beta_end": 0.012', '"beta_end": 0.013'))
    assert cache.key(reference_clip, backbone, "inverted", frames=4, steps=2) != base  # memo invalidated by the edit


def test_generate_api_and_cli_record_the_inversion_prior(mkr_world: tuple[Settings, Path]) -> None:
    settings, model = mkr_world
    small = {"frames": 4, "height": 32, "width": 32, "steps": 2}
    first = generate_for(BOTTLE, LEAK, model=model, seed=2, motion_prior="inversion", settings=settings, **small)
    prior = first.parameters["motion_prior"]
    assert prior["method"] == "inversion" and prior["strength"] == 0.7 and prior["inversion_steps"] == 2
    assert prior["reference_cache"]["inverted"] == "miss"
    assert list((settings.cache_dir / "motion-prior").glob("*.pt"))
    result = kdcvg_in(settings, "generate", "--product", BOTTLE, "--selling-point", LEAK, "--seed", "2", "--motion-prior",
                      "inversion", "--frames", "4", "--size", "32", "--steps", "2", "--json", generation_model=model)  # fmt: skip
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    sidecar = json.loads(Path(payload["sidecar_path"]).read_text())
    assert sidecar["parameters"]["motion_prior"]["reference_cache"] == {"inverted": "hit"}
    assert np.array_equal(iio.imread(first.video_path, index=None), iio.imread(payload["video_path"], index=None))
    with open_store(settings, read_only=True) as store:
        rows = store.query("MATCH (g:GeneratedVideo {id: $id}) RETURN g.parameters", {"id": payload["video_id"]}).rows
    assert json.loads(rows[0][0])["motion_prior"]["method"] == "inversion"
    bad = kdcvg_in(settings, "generate", "--product", BOTTLE, "--selling-point", LEAK, "--motion-prior", "magic", generation_model=model)
    assert bad.exit_code == 2 and "magic" in bad.output


def test_batch_lines_choose_the_motion_prior(tmp_path: Path) -> None:
    requests = tmp_path / "requests.jsonl"
    lines = [{"product": BOTTLE, "selling_point": LEAK, "motion_prior": "inversion"}, {"product": BOTTLE, "selling_point": LEAK}]
    requests.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    parsed = read_requests(requests, GenerationOptions(motion_prior="spectral"))
    assert [item.request.motion_prior for item in parsed] == ["inversion", "spectral"]
    requests.write_text(json.dumps({"product": BOTTLE, "selling_point": LEAK, "motion_prior": "freeinit"}) + "\n")
    with pytest.raises(BatchError, match=r"requests.jsonl:1:motion_prior:"):
        read_requests(requests)
