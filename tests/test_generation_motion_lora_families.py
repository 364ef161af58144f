"""Motion LoRA on every backbone family: which layers each adapts, training, scale 0, refusals across families, end to end.

AnimateDiff's graph-backed training and provenance are in tests/test_generation_motion_lora.py; here
the same LoRA runs on the tiny CogVideoX (v-prediction, (B, F, C, h, w) latents) and the tiny Wan
(flow matching), from the library, the CLI, the API and batch files.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from diffusers import DiffusionPipeline

from generation.api import generate_for
from generation.backbones import load_backbone
from generation.motion_lora import (
    DenoisingObjective,
    LoRALinear,
    MotionLoraConfig,
    MotionLoraError,
    MotionLoraFile,
    adapted_layer_names,
    attached,
    denoiser_of,
    lora_tensors,
    save_weights,
    train_motion_lora,
    use_motion_lora,
)
from generation.motion_prior import encode_reference
from generation.pipeline import family_call_kwargs, generate_frames
from generation.reference_video import read_reference
from generation.tiny import TINY_COGVIDEOX, assemble_cogvideox, write_tiny_animatediff, write_tiny_cogvideox, write_tiny_wan
from kb.backends import open_store
from kb.interchange import sha256_file
from kdcvg.config import Settings
from tests.conftest import kdcvg_in

WRITERS: dict[str, Callable[[Path], Path]] = {
    "animatediff": write_tiny_animatediff, "cogvideox": write_tiny_cogvideox, "wan": write_tiny_wan,
}  # fmt: skip
DITS = ("cogvideox", "wan")  # full 3-D attention: no separate temporal layers
FRAMES = {"animatediff": 4, "cogvideox": 5, "wan": 5}  # the smallest valid length for each (DiTs: 4·k + 1)
SIZE = 32
BOTTLE, LEAK = "prod-thermopeak-insulated-bottle", "Leak-proof lid"


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One tiny random-weight folder per family, written once for the module."""
    root = tmp_path_factory.mktemp("families")
    return {name: write(root / name) for name, write in WRITERS.items()}


@pytest.fixture(scope="module")
def pipes(folders: dict[str, Path]) -> dict[str, DiffusionPipeline]:
    """Each family's tiny pipeline, loaded once (float32 on CPU)."""
    return {name: load_backbone(folder) for name, folder in folders.items()}


@pytest.fixture(scope="module")
def trained(pipes: dict[str, DiffusionPipeline], reference_clip: Path) -> dict[str, tuple[dict[str, torch.Tensor], list[float], dict[str, float]]]:
    """A 4-step motion LoRA per DiT family on the panning reference clip: (weights, losses, fixed-draw check)."""
    results = {}
    for name in DITS:
        latents = encode_reference(pipes[name], read_reference(reference_clip, FRAMES[name], SIZE, SIZE))
        results[name] = train_motion_lora(pipes[name], latents, MotionLoraConfig(steps=4, learning_rate=1e-2))
    return results


def _lora_file(directory: Path, name: str, weights: dict[str, torch.Tensor], rank: int = 4) -> MotionLoraFile:
    """Weights written as a media file, with the node fields `use_motion_lora` reads."""
    path = directory / f"{name}.safetensors"
    save_weights(path, weights)
    node = {"id": f"ml-{name}", "file_path": path.name, "sha256": sha256_file(path), "rank": rank, "alpha": float(rank), "model_id": name}
    return MotionLoraFile(node, path)


def _wrapped(pipe: DiffusionPipeline) -> list[str]:
    return [name for name, module in denoiser_of(pipe).named_modules() if isinstance(module, LoRALinear)]


@pytest.mark.parametrize(
    ("family", "pattern"),
    [
        ("animatediff", r"(down_blocks\.\d+|up_blocks\.\d+|mid_block)\.motion_modules\.\d+\.transformer_blocks\.\d+\.attn[12]\.to_q"),
        ("cogvideox", r"transformer_blocks\.\d+\.attn1\.to_q"),
        ("wan", r"blocks\.\d+\.attn1\.to_q"),
    ],
)
def test_each_family_adapts_the_queries_of_the_attention_that_mixes_frames(pipes: dict[str, DiffusionPipeline], family: str, pattern: str) -> None:
    pipe = pipes[family]
    names = adapted_layer_names(pipe)
    assert names and all(re.fullmatch(pattern, name) for name in names)
    if family == "animatediff":  # temporal layers only: the spatial attention keeps appearance
        spatial = [n for n, m in pipe.unet.named_modules() if n.endswith("to_q") and "motion_modules" not in n]
        assert spatial and not set(spatial) & set(names)
    else:  # every block's self-attention; never Wan's prompt cross-attention
        blocks = pipe.transformer.transformer_blocks if family == "cogvideox" else pipe.transformer.blocks
        assert len(names) == len(blocks) and not any("attn2" in n for n in names)
    with attached(pipe, rank=2, alpha=2.0) as adapters:
        assert sorted(adapters) == sorted(names) == sorted(_wrapped(pipe))
    assert not _wrapped(pipe)


