"""Motion LoRA: low-rank adapters on the frame-mixing attention queries, trained on one reference clip.

Why: the paper's motion prior (a) adapts the backbone to the reference's motion: a LoRA on the
queries of the temporal attention layers, trained ~400 steps on the one clip with a
frame-difference ("motion distillation", VMC: Jeong et al. 2023) loss — the prediction's
differences between consecutive frames must match the target's, so what is learnt is how the clip
*moves*, not what it looks like.

Which layers, per family (`BackboneFamily.motion_lora_layers`): AnimateDiff has separate temporal
attention (its `motion_modules`), so only those queries are adapted and appearance stays the
spatial layers'. CogVideoX and Wan have none: their self-attention is full 3-D (space-time)
attention, where motion lives in the same layer as appearance, so the queries of every block's
self-attention are adapted (CogVideoX `transformer_blocks.N.attn1`, the joint text + video
attention; Wan `blocks.N.attn1`, not its prompt cross-attention `attn2`). There the frame-difference
loss is what makes the adapter learn motion rather than the clip's look: a constant offset in
appearance has no frame differences and costs nothing. The rest of training follows the family and
its scheduler (`DenoisingObjective`, the one place that reads them): the frame axis from the latent
layout, the target from the scheduler (ε or v for DDPM/DDIM schedules, AnimateDiff and CogVideoX;
for flow matching, Wan, x_σ = (1 − σ)·x0 + σ·ε with σ from the sampler's own shifted grid, target
velocity ε − x0, timestep σ·1000, as `FlowMatchEulerDiscreteScheduler` and `WanPipeline` use it), the
conditioning the pipeline's own `encode_prompt` gives the empty prompt (at the prompt length
generation uses), and CogVideoX's rotary embeddings from its own pipeline when its DiT uses them.

The adapters are plain `LoRALinear` wrappers (no extra dependency; docs/decisions.md says why not
peft): y = W·x + s·(α/r)·B·A·x with B initialised to 0, so a fresh adapter, or scale 0, is exactly
the base layer. A trained LoRA is knowledge about a clip, so it lives in the graph: its safetensors
weights go under `<data>/media/motion-lora/` (exported and imported with the ACKB like videos) and a
`MotionLora` node (how it was trained, content hashes of the file, the clip and the backbone) is
TRAINED_ON the clip. `use_motion_lora(pipe, lora, scale)` applies it for one generation; weights
whose layers are not this backbone's (another family, another size) are refused with a clear error.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import DiffusionPipeline
from safetensors.torch import load_file, save_file

from generation.backbones import backbone_family
from generation.inversion import flow_sigmas, is_flow_matching, video_size_of
from generation.pipeline import family_call_kwargs
from generation.reference_cache import folder_content_hash
from kb.interchange import sha256_file
from kb.store import GraphStore
from kb.timestamps import utc_now
from kdcvg.errors import BadInputError

LORA_SUBDIR = "motion-lora"  # below the data directory's media/ folder
LOSS_NAME = "motion distillation (consecutive-frame differences)"


class MotionLoraError(BadInputError):
    """A motion LoRA cannot be trained or loaded: unsupported family, bad options, or a file that does not fit."""


class LoRALinear(torch.nn.Module):
    """A frozen linear layer plus a trainable low-rank update, y = W·x + scale·(alpha/rank)·B·A·x."""

    def __init__(self, base: torch.nn.Linear, rank: int, alpha: float) -> None:
        super().__init__()
        self.base = base
        self.rank, self.alpha, self.scale = rank, alpha, 1.0
        self.lora_a = torch.nn.Parameter(torch.empty(rank, base.in_features, device=base.weight.device, dtype=base.weight.dtype))
        self.lora_b = torch.nn.Parameter(torch.zeros(base.out_features, rank, device=base.weight.device, dtype=base.weight.dtype))
        torch.nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        if self.scale == 0:
            return out
        return out + (self.scale * self.alpha / self.rank) * ((x @ self.lora_a.T) @ self.lora_b.T)


@dataclass(frozen=True)
class MotionLoraConfig:
    """How a motion LoRA is trained (recorded in its card and its key)."""

    steps: int = 400
    rank: int = 4
    alpha: float = 4.0
    learning_rate: float = 1e-4
    seed: int = 0

    def check(self) -> None:
        """MotionLoraError for out-of-range options."""
        if self.steps < 1 or self.rank < 1 or self.alpha <= 0 or self.learning_rate <= 0:
            raise MotionLoraError(f"motion LoRA needs steps >= 1, rank >= 1, alpha > 0, learning_rate > 0; got {self}")


def denoiser_of(pipe: DiffusionPipeline) -> torch.nn.Module:
    """The pipeline's denoiser (UNet or DiT); MotionLoraError for a family with no motion-LoRA layers registered."""
    family = backbone_family(pipe)
    if not family.motion_lora_layers:
        raise MotionLoraError(f"{family.name} backbones have no attention layers registered for a motion LoRA")
    return getattr(pipe, "transformer", None) or pipe.unet


