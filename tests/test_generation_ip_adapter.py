"""IP-Adapter image conditioning on CPU: a tiny random adapter built offline, loaded into the tiny AnimateDiff."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from generation.backbones import load_backbone
from generation.ip_adapter import IPAdapterError, loaded_ip_adapter, locate_ip_adapter, middle_keyframe
from generation.reference_video import decode_frames
from generation.pipeline import generate_frames
from generation.tiny import write_tiny_animatediff, write_tiny_ip_adapter
from kb.demo.clips import render_clip

PROMPT = "slow pan over a red bottle"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("ip")
    model = write_tiny_animatediff(root / "animatediff")
    return model, write_tiny_ip_adapter(root / "ip-adapter", model)


@pytest.fixture(scope="module")
def plain_pipe(tiny: tuple[Path, Path]):
    return load_backbone(tiny[0])


@pytest.fixture(scope="module")
def ip_pipe(tiny: tuple[Path, Path]):
    return load_backbone(tiny[0], ip_adapter=tiny[1].parent.parent)


@pytest.fixture(scope="module")
def keyframe(tmp_path_factory: pytest.TempPathFactory) -> Image.Image:
    return middle_keyframe(render_clip(tmp_path_factory.mktemp("ref") / "pan.mp4", motion="pan_right", seed=1, num_frames=16))


def test_adapter_files_are_found_from_file_or_folder(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    weights = tiny[1]
    for path in (weights, weights.parent, weights.parent.parent):
        files = locate_ip_adapter(path)
        assert files.weights == weights and (files.subfolder, files.weight_name) == ("models", weights.name)
    with pytest.raises(IPAdapterError, match="does not exist"):
        locate_ip_adapter(tmp_path / "nowhere")
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    shutil.copy(weights, lonely / weights.name)
    with pytest.raises(IPAdapterError, match="image_encoder"):
        locate_ip_adapter(lonely)
    shutil.copy(weights, lonely / "second.safetensors")
    with pytest.raises(IPAdapterError, match="exactly one weights file"):
        locate_ip_adapter(lonely)


def test_adapter_loads_image_encoder_and_attention_processors(ip_pipe, plain_pipe) -> None:
    assert loaded_ip_adapter(ip_pipe) is not None and loaded_ip_adapter(plain_pipe) is None
    assert type(ip_pipe.image_encoder).__name__ == "CLIPVisionModelWithProjection"
    kinds = {type(p).__name__ for name, p in ip_pipe.unet.attn_processors.items() if name.endswith("attn2.processor") and "motion" not in name}
    assert kinds == {"IPAdapterAttnProcessor2_0"}


def test_keyframe_is_the_middle_frame(tmp_path: Path) -> None:
    clip = render_clip(tmp_path / "c.mp4", motion="zoom_in", seed=2, num_frames=10)
    frames = decode_frames(clip)
    assert np.array_equal(np.asarray(middle_keyframe(clip)), frames[len(frames) // 2])


def test_image_changes_output_and_scale_zero_or_no_image_equals_plain(ip_pipe, plain_pipe, keyframe: Image.Image) -> None:
    common = {"steps": 2, "seed": 3, "output_type": "latent", "num_frames": 4, "height": 32, "width": 32}
    plain, _ = generate_frames(plain_pipe, PROMPT, **common)
    scale_zero, _ = generate_frames(ip_pipe, PROMPT, ip_adapter_image=keyframe, ip_adapter_scale=0.0, **common)
    no_image, info_none = generate_frames(ip_pipe, PROMPT, **common)
    conditioned, info = generate_frames(ip_pipe, PROMPT, ip_adapter_image=keyframe, ip_adapter_scale=1.0, **common)
    other_image, _ = generate_frames(ip_pipe, PROMPT, ip_adapter_image=Image.new("RGB", (64, 64), (0, 200, 0)), ip_adapter_scale=1.0, **common)
    assert torch.equal(scale_zero, plain) and torch.equal(no_image, plain)
    assert not torch.allclose(conditioned, plain, atol=1e-4)
    assert not torch.allclose(conditioned, other_image, atol=1e-4)  # the picture itself matters
    assert info["ip_adapter_scale"] == 1.0 and info_none["ip_adapter_scale"] is None


def test_image_without_adapter_and_bad_scale_are_errors(ip_pipe, plain_pipe, keyframe: Image.Image) -> None:
    with pytest.raises(IPAdapterError, match="needs a backbone loaded with an IP-Adapter"):
        generate_frames(plain_pipe, PROMPT, steps=1, ip_adapter_image=keyframe)
    with pytest.raises(IPAdapterError, match="ip_adapter_scale"):
        generate_frames(ip_pipe, PROMPT, steps=1, ip_adapter_image=keyframe, ip_adapter_scale=1.5)