@pytest.fixture(scope="module")
def rotary_cogvideox(tmp_path_factory: pytest.TempPathFactory) -> DiffusionPipeline:
    """A tiny CogVideoX whose DiT uses 3-D rotary position embeddings (as CogVideoX-5b does; the tiny default does not)."""
    root = tmp_path_factory.mktemp("rotary")
    transformer = {**TINY_COGVIDEOX["transformer"], "attention_head_dim": 16, "use_rotary_positional_embeddings": True}
    assemble_cogvideox(root / "scratch", {**TINY_COGVIDEOX, "transformer": transformer}).save_pretrained(root / "cogvideox-rotary")
    return load_backbone(root / "cogvideox-rotary")  # loaded like any checkpoint (eval mode: no dropout)


@pytest.mark.parametrize("family", [*WRITERS, "cogvideox-rotary"])
def test_training_conditions_the_denoiser_as_the_pipeline_does(
    pipes: dict[str, DiffusionPipeline], rotary_cogvideox: DiffusionPipeline, reference_clip: Path, family: str
) -> None:
    pipe = rotary_cogvideox if family == "cogvideox-rotary" else pipes[family]
    frames = FRAMES[family.split("-")[0]]
    latents = encode_reference(pipe, read_reference(reference_clip, frames, SIZE, SIZE))
    objective = DenoisingObjective(pipe, latents)
    seen: list[dict] = []
    hook = denoiser_of(pipe).register_forward_pre_hook(lambda _m, _args, kwargs: seen.append(kwargs), with_kwargs=True)
    try:  # the pipeline's own call with the empty prompt and no guidance: what its denoiser receives
        pipe(prompt="", num_frames=frames, height=SIZE, width=SIZE, num_inference_steps=1, guidance_scale=1.0, latents=latents,
             output_type="latent", **family_call_kwargs(pipe))  # fmt: skip
    finally:
        hook.remove()
    assert torch.equal(objective.text, seen[0]["encoder_hidden_states"])  # same prompt encoding, length and per-frame copies
    rotary = seen[0].get("image_rotary_emb")
    assert (rotary is not None) == (family == "cogvideox-rotary") == ("image_rotary_emb" in objective.extra)
    if rotary is not None:
        assert all(torch.equal(a, b) for a, b in zip(objective.extra["image_rotary_emb"], rotary, strict=True))
        weights, _losses, check = train_motion_lora(pipe, latents, MotionLoraConfig(steps=2, learning_rate=1e-2))
        assert len(weights) == 2 * len(adapted_layer_names(pipe)) and check["after"] != check["before"]


@pytest.mark.parametrize("family", DITS)
def test_training_lowers_the_motion_loss_and_leaves_the_backbone_untouched(
    pipes: dict[str, DiffusionPipeline], trained: dict, family: str
) -> None:
    weights, losses, check = trained[family]
    names = adapted_layer_names(pipes[family])
    assert sorted(weights) == sorted(f"{n}.lora_{ab}" for n in names for ab in "ab")
    assert len(losses) == 4 and all(loss > 0 for loss in losses)
    assert check["after"] < check["before"]  # on the same 8 fixed (noise level, noise) draws
    assert any(weights[f"{n}.lora_b"].abs().sum() > 0 for n in names)  # B started at 0 and moved
    assert not _wrapped(pipes[family]) and all(p.requires_grad for p in denoiser_of(pipes[family]).parameters())


@pytest.mark.parametrize("family", DITS)
def test_scale_zero_is_the_plain_output_bit_for_bit(pipes: dict[str, DiffusionPipeline], trained: dict, family: str, tmp_path: Path) -> None:
    pipe = pipes[family]
    lora = _lora_file(tmp_path, family, trained[family][0])
    options = {"num_frames": FRAMES[family], "height": SIZE, "width": SIZE, "steps": 2, "output_type": "latent"}
    before = {k: v.clone() for k, v in denoiser_of(pipe).state_dict().items()}
    plain, _ = generate_frames(pipe, "a red bottle", **options)
    with use_motion_lora(pipe, lora, 0.0):
        zero, _ = generate_frames(pipe, "a red bottle", **options)
    with use_motion_lora(pipe, lora, 2.0):
        adapted, _ = generate_frames(pipe, "a red bottle", **options)
    restored, _ = generate_frames(pipe, "a red bottle", **options)
    assert torch.equal(zero, plain) and torch.equal(restored, plain) and not torch.equal(adapted, plain)
    after = denoiser_of(pipe).state_dict()
    assert after.keys() == before.keys() and all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize(("source", "target"), [(a, b) for a in WRITERS for b in WRITERS if a != b])
def test_a_lora_for_one_family_is_refused_on_another(pipes: dict[str, DiffusionPipeline], source: str, target: str, tmp_path: Path) -> None:
    with attached(pipes[source], rank=4, alpha=4.0) as adapters:
        lora = _lora_file(tmp_path, source, lora_tensors(adapters))
    refused = pytest.raises(MotionLoraError, match=f"trained on {source}\\) does not fit this {target} backbone")
    with refused, use_motion_lora(pipes[target], lora, 1.0):
        pass
    assert not _wrapped(pipes[target])  # the refused load left the target as it was


