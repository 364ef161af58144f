"""Wan 2.1 family on CPU: tiny random flow-matching DiT + Wan causal 3-D VAE (4x time) + UMT5 built offline, MKR on it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from diffusers import CogVideoXDDIMScheduler, DDIMScheduler, DiffusionPipeline, UniPCMultistepScheduler

from generation.api import generate_for
from generation.backbones import FAMILIES, BackboneError, load_backbone
from generation.inversion import flow_inverse_scheduler, flow_sigmas, invert_latents, is_flow_matching
from generation.motion_prior import encode_reference, spectral_mix
from generation.pipeline import GenerationError, generate_frames, initial_noise, to_uint8, validate_request
from generation.reference_cache import ReferenceCache
from generation.reference_video import read_reference
from generation.tiny import TINY_ANIMATEDIFF, TINY_COGVIDEOX, write_tiny_wan
from kb.backends import open_store
from kb.demo.clips import render_clip
from kdcvg.config import Settings
from tests.conftest import generated_state, kdcvg_in

PROMPT, NEGATIVE = "slow pan over a red bottle", "blurry"
FRAMES = 9  # 4·2 + 1 -> 3 latent frames
BOTTLE, LEAK = "prod-thermopeak-insulated-bottle", "Leak-proof lid"


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Wan written to disk once for the module (loading is tested from there)."""
    return write_tiny_wan(tmp_path_factory.mktemp("tiny") / "wan")


@pytest.fixture(scope="module")
def pipe(tiny_dir: Path) -> DiffusionPipeline:
    """Loaded through `load_backbone`, float32 on CPU, shared by the module's tests."""
    return load_backbone(tiny_dir)