def adapted_layer_names(pipe: DiffusionPipeline) -> list[str]:
    """Names of the denoiser's linear layers a motion LoRA adapts (the family's `motion_lora_layers`)."""
    denoiser = denoiser_of(pipe)
    pattern = re.compile(backbone_family(pipe).motion_lora_layers)
    names = [name for name, module in denoiser.named_modules() if pattern.fullmatch(name) and isinstance(module, torch.nn.Linear)]
    if not names:
        raise MotionLoraError(f"this {backbone_family(pipe).name} backbone has no layer matching {pattern.pattern!r} to adapt")
    return names


def frame_axis_of(pipe: DiffusionPipeline) -> int:
    """The frame axis of the family's latents: 2 for (B, C, F, h, w) (AnimateDiff, Wan), 1 for (B, F, C, h, w) (CogVideoX)."""
    return 2 if backbone_family(pipe).latent_layout == "BCFHW" else 1


def _set(root: torch.nn.Module, name: str, module: torch.nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, child, module)


@contextmanager
def attached(pipe: DiffusionPipeline, rank: int, alpha: float) -> Iterator[dict[str, LoRALinear]]:
    """Wrap every adapted query projection in a LoRALinear for the block; the original layers come back after."""
    denoiser = denoiser_of(pipe)
    adapters = {name: LoRALinear(denoiser.get_submodule(name), rank, alpha) for name in adapted_layer_names(pipe)}
    for name, adapter in adapters.items():
        _set(denoiser, name, adapter)
    try:
        yield adapters
    finally:
        for name, adapter in adapters.items():
            _set(denoiser, name, adapter.base)


def lora_tensors(adapters: dict[str, LoRALinear]) -> dict[str, torch.Tensor]:
    """The adapters' weights by `<layer>.lora_a` / `<layer>.lora_b`, on CPU, float32."""
    tensors = {}
    for name, adapter in adapters.items():
        tensors[f"{name}.lora_a"] = adapter.lora_a.detach().to("cpu", torch.float32).contiguous()
        tensors[f"{name}.lora_b"] = adapter.lora_b.detach().to("cpu", torch.float32).contiguous()
    return tensors


def motion_distillation_loss(prediction: torch.Tensor, target: torch.Tensor, frame_axis: int) -> torch.Tensor:
    """MSE between consecutive-frame differences of the prediction and of the target (VMC's motion distillation)."""
    return torch.nn.functional.mse_loss(torch.diff(prediction, dim=frame_axis), torch.diff(target, dim=frame_axis))


