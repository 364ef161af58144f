"""generation.metrics on synthetic clips with known motion, and CLIP alignment with a tiny real open_clip model."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from generation.metrics import (
    STILL_FLOW,
    MetricError,
    dynamic_degree,
    interpolate_midpoint,
    motion_fidelity,
    motion_magnitude,
    motion_smoothness,
    resample,
    runtime_s,
    temporal_consistency,
    text_video_alignment,
)
from retrieval.clip_image import OpenClipEncoder

CANVAS = 256


@pytest.fixture(scope="module")
def texture() -> np.ndarray:
    """A lightly blurred random colour texture: structure optical flow can track, even in grey."""
    noise = np.random.default_rng(0).integers(0, 256, (CANVAS, CANVAS, 3), dtype=np.uint8)
    return cv2.normalize(cv2.GaussianBlur(noise, (0, 0), 1), None, 0, 255, cv2.NORM_MINMAX)


def moving(texture: np.ndarray, transform: str, frames: int = 8, size: int = 64, speed: float = 2.0) -> np.ndarray:
    """A centre crop of `texture` panning ('right', 'down') or zooming in, `speed` pixels (or 2% per unit) per frame."""
    clips = []
    for t in range(frames):
        if transform == "zoom":
            matrix = cv2.getRotationMatrix2D((CANVAS / 2, CANVAS / 2), 0, 1 + 0.02 * speed * t)
        else:
            dx, dy = (speed * t, 0) if transform == "right" else (0, speed * t)
            matrix = np.float32([[1, 0, dx], [0, 1, dy]])
        warped = cv2.warpAffine(texture, matrix, (CANVAS, CANVAS), borderMode=cv2.BORDER_REFLECT)
        top = (CANVAS - size) // 2
        clips.append(warped[top : top + size, top : top + size])
    return np.stack(clips)


def test_motion_fidelity_is_one_for_the_same_motion_and_much_lower_otherwise(texture: np.ndarray) -> None:
    right = moving(texture, "right")
    assert motion_fidelity(right, right) == pytest.approx(1.0, abs=1e-5)
    assert motion_fidelity(right, right[::-1]) < -0.5  # played backwards: the opposite motion
    assert abs(motion_fidelity(right, moving(texture, "down"))) < 0.3  # perpendicular pan
    assert abs(motion_fidelity(right, moving(texture, "zoom"))) < 0.3  # zoom: radial, no net pan
    # The same pan at half the speed over twice the frames, shown at twice the size: resampled, it matches.
    slow = moving(texture, "right", frames=16, speed=1.0)
    big = np.stack([cv2.resize(frame, (128, 128), interpolation=cv2.INTER_CUBIC) for frame in slow])
    assert motion_fidelity(right, big) > 0.9


def test_motion_fidelity_of_still_videos(texture: np.ndarray) -> None:
    still = np.repeat(moving(texture, "right")[:1], 8, axis=0)
    assert motion_fidelity(still, still) == 1.0
    assert motion_fidelity(still, moving(texture, "right")) == 0.0


def test_temporal_consistency_orders_still_pan_and_noise(texture: np.ndarray) -> None:
    pan = moving(texture, "right")
    still = np.repeat(pan[:1], 8, axis=0)
    noise = np.random.default_rng(1).integers(0, 256, pan.shape, dtype=np.uint8)
    assert temporal_consistency(still) == pytest.approx(1.0)
    assert temporal_consistency(noise) < 0.1 < temporal_consistency(pan) < 0.99


def test_resample_picks_evenly_spaced_frames_and_resizes() -> None:
    frames = np.stack([np.full((16, 24, 3), i, dtype=np.uint8) for i in range(10)])
    picked = resample(frames, 4, 8, 12)
    assert picked.shape == (4, 8, 12, 3)
    assert [int(f[0, 0, 0]) for f in picked] == [0, 3, 6, 9]


def test_alignment_equals_the_manual_cosine_for_the_tiny_clip(tiny_clip: tuple[str, Path]) -> None:
    name, checkpoint = tiny_clip
    encoder = OpenClipEncoder(name, checkpoint)
    frames = np.random.default_rng(2).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=str(checkpoint), pretrained_text=False)
    model.eval()
    with torch.no_grad():
        images = model.encode_image(torch.stack([preprocess(Image.fromarray(f)) for f in frames]))
        text = model.encode_text(open_clip.get_tokenizer(name)(["leak-proof lid"]))
    manual = torch.nn.functional.cosine_similarity(images, text).mean().item()
    assert text_video_alignment(frames, "leak-proof lid", encoder) == pytest.approx(manual, abs=1e-5)
    assert text_video_alignment(frames, "thirty hour battery", encoder) != pytest.approx(manual, abs=1e-4)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: temporal_consistency(np.zeros((4, 32, 32, 3), dtype=np.float32)), "uint8"),
        (lambda: temporal_consistency(np.zeros((4, 32, 32), dtype=np.uint8)), r"\(T, H, W, 3\)"),
        (lambda: temporal_consistency(np.zeros((1, 32, 32, 3), dtype=np.uint8)), "at least 2 frames"),
        (
            lambda: motion_fidelity(np.zeros((1, 32, 32, 3), dtype=np.uint8), np.zeros((4, 32, 32, 3), dtype=np.uint8)),
            "at least 2",
        ),
        (lambda: temporal_consistency(np.zeros((3, 4, 4, 3), dtype=np.uint8)), "7×7"),
        (lambda: runtime_s({"pipeline_s": 1.0}), "no total_s.*pipeline_s"),
    ],
)
def test_unmeasurable_input_is_a_clear_error(call, message: str) -> None:
    with pytest.raises(MetricError, match=message):
        call()


def test_runtime_is_the_total() -> None:
    assert runtime_s({"total_s": 2.5, "pipeline_s": 2.0}) == 2.5


def test_motion_magnitude_measures_speed_at_the_analysis_size(texture: np.ndarray) -> None:
    still = np.repeat(moving(texture, "right")[:1], 8, axis=0)
    slow, fast = moving(texture, "right", speed=1.0), moving(texture, "right", speed=3.0)
    assert motion_magnitude(still) < STILL_FLOW
    # 64-px frames are analysed at 256 px: 1 px/frame reads as 4, 3 px/frame as 12.
    assert motion_magnitude(slow) == pytest.approx(4.0, rel=0.25)
    assert motion_magnitude(fast) == pytest.approx(12.0, rel=0.25)


def test_dynamic_degree_follows_vbench_threshold(texture: np.ndarray) -> None:
    assert dynamic_degree(np.repeat(moving(texture, "right")[:1], 8, axis=0)) == 0.0
    assert dynamic_degree(moving(texture, "right", speed=0.5)) == 0.0  # 2 px/frame at 256 px: below 6
    assert dynamic_degree(moving(texture, "right", speed=3.0)) == 1.0  # 12 px/frame at 256 px
    # One fast jump in 16 frames is not enough (VBench wants round(4·16/16) = 4 moving pairs).
    jump = np.repeat(moving(texture, "right", speed=4.0)[:2], 8, axis=0)
    assert dynamic_degree(jump) == 0.0


def test_motion_smoothness_prefers_steady_motion_to_jitter(texture: np.ndarray) -> None:
    steady = moving(texture, "right", speed=2.0)
    jitter = steady[[0, 3, 1, 5, 2, 7, 4, 6]]
    still = np.repeat(steady[:1], 8, axis=0)
    assert motion_smoothness(still) == pytest.approx(1.0, abs=1e-4)
    assert motion_smoothness(steady) > 0.95
    assert motion_smoothness(jitter) < motion_smoothness(steady) - 0.02
    middle = interpolate_midpoint(steady[2], steady[4])
    assert np.abs(middle.astype(int) - steady[3].astype(int)).mean() < np.abs(steady[2].astype(int) - steady[3].astype(int)).mean() / 2
    with pytest.raises(MetricError, match="at least 3"):
        motion_smoothness(steady[:2])
