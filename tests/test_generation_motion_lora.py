"""Motion LoRA on the temporal-attention queries: training with the motion distillation loss, loading, provenance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from generation.api import generate_for
from generation.motion_lora import (
    LoRALinear,
    MotionLoraConfig,
    MotionLoraError,
    motion_distillation_loss,
    read_motion_lora,
    save_motion_lora,
    temporal_query_names,
    train_for_clip,
    use_motion_lora,
)
from generation.pipeline import GenerationError, generate_frames
from generation.tiny import build_tiny_cogvideox
from kdcvg.config import Settings
from tests.conftest import kdcvg_in

SMALL = {"num_frames": 4, "height": 32, "width": 32, "steps": 2}
BOTTLE, LEAK = "prod-thermopeak-insulated-bottle", "Leak-proof lid"


def test_lora_linear_starts_as_the_base_layer_and_scales() -> None:
    torch.manual_seed(0)
    base = torch.nn.Linear(8, 6)
    lora = LoRALinear(base, rank=2, alpha=2.0)
    x = torch.randn(3, 8)
    assert torch.equal(lora(x), base(x))  # B = 0
    with torch.no_grad():
        lora.lora_b.normal_()
    changed = lora(x)
    assert not torch.allclose(changed, base(x))
    lora.scale = 0.0
    assert torch.equal(lora(x), base(x))
    lora.scale = 2.0
    assert torch.allclose(lora(x) - base(x), 2.0 * (changed - base(x)), atol=1e-6)


def test_motion_distillation_loss_ignores_appearance() -> None:
    target = torch.randn(1, 4, 5, 8, 8)
    assert float(motion_distillation_loss(target + 3.0, target, frame_axis=2)) < 1e-10  # same motion, other brightness
    moved = target.clone()
    moved[:, :, 2:] += 1.0
    assert motion_distillation_loss(moved, target, frame_axis=2) > 0


def test_training_adapts_only_temporal_queries_and_loads_with_a_scale(pipe, tiny_dir: Path, reference_clip: Path, tmp_path: Path) -> None:
    names = temporal_query_names(pipe)
    assert names and all("motion_modules" in n and n.endswith("to_q") for n in names)
    before = {k: v.clone() for k, v in pipe.unet.state_dict().items()}
    seen: list[tuple[int, float]] = []
    config = MotionLoraConfig(steps=3, learning_rate=1e-2)
    lora = train_for_clip(pipe, reference_clip, tiny_dir, tmp_path / "loras", config, num_frames=4, height=32, width=32,
                          on_step=lambda step, loss: seen.append((step, loss)))  # fmt: skip
    assert [step for step, _ in seen] == [1, 2, 3] and all(loss > 0 for _, loss in seen)
    after = pipe.unet.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(before[k], after[k]) for k in before)  # backbone untouched
    assert lora.card["layers"] == len(names) and lora.card["config"]["steps"] == 3 and lora.card["last_loss"] == seen[-1][1]
    assert lora.card["fixed_draws_loss_after"] < lora.card["fixed_draws_loss_before"]  # training lowered the loss
    again = train_for_clip(pipe, reference_clip, tiny_dir, tmp_path / "loras", config, num_frames=4, height=32, width=32,
                           on_step=lambda step, loss: seen.append((step, loss)))  # fmt: skip
    assert again.weights == lora.weights and len(seen) == 3  # same clip, backbone and options: reused, not retrained

    plain, _ = generate_frames(pipe, "a red bottle", output_type="latent", **SMALL)
    with use_motion_lora(pipe, read_motion_lora(lora.weights), 0.0):
        zero, _ = generate_frames(pipe, "a red bottle", output_type="latent", **SMALL)
    with use_motion_lora(pipe, lora, 1.0):
        adapted, _ = generate_frames(pipe, "a red bottle", output_type="latent", **SMALL)
    restored, _ = generate_frames(pipe, "a red bottle", output_type="latent", **SMALL)
    assert torch.equal(zero, plain) and torch.equal(restored, plain) and not torch.equal(adapted, plain)


def test_bad_loras_and_families_are_refused(pipe, tmp_path: Path) -> None:
    wrong = save_motion_lora(tmp_path, "wrong", {"nothing.lora_a": torch.zeros(1, 1), "nothing.lora_b": torch.zeros(1, 1)},
                             {"config": {"rank": 1, "alpha": 1.0}})  # fmt: skip
    with pytest.raises(MotionLoraError, match="do not match"), use_motion_lora(pipe, wrong, 1.0):
        pass
    assert all(not isinstance(m, LoRALinear) for m in pipe.unet.modules())  # the failed load left nothing behind
    with pytest.raises(MotionLoraError, match="no motion LoRA at"):
        read_motion_lora(tmp_path / "absent.safetensors")
    with pytest.raises(MotionLoraError, match="steps >= 1"):
        MotionLoraConfig(steps=0).check()
    with pytest.raises(MotionLoraError, match="cogvideox backbones have no separate temporal attention"):
        temporal_query_names(build_tiny_cogvideox(tmp_path / "cog"))


def test_cli_trains_a_clip_lora_and_generate_auto_records_it(mkr_world: tuple[Settings, Path]) -> None:
    settings, model = mkr_world
    with pytest.raises(GenerationError, match="train-motion-lora"):
        generate_for(BOTTLE, LEAK, model=model, motion_strength=0.0, motion_lora="auto", settings=settings, frames=4, height=32, width=32, steps=2)
    plain = generate_for(BOTTLE, LEAK, model=model, motion_strength=0.0, settings=settings, frames=4, height=32, width=32, steps=2)
    best = plain.reference_clips[0]
    trained = kdcvg_in(settings, "generation", "train-motion-lora", "--clip", best, "--steps", "2", "--frames", "4", "--size", "32",
                       generation_model=model)  # fmt: skip
    assert trained.exit_code == 0, trained.output
    weights = Path(trained.stdout.split("motion LoRA: ", 1)[1].splitlines()[0])
    assert weights.is_file() and sorted((settings.models_dir / "motion-lora").glob("*.safetensors")) == [weights]
    result = generate_for(BOTTLE, LEAK, model=model, motion_strength=0.0, motion_lora="auto", settings=settings, frames=4, height=32, width=32, steps=2)
    recorded = json.loads(result.sidecar_path.read_text())["parameters"]["motion_lora"]
    assert recorded["file"] == str(weights.relative_to(settings.data_dir)) and recorded["scale"] == 1.0
    assert recorded["trained"]["config"]["steps"] == 2 and len(recorded["sha256"]) == 64
    missing = kdcvg_in(settings, "generation", "train-motion-lora", "--clip", "clip-nope", generation_model=model)
    assert missing.exit_code == 2 and "clip-nope" in missing.stderr