class DenoisingObjective:
    """One family's training problem on a clip: noise levels, noised input, target, the denoiser's prediction, frame axis.

    The only place training reads family and scheduler facts: the frame axis from the latent layout,
    the noising and target from the scheduler (DDPM/DDIM: `add_noise` with ε or v = `get_velocity`;
    flow matching: (1 − σ)·x0 + σ·ε, velocity ε − x0, σ from the sampler's own grid of
    `num_train_timesteps` levels), and the denoiser's call (UNet: per-frame prompt copies; DiT: the
    prompt once, CogVideoX's rotary embeddings when its config asks for them).
    """

    def __init__(self, pipe: DiffusionPipeline, clean: torch.Tensor) -> None:
        self.denoiser = denoiser_of(pipe)
        self.scheduler = pipe.scheduler
        self.clean = clean
        self.frame_axis = frame_axis_of(pipe)
        self.levels = int(self.scheduler.config.num_train_timesteps)
        self.sigmas = flow_sigmas(self.scheduler, self.levels)[:-1].to(clean.device) if is_flow_matching(self.scheduler) else None
        self.is_unet = getattr(pipe, "unet", None) is not None
        self.text = empty_prompt_embeds(pipe, clean.shape[self.frame_axis])
        self.extra: dict[str, Any] = {}
        config = self.denoiser.config
        if config.get("patch_size_t") and clean.shape[1] % config["patch_size_t"]:  # CogVideoX 1.5 patches time too
            raise MotionLoraError(
                f"this backbone patches {config['patch_size_t']} latent frames together: the clip's {clean.shape[1]} latent frames "
                f"must be a multiple (choose the frame count accordingly)"
            )
        if config.get("use_rotary_positional_embeddings"):
            _frames, height, width = video_size_of(pipe, clean)
            self.extra["image_rotary_emb"] = pipe._prepare_rotary_positional_embeddings(height, width, clean.shape[1], clean.device)

    def draw(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """A (noise, noise-level index) pair from `generator` (CPU, so draws do not depend on the device)."""
        noise = torch.randn(self.clean.shape, generator=generator).to(device=self.clean.device, dtype=self.clean.dtype)
        return noise, torch.randint(0, self.levels, (1,), generator=generator).to(self.clean.device)

    def loss(self, noise: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """The motion distillation loss of the denoiser's prediction at this noise and level."""
        if self.sigmas is not None:
            sigma = self.sigmas[index].to(self.clean.dtype)
            noisy = (1.0 - sigma) * self.clean + sigma * noise
            target, timestep = noise - self.clean, sigma * self.levels
        else:
            noisy = self.scheduler.add_noise(self.clean, noise, index)
            velocity = self.scheduler.config.get("prediction_type") == "v_prediction"
            target, timestep = (self.scheduler.get_velocity(self.clean, noise, index) if velocity else noise), index
        if self.is_unet:
            prediction = self.denoiser(noisy, timestep, encoder_hidden_states=self.text).sample
        else:
            prediction = self.denoiser(hidden_states=noisy, encoder_hidden_states=self.text, timestep=timestep, return_dict=False, **self.extra)[0]
        return motion_distillation_loss(prediction.float(), target.float(), frame_axis=self.frame_axis)


@torch.no_grad()
def empty_prompt_embeds(pipe: DiffusionPipeline, latent_frames: int) -> torch.Tensor:
    """The empty prompt through the pipeline's own `encode_prompt`, as its denoiser receives it in generation.

    UNet video pipelines (AnimateDiff) give the UNet one copy per frame; DiT pipelines pad the prompt
    to the length their call uses (CogVideoX: the DiT's text positions; Wan: the call's default).
    """
    device = pipe._execution_device
    if getattr(pipe, "unet", None) is not None:
        text, _ = pipe.encode_prompt("", device, 1, False)
        return text.repeat_interleave(latent_frames, dim=0)
    length = family_call_kwargs(pipe).get("max_sequence_length")
    if length is None:
        length = inspect.signature(pipe.__call__).parameters["max_sequence_length"].default
    text, _ = pipe.encode_prompt(prompt="", do_classifier_free_guidance=False, max_sequence_length=length, device=device)
    return text


def train_motion_lora(
    pipe: DiffusionPipeline,
    reference_latents: torch.Tensor,
    config: MotionLoraConfig = MotionLoraConfig(),
    *,
    on_step: Callable[[int, float], None] | None = None,
    check_draws: int = 8,
) -> tuple[dict[str, torch.Tensor], list[float], dict[str, float]]:
    """Train a motion LoRA on one clip's latents (the pipeline's layout, >= 2 latent frames); the backbone is unchanged.

    Returns (weights, loss per step, check): the per-step losses use a fresh random noise level and
    noise each, so they are noisy; `check` holds the mean loss on `check_draws` fixed (level,
    noise) draws before and after training, the like-for-like measure of what training achieved.
    """
    config.check()
    denoiser = denoiser_of(pipe)
    frame_axis = frame_axis_of(pipe)
    if reference_latents.ndim != 5 or reference_latents.shape[0] != 1 or reference_latents.shape[frame_axis] < 2:
        raise MotionLoraError(
            f"reference latents must be one 5-D video with >= 2 latent frames on axis {frame_axis}, got {tuple(reference_latents.shape)}"
        )
    objective = DenoisingObjective(pipe, reference_latents.to(device=pipe._execution_device, dtype=denoiser.dtype))
    generator = torch.Generator(device="cpu").manual_seed(config.seed)
    check_generator = torch.Generator(device="cpu").manual_seed(config.seed + 1)
    draws = [objective.draw(check_generator) for _ in range(check_draws)]
    frozen = [p for p in denoiser.parameters() if p.requires_grad]
    for parameter in frozen:
        parameter.requires_grad_(False)
    losses: list[float] = []

    def fixed_loss() -> float:
        with torch.no_grad():
            return sum(objective.loss(noise, index).item() for noise, index in draws) / len(draws)

    try:
        with attached(pipe, config.rank, config.alpha) as adapters:
            check = {"before": fixed_loss()}
            params = [p for adapter in adapters.values() for p in (adapter.lora_a, adapter.lora_b)]
            optimiser = torch.optim.AdamW(params, lr=config.learning_rate)
            for step in range(config.steps):
                loss = objective.loss(*objective.draw(generator))
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                losses.append(loss.item())
                if on_step is not None:
                    on_step(step + 1, losses[-1])
            check["after"] = fixed_loss()
            weights = lora_tensors(adapters)
    finally:
        for parameter in frozen:
            parameter.requires_grad_(True)
    return weights, losses, check


@dataclass(frozen=True)
class MotionLoraFile:
    """A trained motion LoRA: its MotionLora node's properties and its weights file (under the media folder)."""

    node: dict[str, Any]
    weights: Path
    reused: bool = False  # True: found already trained (same clip, backbone, options and size), not trained now

    @property
    def id(self) -> str:
        """The MotionLora node's id."""
        return str(self.node["id"])


def backbone_sha256(model_dir: Path, cache_dir: Path) -> str:
    """The backbone folder's content hash (memoised beside the reference cache, like its keys)."""
    from generation.reference_cache import CACHE_SUBDIR, FOLDER_HASH_MEMO

    return folder_content_hash(model_dir, Path(cache_dir) / CACHE_SUBDIR / FOLDER_HASH_MEMO)


def lora_key(clip_id: str, clip_sha256: str, backbone: str, config: MotionLoraConfig, size: dict[str, int]) -> str:
    """SHA-256 of what decides the weights: the clip (id and bytes), the backbone's content, the options and the size."""
    payload = {"clip": clip_id, "clip_sha256": clip_sha256, "backbone_sha256": backbone, "config": asdict(config), "size": size}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()


def save_weights(path: Path, weights: dict[str, torch.Tensor]) -> None:
    """Write safetensors weights to `path` through a temporary file and a rename (never half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        save_file(weights, str(temporary))
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)


def loaded_lora(node: dict[str, Any], media_dir: Path) -> MotionLoraFile:
    """A stored MotionLora with its weights file; MotionLoraError if the file is missing or not the one trained."""
    path = Path(media_dir) / str(node["file_path"])
    if not path.is_file():
        raise MotionLoraError(f"motion LoRA {node['id']!r}: its weights file media/{node['file_path']} is missing")
    if sha256_file(path) != node["sha256"]:
        raise MotionLoraError(f"motion LoRA {node['id']!r}: media/{node['file_path']} is not the file it was trained as (content hash differs)")
    return MotionLoraFile(node, path)


@contextmanager
def use_motion_lora(pipe: DiffusionPipeline, lora: MotionLoraFile, scale: float) -> Iterator[None]:
    """The pipeline with the LoRA applied at `scale` inside the block (scale 0: exactly the base pipeline)."""
    if not 0.0 <= float(scale) <= 2.0:
        raise MotionLoraError(f"motion LoRA scale must be in [0, 2], got {scale}")
    tensors = load_file(str(lora.weights))
    with attached(pipe, int(lora.node["rank"]), float(lora.node["alpha"])) as adapters:
        _check_fits(lora, tensors, lora_tensors(adapters), backbone_family(pipe).name)
        with torch.no_grad():
            for name, adapter in adapters.items():
                adapter.lora_a.copy_(tensors[f"{name}.lora_a"])
                adapter.lora_b.copy_(tensors[f"{name}.lora_b"])
                adapter.scale = float(scale)
        yield


def _check_fits(lora: MotionLoraFile, tensors: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], family: str) -> None:
    """MotionLoraError unless the file holds exactly this backbone's adapted layers, at its rank and sizes."""
    if set(tensors) != set(expected):
        theirs, ours = sorted(tensors), sorted(expected)
        raise MotionLoraError(
            f"motion LoRA {lora.id!r} (trained on {lora.node.get('model_id')}) does not fit this {family} backbone: its "
            f"{len(theirs) // 2} adapted layers (e.g. {theirs[0].rsplit('.', 1)[0] if theirs else 'none'}) are not this "
            f"backbone's {len(ours) // 2} (e.g. {ours[0].rsplit('.', 1)[0]}); train one for it with `kdcvg generation train-motion-lora`"
        )
    wrong = [name for name in sorted(expected) if tensors[name].shape != expected[name].shape]
    if wrong:
        raise MotionLoraError(
            f"motion LoRA {lora.id!r}: {wrong[0]} is {tuple(tensors[wrong[0]].shape)} in the file but "
            f"{tuple(expected[wrong[0]].shape)} in this {family} backbone (another size or rank)"
        )


def train_clip_lora(
    store: GraphStore, pipe: DiffusionPipeline, clip_id: str, *, model_dir: Path, media_dir: Path, cache_dir: Path,
    config: MotionLoraConfig, num_frames: int, height: int, width: int, on_step: Callable[[int, float], None] | None = None,
) -> MotionLoraFile:  # fmt: skip
    """Train a clip's motion LoRA and record it as a MotionLora node TRAINED_ON the clip; reuse an identical one.

    The weights file is placed first (under media/motion-lora/, by rename) and the node written after,
    in one transaction; if that write fails, a file placed for a new node is removed again, so no
    node points at nothing and no new file is left without its node.
    """
    from generation.motion_prior import encode_reference
    from generation.provenance import clip_video, motion_lora_by_id, record_motion_lora
    from generation.reference_video import read_reference

    config.check()
    video = clip_video(store, clip_id, media_dir)
    backbone = backbone_sha256(model_dir, cache_dir)
    clip_hash = sha256_file(video)
    size = {"frames": num_frames, "height": height, "width": width}
    key = lora_key(clip_id, clip_hash, backbone, config, size)
    lora_id, relative = f"ml-{key[:24]}", f"{LORA_SUBDIR}/{key}.safetensors"
    existing = motion_lora_by_id(store, lora_id)
    if existing is not None:
        try:
            return MotionLoraFile(loaded_lora(existing, media_dir).node, Path(media_dir) / relative, reused=True)
        except MotionLoraError:
            pass  # its file is gone or changed: train again and update the node
    latents = encode_reference(pipe, read_reference(video, num_frames, height, width))
    started = time.perf_counter()
    weights, _losses, check = train_motion_lora(pipe, latents, config, on_step=on_step)
    train_s = time.perf_counter() - started
    target = Path(media_dir) / relative
    save_weights(target, weights)
    row = {
        "id": lora_id, "file_path": relative, "sha256": sha256_file(target), "model_id": Path(model_dir).resolve().name,
        "backbone_sha256": backbone, "clip_sha256": clip_hash, "rank": config.rank, "alpha": float(config.alpha),
        "steps": config.steps, "learning_rate": float(config.learning_rate), "seed": config.seed, "num_frames": num_frames,
        "width": width, "height": height, "loss": LOSS_NAME, "loss_before": check["before"], "loss_after": check["after"],
        "train_s": train_s, "trained_at": utc_now(),
    }  # fmt: skip
    try:
        node = record_motion_lora(store, row, clip_id)
    except BaseException:
        if existing is None:
            target.unlink(missing_ok=True)
        raise
    return MotionLoraFile(node, target)


def lora_root(media_dir: Path) -> Path:
    """Where motion LoRA weights live below a data directory's media folder."""
    return Path(media_dir) / LORA_SUBDIR
