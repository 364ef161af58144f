"""open_clip clip features with a real (tiny, random-weight) model loaded from a local checkpoint file.

No hub and no mocks: a tiny open_clip architecture is registered from a JSON config, created with
random weights, saved with `torch.save`, and loaded back through `OpenClipEncoder` from that path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import pytest
import torch

from kb.demo.build import build_demo_ackb
from kb.graph import graph_from_directory
from kdcvg.config import ConfigError, load_settings
from retrieval.clip_image import OpenClipEncoder, clip_encoder_from_settings
from retrieval.features import VISUAL_DIM, TextEncoder, build_features
from retrieval.hetero import to_heterodata

TINY = "KdcvgTinyClip"
TINY_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 4, "layers": 2},
}
PRODUCTS = ["aquasonic-electric-toothbrush", "airbeat-wireless-earbuds"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny open_clip model with random weights, saved as a local state-dict file."""
    base = tmp_path_factory.mktemp("clip")
    (base / "configs").mkdir()
    (base / "configs" / f"{TINY}.json").write_text(json.dumps(TINY_CONFIG))
    open_clip.add_model_config(base / "configs")
    torch.manual_seed(0)
    model = open_clip.create_model(TINY)
    path = base / "ckpt.pt"
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def clip_encoder(checkpoint: Path) -> OpenClipEncoder:
    return OpenClipEncoder(TINY, checkpoint)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("clipdemo")
    build_demo_ackb(base / "ackb", products=PRODUCTS, limit_clips_per_product=2, progress=False, workers=1)
    return {"graph": graph_from_directory(base / "ackb"), "base": base, "encoder": TextEncoder()}


def test_videos_give_unit_deterministic_embeddings_and_missing_video_zeros(clip_encoder: OpenClipEncoder, demo: dict[str, Any]) -> None:
    graph = demo["graph"]
    paths = [graph.video_file(row) for row in graph.nodes["CreativeClip"]]
    assert len(paths) == 4 and all(p is not None for p in paths)
    vectors = clip_encoder.encode_videos([*paths, None])
    assert vectors.shape == (5, 32) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors[:4], axis=1), 1.0, atol=1e-5)
    assert not vectors[4].any()  # no video: zero row
    assert not np.allclose(vectors[0], vectors[2])  # different products' clips look different
    assert np.array_equal(vectors[:4], clip_encoder.encode_videos(paths))  # deterministic
    again = OpenClipEncoder(TINY, clip_encoder.checkpoint)  # a fresh load of the same file
    assert np.allclose(again.encode_videos(paths[:1]), vectors[:1], atol=1e-6)
    assert clip_encoder.encode_videos([]).shape == (0, 32)


def test_texts_are_tokenized_offline_and_normalised(clip_encoder: OpenClipEncoder) -> None:
    texts = clip_encoder.encode_texts(["leak-proof lid", "30-hour battery life", "leak-proof lid"])
    assert texts.shape == (3, 32) and texts.dtype == np.float32
    assert np.allclose(np.linalg.norm(texts, axis=1), 1.0, atol=1e-5)
    assert np.allclose(texts[0], texts[2]) and not np.allclose(texts[0], texts[1])
    assert clip_encoder.encode_texts([]).shape == (0, 32)


def test_identity_names_model_and_checkpoint_content(clip_encoder: OpenClipEncoder, checkpoint: Path, tmp_path: Path) -> None:
    assert clip_encoder.identity.startswith(f"{TINY}-") and len(clip_encoder.identity) == len(TINY) + 17
    torch.manual_seed(1)
    other = tmp_path / "other.pt"
    torch.save(open_clip.create_model(TINY).state_dict(), other)
    assert OpenClipEncoder(TINY, other).identity != clip_encoder.identity


def test_build_features_appends_clip_columns_and_keys_the_cache(clip_encoder: OpenClipEncoder, demo: dict[str, Any], tmp_path: Path) -> None:
    graph, encoder = demo["graph"], demo["encoder"]
    cache = tmp_path / "cache"
    plain = build_features(graph, encoder, cache)
    with_clip = build_features(graph, encoder, cache, clip_encoder=clip_encoder)
    clips, sps = len(graph.nodes["CreativeClip"]), len(graph.nodes["SellingPoint"])
    assert plain["CreativeClip.visual"].shape == (clips, VISUAL_DIM) and "CreativeClip.clip_image" not in plain
    assert with_clip["CreativeClip.visual"].shape == (clips, VISUAL_DIM + 32)
    assert np.array_equal(with_clip["CreativeClip.visual"][:, :VISUAL_DIM], plain["CreativeClip.visual"])  # fallback kept as is
    assert np.array_equal(with_clip["CreativeClip.visual"][:, VISUAL_DIM:], with_clip["CreativeClip.clip_image"])
    assert with_clip["CreativeClip.clip_image"].shape == (clips, 32)
    assert with_clip["SellingPoint.clip_text"].shape == (sps, 32)
    names = sorted(p.name for p in cache.glob("features-*.npz"))
    assert len(names) == 2 and sum(clip_encoder.identity in name for name in names) == 1  # separate cache entries
    cached = build_features(graph, encoder, cache, clip_encoder=clip_encoder)
    assert cached.keys() == with_clip.keys() and all(np.array_equal(cached[k], with_clip[k]) for k in cached)
    data = to_heterodata(graph, with_clip, set(graph.ids("SellingPoint")))  # the model's clip input grows
    assert data["CreativeClip"].x.shape[1] == 384 + VISUAL_DIM + 32


def test_settings_need_model_and_checkpoint_together(checkpoint: Path, tmp_path: Path) -> None:
    no_file = tmp_path / "absent.toml"
    assert clip_encoder_from_settings(load_settings({}, config_file=no_file)) is None
    for env in ({"KDCVG_CLIP_MODEL": TINY}, {"KDCVG_CLIP_CHECKPOINT": str(checkpoint)}):
        with pytest.raises(ConfigError, match="KDCVG_CLIP_MODEL.*KDCVG_CLIP_CHECKPOINT.*together"):
            load_settings(env, config_file=no_file)
    settings = load_settings({"KDCVG_CLIP_MODEL": TINY, "KDCVG_CLIP_CHECKPOINT": str(checkpoint)}, config_file=no_file)
    assert settings.clip_model_name == TINY and settings.clip_checkpoint == checkpoint
    encoder = clip_encoder_from_settings(settings)
    assert isinstance(encoder, OpenClipEncoder) and encoder.checkpoint == checkpoint.resolve()


def test_missing_checkpoint_and_unknown_model_are_clear_errors(checkpoint: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope.pt"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        OpenClipEncoder(TINY, missing)
    with pytest.raises(ValueError, match=r"unknown open_clip model 'No-Such-Model'.*open_clip\.list_models\(\)"):
        OpenClipEncoder("No-Such-Model", checkpoint)
    with pytest.raises(ValueError, match="unknown open_clip model"):
        OpenClipEncoder(f"hf-hub:laion/{TINY}", checkpoint)  # hub names are never fetched
    with pytest.raises(ValueError, match="cannot load CLIP checkpoint"):
        OpenClipEncoder("ViT-B-32", checkpoint)  # weights of another architecture
