"""Motion LoRA: low-rank adapters on the temporal-attention queries, trained on one reference clip.

Why: the paper's motion prior (a) adapts the backbone to the reference's motion: a LoRA on the
queries of the temporal attention layers, trained ~400 steps on the one clip with a
frame-difference ("motion distillation", VMC: Jeong et al. 2023) loss — the prediction's
differences between consecutive frames must match the target's, so what is learnt is how the clip
*moves*, not what it looks like. Only temporal layers are adapted, so appearance stays the prompt's.

The adapters are plain `LoRALinear` wrappers (no extra dependency): y = W·x + s·(α/r)·B·A·x with B
initialised to 0, so a fresh adapter, or scale 0, is exactly the base layer. They are saved as
safetensors with a JSON card (clip and backbone hashes, steps, rank, losses) under
`<data>/models/motion-lora/`, keyed like the reference cache, and loaded into a pipeline with
`use_motion_lora(pipe, path, scale)` for one generation. Families without separate temporal
attention (CogVideoX's full 3-D attention) are refused with a clear error.
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
from generation.reference_cache import _atomic_write, folder_content_hash
from kb.interchange import sha256_file
from kdcvg.errors import BadInputError

LORA_SUBDIR = "motion-lora"
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
    """A trained motion LoRA on disk: its weights, and its card (how it was trained, on what)."""

    weights: Path
    card: dict[str, Any]

    @property
    def sha256(self) -> str:
        """Content hash of the weights file (what provenance records)."""
        return sha256_file(self.weights)


def lora_key(clip: Path, model_dir: Path, config: MotionLoraConfig, size: dict[str, int], memo: Path | None = None) -> str:
    """The LoRA's file name: SHA-256 of the clip's bytes, the backbone's content hash, the training options and size."""
    payload = {
        "clip_sha256": sha256_file(clip), "backbone_sha256": folder_content_hash(model_dir, memo),
        "config": asdict(config), "size": size,
    }  # fmt: skip
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()


def save_motion_lora(
    directory: Path, key: str, weights: dict[str, torch.Tensor], card: dict[str, Any]
) -> MotionLoraFile:
    """Write `<key>.safetensors` and `<key>.json` atomically (weights first: a card never points at nothing)."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{key}.safetensors"
    temporary = directory / f".{key}.safetensors.tmp"
    save_file(weights, str(temporary))
    temporary.replace(target)
    _atomic_write(directory / f"{key}.json", json.dumps(card, indent=2, sort_keys=True).encode("utf-8"))
    return MotionLoraFile(target, card)


def read_motion_lora(path: Path) -> MotionLoraFile:
    """A saved motion LoRA from its `.safetensors` path (its card beside it); MotionLoraError if either is missing."""
    path = Path(path)
    card_path = path.with_suffix(".json")
    if not path.is_file() or not card_path.is_file():
        raise MotionLoraError(f"no motion LoRA at {path} (needs {path.name} and {card_path.name})")
    return MotionLoraFile(path, json.loads(card_path.read_text(encoding="utf-8")))


@contextmanager
def use_motion_lora(pipe: DiffusionPipeline, lora: MotionLoraFile, scale: float) -> Iterator[None]:
    """The pipeline with the LoRA applied at `scale` inside the block (scale 0: exactly the base pipeline)."""
    if not 0.0 <= float(scale) <= 2.0:
        raise MotionLoraError(f"motion LoRA scale must be in [0, 2], got {scale}")
    tensors = load_file(str(lora.weights))
    card = lora.card
    with attached(pipe, int(card["config"]["rank"]), float(card["config"]["alpha"])) as adapters:
        expected = set(lora_tensors(adapters))
        if set(tensors) != expected:
            raise MotionLoraError(f"{lora.weights}: its layers do not match this backbone's temporal attention")
        with torch.no_grad():
            for name, adapter in adapters.items():
                adapter.lora_a.copy_(tensors[f"{name}.lora_a"])
                adapter.lora_b.copy_(tensors[f"{name}.lora_b"])
                adapter.scale = float(scale)
        yield


def train_for_clip(
    pipe: DiffusionPipeline, clip: Path, model_dir: Path, root: Path, config: MotionLoraConfig, *,
    num_frames: int, height: int, width: int, on_step: Callable[[int, float], None] | None = None,
) -> MotionLoraFile:  # fmt: skip
    """Train (or reuse, when the same clip, backbone, options and size were trained before) a clip's motion LoRA."""
    from generation.motion_prior import encode_reference
    from generation.reference_video import read_reference

    size = {"frames": num_frames, "height": height, "width": width}
    key = lora_key(clip, model_dir, config, size, root / "backbone-hashes.json")
    existing = root / f"{key}.safetensors"
    if existing.is_file() and existing.with_suffix(".json").is_file():
        return read_motion_lora(existing)
    latents = encode_reference(pipe, read_reference(clip, num_frames, height, width))
    started = time.perf_counter()
    weights, losses, check = train_motion_lora(pipe, latents, config, on_step=on_step)
    card = {
        "clip_sha256": sha256_file(clip), "backbone_sha256": folder_content_hash(model_dir, root / "backbone-hashes.json"),
        "config": asdict(config), "size": size, "loss": "motion distillation (consecutive-frame differences)",
        "layers": len(weights) // 2, "first_loss": losses[0], "last_loss": losses[-1],
        "fixed_draws_loss_before": check["before"], "fixed_draws_loss_after": check["after"],
        "train_s": time.perf_counter() - started,
    }  # fmt: skip
    return save_motion_lora(root, key, weights, card)


def lora_root(models_dir: Path) -> Path:
    """Where motion LoRAs live below a data directory's models folder."""
    return Path(models_dir) / LORA_SUBDIR


def find_motion_lora(root: Path, clip: Path, model_dir: Path) -> MotionLoraFile | None:
    """The most recently trained motion LoRA for this clip's content and this backbone's content, or None."""
    if not Path(root).is_dir():
        return None
    clip_hash = sha256_file(clip)
    backbone_hash = folder_content_hash(model_dir, Path(root) / "backbone-hashes.json")
    found = []
    for card_path in Path(root).glob("*.json"):
        weights = card_path.with_suffix(".safetensors")
        try:
            card = json.loads(card_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(card, dict) and card.get("clip_sha256") == clip_hash and card.get("backbone_sha256") == backbone_hash and weights.is_file():
            found.append((weights.stat().st_mtime_ns, weights.name, MotionLoraFile(weights, card)))
    return max(found, key=lambda item: item[:2])[2] if found else None
