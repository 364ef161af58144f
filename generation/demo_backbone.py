"""Train the small demo backbone on the demo ACKB's clips, on CPU, and save it as a diffusers AnimateDiff folder.

Why: no pretrained text-to-video weights can be downloaded here, yet `kdcvg generate` needs a
backbone whose videos show something. `train_demo_backbone` trains a tiny latent video model
(VAE, CLIP text encoder, UNet + motion modules; see `generation.demo_training`) on the clips the
ACKB holds, in minutes, deterministically for a seed, and writes a complete AnimateDiffPipeline
folder that `generation.backbones.load_backbone` loads like any other, with `card.json` beside it
(data hash, config, losses, PSNR, sizes). It is a demo model trained on synthetic clips, not a
real text-to-video model.

The folder is written to a temporary sibling and renamed into place; a folder whose card has the
same training-data hash (clips, prompts, video bytes: recording generations in the graph does not
count) and config is left alone (`up_to_date`), as `kdcvg retrieval train --if-changed` does for SAR.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import AnimateDiffPipeline, DDIMScheduler, UNetMotionModel

from generation import DEMO_MODEL_DIR
from generation.backbones import BackboneError, detect_family
from generation.demo_training import (
    BETAS,
    PREDICTION,
    TRAIN_TIMESTEPS,
    DemoModels,
    DemoTrainingError,
    Progress,
    TrainingClip,
    build_models,
    encode_posteriors,
    latent_scale,
    load_frames,
    parameter_count,
    token_ids,
    train_denoiser,
    train_vae,
    training_clips,
    training_content_hash,
    training_data_hash,
    write_tokenizer,
)
from kb.backends import open_store
from kb.graph import AckbGraph, graph_from_store
from kb.timestamps import utc_now
from kdcvg.config import Settings

CARD = "card.json"
# The default training run's result on the default demo ACKB, trained by this module (2026-11-25, 24 min
# on 2 CPU cores) and shipped so `make demo` need not repeat it: installed only when its card's data
# hash and config equal what training would use now; otherwise training runs.
SHIPPED_DIR = DEMO_MODEL_DIR
FORMAT_VERSION = 1  # bump when the training recipe changes, so --if-changed retrains
HELD_OUT_EVERY = 10  # clips 0, 10, 20, ... are held out for the PSNR and loss measurements
EVAL_CLIPS = 8  # held-out clips in the denoiser's loss measurement (it runs twice; kept cheap)
STATEMENT = (
    "A tiny demo model (about two million parameters) trained for minutes on CPU on the demo ACKB's synthetic "
    "clips (drawn products over photographs, filmed by scripted camera paths). It is not a real text-to-video "
    "model: expect blurry, mottled 64x64 clips in which the demo products are at best roughly recognisable."
)


@dataclass(frozen=True)
class DemoBackboneConfig:
    """Everything that decides the trained weights (with the data): compared by --if-changed."""

    steps: int = 900
    vae_steps: int = 450
    seed: int = 0
    size: int = 64
    frames: int = 8
    batch: int = 4
    vae_batch: int = 16
    lr: float = 1e-3
    vae_lr: float = 2e-3
    width: int = 32
    max_clips: int | None = None
    # One thread by default: on cores shared with other processes, two OpenMP threads were measured
    # 4.6x SLOWER than one (they spin-wait for each other); pass 2 on an idle machine.
    threads: int = 1
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        """Reject values the models or the pipeline cannot use."""
        if self.steps < 1 or self.vae_steps < 1:
            raise DemoTrainingError(f"steps and vae_steps must be at least 1, got {self.steps} and {self.vae_steps}")
        if self.size < 32 or self.size % 16:
            raise DemoTrainingError(f"size must be a multiple of 16, at least 32, got {self.size}")
        if not 2 <= self.frames <= 32:
            raise DemoTrainingError(f"frames must be in 2..32, got {self.frames}")
        if self.batch < 1 or self.vae_batch < 1 or self.threads < 1 or self.width < 8 or self.width % 8:
            raise DemoTrainingError("batch, vae_batch and threads must be positive; width a multiple of 8")
        if self.max_clips is not None and self.max_clips < 2:
            raise DemoTrainingError(f"max_clips must be at least 2 (one is held out), got {self.max_clips}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values."""
        return asdict(self)


