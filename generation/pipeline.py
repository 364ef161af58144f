"""Generate a video with a loaded backbone, optionally steered by a reference clip's motion (MKR).

Why: this is the training-free MKR motion prior end to end. The plain initial noise is drawn
exactly as the diffusers pipeline would draw it (same shape, same seeded generator), the encoded
reference is mixed in (`generation.motion_prior`), and the result is handed to the pipeline as
`latents=`. With `motion_strength=0` nothing is mixed, so the output is bit-for-bit the plain
pipeline's output for the same seed.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import numpy as np
import torch
from diffusers import DiffusionPipeline
from diffusers.utils.torch_utils import randn_tensor

from generation.backbones import BackboneFamily, backbone_family, check_request
from generation.inversion import flow_sigmas, invert_latents, is_flow_matching
from generation.ip_adapter import ip_adapter_call_kwargs
from generation.motion_prior import encode_reference, inversion_mix, noise_prior, spectral_mix
from generation.reference_cache import ReferenceCache
from generation.reference_video import read_reference
from generation.request import DEFAULT_STRENGTH, METHODS, GenerationError, GenerationOptions, RequestError

# Below this ᾱ at the first timestep, the forward-noised reference of `noise_prior` is pure noise.
MIN_NOISE_PRIOR_ALPHA = 1e-6


def validate_request(
    num_frames: int, height: int, width: int, steps: int, family: BackboneFamily | None = None
) -> None:
    """Check frames, size and steps against `GenerationOptions`' limits and, with a `family`, its own rules.

    The family's rules (`generation.backbones.check_request`): k·t + 1 frames for a VAE compressing
    time t-fold, sizes that are multiples of its `size_multiple` (CogVideoX: 16 = VAE 8x · patch 2).
    Errors name this function's parameters (`num_frames`, not the request's `frames`).
    """
    names = {"frames": "num_frames"}
    try:
        options = GenerationOptions.parse({"frames": num_frames, "height": height, "width": width, "steps": steps})
        if family is not None:
            check_request(options, family)
    except RequestError as error:
        raise error.renamed(names) from None


def initial_noise(
    pipe: DiffusionPipeline, num_frames: int, height: int, width: int, generator: torch.Generator
) -> torch.Tensor:
    """The plain initial noise, drawn with the same shape, device, dtype and generator as the pipeline.

    Video-transformer pipelines (CogVideoX `prepare_latents`) draw (1, (F − 1) // t + 1, C, h, w)
    for a VAE compressing time t-fold; UNet pipelines draw (1, C, F, h, w).
    """
    family = backbone_family(pipe)
    channels = pipe.unet.config.in_channels if hasattr(pipe, "unet") else pipe.transformer.config.in_channels
    spatial = getattr(pipe, "vae_scale_factor_spatial", None) or pipe.vae_scale_factor
    h, w = height // spatial, width // spatial
    latent_frames = (num_frames - 1) // family.temporal_compression + 1
    if family.latent_layout == "BCFHW":
        shape = (1, channels, latent_frames, h, w)
    else:
        shape = (1, latent_frames, channels, h, w)
    dtype = pipe.text_encoder.dtype if getattr(pipe, "text_encoder", None) is not None else pipe.vae.dtype
    dtype = family.noise_dtype or dtype
    return randn_tensor(shape, generator=generator, device=pipe._execution_device, dtype=dtype)


def first_timestep_alpha(pipe: DiffusionPipeline, steps: int) -> float:
    """ᾱ at the first denoising timestep of a `steps`-step schedule (for the noise-prior variant).

    Flow matching (x_σ = (1 − σ)·x0 + σ·ε) has no ᾱ; its equivalent at the same signal-to-noise
    ratio is (1 − σ)² / ((1 − σ)² + σ²), 0 at σ = 1 where Wan's schedule starts.
    """
    scheduler = pipe.scheduler
    if is_flow_matching(scheduler):
        sigma = float(flow_sigmas(scheduler, steps)[0])
        return (1.0 - sigma) ** 2 / ((1.0 - sigma) ** 2 + sigma**2)
    scheduler.set_timesteps(steps)
    first = int(scheduler.timesteps[0])
    return float(scheduler.alphas_cumprod[first])


def resolve_strength(method: str, strength: float | None) -> float:
    """The motion strength to use: `strength` checked to be in [0, 1], or the method's default when None."""
    if method not in METHODS:
        raise GenerationError(f"unknown motion-prior method {method!r}; known: {', '.join(METHODS)}")
    value = DEFAULT_STRENGTH[method] if strength is None else float(strength)
    if not 0.0 <= value <= 1.0:
        raise GenerationError(f"motion_strength must be in [0, 1], got {strength}")
    return value


def family_call_kwargs(pipe: DiffusionPipeline) -> dict[str, Any]:
    """Pipeline arguments a family needs on every call (CogVideoX: prompt length = the DiT's text positions)."""
    family = backbone_family(pipe)
    if family.prompt_length_key is None:
        return {}
    denoiser = getattr(pipe, "transformer", None) or pipe.unet
    return {"max_sequence_length": int(denoiser.config[family.prompt_length_key])}


@torch.no_grad()
def generate_frames(
    pipe: DiffusionPipeline,
    prompt: str,
    negative_prompt: str | None = None,
    *,
    reference_video: str | Path | None = None,
    reference_latents: torch.Tensor | None = None,
    motion_strength: float = 0.0,
    method: str = "spectral",
    cutoff: float = 0.25,
    num_frames: int = 8,
    height: int = 64,
    width: int = 64,
    steps: int = 4,
    guidance_scale: float = 7.5,
    seed: int = 0,
    output_type: str = "np",
    ip_adapter_image: Any | None = None,
    ip_adapter_scale: float = 0.5,
    cache: ReferenceCache | None = None,
    model_dir: str | Path | None = None,
) -> tuple[np.ndarray | torch.Tensor, dict[str, Any]]:
    """Generate (F, H, W, 3) uint8 frames (or raw latents with output_type="latent") and timings.

    `reference_latents` (from `encode_reference`) may be passed instead of `reference_video` to
    reuse one encoding across calls, which keeps the motion prior's overhead small. With a `cache`
    and the backbone's `model_dir`, a `reference_video`'s latents (and, for method "inversion",
    its inverted noise) are read from / stored in the cache; `info["reference_cache"]` says which.
    `ip_adapter_image` (a PIL image or HWC uint8 array, e.g. the reference clip's middle keyframe)
    conditions a pipeline loaded with an IP-Adapter at `ip_adapter_scale`; None: text only.
    """
    family = backbone_family(pipe)
    validate_request(num_frames, height, width, steps, family)
    motion_strength = resolve_strength(method, motion_strength)
    if motion_strength > 0 and reference_video is None and reference_latents is None:
        raise GenerationError("motion_strength > 0 needs a reference_video or reference_latents")
    if cache is not None and model_dir is None:
        raise GenerationError("a reference cache needs the backbone's model_dir (part of the cache key)")
    alpha = first_timestep_alpha(pipe, steps) if motion_strength > 0 and method == "noise_prior" else None
    if alpha is not None and alpha < MIN_NOISE_PRIOR_ALPHA:
        raise GenerationError(
            f"method 'noise_prior' carries no reference signal with this scheduler: ᾱ at the first timestep is {alpha:.2g} "
            "(zero terminal SNR, as in CogVideoX, or a flow-matching schedule starting at σ = 1, as in Wan); "
            "use method='spectral' or 'inversion'"
        )
    image_kwargs = ip_adapter_call_kwargs(pipe, ip_adapter_image, ip_adapter_scale)
    info: dict[str, Any] = {"family": family.name, "method": method, "motion_strength": float(motion_strength)}
    info["ip_adapter_scale"] = float(ip_adapter_scale) if ip_adapter_image is not None else None
    info["reference_cache"] = None
    started = time.perf_counter()

    generator = torch.Generator(device="cpu").manual_seed(seed)
    latents = initial_noise(pipe, num_frames, height, width, generator)

    info["reference_encode_s"] = 0.0
    if motion_strength > 0:
        reference = ReferenceSource(pipe, reference_video, reference_latents, num_frames, height, width, cache, model_dir)
        t0 = time.perf_counter()
        if method == "inversion":
            inverted = reference.inverted(steps, ip_adapter_call_kwargs(pipe, None, 0.0))
            info["inversion_s"] = reference.inversion_s
            latents = inversion_mix(latents, inverted, motion_strength)
        else:
            ref = reference.latents()
            if method == "spectral":
                latents = spectral_mix(latents, ref, motion_strength, cutoff, layout=family.latent_layout)
            else:
                latents = noise_prior(latents, ref, motion_strength, alpha, generator=generator)
        info["reference_encode_s"] = reference.encode_s
        info["reference_cache"] = reference.cache_states or None
        info["mix_s"] = time.perf_counter() - t0 - reference.encode_s - reference.inversion_s

    t0 = time.perf_counter()
    result = pipe(
        prompt=prompt,
        negative_prompt=negative_prompt,
        num_frames=num_frames,
        height=height,
        width=width,
        num_inference_steps=steps,
        guidance_scale=guidance_scale,
        generator=generator,
        latents=latents,
        output_type="latent" if output_type == "latent" else "np",
        **family_call_kwargs(pipe),
        **image_kwargs,
    )
    info["pipeline_s"] = time.perf_counter() - t0
    info["total_s"] = time.perf_counter() - started
    video = result.frames[0]
    if output_type == "latent":
        return video, info
    return to_uint8(video), info


class ReferenceSource:
    """A reference clip's latents and inverted noise, computed at most once and through the cache when one is given."""

    def __init__(
        self, pipe: DiffusionPipeline, video: str | Path | None, latents: torch.Tensor | None, num_frames: int,
        height: int, width: int, cache: ReferenceCache | None, model_dir: str | Path | None,
    ) -> None:  # fmt: skip
        self.pipe, self.video, self._latents = pipe, video, latents
        self.size = {"frames": num_frames, "height": height, "width": width}
        self.cache = cache if video is not None and latents is None else None
        self.model_dir = model_dir
        self.cache_states: dict[str, str] = {}  # kind -> "hit" | "miss"
        self.encode_s = 0.0
        self.inversion_s = 0.0

    def _cached(self, kind: str, compute: Callable[[], torch.Tensor], **parameters: Any) -> torch.Tensor:
        """`compute()`, or its cached value for this clip, backbone, kind and parameters."""
        if self.cache is None:
            return compute()
        key = self.cache.key(Path(self.video), Path(self.model_dir), kind, **self.size, **parameters)
        value, hit = self.cache.load_or_compute(key, compute)
        self.cache_states[kind] = "hit" if hit else "miss"
        return value

    def latents(self) -> torch.Tensor:
        """The reference encoded by the pipeline's VAE, in its latent layout."""
        if self._latents is None:
            self._latents = self._cached("latents", self._encode)
        return self._latents

    def _encode(self) -> torch.Tensor:
        t0 = time.perf_counter()
        frames = read_reference(self.video, self.size["frames"], self.size["height"], self.size["width"])
        encoded = encode_reference(self.pipe, frames)
        self.encode_s += time.perf_counter() - t0
        return encoded

    def inverted(self, steps: int, call_kwargs: dict[str, Any]) -> torch.Tensor:
        """The reference latents inverted over a `steps`-step schedule (the sampler's own ODE: DDIM or rectified flow)."""

        def compute() -> torch.Tensor:
            latents = self.latents()
            t0 = time.perf_counter()
            inverted = invert_latents(self.pipe, latents, steps, **family_call_kwargs(self.pipe), **call_kwargs)
            self.inversion_s += time.perf_counter() - t0
            return inverted

        return self._cached("inverted", compute, steps=steps, scheduler=type(self.pipe.scheduler).__name__)


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """Float frames in [0, 1] -> uint8, rounded."""
    return (np.clip(np.asarray(frames, dtype=np.float32), 0.0, 1.0) * 255.0).round().astype(np.uint8)


def write_mp4(frames: np.ndarray, path: str | Path, fps: float = 8.0) -> Path:
    """Encode (F, H, W, 3) uint8 frames as H.264 yuv420p MP4 with imageio-ffmpeg's ffmpeg."""
    path = Path(path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise GenerationError(f"frames must be a non-empty (F, H, W, 3) uint8 array, got {frames.shape} {frames.dtype}")
    height, width = frames.shape[1:3]
    if height % 2 or width % 2:
        raise GenerationError(f"yuv420p needs even sizes, got {width}x{height}")
    path.parent.mkdir(parents=True, exist_ok=True)
    command = [
        imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(fps), "-i", "pipe:0",
        "-an", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-movflags", "+faststart", "-f", "mp4", str(path),
    ]
    result = subprocess.run(command, input=np.ascontiguousarray(frames).tobytes(), capture_output=True, check=False)
    if result.returncode != 0:
        raise GenerationError(f"{path}: ffmpeg failed: {result.stderr.decode(errors='replace')}")
    return path