@pytest.fixture(scope="module")
def reference_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A zooming clip longer than the generated video (read_reference resamples it to 4k + 1 frames)."""
    return render_clip(tmp_path_factory.mktemp("ref") / "zoom.mp4", motion="zoom_in", seed=2, num_frames=2 * FRAMES)


@pytest.fixture(scope="module")
def reference(pipe, reference_clip: Path) -> torch.Tensor:
    """The reference clip encoded by the tiny Wan VAE (normalised latents, (1, C, f, h, w))."""
    return encode_reference(pipe, read_reference(reference_clip, FRAMES, 64, 64))


def plain_wan(pipe, seed: int, output_type: str = "np", **kwargs) -> np.ndarray | torch.Tensor:
    """The unmodified `WanPipeline` call generate_frames must reproduce."""
    options = {"num_frames": FRAMES, "height": 64, "width": 64, "num_inference_steps": 2, "guidance_scale": 7.5, **kwargs}
    return pipe(
        PROMPT, negative_prompt=NEGATIVE, generator=torch.Generator().manual_seed(seed), output_type=output_type, **options
    ).frames[0]


def sample_from(pipe, start: torch.Tensor, steps: int) -> torch.Tensor:
    """Sample the flow ODE down from `start` with an empty prompt and no guidance (the inversion's conditioning)."""
    return pipe(prompt="", num_frames=FRAMES, height=64, width=64, num_inference_steps=steps, guidance_scale=1.0,
                latents=start.clone(), output_type="latent").frames  # fmt: skip


def test_tiny_wan_is_small_offline_and_loads(tiny_dir: Path, pipe) -> None:
    size = sum(p.stat().st_size for p in tiny_dir.rglob("*") if p.is_file())
    assert size < 1 * 2**20
    assert json.loads((tiny_dir / "model_index.json").read_text())["_class_name"] == "WanPipeline"
    assert not list(tiny_dir.rglob("spiece.model"))  # tokenizer built without sentencepiece
    family = FAMILIES["WanPipeline"]
    assert type(pipe).__name__ == "WanPipeline" and pipe.kdcvg_family is family and family.name == "wan"
    assert (family.latent_layout, family.temporal_compression, family.size_multiple) == ("BCFHW", 4, 16)
    assert (family.default_steps, family.default_guidance) == (50, 5.0)
    assert pipe.transformer.dtype == torch.float32 and pipe.vae_scale_factor_temporal == 4
    ddim = (DDIMScheduler(**TINY_ANIMATEDIFF["scheduler"]), CogVideoXDDIMScheduler(**TINY_COGVIDEOX["scheduler"]))
    assert is_flow_matching(pipe.scheduler) and not any(is_flow_matching(scheduler) for scheduler in ddim)
    ids = pipe.tokenizer("slow pan, 4K!").input_ids
    assert ids[-1] == pipe.tokenizer.eos_token_id and pipe.tokenizer.unk_token_id not in ids


def test_missing_component_is_named(tiny_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_dir, broken)
    shutil.rmtree(broken / "vae")
    with pytest.raises(BackboneError, match="WanPipeline needs component folder\\(s\\) that are missing: vae"):
        load_backbone(broken)


@pytest.mark.parametrize("method", ["spectral", "inversion"])
def test_strength_zero_equals_plain_pipeline_bit_for_bit(pipe, reference_clip: Path, method: str) -> None:
    frames, info = generate_frames(
        pipe, PROMPT, NEGATIVE, num_frames=FRAMES, motion_strength=0.0, method=method, reference_video=reference_clip,
        steps=2, seed=3,
    )  # fmt: skip
    assert frames.shape == (FRAMES, 64, 64, 3) and info["family"] == "wan"
    assert np.array_equal(frames, to_uint8(plain_wan(pipe, 3)))


def test_initial_noise_is_the_pipelines_own_draw(pipe, tiny_dir: Path) -> None:
    """Same shape, dtype (float32, whatever the model dtype: bf16 as on CUDA here) and values as WanPipeline.prepare_latents."""
    half = load_backbone(tiny_dir, dtype=torch.bfloat16)
    for loaded in (pipe, half):
        noise = initial_noise(loaded, FRAMES, 64, 64, torch.Generator().manual_seed(4))
        drawn = loaded.prepare_latents(1, 4, 64, 64, FRAMES, torch.float32, torch.device("cpu"), torch.Generator().manual_seed(4))
        assert noise.shape == (1, 4, 3, 8, 8) and noise.dtype == torch.float32 and torch.equal(noise, drawn)
    assert half.text_encoder.dtype == torch.bfloat16


def test_reference_latents_are_normalised_like_the_pipeline_denormalises(
    pipe, reference_clip: Path, reference: torch.Tensor
) -> None:
    """encode_reference gives (z − latents_mean) / latents_std: WanPipeline's decode step (× std + mean) recovers z."""
    assert reference.shape == (1, 4, 3, 8, 8)  # (B, C, (F − 1) // 4 + 1, h, w), the noise's layout
    video = read_reference(reference_clip, FRAMES, 64, 64).permute(1, 0, 2, 3).unsqueeze(0)
    posterior = pipe.vae.encode(video).latent_dist.mean
    config = pipe.vae.config
    mean = torch.tensor(config.latents_mean).view(1, -1, 1, 1, 1)
    inverse_std = 1.0 / torch.tensor(config.latents_std).view(1, -1, 1, 1, 1)
    assert torch.allclose(reference / inverse_std + mean, posterior, atol=1e-5)  # the pipeline's own formula
    assert not torch.allclose(reference, posterior, atol=1e-2)  # the tiny VAE's statistics are not the identity


def test_spectral_prior_changes_output_and_is_deterministic(pipe, reference_clip: Path, reference: torch.Tensor) -> None:
    noise = initial_noise(pipe, FRAMES, 64, 64, torch.Generator().manual_seed(0))
    correlations = [
        float(
            torch.corrcoef(torch.stack([spectral_mix(noise, reference, s, layout="BCFHW").flatten(), reference.flatten()]))[0, 1]
        )
        for s in (0.0, 0.5, 1.0)
    ]
    assert correlations[0] < correlations[1] < correlations[2], correlations
    mkr = {"num_frames": FRAMES, "steps": 2, "seed": 5, "reference_video": reference_clip, "motion_strength": 0.8}
    (first, info), (second, _) = (generate_frames(pipe, PROMPT, NEGATIVE, **mkr) for _ in range(2))
    assert first.shape == (FRAMES, 64, 64, 3) and info["reference_encode_s"] > 0 and info["method"] == "spectral"
    assert np.array_equal(first, second) and not np.array_equal(first, to_uint8(plain_wan(pipe, 5)))


def test_noise_prior_is_refused_for_a_schedule_starting_at_pure_noise(pipe, reference_clip: Path) -> None:
    # Rectified flow starts at σ = 1: the forward-noised reference carries nothing there.
    with pytest.raises(GenerationError, match="no reference signal"):
        generate_frames(
            pipe, PROMPT, num_frames=FRAMES, reference_video=reference_clip, motion_strength=0.5, method="noise_prior"
        )


def test_inverse_schedule_is_the_forward_sigmas_reversed(pipe) -> None:
    forward = flow_sigmas(pipe.scheduler, 4)
    assert forward[0] == 1.0 and forward[-1] == 0.0 and len(forward) == 5
    inverse = flow_inverse_scheduler(pipe, 4)
    inverse.set_timesteps(4)
    assert torch.equal(inverse.sigmas, forward.flip(0))
    assert torch.allclose(inverse.timesteps, forward.flip(0)[:-1] * 1000)
    pipe.scheduler.set_timesteps(4)
    assert torch.allclose(pipe.scheduler.sigmas, forward)  # the pipeline's own sigmas, shift included


def test_rectified_flow_round_trip_reconstructs_the_reference(pipe, reference: torch.Tensor) -> None:
    """Invert (Euler up the flow ODE), then sample (Euler down) with the same empty prompt, no guidance: back near x0.

    Measured on the tiny model (MSE of the round trip / mean square of the reference latents): 2 steps 1.5,
    4 steps 0.53, 8 steps 0.12, 16 steps 0.028, 32 steps 0.006 — first-order convergence (the error
    of each direction's Euler step is O(step)); from fresh noise the same sampler lands 17x the
    reference's power away. Tolerances: 8 steps within 0.2, and each halving of the step at least halves the error.
    """
    power = float(reference.pow(2).mean())
    errors = {}
    for steps in (4, 8):
        inverted = invert_latents(pipe, reference, steps)
        assert inverted.shape == reference.shape and torch.isfinite(inverted).all()
        errors[steps] = float((sample_from(pipe, inverted, steps) - reference).pow(2).mean()) / power
    fresh = torch.randn(reference.shape, generator=torch.Generator().manual_seed(0))
    error_fresh = float((sample_from(pipe, fresh, 8) - reference).pow(2).mean()) / power
    assert errors[8] < 0.2 and errors[8] < 0.5 * errors[4], errors
    assert errors[8] < 0.02 * error_fresh, (errors, error_fresh)


def test_inversion_with_wans_own_unipc_flow_scheduler(pipe, reference: torch.Tensor) -> None:
    """Real Wan 2.1 checkpoints ship UniPC with flow sigmas: recognised as flow matching, inverted over its sigmas."""
    forward = pipe.scheduler
    pipe.scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0)
    try:
        assert is_flow_matching(pipe.scheduler)
        sigmas = flow_sigmas(pipe.scheduler, 4)
        assert 0.99 < float(sigmas[0]) < 1.0 and sigmas[-1] == 0.0
        inverted = invert_latents(pipe, reference, 4)
        assert type(pipe.scheduler).__name__ == "UniPCMultistepScheduler"  # restored after the inversion
    finally:
        pipe.scheduler = forward
    assert inverted.shape == reference.shape and torch.isfinite(inverted).all()
    assert not torch.allclose(inverted, invert_latents(pipe, reference, 4))  # its own sigmas, not the Euler scheduler's


