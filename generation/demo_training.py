"""The parts of the demo backbone's training: data from the ACKB, a word-level tokenizer, tiny models, two loops.

Why: `generation.demo_backbone` trains a small AnimateDiff-style latent video model on CPU in a few
minutes, so every piece here is sized for that and seeded for determinism:

- data: one (8-frame clip, prompt, negative prompt) per demo clip. The frames are read exactly as
  the motion prior reads a reference (`generation.reference_video.read_reference`: frames evenly over
  the whole clip, resized and centre-cropped), and the prompt is what `generation.prompt.build_prompt`
  writes when that clip is the best reference for its own selling point, so prompts and reference
  latents seen at inference are in the training distribution.
- tokenizer: CLIP's byte-level BPE with merges learned on those prompts (CLIP's pre-tokenizer, our
  deterministic learner), so a prompt is a few dozen word tokens and its camera motion, at the end,
  is not cut off at 77 tokens as it would be with a bytes-only vocabulary.
- models: an AutoencoderKL that downsamples by 4 (64x64 frames -> 16x16x4 latents), a 2-layer
  CLIP text encoder, a 2-block UNet2DConditionModel and a MotionAdapter (joined as UNetMotionModel).
- loops: the VAE first (L1 + a small KL), then the UNet and text encoder together on cached VAE
  posteriors with the v-prediction DDPM loss; the text is swapped for the clip's negative prompt
  (or "") some of the time, so classifier-free guidance with the negative prompt `generate` passes
  is in distribution too.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDPMScheduler, MotionAdapter, UNet2DConditionModel, UNetMotionModel
from tokenizers import pre_tokenizers
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from generation.prompt import build_prompt
from generation.reference_video import read_reference
from kb.graph import AckbGraph
from kdcvg.errors import BadInputError

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
MAX_TOKENS = 77  # CLIP's context length, what the pipeline pads and truncates to
TRAIN_TIMESTEPS = 1000
# Stable Diffusion's noise schedule. Its last timestep keeps a little signal (alpha_bar ~ 0.005),
# which the training-free motion prior relies on: a zero-SNR schedule would let the model ignore
# whatever the initial noise carries.
BETAS = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"}
PREDICTION = "v_prediction"
EVAL_TIMESTEPS = (100, 300, 500, 700, 900)  # where the held-out loss is measured

Progress = Callable[[str], None]


class DemoTrainingError(BadInputError):
    """The ACKB cannot be trained on: no clips with videos, or too few to hold one out."""


@dataclass(frozen=True)
class TrainingClip:
    """One training example: a clip's video and the prompts `build_prompt` writes for it."""

    clip_id: str
    video: Path
    prompt: str
    negative_prompt: str


def training_clips(graph: AckbGraph, max_clips: int | None = None) -> list[TrainingClip]:
    """Every clip with a video file and a selling point of its own product, in id order (first `max_clips`)."""
    illustrates: dict[str, str] = {}
    for row in graph.relationships["ILLUSTRATES"]:
        illustrates.setdefault(row["from"], row["to"])
    result: list[TrainingClip] = []
    for clip in graph.nodes["CreativeClip"]:
        video = graph.video_file(clip)
        sp = illustrates.get(clip["id"])
        product = graph.product_of_clip.get(clip["id"])
        if video is None or sp is None or product is None or graph.product_of_selling_point.get(sp) != product:
            continue
        plan = build_prompt(graph, product, sp, [clip["id"]])
        result.append(TrainingClip(clip["id"], video, plan.prompt, plan.negative_prompt))
        if max_clips is not None and len(result) >= max_clips:
            break
    return result


def training_data_hash(clips: Sequence[TrainingClip]) -> str:
    """SHA-256 over what training reads (clip ids, prompts, video bytes): other graph changes, such as
    recorded generations, do not call for retraining."""
    digest = hashlib.sha256()
    for clip in clips:
        digest.update(json.dumps([clip.clip_id, clip.prompt, clip.negative_prompt]).encode() + b"\n")
        digest.update(hashlib.sha256(clip.video.read_bytes()).digest())
    return digest.hexdigest()


