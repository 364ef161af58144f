"""Tiny pipelines (AnimateDiff, CogVideoX, Wan 2.1), a tiny IP-Adapter and a tiny causal LM with random weights, written to disk.

Why: tests and CPU demos need backbones that run in seconds without any download. The models are
built from configs only (no weights are fetched; the tokenizers are constructed offline: CLIP's
from a vocab.json + merges.txt written here, T5's (also Wan's UMT5 tokenizer) as a small Unigram
vocabulary through the `tokenizers` backend, no sentencepiece model and no hub), seeded for determinism, and saved with
`save_pretrained`, so `generation.backbones.load_backbone` exercises exactly the code path of a real
checkpoint. Their outputs are meaningless pictures; only shapes, determinism and the data flow are real.
"""

from __future__ import annotations

import json
import shutil
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from diffusers import (
    AnimateDiffPipeline,
    AutoencoderKL,
    AutoencoderKLCogVideoX,
    AutoencoderKLWan,
    CogVideoXDDIMScheduler,
    CogVideoXPipeline,
    CogVideoXTransformer3DModel,
    DDIMScheduler,
    DiffusionPipeline,
    FlowMatchEulerDiscreteScheduler,
    MotionAdapter,
    UNet2DConditionModel,
    UNetMotionModel,
    WanPipeline,
    WanTransformer3DModel,
)
from safetensors.torch import save_file
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTokenizer,
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
    GPT2Config,
    GPT2LMHeadModel,
    GPT2Tokenizer,
    T5Config,
    T5EncoderModel,
    T5Tokenizer,
    UMT5Config,
    UMT5EncoderModel,
)

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


def write_tiny_t5_tokenizer(directory: Path, words: tuple[str, ...] = ()) -> T5Tokenizer:
    """Write a T5 (Unigram) tokenizer: T5's special tokens, every ASCII character, a few whole words; load it offline.

    T5's real vocabulary is a sentencepiece model from the hub; here the Unigram vocabulary is given
    directly (`T5Tokenizer(vocab=[(piece, log_prob), ...])`, tokenizers backend), so every text
    tokenizes (words first, else single characters) without sentencepiece or any download.
    """
    directory.mkdir(parents=True, exist_ok=True)
    common = ("a", "the", "of", "and", "with", "on", "in", "over", "slow", "pan", "zoom", "close", "up", "shot")
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    vocab += [("\u2581" + word, -4.0) for word in dict.fromkeys(common + tuple(words))]
    vocab += [(char, -8.0) for char in string.ascii_letters + string.digits + string.punctuation]
    T5Tokenizer(vocab=vocab, extra_ids=0).save_pretrained(directory)
    return T5Tokenizer.from_pretrained(directory, local_files_only=True)


