"""Motion LoRA: low-rank adapters on the temporal-attention queries, trained on one reference clip.

Why: the paper's motion prior (a) adapts the backbone to the reference's motion: a LoRA on the
queries of the temporal attention layers, trained ~400 steps on the one clip with a
frame-difference ("motion distillation", VMC: Jeong et al. 2023) loss — the prediction's
differences between consecutive frames must match the target's, so what is learnt is how the clip
*moves*, not what it looks like. Only temporal layers are adapted, so appearance stays the prompt's.

The adapters are plain `LoRALinear` wrappers (no extra dependency; docs/decisions.md says why not
peft): y = W·x + s·(α/r)·B·A·x with B initialised to 0, so a fresh adapter, or scale 0, is exactly
the base layer. A trained LoRA is knowledge about a clip, so it lives in the graph: its safetensors
weights go under `<data>/media/motion-lora/` (exported and imported with the ACKB like videos) and a
`MotionLora` node (how it was trained, content hashes of the file, the clip and the backbone) is
TRAINED_ON the clip. `use_motion_lora(pipe, lora, scale)` applies it for one generation. Families
without separate temporal attention (CogVideoX's full 3-D attention) are refused with a clear error.
"""

from __future__ import annotations

import hashlib
import json
import math
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
from generation.reference_cache import folder_content_hash
from kb.interchange import sha256_file
from kb.store import GraphStore
from kb.timestamps import utc_now
from kdcvg.errors import BadInputError

LORA_SUBDIR = "motion-lora"  # below the data directory's media/ folder
LOSS_NAME = "motion distillation (consecutive-frame differences)"
TEMPORAL_MARKER = "motion_modules."  # AnimateDiff's temporal transformer blocks


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


def _denoiser(pipe: DiffusionPipeline) -> torch.nn.Module:
    """The UNet with temporal layers; MotionLoraError for families without separate temporal attention."""
    family = backbone_family(pipe)
    unet = getattr(pipe, "unet", None)
    if unet is None or not any(TEMPORAL_MARKER in name for name, _ in unet.named_modules()):
        raise MotionLoraError(f"{family.name} backbones have no separate temporal attention to adapt (motion LoRA needs AnimateDiff)")
    return unet


def temporal_query_names(pipe: DiffusionPipeline) -> list[str]:
    """Names of the temporal attention query projections (`...motion_modules...to_q`) of the pipeline's UNet."""
    unet = _denoiser(pipe)
    return [
        name for name, module in unet.named_modules()
        if TEMPORAL_MARKER in name and name.endswith(".to_q") and isinstance(module, torch.nn.Linear)
    ]  # fmt: skip


def _set(root: torch.nn.Module, name: str, module: torch.nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, child, module)


@contextmanager
def attached(pipe: DiffusionPipeline, rank: int, alpha: float) -> Iterator[dict[str, LoRALinear]]:
    """Wrap every temporal query projection in a LoRALinear for the block; the original layers come back after."""
    unet = _denoiser(pipe)
    names = temporal_query_names(pipe)
    adapters = {name: LoRALinear(unet.get_submodule(name), rank, alpha) for name in names}
    for name, adapter in adapters.items():
        _set(unet, name, adapter)
    try:
        yield adapters
    finally:
        for name, adapter in adapters.items():
            _set(unet, name, adapter.base)


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


def train_motion_lora(
    pipe: DiffusionPipeline,
    reference_latents: torch.Tensor,
    config: MotionLoraConfig = MotionLoraConfig(),
    *,
    on_step: Callable[[int, float], None] | None = None,
    check_draws: int = 8,
) -> tuple[dict[str, torch.Tensor], list[float], dict[str, float]]:
    """Train a motion LoRA on one clip's (1, C, F, h, w) latents; the backbone is unchanged.

    Returns (weights, loss per step, check): the per-step losses use a fresh random timestep and
    noise each, so they are noisy; `check` holds the mean loss on `check_draws` fixed (timestep,
    noise) draws before and after training, the like-for-like measure of what training achieved.
    """
    config.check()
    unet = _denoiser(pipe)
    if reference_latents.ndim != 5 or reference_latents.shape[2] < 2:
        raise MotionLoraError(f"reference latents must be (1, C, F >= 2, h, w), got {tuple(reference_latents.shape)}")
    scheduler = pipe.scheduler
    device = pipe._execution_device
    generator = torch.Generator(device="cpu").manual_seed(config.seed)
    with torch.no_grad():
        text, _ = pipe.encode_prompt("", device, 1, False)
    text = text.repeat_interleave(reference_latents.shape[2], dim=0)  # one copy per frame, as AnimateDiffPipeline does
    clean = reference_latents.to(device=device, dtype=unet.dtype)
    frozen = [p for p in unet.parameters() if p.requires_grad]
    for parameter in frozen:
        parameter.requires_grad_(False)
    losses: list[float] = []
    check_generator = torch.Generator(device="cpu").manual_seed(config.seed + 1)
    draws = [
        (torch.randn(clean.shape, generator=check_generator).to(device=device, dtype=clean.dtype),
         torch.randint(0, scheduler.config.num_train_timesteps, (1,), generator=check_generator).to(device))
        for _ in range(check_draws)
    ]  # fmt: skip

    def loss_at(noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        noisy = scheduler.add_noise(clean, noise, t)
        target = scheduler.get_velocity(clean, noise, t) if scheduler.config.prediction_type == "v_prediction" else noise
        prediction = unet(noisy, t, encoder_hidden_states=text).sample
        return motion_distillation_loss(prediction.float(), target.float(), frame_axis=2)

    def fixed_loss() -> float:
        with torch.no_grad():
            return sum(loss_at(noise, t).item() for noise, t in draws) / len(draws)

    try:
        with attached(pipe, config.rank, config.alpha) as adapters:
            check = {"before": fixed_loss()}
            params = [p for adapter in adapters.values() for p in (adapter.lora_a, adapter.lora_b)]
            optimiser = torch.optim.AdamW(params, lr=config.learning_rate)
            for step in range(config.steps):
                noise = torch.randn(clean.shape, generator=generator).to(device=device, dtype=clean.dtype)
                t = torch.randint(0, scheduler.config.num_train_timesteps, (1,), generator=generator).to(device)
                loss = loss_at(noise, t)
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
        expected = set(lora_tensors(adapters))
        if set(tensors) != expected:
            raise MotionLoraError(f"{lora.weights}: its layers do not match this backbone's temporal attention")
        with torch.no_grad():
            for name, adapter in adapters.items():
                adapter.lora_a.copy_(tensors[f"{name}.lora_a"])
                adapter.lora_b.copy_(tensors[f"{name}.lora_b"])
                adapter.scale = float(scale)
        yield


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