def training_content_hash(clips: Sequence[TrainingClip]) -> str:
    """SHA-256 over the clip ids and prompts only: what the demo's spec decides.

    The demo clips' bytes depend on the video encoder's version as well as on the spec, so the shipped
    demo backbone is matched by this hash (a fresh install may encode the same clips to other bytes);
    a folder trained here is matched by `training_data_hash`, which also covers the bytes.
    """
    digest = hashlib.sha256()
    for clip in clips:
        digest.update(json.dumps([clip.clip_id, clip.prompt, clip.negative_prompt]).encode() + b"\n")
    return digest.hexdigest()


def load_frames(clips: Sequence[TrainingClip], frames: int, size: int) -> torch.Tensor:
    """(N, F, 3, size, size) float frames in [-1, 1], read as the motion prior reads a reference."""
    return torch.stack([read_reference(clip.video, frames, size, size) for clip in clips])


# --------------------------------------------------------------------------------------------
# Tokenizer


def _words(texts: Sequence[str]) -> Counter[str]:
    """Word counts after CLIP's own normalizer and pre-tokenizer (lower case, byte-level symbols)."""
    backend = CLIPTokenizer().backend_tokenizer
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(word for word, _ in backend.pre_tokenizer.pre_tokenize_str(backend.normalizer.normalize_str(text)))
    return counts


def learn_merges(texts: Sequence[str], min_count: int = 1) -> list[tuple[str, str]]:
    """BPE merges learned on `texts` (most frequent pair first, ties by the pair itself: deterministic).

    With `min_count` 1 every word of `texts` ends as one token; the merges on the way give sub-word
    pieces for words never seen.
    """
    words = {tuple(word[:-1]) + (word[-1] + "</w>",): count for word, count in _words(texts).items()}
    merges: list[tuple[str, str]] = []
    while True:
        pairs: Counter[tuple[str, str]] = Counter()
        for symbols, count in words.items():
            for pair in pairwise(symbols):
                pairs[pair] += count
        if not pairs:
            return merges
        best = min(pairs, key=lambda pair: (-pairs[pair], pair))
        if pairs[best] < min_count:
            return merges
        merges.append(best)
        joined = best[0] + best[1]
        merged: dict[tuple[str, ...], int] = {}
        for symbols, count in words.items():
            out: list[str] = []
            i = 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    out.append(joined)
                    i += 2
                else:
                    out.append(symbols[i])
                    i += 1
            merged[tuple(out)] = merged.get(tuple(out), 0) + count
        words = merged


def write_tokenizer(texts: Sequence[str], directory: Path) -> CLIPTokenizer:
    """Write a CLIP tokenizer (every byte, plus merges learned on `texts`) to `directory` and load it offline."""
    directory.mkdir(parents=True, exist_ok=True)
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    merges = learn_merges(texts)
    tokens = alphabet + [symbol + "</w>" for symbol in alphabet] + [a + b for a, b in merges] + [BOS, EOS]
    vocab = {token: index for index, token in enumerate(dict.fromkeys(tokens))}
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (directory / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")
    config = {"bos_token": BOS, "eos_token": EOS, "pad_token": EOS, "unk_token": EOS, "model_max_length": MAX_TOKENS}
    (directory / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return CLIPTokenizer.from_pretrained(directory, local_files_only=True)


def token_ids(tokenizer: CLIPTokenizer, texts: Sequence[str]) -> torch.Tensor:
    """Token ids padded and truncated to the context length, exactly as the AnimateDiff pipeline encodes a prompt."""
    return tokenizer(
        list(texts), padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
    ).input_ids


# --------------------------------------------------------------------------------------------
# Models


@dataclass(frozen=True)
class DemoModels:
    """The trainable parts of the pipeline."""

    vae: AutoencoderKL
    text_encoder: CLIPTextModel
    unet: UNet2DConditionModel
    motion_adapter: MotionAdapter


def build_models(tokenizer: CLIPTokenizer, seed: int, width: int = 32, text_width: int = 64) -> DemoModels:
    """Seeded, randomly initialised tiny models; `width` is the UNet's first block (the second has twice that)."""
    torch.manual_seed(seed)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1, norm_num_groups=16,
        block_out_channels=(16, 32, 64),  # three blocks: downsampling by 4
        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
    )  # fmt: skip
    torch.manual_seed(seed + 1)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer), hidden_size=text_width, intermediate_size=2 * text_width, num_hidden_layers=2,
            num_attention_heads=4, max_position_embeddings=MAX_TOKENS, layer_norm_eps=1e-5,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        )
    )  # fmt: skip
    blocks = (width, 2 * width)
    torch.manual_seed(seed + 2)
    unet = UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=blocks,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=text_width, attention_head_dim=8, norm_num_groups=8,
    )  # fmt: skip
    torch.manual_seed(seed + 3)
    motion_adapter = MotionAdapter(
        block_out_channels=blocks, motion_layers_per_block=1, motion_norm_num_groups=8, motion_num_attention_heads=4
    )
    return DemoModels(vae, text_encoder, unet, motion_adapter)


