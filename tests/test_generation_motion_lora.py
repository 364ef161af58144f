"""Motion LoRA on AnimateDiff's temporal-attention queries: training with the motion distillation loss, loading, provenance.

The other families (CogVideoX, Wan) and the refusals across families: tests/test_generation_motion_lora_families.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from generation.api import generate_for
from generation.motion_lora import (
    LoRALinear,
    MotionLoraConfig,
    MotionLoraError,
    MotionLoraFile,
    adapted_layer_names,
    backbone_sha256,
    loaded_lora,
    motion_distillation_loss,
    save_weights,
    train_clip_lora,
    use_motion_lora,
)
from generation.pipeline import GenerationError, generate_frames
from generation.provenance import motion_lora_by_id
from kb.backends import open_store
from kb.graph import graph_from_store
from kb.interchange import import_ackb, sha256_file
from kb.store import GraphStore, NotFoundError
from kdcvg.config import Settings
from tests.conftest import kdcvg_in

SMALL = {"num_frames": 4, "height": 32, "width": 32, "steps": 2}
SMALL_REQUEST = {"frames": 4, "height": 32, "width": 32, "steps": 2}  # the same, as GenerationRequest fields
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


def _clip_with_video(store: GraphStore, media_dir: Path, reference_clip: Path) -> str:
    """The first clip of the imported small ACKB, given the rendered reference as its video under media/clips/."""
    clip = store.read(lambda tx: tx.run("MATCH (c:CreativeClip) RETURN c.id AS id ORDER BY c.id LIMIT 1"))[0]["id"]
    (media_dir / "clips").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(reference_clip, media_dir / "clips" / "ref.mp4")
    store.write(lambda tx: tx.run("MATCH (c:CreativeClip {id: $id}) SET c.video_path = $path", id=clip, path="clips/ref.mp4"))
    return clip


def _train(store: GraphStore, pipe, clip: str, tiny_dir: Path, media_dir: Path, tmp_path: Path, **extra) -> MotionLoraFile:
    return train_clip_lora(store, pipe, clip, model_dir=tiny_dir, media_dir=media_dir, cache_dir=tmp_path / "cache",
                           config=MotionLoraConfig(steps=3, learning_rate=1e-2), num_frames=4, height=32, width=32, **extra)  # fmt: skip


def test_training_records_a_motion_lora_node_and_loads_with_a_scale(
    store: GraphStore, small_ackb: Path, media_dir: Path, pipe, tiny_dir: Path, reference_clip: Path, tmp_path: Path
) -> None:
    import_ackb(store, small_ackb, media_dir)
    clip = _clip_with_video(store, media_dir, reference_clip)
    hash_before = graph_from_store(store).content_hash
    names = adapted_layer_names(pipe)
    assert names and all("motion_modules" in n and n.endswith("to_q") for n in names)
    before = {k: v.clone() for k, v in pipe.unet.state_dict().items()}
    seen: list[tuple[int, float]] = []
    lora = _train(store, pipe, clip, tiny_dir, media_dir, tmp_path, on_step=lambda step, loss: seen.append((step, loss)))
    assert [step for step, _ in seen] == [1, 2, 3] and all(loss > 0 for _, loss in seen) and not lora.reused
    after = pipe.unet.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(before[k], after[k]) for k in before)  # backbone untouched
    stored = motion_lora_by_id(store, lora.id)
    assert stored is not None and stored["clip"] == clip and stored["steps"] == 3 and stored["rank"] == 4
    assert stored["file_path"].startswith("motion-lora/") and (media_dir / stored["file_path"]) == lora.weights
    assert stored["sha256"] == sha256_file(lora.weights) and stored["backbone_sha256"] == backbone_sha256(tiny_dir, tmp_path / "cache")
    assert stored["loss_after"] < stored["loss_before"]  # training lowered the loss on the fixed draws
    assert graph_from_store(store).content_hash == hash_before  # a LoRA is not knowledge for SAR
    again = _train(store, pipe, clip, tiny_dir, media_dir, tmp_path, on_step=lambda step, loss: seen.append((step, loss)))
    assert again.reused and again.id == lora.id and len(seen) == 3  # same clip, backbone and options: reused, not retrained
    assert store.query("MATCH (m:MotionLora)-[:TRAINED_ON]->(c:CreativeClip) RETURN m.id, c.id").rows == [[lora.id, clip]]

    plain, _ = generate_frames(pipe, "a red bottle", output_type="latent", **SMALL)
    with use_motion_lora(pipe, loaded_lora(stored, media_dir), 0.0):
        zero, _ = generate_frames(pipe, "a red bottle", output_type="latent", **SMALL)
    with use_motion_lora(pipe, lora, 1.0):
        adapted, _ = generate_frames(pipe, "a red bottle", output_type="latent", **SMALL)
    restored, _ = generate_frames(pipe, "a red bottle", output_type="latent", **SMALL)
    assert torch.equal(zero, plain) and torch.equal(restored, plain) and not torch.equal(adapted, plain)


def test_a_lora_whose_clip_vanishes_during_training_leaves_nothing_behind(
    store: GraphStore, small_ackb: Path, media_dir: Path, pipe, tiny_dir: Path, reference_clip: Path, tmp_path: Path
) -> None:
    import_ackb(store, small_ackb, media_dir)
    clip = _clip_with_video(store, media_dir, reference_clip)

    def delete_clip(step: int, _loss: float) -> None:  # another user deletes the clip while the LoRA trains
        if step == 1:
            store.write(lambda tx: tx.run("MATCH (c:CreativeClip {id: $id}) DETACH DELETE c", id=clip))

    with pytest.raises(NotFoundError, match=clip):
        _train(store, pipe, clip, tiny_dir, media_dir, tmp_path, on_step=delete_clip)
    assert store.query("MATCH (m:MotionLora) RETURN count(m)").rows == [[0]]
    assert not list((media_dir / "motion-lora").glob("*"))  # the placed weights were removed again
    with pytest.raises(NotFoundError, match="no CreativeClip with id 'clip-nope'"):
        _train(store, pipe, "clip-nope", tiny_dir, media_dir, tmp_path)


def test_bad_loras_and_families_are_refused(pipe, tmp_path: Path) -> None:
    save_weights(tmp_path / "wrong.safetensors", {"nothing.lora_a": torch.zeros(1, 1), "nothing.lora_b": torch.zeros(1, 1)})
    node = {"id": "ml-wrong", "file_path": "wrong.safetensors", "sha256": sha256_file(tmp_path / "wrong.safetensors"), "rank": 1, "alpha": 1.0}
    with pytest.raises(MotionLoraError, match="does not fit this animatediff backbone"), use_motion_lora(pipe, loaded_lora(node, tmp_path), 1.0):
        pass
    assert all(not isinstance(m, LoRALinear) for m in pipe.unet.modules())  # the failed load left nothing behind
    layers = adapted_layer_names(pipe)
    save_weights(tmp_path / "small.safetensors", {f"{n}.lora_{ab}": torch.zeros(1, 1) for n in layers for ab in "ab"})
    small = {**node, "id": "ml-small", "file_path": "small.safetensors", "sha256": sha256_file(tmp_path / "small.safetensors")}
    with pytest.raises(MotionLoraError, match=r"in the file but .* in this animatediff backbone"), use_motion_lora(pipe, loaded_lora(small, tmp_path), 1.0):
        pass
    assert all(not isinstance(m, LoRALinear) for m in pipe.unet.modules())
    with pytest.raises(MotionLoraError, match="is not the file it was trained as"):
        loaded_lora({**node, "sha256": "0" * 64}, tmp_path)
    with pytest.raises(MotionLoraError, match="is missing"):
        loaded_lora({**node, "file_path": "absent.safetensors"}, tmp_path)
    with pytest.raises(MotionLoraError, match="steps >= 1"):
        MotionLoraConfig(steps=0).check()


def test_cli_trains_a_clip_lora_and_generation_records_which_it_used(mkr_world: tuple[Settings, Path], tmp_path: Path) -> None:
    settings, model = mkr_world
    with pytest.raises(GenerationError, match="train-motion-lora"):
        generate_for(BOTTLE, LEAK, model=model, motion_strength=0.0, motion_lora="auto", settings=settings, **SMALL_REQUEST)
    plain = generate_for(BOTTLE, LEAK, model=model, motion_strength=0.0, settings=settings, **SMALL_REQUEST)
    best = plain.reference_clips[0]
    trained = kdcvg_in(settings, "generation", "train-motion-lora", "--clip", best, "--steps", "2", "--frames", "4", "--size", "32",
                       generation_model=model)  # fmt: skip
    assert trained.exit_code == 0, trained.output
    lora_id = trained.stdout.split("MotionLora ", 1)[1].split()[0]
    result = generate_for(BOTTLE, LEAK, model=model, motion_strength=0.0, motion_lora="auto", settings=settings, **SMALL_REQUEST)
    recorded = json.loads(result.sidecar_path.read_text())["parameters"]["motion_lora"]
    assert recorded["id"] == lora_id and recorded["scale"] == 1.0 and recorded["file"].startswith("motion-lora/")
    assert recorded["trained"]["steps"] == 2 and recorded["trained"]["clip"] == best and len(recorded["sha256"]) == 64
    by_id = generate_for(BOTTLE, LEAK, model=model, motion_strength=0.0, motion_lora=lora_id, motion_lora_scale=0.5, settings=settings, **SMALL_REQUEST)
    with open_store(settings, read_only=True) as store:
        used = store.query("MATCH (g:GeneratedVideo)-[u:USED_LORA]->(m:MotionLora {id: $id}) RETURN g.id, u.scale, m.id ORDER BY u.scale", {"id": lora_id}).rows
    assert used == [[by_id.video_id, 0.5, lora_id], [result.video_id, 1.0, lora_id]]
    with pytest.raises(NotFoundError, match="no MotionLora with id 'ml-nope'"):
        generate_for(BOTTLE, LEAK, model=model, motion_strength=0.0, motion_lora="ml-nope", settings=settings, **SMALL_REQUEST)
    again = kdcvg_in(settings, "generation", "train-motion-lora", "--clip", best, "--steps", "2", "--frames", "4", "--size", "32",
                     generation_model=model)  # fmt: skip
    assert again.exit_code == 0 and f"MotionLora {lora_id} (already trained: reused)" in again.stdout
    missing = kdcvg_in(settings, "generation", "train-motion-lora", "--clip", "clip-nope", generation_model=model)
    assert missing.exit_code == 2 and "clip-nope" in missing.stderr
    requests = tmp_path / "requests.jsonl"
    requests.write_text(json.dumps({"product": BOTTLE, "selling_point": LEAK, "motion_lora": "ml-nope"}) + "\n")
    batch = kdcvg_in(settings, "generate", "--batch", str(requests), "--frames", "4", "--size", "32", "--steps", "1", generation_model=model)
    assert batch.exit_code == 2 and f"{requests}:1:motion_lora: no MotionLora with id 'ml-nope'" in batch.stderr
    requests.write_text(json.dumps({"product": BOTTLE, "selling_point": LEAK, "motion_lora": lora_id, "motion_lora_scale": 0.25,
                                    "motion_strength": 0.0}) + "\n")  # fmt: skip
    batch = kdcvg_in(settings, "generate", "--batch", str(requests), "--frames", "4", "--size", "32", "--steps", "1", generation_model=model)
    assert batch.exit_code == 0, batch.output
    video = json.loads(batch.stdout.splitlines()[0])["video_id"]
    with open_store(settings, read_only=True) as store:
        assert store.query("MATCH (g:GeneratedVideo {id: $id})-[u:USED_LORA]->(m) RETURN u.scale, m.id", {"id": video}).rows == [[0.25, lora_id]]
    one = ("generate", "--product", BOTTLE, "--selling-point", LEAK, "--frames", "4", "--size", "32", "--steps", "1", "--motion-strength", "0")
    unknown = kdcvg_in(settings, *one, "--motion-lora", "ml-nope", generation_model=model)
    assert unknown.exit_code != 0 and "no MotionLora with id 'ml-nope'" in unknown.stderr
    flagged = kdcvg_in(settings, *one, "--motion-lora", lora_id, "--motion-lora-scale", "0.75", "--json", generation_model=model)
    assert flagged.exit_code == 0, flagged.output
    video = json.loads(flagged.stdout)["video_id"]
    with open_store(settings, read_only=True) as store:
        assert store.query("MATCH (g:GeneratedVideo {id: $id})-[u:USED_LORA]->(m) RETURN u.scale, m.id", {"id": video}).rows == [[0.75, lora_id]]
