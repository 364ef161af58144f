"""Load a local text-to-video diffusion backbone (diffusers layout), offline, with clear errors.

Why: MKR injects a motion prior into the *initial noise* of whatever backbone is configured, so the
rest of `generation` needs to know the backbone's family (which components it has, how its latents
are laid out) and must fail with one readable message when a checkpoint folder is incomplete,
never with a hub download attempt or a stack trace from deep inside `from_pretrained`.

A family is one `BackboneFamily` entry in `FAMILIES`, keyed by the `_class_name` of
`model_index.json`. Three are registered: AnimateDiff (SD1.5 UNet + motion adapter, per-frame image
VAE, (B, C, F, h, w) latents), CogVideoX (a video DiT with a causal 3-D VAE that compresses time
4x, (B, F, C, h, w) latents, T5 prompts of a fixed length) and Wan 2.1 (a flow-matching video DiT,
causal 3-D VAE compressing time 4x, (B, C, F, h, w) latents normalised per channel by the VAE's
latents_mean/std, UMT5 prompts); `generation.motion_prior`, `generation.inversion` and
`generation.pipeline` read the layout, compression, normalisation and size rules from the family entry,
and `generation.motion_lora` which of the denoiser's layers a motion LoRA adapts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import DiffusionPipeline

from generation.request import GenerationOptions, RequestError
from kdcvg.errors import BadInputError


class BackboneError(BadInputError):
    """The backbone folder cannot be loaded: missing, incomplete, or of an unknown family."""


@dataclass(frozen=True)
class BackboneFamily:
    """What generation needs to know about one pipeline family."""

    name: str
    pipeline_class: str  # `_class_name` in model_index.json
    components: tuple[str, ...]  # sub-folders that must exist
    latent_layout: str  # "BCFHW" (UNet video models) or "BFCHW" (video transformers)
    temporal_compression: int = 1  # frames per latent frame (1: per-frame image VAE); frames = k·this + 1
    size_multiple: int = 8  # height and width must be multiples (VAE factor × transformer patch size)
    cuda_dtype: torch.dtype = torch.float16  # half precision used on CUDA (bf16 where fp16 overflows, e.g. T5)
    prompt_length_key: str | None = None  # denoiser config key fixing the prompt's token count, if any
    ip_adapter: bool = False  # whether diffusers' IPAdapterMixin image conditioning applies
    # How VAE posteriors become denoiser latents: "scale" (× vae.config.scaling_factor) or "mean_std"
    # ((z − latents_mean) / latents_std per channel, from the VAE config: Wan).
    latent_normalisation: str = "scale"
    noise_dtype: torch.dtype | None = None  # dtype the pipeline draws its initial noise in (None: the text encoder's)
    max_frames: int = 64  # longest video generate_frames accepts for the family
    default_steps: int = 25  # the backbone's published sampling setting (steps, guidance scale)
    default_guidance: float = 7.5
    # Denoiser modules a motion LoRA adapts (regular expression, whole module name): the queries of the
    # attention that mixes frames (AnimateDiff: its temporal motion modules; DiTs: their full 3-D self-attention).
    motion_lora_layers: str = ""


FAMILIES: dict[str, BackboneFamily] = {
    "AnimateDiffPipeline": BackboneFamily(
        name="animatediff",
        pipeline_class="AnimateDiffPipeline",
        components=("unet", "motion_adapter", "vae", "text_encoder", "tokenizer", "scheduler"),
        latent_layout="BCFHW",
        ip_adapter=True,
        motion_lora_layers=r".*\.motion_modules\..*\.to_q",  # temporal attention only; spatial layers keep appearance
    ),
    "CogVideoXPipeline": BackboneFamily(
        name="cogvideox",
        pipeline_class="CogVideoXPipeline",
        components=("transformer", "vae", "text_encoder", "tokenizer", "scheduler"),
        latent_layout="BFCHW",
        temporal_compression=4,
        size_multiple=16,  # VAE 8x, patch 2
        cuda_dtype=torch.bfloat16,
        prompt_length_key="max_text_seq_length",
        default_steps=50,
        default_guidance=6.0,
        motion_lora_layers=r"transformer_blocks\.\d+\.attn1\.to_q",  # joint text + video 3-D self-attention
    ),
    "WanPipeline": BackboneFamily(
        name="wan",
        pipeline_class="WanPipeline",
        components=("transformer", "vae", "text_encoder", "tokenizer", "scheduler"),
        latent_layout="BCFHW",
        temporal_compression=4,
        size_multiple=16,  # VAE 8x, patch (1, 2, 2)
        cuda_dtype=torch.bfloat16,
        latent_normalisation="mean_std",
        noise_dtype=torch.float32,  # WanPipeline.prepare_latents draws float32 noise whatever the model dtype
        max_frames=81,  # Wan 2.1's reference length (about 5 s at 16 fps)
        default_steps=50,
        default_guidance=5.0,
        motion_lora_layers=r"blocks\.\d+\.attn1\.to_q",  # 3-D self-attention; attn2 is the cross-attention to the prompt
    ),
}


def detect_family(model_dir: str | Path) -> BackboneFamily:
    """Read `model_index.json` and return the registered family, checking its component folders."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise BackboneError(f"backbone folder {model_dir} does not exist or is not a directory")
    index_path = model_dir / "model_index.json"
    if not index_path.is_file():
        raise BackboneError(f"{model_dir}: no model_index.json (not a diffusers pipeline folder)")
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise BackboneError(f"{index_path}: unreadable model_index.json ({error})") from error
    class_name = index.get("_class_name")
    family = FAMILIES.get(class_name)
    if family is None:
        raise BackboneError(
            f"{model_dir}: unknown pipeline class {class_name!r}; supported: {', '.join(sorted(FAMILIES))}"
        )
    missing = [name for name in family.components if not (model_dir / name).is_dir()]
    if missing:
        raise BackboneError(
            f"{model_dir}: {family.pipeline_class} needs component folder(s) that are missing: "
            + ", ".join(missing)
        )
    return family