def parameter_count(*modules: torch.nn.Module) -> int:
    """Total parameters of the modules."""
    return sum(p.numel() for module in modules for p in module.parameters())


def _lr_at(step: int, steps: int, peak: float, warmup: int) -> float:
    """Linear warm-up, then cosine decay to a tenth of the peak."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def _set_lr(optimiser: torch.optim.Optimizer, lr: float) -> None:
    for group in optimiser.param_groups:
        group["lr"] = lr


# --------------------------------------------------------------------------------------------
# VAE


def psnr(vae: AutoencoderKL, frames: torch.Tensor, batch: int = 32) -> float:
    """PSNR (dB, pixels in [0, 1]) of `frames` (M, 3, H, W in [-1, 1]) decoded from their posterior means."""
    vae.eval()
    squared = 0.0
    with torch.no_grad():
        for start in range(0, len(frames), batch):
            x = frames[start : start + batch]
            y = vae.decode(vae.encode(x).latent_dist.mean).sample.clamp(-1, 1)
            squared += float(((y - x) / 2).pow(2).sum())
    mse = squared / frames.numel()
    return 10 * math.log10(1.0 / max(mse, 1e-12))


def train_vae(
    vae: AutoencoderKL, train: torch.Tensor, held_out: torch.Tensor, *, steps: int, batch: int, lr: float, seed: int,
    progress: Progress | None = None,
) -> dict[str, object]:  # fmt: skip
    """Train the VAE on frames (M, 3, H, W) with L1 + 1e-6·KL; held-out PSNR before and after, loss per step."""
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    before = psnr(vae, held_out)
    losses: list[float] = []
    started = time.perf_counter()
    vae.train()
    for step in range(steps):
        _set_lr(optimiser, _lr_at(step, steps, lr, warmup=max(1, steps // 20)))
        x = train[torch.randint(len(train), (batch,), generator=generator)]
        posterior = vae.encode(x).latent_dist
        y = vae.decode(posterior.sample(generator=generator)).sample
        loss = (y - x).abs().mean() + 1e-6 * posterior.kl().mean()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
        if progress and (step + 1) % max(1, steps // 5) == 0:
            progress(f"vae step {step + 1}/{steps}: loss {sum(losses[-20:]) / len(losses[-20:]):.4f}")
    seconds = time.perf_counter() - started
    after = psnr(vae, held_out)
    vae.eval()
    return {"losses": losses, "psnr_before": before, "psnr": after, "seconds": seconds}


@torch.no_grad()
def encode_posteriors(vae: AutoencoderKL, clips: torch.Tensor, batch: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior mean and std of (N, F, 3, H, W) clips, as (N, C, F, h, w) each (unscaled)."""
    n, f = clips.shape[:2]
    flat = clips.reshape(n * f, *clips.shape[2:])
    means, stds = [], []
    for start in range(0, len(flat), batch):
        dist = vae.encode(flat[start : start + batch]).latent_dist
        means.append(dist.mean)
        stds.append(dist.std)
    shape = lambda t: torch.cat(t).reshape(n, f, *t[0].shape[1:]).permute(0, 2, 1, 3, 4).contiguous()
    return shape(means), shape(stds)


def latent_scale(means: torch.Tensor) -> float:
    """1 / std of the latents: the VAE's `scaling_factor`, so the denoiser sees unit-variance latents."""
    return float(1.0 / means.std().clamp_min(1e-6))