# Tiny configs (sizes chosen so a CPU generation of 8 frames at 64 px takes about a second).
TINY_ANIMATEDIFF: dict[str, dict[str, Any]] = {
    "unet": {
        "block_out_channels": (32, 64), "layers_per_block": 1, "sample_size": 32, "in_channels": 4, "out_channels": 4,
        "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D"), "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D"),
        "cross_attention_dim": 32, "norm_num_groups": 2,
    },
    "motion_adapter": {
        "block_out_channels": (32, 64), "motion_layers_per_block": 1, "motion_norm_num_groups": 2,
        "motion_num_attention_heads": 4,
    },
    # Three blocks (not two) so the VAE downsamples by 4: a 64x64 video gives 16x16 latents,
    # which keeps a CPU generation at a few seconds (two blocks: 32x32 latents, ~5 s per step).
    "vae": {
        "block_out_channels": (32, 64, 64), "in_channels": 3, "out_channels": 3,
        "down_block_types": ("DownEncoderBlock2D",) * 3, "up_block_types": ("UpDecoderBlock2D",) * 3,
        "latent_channels": 4, "norm_num_groups": 32,
    },
    "text_encoder": {
        "hidden_size": 32, "intermediate_size": 37, "num_attention_heads": 4, "num_hidden_layers": 2,
        "layer_norm_eps": 1e-5, "max_position_embeddings": 77,
    },
    "scheduler": {
        "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "linear", "clip_sample": False,
        "steps_offset": 1, "set_alpha_to_one": False,
    },
}  # fmt: skip
TINY_COGVIDEOX: dict[str, dict[str, Any]] = {
    "transformer": {
        "num_attention_heads": 2, "attention_head_dim": 8, "in_channels": 4, "out_channels": 4, "time_embed_dim": 8,
        "text_embed_dim": 32, "num_layers": 1, "sample_width": 8, "sample_height": 8, "sample_frames": 9,
        "patch_size": 2, "temporal_compression_ratio": 4,
        "max_text_seq_length": 16,  # prompts are padded/truncated to this (the pipeline's max_sequence_length)
    },
    "vae": {  # 4 blocks: 8x space; the first two downsamplers also halve time: 4x
        "down_block_types": ("CogVideoXDownBlock3D",) * 4, "up_block_types": ("CogVideoXUpBlock3D",) * 4,
        "block_out_channels": (8, 8, 8, 8), "latent_channels": 4, "layers_per_block": 1, "norm_num_groups": 2,
        "temporal_compression_ratio": 4,
    },
    "text_encoder": {
        "d_model": 32, "d_kv": 8, "d_ff": 37, "num_layers": 1, "num_heads": 4, "relative_attention_num_buckets": 8,
        "feed_forward_proj": "gated-gelu",
    },
    # CogVideoX's own scheduler settings (v-prediction, zero terminal SNR, trailing timesteps).
    "scheduler": {
        "beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "clip_sample": False,
        "prediction_type": "v_prediction", "rescale_betas_zero_snr": True, "set_alpha_to_one": True,
        "snr_shift_scale": 3.0, "timestep_spacing": "trailing", "steps_offset": 0,
    },
}  # fmt: skip
TINY_WAN: dict[str, dict[str, Any]] = {
    "transformer": {  # head dim 12: Wan's 3-D rotary embedding splits it into time 4 + height 4 + width 4
        "patch_size": (1, 2, 2), "num_attention_heads": 2, "attention_head_dim": 12, "in_channels": 4, "out_channels": 4,
        "text_dim": 32, "freq_dim": 32, "ffn_dim": 32, "num_layers": 1, "rope_max_seq_len": 32,
    },
    "vae": {  # Wan's causal 3-D VAE at width 8: 8x space (4 levels), 4x time (the last two downsamplers)
        "base_dim": 8, "z_dim": 4, "dim_mult": (1, 1, 1, 1), "num_res_blocks": 1,
        "temperal_downsample": (False, True, True),
        # Per-channel latent statistics (the real VAE ships 16 of each); not identity, so the normalisation is exercised.
        "latents_mean": (-0.7571, -0.7089, -0.9113, 0.1075), "latents_std": (2.8184, 1.4541, 2.3275, 2.6558),
    },
    "text_encoder": {
        "d_model": 32, "d_kv": 8, "d_ff": 37, "num_layers": 1, "num_heads": 4, "relative_attention_num_buckets": 8,
        "feed_forward_proj": "gated-gelu",
    },
    # Rectified flow: sigmas from 1 to 0, shifted by 3 (Wan 2.1's setting at 480p).
    "scheduler": {"num_train_timesteps": 1000, "shift": 3.0},
}  # fmt: skip


def assemble_animatediff(
    scratch: Path, configs: dict[str, dict[str, Any]], seed: int = TINY_SEED
) -> AnimateDiffPipeline:
    """An AnimateDiff pipeline with seeded random weights from component configs (tiny here, SD1.5 size in benchmarks).

    The CLIP tokenizer is the offline one above (its ids fit any text-encoder vocabulary size);
    the text encoder's vocabulary defaults to the tokenizer's and its special ids always follow it.
    """
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**configs["unet"])
    torch.manual_seed(seed + 1)
    motion_adapter = MotionAdapter(**configs["motion_adapter"])
    torch.manual_seed(seed + 2)
    vae = AutoencoderKL(**configs["vae"])
    tokenizer = write_tiny_tokenizer(scratch / "tokenizer_src")
    special = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id}
    torch.manual_seed(seed + 3)
    text_encoder = CLIPTextModel(CLIPTextConfig(**{"vocab_size": len(tokenizer), **configs["text_encoder"], **special}))
    return AnimateDiffPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, motion_adapter=motion_adapter,
        scheduler=DDIMScheduler(**configs["scheduler"]), feature_extractor=None, image_encoder=None,
    )  # fmt: skip