def read_card(out_dir: Path) -> dict[str, Any] | None:
    """The card of a trained folder, or None when there is none (or it is unreadable)."""
    try:
        return json.loads((Path(out_dir) / CARD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def shipped_fits(content_hash: str, config: DemoBackboneConfig) -> bool:
    """True when the shipped backbone was trained on these clip ids and prompts with this config (bytes aside)."""
    card = read_card(SHIPPED_DIR)
    return card is not None and card.get("content_hash") == content_hash and card.get("config") == config.to_dict()


def up_to_date(out_dir: Path, data_hash: str, config: DemoBackboneConfig) -> bool:
    """True when `out_dir` is a loadable pipeline folder trained on this data with this config."""
    card = read_card(out_dir)
    if card is None or card.get("data_hash") != data_hash or card.get("config") != config.to_dict():
        return False
    try:
        detect_family(out_dir)
    except BackboneError:
        return False
    return True


def load_graph(settings: Settings) -> AckbGraph:
    """The whole ACKB from the configured store (read-only), with clip videos under the media folder."""
    if settings.store_backend == "ladybug" and not settings.ladybug_path.exists():
        raise DemoTrainingError(f"no ACKB at {settings.ladybug_path}: build the demo first with `kdcvg kb demo`")
    with open_store(settings, read_only=True) as store:
        return graph_from_store(store, settings.media_dir)


def train_demo_backbone(
    settings: Settings,
    out_dir: Path | None = None,
    *,
    steps: int = DemoBackboneConfig.steps,
    seed: int = 0,
    size: int = 64,
    frames: int = 8,
    vae_steps: int = DemoBackboneConfig.vae_steps,
    max_clips: int | None = None,
    threads: int = DemoBackboneConfig.threads,
    force: bool = False,
    graph: AckbGraph | None = None,
    progress: Progress | None = None,
) -> Path:
    """Train on the ACKB's clips and write the pipeline folder (default `settings.generation_model_dir`); returns it.

    Without `force`, a folder already trained on the same data with the same config is returned as is.
    """
    out_dir = Path(out_dir or settings.generation_model_dir)
    config = DemoBackboneConfig(
        steps=steps, vae_steps=vae_steps, seed=seed, size=size, frames=frames, max_clips=max_clips, threads=threads
    )
    graph = graph if graph is not None else load_graph(settings)
    clips = training_clips(graph, max_clips)
    data_hash = training_data_hash(clips)
    if not force and up_to_date(out_dir, data_hash, config):
        return out_dir
    if not force and out_dir.resolve() != SHIPPED_DIR and shipped_fits(training_content_hash(clips), config):
        (progress or (lambda message: None))(f"installing the shipped demo backbone ({SHIPPED_DIR}): same clips and prompts, same options")
        return install_folder(SHIPPED_DIR, out_dir)
    if len(clips) < 2:
        raise DemoTrainingError(
            f"the ACKB has {len(clips)} clip(s) with a video file under {settings.media_dir} and a selling point of their product; "
            "training needs at least 2 (build the demo with `kdcvg kb demo`)"
        )
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        return _train_and_save(clips, data_hash, config, out_dir, progress)
    finally:
        torch.set_num_threads(previous_threads)


def _train_and_save(
    clips: list[TrainingClip], data_hash: str, config: DemoBackboneConfig, out_dir: Path, progress: Progress | None
) -> Path:
    """Both training stages, then the atomic write of pipeline + card."""
    say = progress or (lambda message: None)
    started = time.perf_counter()
    held = [i for i in range(len(clips)) if i % HELD_OUT_EVERY == 0]
    train_index = [i for i in range(len(clips)) if i % HELD_OUT_EVERY != 0]
    say(f"reading {len(clips)} clips ({config.frames} frames, {config.size}x{config.size}); {len(held)} held out")
    t = time.perf_counter()
    videos = load_frames(clips, config.frames, config.size)
    read_s = time.perf_counter() - t

    with staged(out_dir) as staging:
        tokenizer = write_tokenizer([text for c in clips for text in (c.prompt, c.negative_prompt)], staging / ".tokenizer")
        models = build_models(tokenizer, config.seed, width=config.width)

        flat = lambda index: videos[index].reshape(-1, 3, config.size, config.size)
        vae_report = train_vae(
            models.vae, flat(train_index), flat(held), steps=config.vae_steps, batch=config.vae_batch, lr=config.vae_lr,
            seed=config.seed, progress=say,
        )  # fmt: skip
        say(f"vae: held-out PSNR {vae_report['psnr_before']:.2f} -> {vae_report['psnr']:.2f} dB in {vae_report['seconds']:.0f} s")
        means, stds = encode_posteriors(models.vae, videos)
        scale = latent_scale(means[train_index])
        models.vae.register_to_config(scaling_factor=scale)

        ids = token_ids(tokenizer, [c.prompt for c in clips])
        null_ids = token_ids(tokenizer, [c.negative_prompt for c in clips] + [""])
        unet = UNetMotionModel.from_unet2d(models.unet, models.motion_adapter)
        denoiser_report = train_denoiser(
            unet, models.text_encoder, (means[train_index], stds[train_index]), scale, ids[train_index],
            torch.cat([null_ids[train_index], null_ids[-1:]]), (means[held[:EVAL_CLIPS]] * scale, ids[held[:EVAL_CLIPS]]),
            steps=config.steps, batch=config.batch, lr=config.lr, seed=config.seed, progress=say,
        )  # fmt: skip
        say(
            f"denoiser: held-out loss {denoiser_report['eval_loss_before']:.4f} -> {denoiser_report['eval_loss']:.4f} in {denoiser_report['seconds']:.0f} s"
        )

        models.motion_adapter.load_state_dict({k: v for k, v in unet.state_dict().items() if "motion_modules" in k})
        pipe = AnimateDiffPipeline(
            vae=models.vae, text_encoder=models.text_encoder, tokenizer=tokenizer, unet=unet,
            motion_adapter=models.motion_adapter, scheduler=inference_scheduler(), feature_extractor=None, image_encoder=None,
        )  # fmt: skip
        shutil.rmtree(staging / ".tokenizer")
        pipe.save_pretrained(staging)
        card = _card(
            clips,
            data_hash,
            config,
            vae_report,
            denoiser_report,
            scale,
            models,
            unet,
            read_s,
            time.perf_counter() - started,
            staging,
        )
        (staging / CARD).write_text(json.dumps(card, indent=2), encoding="utf-8")
    say(f"saved {out_dir} ({card['size_bytes'] / 1e6:.1f} MB) in {card['train_seconds']:.0f} s")
    return out_dir


def inference_scheduler() -> DDIMScheduler:
    """DDIM with the training betas; "trailing" spacing so a 4-step run starts at the last training timestep."""
    return DDIMScheduler(
        num_train_timesteps=TRAIN_TIMESTEPS, prediction_type=PREDICTION, clip_sample=False, set_alpha_to_one=False,
        steps_offset=1, timestep_spacing="trailing", **BETAS,
    )  # fmt: skip


def folder_size(directory: Path) -> int:
    """Bytes of every file under `directory`."""
    return sum(p.stat().st_size for p in Path(directory).rglob("*") if p.is_file())


def _card(
    clips: list[TrainingClip], data_hash: str, config: DemoBackboneConfig, vae_report: dict, denoiser_report: dict, scale: float,
    models: DemoModels, unet: UNetMotionModel, read_s: float, total_s: float, folder: Path,
) -> dict[str, Any]:  # fmt: skip
    """The JSON card: what it was trained on and how, the measured figures, and what it is not."""
    window = lambda losses: sum(losses[-20:]) / len(losses[-20:])
    return {
        "model": "kdcvg-mkr-demo",
        "statement": STATEMENT,
        "created_at": utc_now(),
        "data_hash": data_hash,  # of the training clips, prompts and video bytes (generation.demo_training.training_data_hash)
        "content_hash": training_content_hash(clips),  # clip ids and prompts only (generation.demo_training.training_content_hash)
        "config": config.to_dict(),
        "clips": {"train": len(clips) - len(range(0, len(clips), HELD_OUT_EVERY)), "held_out": len(range(0, len(clips), HELD_OUT_EVERY))},
        "vae": {
            "held_out_psnr_db": vae_report["psnr"], "held_out_psnr_db_untrained": vae_report["psnr_before"],
            "first_loss": vae_report["losses"][0], "final_loss": window(vae_report["losses"]), "seconds": vae_report["seconds"],
            "scaling_factor": scale,
        },
        "denoiser": {
            "prediction_type": PREDICTION, "held_out_loss": denoiser_report["eval_loss"],
            "held_out_loss_untrained": denoiser_report["eval_loss_before"], "first_loss": denoiser_report["losses"][0],
            "final_loss": window(denoiser_report["losses"]), "seconds": denoiser_report["seconds"],
        },
        "parameters": {
            "vae": parameter_count(models.vae), "text_encoder": parameter_count(models.text_encoder),
            "unet_with_motion_modules": parameter_count(unet), "motion_adapter": parameter_count(models.motion_adapter),
        },
        "read_seconds": read_s,
        "train_seconds": total_s,
        "threads": config.threads,
        "size_bytes": folder_size(folder),
    }  # fmt: skip


def install_folder(source: Path, out_dir: Path) -> Path:
    """Copy a trained folder to `out_dir` atomically."""
    with staged(out_dir) as staging:
        shutil.copytree(source, staging, dirs_exist_ok=True)
    return out_dir


@contextmanager
def staged(out_dir: Path) -> Iterator[Path]:
    """A staging folder beside `out_dir`: moved into place when the block succeeds, removed when it fails."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        yield staging
        staging.chmod(0o755)
        _replace_dir(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _replace_dir(staging: Path, out_dir: Path) -> None:
    """Move `staging` to `out_dir`, replacing an older folder there only once the new one is complete."""
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        os.replace(out_dir, old)
        os.replace(staging, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, out_dir)
