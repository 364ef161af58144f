"""`kdcvg generation train-demo`: train the small demo backbone on the ACKB's clips (registered by cli.generation).

The folder goes to `--out`, else `Settings.generation_model_dir` (`<data>/models/mkr-demo`); by
default a folder already trained on the same data with the same options is left alone.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from cli.common import err, handled_errors, out, settings


def train_demo(
    steps: Annotated[
        Optional[int],
        typer.Option(
            min=1,
            help="Denoiser training steps (default: DemoBackboneConfig's, 900: about 17 min on 2 CPU cores; fewer give worse pictures).",
        ),
    ] = None,
    vae_steps: Annotated[
        Optional[int], typer.Option(min=1, help="VAE training steps, before the denoiser (default: DemoBackboneConfig's, 450).")
    ] = None,
    seed: Annotated[int, typer.Option(min=0, help="Seed for initialisation, sampling and noise.")] = 0,
    threads: Annotated[
        int, typer.Option(min=1, help="CPU threads for torch (1: best on shared cores; 2 on an idle 2-core machine).")
    ] = 1,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Output folder (default: <data>/models/mkr-demo).")] = None,
    if_changed: Annotated[
        bool, typer.Option("--if-changed/--force", help="Skip when the folder was trained on these clips with these options.")
    ] = True,
) -> None:
    """Train a tiny AnimateDiff-style model (VAE, text encoder, UNet + motion modules) on the demo clips, on CPU."""
    from generation.demo_backbone import SHIPPED_DIR, read_card, train_demo_backbone

    config = settings()
    target = out_dir or config.generation_model_dir
    before = read_card(target)
    started = time.perf_counter()
    say = (
        (lambda message: err.print(f"[{time.perf_counter() - started:5.0f} s] {message}", highlight=False))
        if sys.stderr.isatty()
        else None
    )
    with handled_errors():
        chosen = {name: value for name, value in (("steps", steps), ("vae_steps", vae_steps)) if value is not None}
        path = train_demo_backbone(config, target, seed=seed, threads=threads, force=not if_changed, progress=say, **chosen)
    card = read_card(path) or {}
    if before is not None and card == before:
        out.print(f"demo backbone {path} was trained on this ACKB's clips with these options: nothing to do", highlight=False)
        return
    vae, denoiser = card.get("vae", {}), card.get("denoiser", {})
    figures = (
        f"VAE held-out PSNR {vae.get('held_out_psnr_db', float('nan')):.1f} dB; denoiser held-out loss "
        f"{denoiser.get('held_out_loss_untrained', float('nan')):.3f} -> {denoiser.get('held_out_loss', float('nan')):.3f}"
    )
    if card == read_card(SHIPPED_DIR):
        out.print(f"installed the shipped demo backbone, trained by this command on these same clips ({figures})", highlight=False)
    else:
        out.print(f"trained in {card.get('train_seconds', 0):.0f} s: {figures}", highlight=False)
    out.print(
        f"demo backbone: {path} ({card.get('size_bytes', 0) / 1e6:.1f} MB; a tiny demo model, not a real text-to-video model)",
        highlight=False,
    )
    print(f'next: kdcvg generate --product prod-thermopeak-insulated-bottle --selling-point "Leak-proof lid" --model {path}')
