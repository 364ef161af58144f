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

For flow-matching samplers (Wan 2.1: rectified flow, x_σ = (1 − σ)·x0 + σ·ε, the denoiser predicts
the velocity v = ε − x0) it is rectified-flow inversion: the flow ODE dx/dσ = v integrated
*upwards* from the reference latents at σ = 0 to noise at the schedule's first σ (1 for Wan), by
explicit Euler steps x_{σ'} = x_σ + (σ' − σ)·v(x_σ, σ) over the forward scheduler's own sigmas
reversed (its shift included; also for a multistep solver such as Wan's UniPC, whose flow sigmas
are read the same way). With FlowMatchEulerDiscreteScheduler, inversion and sampling are the same
integrator run both ways; their only mismatch is that each direction evaluates v at its own end of
a step, an error that shrinks with the step size (first order: measured in tests/test_generation_wan.py).
With a higher-order sampler (UniPC) the round trip is still only as accurate as the Euler inversion.

Both kinds run with an empty prompt and no classifier-free guidance (guidance_scale 1): the
inverted noise is then one tensor per clip, backbone, size and step count, so it can be cached and
reused for any prompt (`generation.reference_cache`), and guidance would extrapolate away from the
ODE being inverted (the inverse of a guided trajectory is not the guided trajectory), which makes
the round trip drift. `invert_latents` picks the kind from the pipeline's scheduler.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import DDIMInverseScheduler, DiffusionPipeline, FlowMatchEulerDiscreteScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin

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


def is_flow_matching(scheduler: SchedulerMixin) -> bool:
    """Whether the scheduler samples a flow-matching ODE (velocity over sigmas 1 -> 0) rather than a DDPM/DDIM one."""
    config = scheduler.config
    return (
        isinstance(scheduler, FlowMatchEulerDiscreteScheduler)
        or config.get("prediction_type") == "flow_prediction"
        or bool(config.get("use_flow_sigmas"))
    )


def flow_sigmas(scheduler: SchedulerMixin, steps: int) -> torch.Tensor:
    """The `steps + 1` sigmas (σ_max … terminal) a flow-matching scheduler samples with for `steps` steps."""
    fresh = type(scheduler).from_config(scheduler.config)  # the pipeline's own scheduler keeps its state
    fresh.set_timesteps(steps)
    sigmas = torch.as_tensor(fresh.sigmas, dtype=torch.float32).flatten()
    if len(sigmas) != steps + 1 or not bool((sigmas[:-1] >= sigmas[1:]).all()):
        raise MotionPriorError(
            f"{type(scheduler).__name__} gave {len(sigmas)} sigmas for {steps} steps, not a falling schedule of {steps + 1}"
        )
    return sigmas


class FlowMatchInverseScheduler(FlowMatchEulerDiscreteScheduler):
    """Euler steps of the flow ODE from the clean end upwards: a forward schedule's sigmas, reversed.

    `FlowMatchEulerDiscreteScheduler.step` computes x + (σ_next − σ)·v; with rising sigmas that is
    the inverse Euler step. `set_timesteps` ignores its step count: the sigmas are fixed at construction.
    """

    def __init__(self, num_train_timesteps: int = 1000, **kwargs: Any) -> None:
        super().__init__(num_train_timesteps=num_train_timesteps, **kwargs)
        self.rising_sigmas = torch.zeros(1)

    def set_timesteps(self, num_inference_steps: int | None = None, device: str | torch.device | None = None, **_: Any) -> None:
        """Install the rising sigmas; the model is called at σ·num_train_timesteps, as in sampling."""
        self.sigmas = self.rising_sigmas.to(device)
        self.timesteps = self.sigmas[:-1] * self.config.num_train_timesteps
        self.num_inference_steps = len(self.timesteps)
        self._step_index = None
        self._begin_index = None


def flow_inverse_scheduler(pipe: DiffusionPipeline, steps: int) -> FlowMatchInverseScheduler:
    """The rectified-flow inverse of the pipeline's flow-matching scheduler for a `steps`-step schedule."""
    scheduler = pipe.scheduler
    inverse = FlowMatchInverseScheduler(num_train_timesteps=scheduler.config.num_train_timesteps)
    inverse.rising_sigmas = flow_sigmas(scheduler, steps).flip(0)
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
    """Invert (1, ...) reference latents over a `steps`-step schedule; the noise at its first timestep.

    DDIM inversion for DDIM-family schedulers, rectified-flow inversion for flow-matching ones (see
    the module docstring); either way an empty prompt, no guidance. `call_kwargs` are the family's
    per-call pipeline arguments (`pipeline.family_call_kwargs`, plus image-adapter arguments for a
    pipeline loaded with one).
    """
    if steps < 1:
        raise MotionPriorError(f"inversion steps must be at least 1, got {steps}")
    if reference_latents.ndim != 5 or reference_latents.shape[0] != 1:
        raise MotionPriorError(f"reference latents must be one (1, ...) 5-D video, got {tuple(reference_latents.shape)}")
    frames, height, width = video_size_of(pipe, reference_latents)
    forward = pipe.scheduler
    denoiser = getattr(pipe, "transformer", None) or pipe.unet
    dtype = backbone_family(pipe).noise_dtype or denoiser.dtype  # Wan integrates in float32 whatever the model dtype
    start = reference_latents.to(device=pipe._execution_device, dtype=dtype)
    inverse = flow_inverse_scheduler(pipe, steps) if is_flow_matching(forward) else inverse_scheduler(pipe)
    pipe.scheduler = inverse
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