def assemble_cogvideox(scratch: Path, configs: dict[str, dict[str, Any]], seed: int = TINY_SEED) -> CogVideoXPipeline:
    """A CogVideoX pipeline with seeded random weights from component configs (tiny here, 2b size in benchmarks)."""
    tokenizer = write_tiny_t5_tokenizer(scratch / "tokenizer_src")
    torch.manual_seed(seed)
    transformer = CogVideoXTransformer3DModel(**configs["transformer"])
    torch.manual_seed(seed + 1)
    vae = AutoencoderKLCogVideoX(**configs["vae"])
    special = {"pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id}
    torch.manual_seed(seed + 2)
    text_encoder = T5EncoderModel(T5Config(**{"vocab_size": len(tokenizer), **configs["text_encoder"], **special}))
    return CogVideoXPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer,
        scheduler=CogVideoXDDIMScheduler(**configs["scheduler"]),
    )  # fmt: skip


def assemble_wan(scratch: Path, configs: dict[str, dict[str, Any]], seed: int = TINY_SEED) -> WanPipeline:
    """A Wan 2.1 text-to-video pipeline with seeded random weights from component configs (tiny here, 1.3B size in benchmarks).

    The tokenizer is the offline Unigram one (the real Wan ships UMT5's sentencepiece vocabulary);
    the UMT5 encoder's vocabulary follows it.
    """
    tokenizer = write_tiny_t5_tokenizer(scratch / "tokenizer_src")
    torch.manual_seed(seed)
    transformer = WanTransformer3DModel(**configs["transformer"])
    torch.manual_seed(seed + 1)
    vae = AutoencoderKLWan(**{key: list(value) if isinstance(value, tuple) else value for key, value in configs["vae"].items()})
    special = {"pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id}
    torch.manual_seed(seed + 2)
    text_encoder = UMT5EncoderModel(UMT5Config(**{"vocab_size": len(tokenizer), **configs["text_encoder"], **special}))
    return WanPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(**configs["scheduler"]),
    )  # fmt: skip


def build_tiny_animatediff(scratch: Path, seed: int = TINY_SEED) -> AnimateDiffPipeline:
    """Build the tiny AnimateDiff pipeline in memory (random, seeded weights; `scratch` holds tokenizer files)."""
    return assemble_animatediff(scratch, TINY_ANIMATEDIFF, seed)


def build_tiny_cogvideox(scratch: Path, seed: int = TINY_SEED) -> CogVideoXPipeline:
    """Build a tiny CogVideoX pipeline in memory: 1-layer DiT, 4-block causal 3-D VAE (8x space, 4x time), 1-layer T5."""
    return assemble_cogvideox(scratch, TINY_COGVIDEOX, seed)


def build_tiny_wan(scratch: Path, seed: int = TINY_SEED) -> WanPipeline:
    """Build a tiny Wan 2.1 pipeline in memory: 1-layer flow-matching DiT, Wan causal 3-D VAE (8x space, 4x time), 1-layer UMT5."""
    return assemble_wan(scratch, TINY_WAN, seed)


