"""Invert a reference clip's latents along the sampler's own ODE, to start generation from its noise.

Why: the paper's motion prior (b) starts sampling from the reference clip *inverted* into noise,
mixed with fresh noise by a reference intensity β ∈ [0.6, 0.8]. Unlike a low-pass mix
(`motion_prior.spectral_mix`), inverted noise is the noise from which *this* backbone's sampler
would draw the reference back, so it carries the reference's layout and motion in the form the
denoiser reads, at every frequency.

For DDIM-family samplers (AnimateDiff's DDIM, CogVideoX's DDIM with v-prediction and zero terminal
SNR) this is DDIM inversion (Song et al. 2021; diffusers' `DDIMInverseScheduler`): the same
timesteps run backwards, x_{t+1} = √ᾱ_{t+1}·x̂0 + √(1−ᾱ_{t+1})·ε̂, with the pipeline's own
ᾱ schedule (CogVideoX shifts its SNR, so the forward scheduler's `alphas_cumprod` are copied over).
The inversion runs the pipeline itself with the inverse scheduler swapped in, an empty prompt and
no classifier-free guidance, so every family's conditioning (text length, rotary embeddings,
image tokens) is exactly as in generation. The result has the pipeline's latent layout and ends
at the forward schedule's first timestep for the same number of steps.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import DDIMInverseScheduler, DiffusionPipeline

from generation.backbones import backbone_family
from generation.motion_prior import MotionPriorError


def inverse_scheduler(pipe: DiffusionPipeline) -> DDIMInverseScheduler:
    """The DDIM inverse of the pipeline's scheduler (same timesteps and ᾱ, clean start at ᾱ = 1)."""
    scheduler = pipe.scheduler
    if getattr(scheduler, "alphas_cumprod", None) is None:
        raise MotionPriorError(
            f"inversion needs a DDIM-family scheduler with alphas_cumprod; {type(scheduler).__name__} has none"
        )
    inverse = DDIMInverseScheduler.from_config(
        {key: value for key, value in scheduler.config.items() if key != "set_alpha_to_one"}, set_alpha_to_one=True
    )
    inverse.alphas_cumprod = scheduler.alphas_cumprod.clone()
    return inverse


def video_size_of(pipe: DiffusionPipeline, latents: torch.Tensor) -> tuple[int, int, int]:
    """(frames, height, width) of the video whose latents have this shape, for the pipeline's family."""
    family = backbone_family(pipe)
    spatial = getattr(pipe, "vae_scale_factor_spatial", None) or pipe.vae_scale_factor
    latent_frames = latents.shape[2] if family.latent_layout == "BCFHW" else latents.shape[1]
    frames = (latent_frames - 1) * family.temporal_compression + 1
    return frames, latents.shape[-2] * spatial, latents.shape[-1] * spatial


@torch.no_grad()
def invert_latents(
    pipe: DiffusionPipeline, reference_latents: torch.Tensor, steps: int, **call_kwargs: Any
) -> torch.Tensor:
    """DDIM-invert (1, ...) reference latents over a `steps`-step schedule; the noise at its first timestep.

    `call_kwargs` are the family's per-call pipeline arguments (`pipeline.family_call_kwargs`,
    plus image-adapter arguments for a pipeline loaded with one).
    """
    if steps < 1:
        raise MotionPriorError(f"inversion steps must be at least 1, got {steps}")
    if reference_latents.ndim != 5 or reference_latents.shape[0] != 1:
        raise MotionPriorError(f"reference latents must be one (1, ...) 5-D video, got {tuple(reference_latents.shape)}")
    frames, height, width = video_size_of(pipe, reference_latents)
    forward = pipe.scheduler
    denoiser = getattr(pipe, "transformer", None) or pipe.unet
    start = reference_latents.to(device=pipe._execution_device, dtype=denoiser.dtype)
    pipe.scheduler = inverse_scheduler(pipe)
    try:
        result = pipe(
            prompt="", num_frames=frames, height=height, width=width, num_inference_steps=steps,
            guidance_scale=1.0, latents=start, output_type="latent", **call_kwargs,
        )  # fmt: skip
    finally:
        pipe.scheduler = forward
    inverted = result.frames
    if inverted.shape != reference_latents.shape:
        raise MotionPriorError(f"inversion gave {tuple(inverted.shape)}, expected {tuple(reference_latents.shape)}")
    if not torch.isfinite(inverted).all():
        raise MotionPriorError("inversion diverged (non-finite latents); try more steps or the spectral prior")
    return inverted