def load_backbone(
    model_dir: str | Path,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    cpu_offload: bool = False,
    ip_adapter: str | Path | None = None,
) -> DiffusionPipeline:
    """Load the pipeline offline (float32 on CPU; the family's fp16/bf16 + SDPA on CUDA), optionally offloaded.

    `ip_adapter` (a local IP-Adapter weights file or folder, see `generation.ip_adapter`) is loaded
    into families that support image conditioning; for others it is a BackboneError.
    """
    model_dir = Path(model_dir)
    family = detect_family(model_dir)
    device = torch.device(device)
    if dtype is None:
        dtype = family.cuda_dtype if device.type == "cuda" else torch.float32
    try:
        pipe = DiffusionPipeline.from_pretrained(model_dir, local_files_only=True, dtype=dtype)
    except (OSError, ValueError) as error:
        raise BackboneError(f"{model_dir}: cannot load {family.pipeline_class} ({error})") from error
    if type(pipe).__name__ != family.pipeline_class:
        raise BackboneError(f"{model_dir}: loaded {type(pipe).__name__}, expected {family.pipeline_class}")
    if ip_adapter is not None:
        if not family.ip_adapter:
            raise BackboneError(f"{model_dir}: {family.name} backbones do not support IP-Adapter image conditioning")
        from generation.ip_adapter import load_ip_adapter

        load_ip_adapter(pipe, ip_adapter)
    if device.type == "cuda":
        _use_sdpa(pipe)
    if cpu_offload:
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    pipe.kdcvg_family = family  # read by generation.pipeline / motion_prior
    return pipe


def _use_sdpa(pipe: DiffusionPipeline) -> None:
    """Make PyTorch scaled-dot-product attention explicit on a UNet (diffusers' default there).

    Only plain attention processors are replaced: IP-Adapter processors (already SDPA-based) keep
    their image branch, and video transformers keep their own processors (CogVideoX's
    `CogVideoXAttnProcessor2_0` is SDPA with rotary embeddings; a generic one would break it).
    """
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    unet = getattr(pipe, "unet", None)
    if unet is None or not hasattr(unet, "attn_processors"):
        return
    processors = {
        name: AttnProcessor2_0() if type(processor) in (AttnProcessor, AttnProcessor2_0) else processor
        for name, processor in unet.attn_processors.items()
    }
    unet.set_attn_processor(processors)


def backbone_family(pipe: DiffusionPipeline) -> BackboneFamily:
    """The family of a pipeline (set by `load_backbone`, else looked up from its class name)."""
    family = getattr(pipe, "kdcvg_family", None) or FAMILIES.get(type(pipe).__name__)
    if family is None:
        raise BackboneError(f"unsupported pipeline class {type(pipe).__name__}")
    return family


def check_request(request: GenerationOptions, family: BackboneFamily) -> None:
    """Raise RequestError naming frames, height or width when `family` cannot generate them (length, time compression, size multiple)."""
    problems: list[tuple[str, str]] = []
    compression = family.temporal_compression
    if request.frames > family.max_frames:
        problems.append(("frames", f"{family.name} takes at most {family.max_frames} frames, got {request.frames}"))
    elif (request.frames - 1) % compression:
        problems.append(
            ("frames", f"{family.name} needs {compression}·k + 1 frames (e.g. {compression + 1}, {2 * compression + 1}), got {request.frames}")
        )
    for name in ("height", "width"):
        value = getattr(request, name)
        if value % family.size_multiple:
            problems.append((name, f"{family.name} needs a multiple of {family.size_multiple}, got {value}"))
    if problems:
        raise RequestError(problems)
