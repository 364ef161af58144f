"""MKR motion prior, training-free: a retrieved reference clip injected into the initial noise.

Why: the paper's motion prior (b) mixes the reference clip's latents into the initial noise so the
generated video inherits the reference's *coarse* motion (layout and its drift over time live in
the low spatio-temporal frequencies), while the high frequencies stay fresh noise for the
prompt to shape. Three variants:

- `spectral_mix` follows FreeInit (Wu et al. 2023, "FreeInit: Bridging Initialization Gap in Video
  Diffusion Models"): 3-D FFT over (frames, height, width), low frequencies from the reference,
  high frequencies from the noise. The axes follow the family's latent layout: (2, 3, 4) for
  (B, C, F, h, w) latents (AnimateDiff's UNet, Wan's DiT), (1, 3, 4) for (B, F, C, h, w) latents
  (CogVideoX); with a 3-D VAE the frame axis counts *latent* frames (one per 4 video frames).
- `noise_prior` follows the "noise prior" of MotionDirector (Zhao et al. 2023): latents =
  √β·z_ref_noised + √(1−β)·ε, with z_ref forward-noised to the first timestep. Its reference
  weight is √β·√ᾱ: small for SD's schedule at 25+ steps (ᾱ ≈ 0.002) and exactly 0 for
  zero-terminal-SNR schedules (CogVideoX), where `generation.pipeline` refuses it.
- `inversion_mix` is the paper's: the reference inverted along the sampler's ODE
  (`generation.inversion`), mixed with fresh noise by the reference intensity β.

Flow: `generation.reference_video.read_reference` (mp4 -> (F, 3, H, W) in [-1, 1]) -> `encode_reference` (pipeline VAE ->
latents in the pipeline's layout; cached per clip and backbone by `generation.reference_cache`) -> a mixer.
"""

from __future__ import annotations

import numpy as np
import torch
from diffusers import DiffusionPipeline
from diffusers.utils.torch_utils import randn_tensor

from generation.backbones import backbone_family
from kdcvg.errors import BadInputError


class MotionPriorError(BadInputError):
    """The reference latents cannot be used: shapes that do not match, or strength out of range."""


@torch.no_grad()
def encode_reference(pipe: DiffusionPipeline, frames: torch.Tensor, chunk: int = 8) -> torch.Tensor:
    """Encode (F, 3, H, W) frames with the pipeline's VAE (posterior mean, normalised as the family's denoiser expects).

    Per-frame image VAEs (AnimateDiff) encode `chunk` frames at a time -> (1, C, F, h, w). Video VAEs
    with temporal compression t (CogVideoX, Wan: causal 3-D VAEs, t = 4) take the clip as one
    (1, 3, F, H, W) video with F = k·t + 1 and give k + 1 latent frames, put in the family's layout
    ((1, k + 1, C, h, w) for CogVideoX, (1, C, k + 1, h, w) for Wan): exactly the shape of the
    pipeline's initial noise for F frames (as in diffusers' video-to-video encodings of both).
    """
    family = backbone_family(pipe)
    if frames.ndim != 4 or frames.shape[1] != 3:
        raise MotionPriorError(f"reference frames must be (F, 3, H, W), got {tuple(frames.shape)}")
    compression = family.temporal_compression
    if compression > 1 and (frames.shape[0] - 1) % compression:
        raise MotionPriorError(
            f"{family.name}: the VAE compresses time {compression}x, so the reference needs "
            f"{compression}·k + 1 frames, got {frames.shape[0]}"
        )
    vae = pipe.vae
    device = getattr(pipe, "_execution_device", None) or vae.device
    if compression > 1:
        video = frames.permute(1, 0, 2, 3).unsqueeze(0).to(device=device, dtype=vae.dtype)  # (1, 3, F, H, W)
        latents = normalise_latents(pipe, vae.encode(video).latent_dist.mean)  # (1, C, f, h, w)
        return latents if family.latent_layout == "BCFHW" else latents.permute(0, 2, 1, 3, 4)  # (1, f, C, h, w)
    parts = []
    for start in range(0, frames.shape[0], chunk):
        batch = frames[start : start + chunk].to(device=device, dtype=vae.dtype)
        parts.append(vae.encode(batch).latent_dist.mean)
    latents = normalise_latents(pipe, torch.cat(parts), channel_dim=1)  # (F, C, h, w)
    if family.latent_layout == "BCFHW":
        return latents.permute(1, 0, 2, 3).unsqueeze(0)  # (1, C, F, h, w)
    return latents.unsqueeze(0)  # (1, F, C, h, w)


def normalise_latents(pipe: DiffusionPipeline, latents: torch.Tensor, channel_dim: int = 1) -> torch.Tensor:
    """VAE posterior means -> denoiser latents: × scaling_factor, or (z − latents_mean) / latents_std per channel (Wan)."""
    family = backbone_family(pipe)
    config = pipe.vae.config
    if family.latent_normalisation == "scale":
        return latents * config.scaling_factor
    if family.latent_normalisation != "mean_std":
        raise MotionPriorError(f"{family.name}: unknown latent normalisation {family.latent_normalisation!r}")
    view = [1] * latents.ndim
    view[channel_dim] = latents.shape[channel_dim]
    mean = torch.tensor(config.latents_mean, device=latents.device, dtype=latents.dtype).view(view)
    std = torch.tensor(config.latents_std, device=latents.device, dtype=latents.dtype).view(view)
    return (latents - mean) / std


