"""A tiny AnimateDiff pipeline with random weights, written to disk so it loads like a real one.

Why: tests and CPU demos need a backbone that runs in seconds without any download. The model is
built from configs only (no weights are fetched; the tokenizer is constructed offline from a
vocab.json + merges.txt written here), seeded for determinism, and saved with `save_pretrained`,
so `generation.backbones.load_backbone` exercises exactly the code path of a real checkpoint.
Its outputs are meaningless pictures; only shapes, determinism and the data flow are real.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import (
    AnimateDiffPipeline,
    AutoencoderKL,
    DDIMScheduler,
    MotionAdapter,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

TINY_SEED = 0
BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def _bytes_to_unicode() -> dict[int, str]:
    """CLIP's byte -> printable-unicode table (byte-level BPE), reproduced to stay offline."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in codes)))


def write_tiny_tokenizer(directory: Path) -> CLIPTokenizer:
    """Write a small byte-level vocab.json + merges.txt (all bytes, a few merges) and load it offline."""
    directory.mkdir(parents=True, exist_ok=True)
    symbols = list(_bytes_to_unicode().values())
    vocab_list = symbols + [s + "</w>" for s in symbols]
    merges = [("t", "h"), ("th", "e</w>"), ("a", "n"), ("i", "n"), ("e", "r"), ("o", "n"), ("r", "e")]
    for left, right in merges:
        vocab_list.append(left + right)
    vocab_list += [BOS, EOS]
    vocab = {token: index for index, token in enumerate(dict.fromkeys(vocab_list))}
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    merges_text = "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges)
    (directory / "merges.txt").write_text(merges_text, encoding="utf-8")
    config = {"bos_token": BOS, "eos_token": EOS, "pad_token": EOS, "unk_token": EOS, "model_max_length": 77}
    (directory / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return CLIPTokenizer.from_pretrained(directory, local_files_only=True)


def build_tiny_animatediff(scratch: Path, seed: int = TINY_SEED) -> AnimateDiffPipeline:
    """Build the tiny AnimateDiff pipeline in memory (random, seeded weights; `scratch` holds tokenizer files)."""
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        norm_num_groups=2,
    )
    torch.manual_seed(seed + 1)
    motion_adapter = MotionAdapter(
        block_out_channels=(32, 64),
        motion_layers_per_block=1,
        motion_norm_num_groups=2,
        motion_num_attention_heads=4,
    )
    torch.manual_seed(seed + 2)
    vae = AutoencoderKL(
        # Three blocks (not two) so the VAE downsamples by 4: a 64x64 video gives 16x16 latents,
        # which keeps a CPU generation at a few seconds (two blocks: 32x32 latents, ~5 s per step).
        block_out_channels=(32, 64, 64),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        latent_channels=4,
        norm_num_groups=32,
    )
    tokenizer = write_tiny_tokenizer(scratch / "tokenizer_src")
    torch.manual_seed(seed + 3)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            hidden_size=32,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            layer_norm_eps=1e-5,
            vocab_size=len(tokenizer),
            max_position_embeddings=77,
        )
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="linear", clip_sample=False,
        steps_offset=1, set_alpha_to_one=False,
    )
    return AnimateDiffPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
        motion_adapter=motion_adapter, scheduler=scheduler, feature_extractor=None, image_encoder=None,
    )


def write_tiny_animatediff(directory: str | Path, seed: int = TINY_SEED) -> Path:
    """Build the tiny seeded AnimateDiff pipeline and `save_pretrained` it to `directory` (returned)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    pipe = build_tiny_animatediff(directory / ".scratch", seed)
    pipe.save_pretrained(directory)
    for leftover in sorted((directory / ".scratch").rglob("*"), reverse=True):
        leftover.unlink() if leftover.is_file() else leftover.rmdir()
    (directory / ".scratch").rmdir()
    return directory