@pytest.mark.parametrize("family", DITS)
def test_cli_api_and_batch_train_and_apply_a_lora_with_provenance(
    mkr_world: tuple[Settings, Path], folders: dict[str, Path], family: str, tmp_path: Path
) -> None:
    settings, animatediff = mkr_world
    model = folders[family]
    small = {"frames": FRAMES[family], "height": SIZE, "width": SIZE, "steps": 1, "motion_strength": 0.0}
    best = generate_for(BOTTLE, LEAK, model=model, settings=settings, **small).reference_clips[0]
    trained = kdcvg_in(settings, "generation", "train-motion-lora", "--clip", best, "--model", str(model), "--steps", "2",
                       "--frames", str(FRAMES[family]), "--size", str(SIZE))  # fmt: skip
    assert trained.exit_code == 0, trained.output
    lora_id = trained.stdout.split("MotionLora ", 1)[1].split()[0]
    with open_store(settings, read_only=True) as store:
        (node,) = store.query("MATCH (m:MotionLora {id: $id})-[:TRAINED_ON]->(c) RETURN m.model_id, m.steps, m.num_frames, m.loss, c.id",
                              {"id": lora_id}).rows  # fmt: skip
    assert node[:3] == [model.name, 2, FRAMES[family]] and "consecutive-frame differences" in node[3] and node[4] == best

    result = generate_for(BOTTLE, LEAK, model=model, motion_lora="auto", settings=settings, **small)
    recorded = result.parameters["motion_lora"]
    assert result.parameters["backbone_family"] == family and recorded["id"] == lora_id and recorded["scale"] == 1.0
    assert recorded["trained"]["model_id"] == model.name and recorded["trained"]["clip"] == best and recorded["trained"]["steps"] == 2

    flags = ("--frames", str(FRAMES[family]), "--size", str(SIZE), "--steps", "1", "--motion-strength", "0", "--model", str(model))
    cli = kdcvg_in(settings, "generate", "--product", BOTTLE, "--selling-point", LEAK, *flags, "--motion-lora", lora_id,
                   "--motion-lora-scale", "0.5", "--json")  # fmt: skip
    assert cli.exit_code == 0, cli.output
    requests = tmp_path / "requests.jsonl"
    requests.write_text(json.dumps({"product": BOTTLE, "selling_point": LEAK, "motion_lora": "auto", "motion_lora_scale": 0.25}) + "\n")
    batch = kdcvg_in(settings, "generate", "--batch", str(requests), *flags)
    assert batch.exit_code == 0, batch.output
    videos = [result.video_id, json.loads(cli.stdout)["video_id"], json.loads(batch.stdout.splitlines()[0])["video_id"]]
    with open_store(settings, read_only=True) as store:
        used = store.query(
            "MATCH (g:GeneratedVideo)-[u:USED_LORA]->(m:MotionLora {id: $id}) RETURN g.id, u.scale ORDER BY u.scale DESC", {"id": lora_id}
        ).rows
    assert used == [[videos[0], 1.0], [videos[1], 0.5], [videos[2], 0.25]]

    with pytest.raises(MotionLoraError, match=f"trained on another backbone \\({model.name}\\)"):  # by id, on the AnimateDiff
        generate_for(BOTTLE, LEAK, model=animatediff, motion_lora=lora_id, settings=settings, frames=4, height=SIZE, width=SIZE, steps=1)


def test_a_dit_that_patches_time_needs_whole_patches_of_latent_frames(tmp_path: Path) -> None:
    """CogVideoX 1.5 groups 2 latent frames per patch: an odd count is refused by name, an even one trains."""
    transformer = {**TINY_COGVIDEOX["transformer"], "patch_size_t": 2, "patch_bias": False, "attention_head_dim": 16,
                   "use_rotary_positional_embeddings": True}  # fmt: skip
    assemble_cogvideox(tmp_path / "scratch", {**TINY_COGVIDEOX, "transformer": transformer}).save_pretrained(tmp_path / "cogvideox-1.5")
    pipe = load_backbone(tmp_path / "cogvideox-1.5")
    latents = torch.randn(1, 3, 4, 4, 4, generator=torch.Generator().manual_seed(0))  # (1, F, C, h, w): 3 latent frames
    with pytest.raises(MotionLoraError, match="patches 2 latent frames together: the clip's 3 latent frames must be a multiple"):
        train_motion_lora(pipe, latents, MotionLoraConfig(steps=1))
    weights, losses, _check = train_motion_lora(pipe, latents[:, :2], MotionLoraConfig(steps=2, learning_rate=1e-2))
    assert len(losses) == 2 and sorted(weights) == sorted(f"{n}.lora_{ab}" for n in adapted_layer_names(pipe) for ab in "ab")
