"""Image conditioning from a reference keyframe: a local IP-Adapter loaded into an AnimateDiff backbone.

Why: a second prior beside the motion prior. The retrieved reference clip's motion goes into the initial noise
(`generation.motion_prior`); its *look* can go in through IP-Adapter (Ye et al. 2023, "IP-Adapter:
Text Compatible Image Prompt Adapter"): a CLIP image embedding of the reference's middle keyframe,
projected to 4 extra cross-attention tokens that every spatial cross-attention layer attends to
with their own key/value weights, added at `scale`. Scale 0 contributes exactly nothing.

The adapter is a local copy in h94/IP-Adapter's layout, found from `Settings.ip_adapter`
(`KDCVG_IP_ADAPTER`): either the weights file itself (`.../models/ip-adapter_sd15.safetensors`,
with `image_encoder/` beside it) or a folder holding one `ip-adapter*.safetensors|.bin` file and
`image_encoder/` (directly or in `models/`). Loading goes through diffusers' `load_ip_adapter`,
offline (`local_files_only=True`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from diffusers import DiffusionPipeline
from PIL import Image

from generation.reference_video import decode_frames
from kdcvg.errors import BadInputError

WEIGHT_SUFFIXES = (".safetensors", ".bin")
IMAGE_ENCODER = "image_encoder"


class IPAdapterError(BadInputError):
    """The IP-Adapter cannot be used: files missing, unreadable, or no adapter loaded for an image."""


@dataclass(frozen=True)
class IPAdapterFiles:
    """Where an adapter's weights lie, in the (root, subfolder, weight_name) terms `load_ip_adapter` takes."""

    root: Path
    subfolder: str
    weight_name: str

    @property
    def weights(self) -> Path:
        """The weights file."""
        return self.root / self.subfolder / self.weight_name


def locate_ip_adapter(path: str | Path) -> IPAdapterFiles:
    """Find the weights file and its `image_encoder/` for a configured adapter path (file or folder)."""
    path = Path(path)
    if path.is_file():
        weights = path
    elif path.is_dir():
        folder = path / "models" if (path / "models").is_dir() and not (path / IMAGE_ENCODER).is_dir() else path
        candidates = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
        if len(candidates) != 1:
            raise IPAdapterError(
                f"IP-Adapter folder {folder} must hold exactly one weights file (*.safetensors or *.bin), "
                f"found {len(candidates)}; point KDCVG_IP_ADAPTER at the file to choose"
            )
        weights = candidates[0]
    else:
        raise IPAdapterError(f"IP-Adapter {path} does not exist")
    if not (weights.parent / IMAGE_ENCODER / "config.json").is_file():
        raise IPAdapterError(f"IP-Adapter {weights}: no {IMAGE_ENCODER}/ (CLIP vision model) beside the weights")
    return IPAdapterFiles(weights.parent.parent, weights.parent.name, weights.name)


def load_ip_adapter(pipe: DiffusionPipeline, path: str | Path) -> IPAdapterFiles:
    """Load the adapter and its image encoder into `pipe` offline; remembered on the pipeline for generation."""
    files = locate_ip_adapter(path)
    try:
        pipe.load_ip_adapter(
            str(files.root), subfolder=files.subfolder, weight_name=files.weight_name,
            image_encoder_folder=IMAGE_ENCODER, local_files_only=True,
        )  # fmt: skip
    except (OSError, ValueError, KeyError, RuntimeError) as error:
        raise IPAdapterError(f"IP-Adapter {files.weights} cannot be loaded ({error})") from error
    pipe.kdcvg_ip_adapter = files
    return files


def loaded_ip_adapter(pipe: DiffusionPipeline) -> IPAdapterFiles | None:
    """The adapter `load_ip_adapter` put into `pipe`, if any."""
    return getattr(pipe, "kdcvg_ip_adapter", None)


def middle_keyframe(video_path: str | Path) -> Image.Image:
    """The middle frame of a clip as an RGB PIL image (the reference's most representative still)."""
    frames = decode_frames(video_path)
    return Image.fromarray(frames[len(frames) // 2])


def ip_adapter_call_kwargs(pipe: DiffusionPipeline, image: Image.Image | np.ndarray | None, scale: float) -> dict[str, Any]:
    """Pipeline arguments for image conditioning; {} without an adapter, and an adapter-less pipeline's output for scale 0.

    A pipeline with an adapter loaded needs an image on every call (its UNet expects image tokens),
    so without one a black image is passed at scale 0, whose contribution is exactly zero.
    """
    if not 0.0 <= float(scale) <= 1.0:
        raise IPAdapterError(f"ip_adapter_scale must be in [0, 1], got {scale}")
    if loaded_ip_adapter(pipe) is None:
        if image is not None:
            raise IPAdapterError("ip_adapter_image needs a backbone loaded with an IP-Adapter (Settings.ip_adapter)")
        return {}
    if image is None:
        size = pipe.image_encoder.config.image_size
        image, scale = Image.new("RGB", (size, size)), 0.0
    pipe.set_ip_adapter_scale(float(scale))
    return {"ip_adapter_image": image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))}