def _write(build: Callable[[Path, int], DiffusionPipeline], directory: str | Path, seed: int) -> Path:
    """Build a pipeline (tokenizer files under `directory/.scratch`), `save_pretrained` it to `directory`, drop the scratch."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    build(directory / ".scratch", seed).save_pretrained(directory)
    shutil.rmtree(directory / ".scratch", ignore_errors=True)
    return directory


def write_tiny_animatediff(directory: str | Path, seed: int = TINY_SEED) -> Path:
    """Build the tiny seeded AnimateDiff pipeline and `save_pretrained` it to `directory` (returned)."""
    return _write(build_tiny_animatediff, directory, seed)


def write_tiny_cogvideox(directory: str | Path, seed: int = TINY_SEED) -> Path:
    """Build the tiny seeded CogVideoX pipeline and `save_pretrained` it to `directory` (returned)."""
    return _write(build_tiny_cogvideox, directory, seed)


def write_tiny_wan(directory: str | Path, seed: int = TINY_SEED) -> Path:
    """Build the tiny seeded Wan 2.1 pipeline and `save_pretrained` it to `directory` (returned)."""
    return _write(build_tiny_wan, directory, seed)


def write_tiny_ip_adapter(
    directory: str | Path, animatediff_dir: str | Path, seed: int = TINY_SEED, image_size: int = 32
) -> Path:
    """Write a random IP-Adapter for the AnimateDiff backbone in `animatediff_dir`, in the h94/IP-Adapter layout.

    Layout (what `pipe.load_ip_adapter(directory, subfolder="models", weight_name=...)` reads):
    `models/ip-adapter_tiny.safetensors` with `image_proj.proj.{weight,bias}` / `image_proj.norm.*`
    (the plain IP-Adapter `ImageProjection`: CLIP image embedding -> 4 tokens of the UNet's
    cross-attention width) and `ip_adapter.{k}.to_{k,v}_ip.weight` for every spatial cross-attention
    layer k = 1, 3, 5, ... in the UNet's processor order (diffusers' `_convert_ip_adapter_attn_to_diffusers`
    numbering), plus `models/image_encoder/` (a tiny CLIPVisionModelWithProjection). Returns the weights file.
    """
    directory = Path(directory)
    models = directory / "models"
    models.mkdir(parents=True, exist_ok=True)
    unet = UNetMotionModel.from_pretrained(Path(animatediff_dir) / "unet", local_files_only=True)
    cross_dim = unet.config.cross_attention_dim
    torch.manual_seed(seed + 10)
    encoder = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2, image_size=image_size,
            patch_size=8, projection_dim=32,
        )
    )  # fmt: skip
    encoder.save_pretrained(models / "image_encoder")
    generator = torch.Generator().manual_seed(seed + 11)
    embed_dim, tokens = encoder.config.projection_dim, 4
    weights = {
        "image_proj.proj.weight": 0.2 * torch.randn(tokens * cross_dim, embed_dim, generator=generator),
        "image_proj.proj.bias": torch.zeros(tokens * cross_dim),
        "image_proj.norm.weight": torch.ones(cross_dim),
        "image_proj.norm.bias": torch.zeros(cross_dim),
    }
    key = 1
    for name in unet.attn_processors:
        if not name.endswith("attn2.processor") or "motion_modules" in name:
            continue
        attention = unet.get_submodule(name.removesuffix(".processor"))
        hidden = attention.to_k.out_features
        for projection in ("to_k_ip", "to_v_ip"):
            weights[f"ip_adapter.{key}.{projection}.weight"] = 0.2 * torch.randn(hidden, cross_dim, generator=generator)
        key += 2
    path = models / "ip-adapter_tiny.safetensors"
    save_file({name: tensor.contiguous() for name, tensor in weights.items()}, str(path))
    return path


def write_tiny_causal_lm(directory: str | Path, seed: int = TINY_SEED) -> Path:
    """A tiny random GPT-2 with a byte-level BPE tokenizer written offline (the prompt rewriter's plumbing in tests).

    Every byte is a token (plus a few merges), so any text tokenizes; the answers are random text.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("o", "n")]
    tokens = list(_bytes_to_unicode().values()) + [a + b for a, b in merges] + [EOS]
    vocab = {token: index for index, token in enumerate(dict.fromkeys(tokens))}
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (directory / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")
    tokenizer = GPT2Tokenizer(str(directory / "vocab.json"), str(directory / "merges.txt"), unk_token=EOS, bos_token=EOS, eos_token=EOS)
    tokenizer.save_pretrained(directory)
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(vocab), n_positions=2048, n_embd=32, n_layer=1, n_head=2,
        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
    )  # fmt: skip
    GPT2LMHeadModel(config).save_pretrained(directory)
    return directory