def test_inversion_prior_beta_one_starts_from_the_rescaled_inverted_noise_and_hits_the_cache(
    pipe, tiny_dir: Path, reference_clip: Path, reference: torch.Tensor, tmp_path: Path
) -> None:
    cache = ReferenceCache(tmp_path / "cache")
    options = {"num_frames": FRAMES, "steps": 4, "seed": 5, "reference_video": reference_clip, "method": "inversion",
               "guidance_scale": 1.0, "cache": cache, "model_dir": tiny_dir, "output_type": "latent"}  # fmt: skip
    first, info = generate_frames(pipe, "", motion_strength=1.0, **options)
    assert info["reference_cache"] == {"latents": "miss", "inverted": "miss"} and info["inversion_s"] > 0
    again, info = generate_frames(pipe, "", motion_strength=1.0, **options)
    assert info["reference_cache"] == {"inverted": "hit"} and info["inversion_s"] == 0.0 and torch.equal(first, again)
    key = cache.key(reference_clip, tiny_dir, "inverted", frames=FRAMES, height=64, width=64, steps=4,
                    scheduler="FlowMatchEulerDiscreteScheduler")  # fmt: skip
    inverted = torch.load(cache.path(key), weights_only=True)
    assert torch.allclose(inverted, invert_latents(pipe, reference, 4), atol=1e-5)
    # β = 1: generation starts from the inverted noise rescaled to the fresh noise's RMS (inversion_mix; here by
    # 0.98 / 0.88), so it lands near the reference but not as near as the raw round trip. Measured (MSE / the
    # reference's mean square, 4 steps): raw inverted 0.53, β = 1 0.75, β = 0.7 4.5, plain noise 16.8.
    plain = sample_from(pipe, initial_noise(pipe, FRAMES, 64, 64, torch.Generator().manual_seed(5)), 4)
    assert first.shape == (4, 3, 8, 8)
    assert float((first - reference[0]).pow(2).mean()) < 0.1 * float((plain - reference).pow(2).mean())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"num_frames": 8}, "num_frames: wan needs 4·k \\+ 1 frames"), ({"num_frames": 85}, "num_frames: .*less than or equal to 81"),
     ({"height": 72}, "height: wan needs a multiple of 16"), ({"width": 40}, "width: wan needs a multiple of 16")],
)  # fmt: skip
def test_family_request_rules(pipe, kwargs: dict, match: str) -> None:
    with pytest.raises(GenerationError, match=match):
        generate_frames(pipe, PROMPT, **{"num_frames": FRAMES, **kwargs})