def _check(noise: torch.Tensor, reference_latents: torch.Tensor, strength: float) -> None:
    """Validate strength and that the reference broadcasts onto the noise."""
    if not 0.0 <= float(strength) <= 1.0:
        raise MotionPriorError(f"motion strength must be in [0, 1], got {strength}")
    if reference_latents.shape[1:] != noise.shape[1:] or reference_latents.shape[0] not in (1, noise.shape[0]):
        raise MotionPriorError(
            f"reference latents {tuple(reference_latents.shape)} do not match noise {tuple(noise.shape)}"
        )


def low_pass_mask(shape: tuple[int, int, int], cutoff: float = 0.25, kind: str = "gaussian") -> torch.Tensor:
    """FreeInit's 3-D low-pass filter over (F, h, w) in unshifted FFT order; frequencies normalised to [-1, 1)."""
    axes = [2.0 * torch.fft.fftfreq(n, dtype=torch.float64) for n in shape]
    grid = torch.meshgrid(*axes, indexing="ij")
    distance_sq = sum(g**2 for g in grid)
    if kind == "gaussian":
        return torch.exp(-distance_sq / (2.0 * cutoff**2))
    if kind == "box":
        return (distance_sq <= cutoff**2).to(torch.float64)
    raise MotionPriorError(f"unknown low-pass kind {kind!r} (gaussian or box)")


def _frame_axes(layout: str) -> tuple[int, int, int]:
    """Dims of (F, h, w) for a latent layout."""
    return (2, 3, 4) if layout == "BCFHW" else (1, 3, 4)


def spectral_mix(
    noise: torch.Tensor,
    reference_latents: torch.Tensor,
    strength: float,
    cutoff: float = 0.25,
    *,
    kind: str = "gaussian",
    layout: str = "BCFHW",
) -> torch.Tensor:
    """FreeInit-style (Wu et al. 2023) mix: reference low frequencies + noise high frequencies, unit variance.

    The reference is first scaled to unit RMS, so the mix does not depend on the VAE's latent scale;
    `strength` scales the low-pass mask (0: `noise` itself is returned, bit for bit; 1: inside the
    pass band the spectrum is the reference's); the result is rescaled to the noise's standard
    deviation (one global factor) so the scheduler still sees unit-variance initial latents.
    """
    _check(noise, reference_latents, strength)
    if strength == 0:
        return noise
    dims = _frame_axes(layout)
    work = torch.float64
    ref = reference_latents.to(device=noise.device, dtype=work)
    ref = ref / ref.pow(2).mean().sqrt().clamp_min(1e-12)
    mask_shape = tuple(noise.shape[d] for d in dims)
    mask = strength * low_pass_mask(mask_shape, cutoff, kind).to(noise.device)
    view = [1] * noise.ndim
    for d, n in zip(dims, mask_shape):
        view[d] = n
    mask = mask.reshape(view)
    noise_freq = torch.fft.fftn(noise.to(work), dim=dims)
    ref_freq = torch.fft.fftn(ref.expand_as(noise), dim=dims)
    mixed = torch.fft.ifftn(noise_freq * (1.0 - mask) + ref_freq * mask, dim=dims).real
    mixed = mixed * (noise.to(work).std() / mixed.std().clamp_min(1e-12))
    return mixed.to(noise.dtype)


def noise_prior(
    noise: torch.Tensor,
    reference_latents: torch.Tensor,
    strength: float,
    timestep_alpha: float,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """MotionDirector "noise prior" (Zhao et al. 2023): √β·z_ref_noised + √(1−β)·ε, β = `strength`.

    z_ref_noised = √ᾱ·z_ref + √(1−ᾱ)·ε' is the (unit-RMS) reference forward-noised to the first
    timestep (ᾱ = `timestep_alpha`, the scheduler's alphas_cumprod there), with ε' drawn from
    `generator`; ε is `noise`. Both terms have unit variance, so the result does too.
    """
    _check(noise, reference_latents, strength)
    if not 0.0 <= float(timestep_alpha) <= 1.0:
        raise MotionPriorError(f"timestep_alpha must be in [0, 1], got {timestep_alpha}")
    if strength == 0:
        return noise
    ref = reference_latents.to(device=noise.device, dtype=noise.dtype).expand_as(noise)
    ref = ref / ref.pow(2).mean().sqrt().clamp_min(1e-12)
    fresh = randn_tensor(noise.shape, generator=generator, device=noise.device, dtype=noise.dtype)
    alpha = float(timestep_alpha)
    z_ref_noised = alpha**0.5 * ref + (1.0 - alpha) ** 0.5 * fresh
    return strength**0.5 * z_ref_noised + (1.0 - strength) ** 0.5 * noise


def inversion_mix(noise: torch.Tensor, inverted: torch.Tensor, strength: float) -> torch.Tensor:
    """The paper's inversion prior: √β·z_inv + √(1−β)·ε with β = `strength` (0: `noise` itself, bit for bit).

    z_inv (from `generation.inversion.invert_latents`) is first scaled by one global factor to the
    noise's RMS, so the mix keeps the unit variance the scheduler expects even when an imperfect
    inversion drifts in scale; for a well-trained backbone the factor is close to 1.
    """
    _check(noise, inverted, strength)
    if strength == 0:
        return noise
    work = torch.float64
    z_inv = inverted.to(device=noise.device, dtype=work).expand_as(noise)
    eps = noise.to(work)
    z_inv = z_inv * (eps.pow(2).mean().sqrt() / z_inv.pow(2).mean().sqrt().clamp_min(1e-12))
    return (strength**0.5 * z_inv + (1.0 - strength) ** 0.5 * eps).to(noise.dtype)
