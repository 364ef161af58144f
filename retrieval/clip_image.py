"""CLIP image and text embeddings from open_clip, loaded from a LOCAL checkpoint file only.

`OpenClipEncoder(model_name, checkpoint)` builds the open_clip architecture `model_name` (one of
`open_clip.list_models()`, e.g. "ViT-B-32") on CPU and loads the weights from `checkpoint`, a file
on this machine (a state dict saved with `torch.save`, or an open_clip training checkpoint). It
never downloads: no pretrained tags, no `hf-hub:` names. A clip's image embedding is the mean of
its KEYFRAMES (evenly spaced) frame embeddings, each L2-normalised, then normalised again; a clip
without a video gets a zero row. Text embeddings use open_clip's tokenizer for the model (the
default SimpleTokenizer ships its BPE vocabulary inside the package: offline).

Configured by `Settings.clip_model_name` / `Settings.clip_checkpoint` (env `KDCVG_CLIP_MODEL`,
`KDCVG_CLIP_CHECKPOINT`); `clip_encoder_from_settings` gives the encoder, or None when unset.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kb.interchange import sha256_file
from kdcvg.errors import BadInputError, MissingFileError

if TYPE_CHECKING:
    from kdcvg.config import Settings

KEYFRAMES = 3


def _normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


def keyframes(path: Path, count: int = KEYFRAMES) -> np.ndarray:
    """(≤count, H, W, 3) uint8: `count` evenly spaced frames of a video (fewer if it is shorter)."""
    import imageio.v3 as iio

    frames = iio.imread(path, index=None)
    if len(frames) == 0:
        return np.zeros((0, 1, 1, 3), dtype=np.uint8)
    picks = np.linspace(0, len(frames) - 1, min(count, len(frames))).round().astype(int)
    return frames[picks][..., :3]


class OpenClipEncoder:
    """An open_clip model on CPU with weights from a local file: image and text embeddings."""

    def __init__(self, model_name: str, checkpoint: Path, *, batch_size: int = 32) -> None:
        checkpoint = Path(checkpoint).expanduser()
        if not checkpoint.is_file():
            raise MissingFileError(
                f"CLIP checkpoint {checkpoint} does not exist (KDCVG_CLIP_CHECKPOINT must name a local open_clip weights file)"
            )
        import open_clip

        known = open_clip.list_models()
        if model_name not in known:
            raise BadInputError(
                f"unknown open_clip model {model_name!r} (KDCVG_CLIP_MODEL): use one of open_clip.list_models(), "
                f"e.g. {', '.join(known[:5])} … ({len(known)} in all)"
            )
        self.model_name = model_name
        self.checkpoint = checkpoint.resolve()
        self.batch_size = batch_size
        self._model, self._preprocess = self._load()

    def _load(self):  # noqa: ANN202 - open_clip types are imported lazily
        import open_clip  # the weights come from the local checkpoint file: nothing is downloaded

        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                self.model_name, pretrained=str(self.checkpoint), device="cpu", pretrained_text=False
            )
        except (RuntimeError, AssertionError, KeyError) as exc:  # the weights do not fit the architecture
            raise BadInputError(f"cannot load CLIP checkpoint {self.checkpoint} as {self.model_name!r}: {exc}") from None
        model.eval()
        return model, preprocess

    @cached_property
    def _tokenizer(self):  # noqa: ANN202
        import open_clip

        return open_clip.get_tokenizer(self.model_name)

    @cached_property
    def dim(self) -> int:
        import open_clip

        return int(open_clip.get_model_config(self.model_name)["embed_dim"])

    @cached_property
    def identity(self) -> str:
        """Names the model in cache keys: model name and the checkpoint's SHA-256 prefix."""
        return f"{self.model_name}-{sha256_file(self.checkpoint)[:16]}"

    def encode_images(self, images: np.ndarray) -> np.ndarray:
        """(N, dim) float32, L2-normalised embeddings of (N, H, W, 3) uint8 images."""
        import torch
        from PIL import Image

        if len(images) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        batches = []
        with torch.no_grad():
            for start in range(0, len(images), self.batch_size):
                chunk = torch.stack([self._preprocess(Image.fromarray(image)) for image in images[start : start + self.batch_size]])
                batches.append(self._model.encode_image(chunk).float().numpy())
        return _normalise(np.concatenate(batches))

    def encode_videos(self, paths: list[Path | None]) -> np.ndarray:
        """(N, dim) float32: per video the normalised mean of its keyframes' embeddings; zeros for None."""
        result = np.zeros((len(paths), self.dim), dtype=np.float32)
        for i, path in enumerate(paths):
            if path is None:
                continue
            frames = keyframes(Path(path))
            if len(frames):
                result[i] = _normalise(self.encode_images(frames).mean(axis=0))
        return result

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """(N, dim) float32, L2-normalised; an empty list gives (0, dim)."""
        import torch

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        batches = []
        with torch.no_grad():
            for start in range(0, len(texts), self.batch_size):
                tokens = self._tokenizer(list(texts[start : start + self.batch_size]))
                batches.append(self._model.encode_text(tokens).float().numpy())
        return _normalise(np.concatenate(batches))


def clip_encoder_from_settings(settings: Settings) -> OpenClipEncoder | None:
    """The configured CLIP encoder, or None when no local checkpoint is configured (the fallback)."""
    if settings.clip_model_name is None or settings.clip_checkpoint is None:
        return None
    return OpenClipEncoder(settings.clip_model_name, settings.clip_checkpoint)