def test_wans_reference_setting_is_a_valid_request_and_other_families_keep_their_cap() -> None:
    validate_request(81, 480, 832, 50, FAMILIES["WanPipeline"])  # Wan2.1-T2V-1.3B: 81 frames, 480×832, 50 steps
    with pytest.raises(GenerationError, match="num_frames: animatediff takes at most 64 frames"):
        validate_request(65, 64, 64, 4, FAMILIES["AnimateDiffPipeline"])


def test_ip_adapter_is_refused_for_wan(tiny_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(BackboneError, match="wan backbones do not support IP-Adapter"):
        load_backbone(tiny_dir, ip_adapter=tmp_path)


def test_api_cli_and_batch_record_family_prior_beta_and_cache(
    mkr_world: tuple[Settings, Path], tiny_dir: Path, tmp_path: Path
) -> None:
    settings, _ = mkr_world
    small = {"frames": 5, "height": 32, "width": 32, "steps": 2}
    first = generate_for(BOTTLE, LEAK, model=tiny_dir, seed=2, motion_prior="inversion", settings=settings, **small)
    parameters = first.parameters
    assert parameters["backbone_family"] == "wan"
    prior = parameters["motion_prior"]
    assert prior["method"] == "inversion" and prior["strength"] == 0.7 and prior["inversion_steps"] == 2
    assert prior["reference_cache"]["inverted"] == "miss"
    assert iio.imread(first.video_path, index=None).shape == (5, 32, 32, 3)

    cli = kdcvg_in(settings, "generate", "--product", BOTTLE, "--selling-point", LEAK, "--model", str(tiny_dir), "--seed", "2",
                   "--motion-prior", "inversion", "--frames", "5", "--size", "32", "--steps", "2", "--json")  # fmt: skip
    assert cli.exit_code == 0, cli.output
    payload = json.loads(cli.stdout)
    sidecar = json.loads(Path(payload["sidecar_path"]).read_text())
    assert sidecar["parameters"]["backbone_family"] == "wan"
    assert sidecar["parameters"]["motion_prior"]["reference_cache"] == {"inverted": "hit"}
    assert np.array_equal(iio.imread(first.video_path, index=None), iio.imread(payload["video_path"], index=None))
    with open_store(settings, read_only=True) as store:
        rows = store.query("MATCH (g:GeneratedVideo {id: $id}) RETURN g.parameters", {"id": payload["video_id"]}).rows
    recorded = json.loads(rows[0][0])
    assert recorded["backbone_family"] == "wan" and recorded["motion_prior"]["strength"] == 0.7

    requests = tmp_path / "requests.jsonl"
    lines = [{"product": BOTTLE, "selling_point": LEAK, "motion_prior": "inversion", "motion_strength": 0.6, "seed": 2},
             {"product": BOTTLE, "selling_point": LEAK, "motion_prior": "spectral"}]  # fmt: skip
    requests.write_text("".join(json.dumps(line) + "\n" for line in lines))
    batch = kdcvg_in(
        settings, "generate", "--batch", str(requests), "--model", str(tiny_dir), "--frames", "5", "--size", "32", "--steps", "2"
    )
    assert batch.exit_code == 0, batch.output
    results = [json.loads(line) for line in batch.stdout.splitlines()]
    assert [r["ok"] for r in results] == [True, True]
    sidecars = [json.loads(Path(r["sidecar_path"]).read_text())["parameters"] for r in results]
    assert [s["backbone_family"] for s in sidecars] == ["wan", "wan"]
    assert [s["motion_prior"]["method"] for s in sidecars] == ["inversion", "spectral"]
    assert sidecars[0]["motion_prior"]["strength"] == 0.6 and sidecars[0]["motion_prior"]["reference_cache"] == {
        "inverted": "hit"
    }

    before = generated_state(settings)
    requests.write_text(json.dumps({"product": BOTTLE, "selling_point": LEAK, "frames": 8, "size": 32}) + "\n")
    refused = kdcvg_in(settings, "generate", "--batch", str(requests), "--model", str(tiny_dir))
    assert refused.exit_code == 2 and f"{requests}:1:frames: wan needs 4·k + 1 frames" in refused.stderr
    assert generated_state(settings) == before
