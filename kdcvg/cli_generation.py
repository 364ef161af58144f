"""`kdcvg generate`: a knowledge-referenced video for a product's selling point (registered by kdcvg.cli)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from kdcvg.cli_common import out, settings
from kdcvg.cli_retrieval import retrieval_errors


def generate(
    product: Annotated[str, typer.Option(help="Product id.")],
    selling_point: Annotated[str, typer.Option("--selling-point", help="Selling point id, or its exact text.")],
    model: Annotated[Path, typer.Option(envvar="KDCVG_GENERATION_MODEL", help="Local diffusers pipeline directory.")],
    k: Annotated[int, typer.Option("-k", help="Reference clips retrieved (1-100).")] = 3,
    seed: Annotated[int, typer.Option(min=0)] = 0,
    motion_strength: Annotated[float, typer.Option(help="0 = plain text-to-video; 1 = strongest motion prior.")] = 0.5,
    frames: Annotated[int, typer.Option(help="Frames (1-64).")] = 8,
    size: Annotated[int, typer.Option(help="Width and height in pixels (multiple of 8).")] = 64,
    steps: Annotated[int, typer.Option(help="Denoising steps.")] = 4,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Retrieve reference clips, build the prompt, generate with their motion, record provenance."""
    from generation.api import generate as run

    with retrieval_errors():
        result = run(
            product, selling_point, model_dir=model, k=k, seed=seed, motion_strength=motion_strength,
            num_frames=frames, height=size, width=size, steps=steps, settings=settings(),
        )  # fmt: skip
    if as_json:
        payload = {**asdict(result), "video_path": str(result.video_path), "sidecar_path": str(result.sidecar_path)}
        print(json.dumps(payload, indent=2, ensure_ascii=False, default=str))
        return
    out.print(f"video: {result.video_path}", highlight=False)
    out.print(f"prompt: {result.prompt.prompt}", highlight=False)
    out.print(f"references: {', '.join(result.reference_clips)}; provenance: GeneratedVideo {result.video_id}", highlight=False)