# --------------------------------------------------------------------------------------------
# Denoiser


def training_scheduler() -> DDPMScheduler:
    """The DDPM schedule the denoiser is trained with (the saved DDIM scheduler uses the same betas)."""
    return DDPMScheduler(num_train_timesteps=TRAIN_TIMESTEPS, prediction_type=PREDICTION, clip_sample=False, **BETAS)


def _denoiser_loss(
    unet: UNetMotionModel, text_encoder: CLIPTextModel, scheduler: DDPMScheduler, latents: torch.Tensor,
    ids: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor,
) -> torch.Tensor:  # fmt: skip
    """v-prediction MSE for (B, C, F, h, w) latents under their token ids."""
    frames = latents.shape[2]
    context = text_encoder(ids)[0].repeat_interleave(frames, dim=0)  # per frame, as the pipeline does
    noisy = scheduler.add_noise(latents, noise, timesteps)
    target = scheduler.get_velocity(latents, noise, timesteps)
    prediction = unet(noisy, timesteps, encoder_hidden_states=context).sample
    return F.mse_loss(prediction, target)


def train_denoiser(
    unet: UNetMotionModel, text_encoder: CLIPTextModel, posteriors: tuple[torch.Tensor, torch.Tensor], scale: float,
    ids: torch.Tensor, null_ids: torch.Tensor, held_out: tuple[torch.Tensor, torch.Tensor], *, steps: int, batch: int,
    lr: float, seed: int, drop_negative: float = 0.1, drop_empty: float = 0.05, progress: Progress | None = None,
) -> dict[str, object]:  # fmt: skip
    """Train UNet + motion modules + text encoder; `null_ids[i]` (clip i's negative prompt) and "" (null_ids[-1]) replace the prompt sometimes.

    Returns the loss per step and the loss on the held-out clips (fixed noise, each clip at every
    timestep of `EVAL_TIMESTEPS`) before and after training: the second is the honest measure of learning.
    """
    scheduler = training_scheduler()
    generator = torch.Generator().manual_seed(seed)
    means, stds = posteriors
    params = list(unet.parameters()) + list(text_encoder.parameters())
    optimiser = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)

    eval_latents, eval_ids = (t.repeat_interleave(len(EVAL_TIMESTEPS), dim=0) for t in held_out)
    eval_t = torch.tensor(EVAL_TIMESTEPS).repeat(len(held_out[0]))
    eval_noise = torch.randn(eval_latents.shape, generator=torch.Generator().manual_seed(seed + 1))

    def evaluate() -> float:
        unet.eval()
        text_encoder.eval()
        with torch.no_grad():
            return float(_denoiser_loss(unet, text_encoder, scheduler, eval_latents, eval_ids, eval_noise, eval_t))

    before = evaluate()
    losses: list[float] = []
    started = time.perf_counter()
    for step in range(steps):
        unet.train()
        text_encoder.train()
        _set_lr(optimiser, _lr_at(step, steps, lr, warmup=max(1, steps // 20)))
        pick = torch.randint(len(means), (batch,), generator=generator)
        latents = (means[pick] + stds[pick] * torch.randn(means[pick].shape, generator=generator)) * scale
        draw = torch.rand(batch, generator=generator)
        batch_ids = ids[pick].clone()
        negative = draw < drop_negative
        empty = (draw >= drop_negative) & (draw < drop_negative + drop_empty)
        batch_ids[negative] = null_ids[pick][negative]
        batch_ids[empty] = null_ids[-1]
        noise = torch.randn(latents.shape, generator=generator)
        timesteps = torch.randint(TRAIN_TIMESTEPS, (batch,), generator=generator)
        loss = _denoiser_loss(unet, text_encoder, scheduler, latents, batch_ids, noise, timesteps)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimiser.step()
        losses.append(loss.item())
        if progress and (step + 1) % max(1, steps // 10) == 0:
            progress(f"denoiser step {step + 1}/{steps}: loss {sum(losses[-20:]) / len(losses[-20:]):.4f}")
    seconds = time.perf_counter() - started
    after = evaluate()
    unet.eval()
    text_encoder.eval()
    return {"losses": losses, "eval_loss_before": before, "eval_loss": after, "seconds": seconds}
