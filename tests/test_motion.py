"""kb.motion on real MP4 files with known camera motion (rendered by kb.demo.clips), and its errors."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from kb.demo.clips import render_clip, write_mp4
from kb.motion import ANALYSIS_SIZE, MotionMeasurementError, measure_motion
from kb.schema import MOTION_DESCRIPTORS

FRAMES = 24
SEED = 20260101

# name -> (motion type, direction); direction: orbit +1 = counter-clockwise on screen
CASES: dict[str, tuple[str, int | None]] = {
    "zoom_in": ("zoom_in", None),
    "zoom_out": ("zoom_out", None),
    "pan_left": ("pan_left", None),
    "pan_right": ("pan_right", None),
    "tilt_up": ("tilt_up", None),
    "tilt_down": ("tilt_down", None),
    "orbit_ccw": ("orbit", 1),
    "orbit_cw": ("orbit", -1),
    "shake": ("shake", None),
    "static": ("static", None),
}


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, float | int]]:
    folder = tmp_path_factory.mktemp("motion")
    out = {}
    for name, (motion, direction) in CASES.items():
        path = render_clip(folder / f"{name}.mp4", motion=motion, seed=SEED, num_frames=FRAMES,
                           scene="brick", direction=direction)
        out[name] = measure_motion(path)
    return out


def test_reports_all_descriptors_and_video_facts(measured: dict[str, dict[str, float | int]]) -> None:
    expected = set(MOTION_DESCRIPTORS) | {"duration_s", "fps", "width", "height", "num_frames"}
    for name, result in measured.items():
        assert set(result) == expected, name
        assert result["num_frames"] == FRAMES and isinstance(result["num_frames"], int)
        assert (result["width"], result["height"]) == (256, 256)
        assert result["fps"] == pytest.approx(12.0)
        assert result["duration_s"] == pytest.approx(FRAMES / 12.0)
        for key in MOTION_DESCRIPTORS:
            value = result[key]
            assert isinstance(value, float) and math.isfinite(value), (name, key)
            assert round(value, 6) == value, (name, key)  # rounded for stable JSON


def test_zoom_sign_is_divergence(measured: dict[str, dict[str, float | int]]) -> None:
    assert measured["zoom_in"]["motion_divergence"] > 0.004
    assert measured["zoom_out"]["motion_divergence"] < -0.004
    for name in ("pan_left", "pan_right", "tilt_up", "tilt_down", "orbit_ccw", "static"):
        assert abs(measured[name]["motion_divergence"]) < 0.3 * measured["zoom_in"]["motion_divergence"], name


def test_pan_moves_content_opposite_to_camera(measured: dict[str, dict[str, float | int]]) -> None:
    # Camera pans left -> content slides right on screen -> motion_dx > 0 (schema: + = content moves right).
    left, right = measured["pan_left"], measured["pan_right"]
    assert left["motion_dx"] > 0.8 and right["motion_dx"] < -0.8
    for result in (left, right):
        assert abs(result["motion_dy"]) < 0.1 * abs(result["motion_dx"])
        assert result["motion_magnitude"] == pytest.approx(abs(result["motion_dx"]), rel=0.1)


def test_tilt_moves_content_vertically(measured: dict[str, dict[str, float | int]]) -> None:
    # Camera tilts up -> content slides down -> motion_dy > 0 (image y axis points down).
    up, down = measured["tilt_up"], measured["tilt_down"]
    assert up["motion_dy"] > 0.8 and down["motion_dy"] < -0.8
    for result in (up, down):
        assert abs(result["motion_dx"]) < 0.1 * abs(result["motion_dy"])


def test_orbit_sign_is_curl(measured: dict[str, dict[str, float | int]]) -> None:
    ccw, cw = measured["orbit_ccw"], measured["orbit_cw"]
    assert ccw["motion_curl"] > 0.005
    assert cw["motion_curl"] < -0.005
    assert ccw["motion_curl"] == pytest.approx(-cw["motion_curl"], rel=0.3)
    for name in ("zoom_in", "pan_left", "tilt_up", "static"):
        assert abs(measured[name]["motion_curl"]) < 0.3 * ccw["motion_curl"], name


def test_shake_has_high_jitter_and_static_barely_moves(measured: dict[str, dict[str, float | int]]) -> None:
    shake = measured["shake"]["motion_jitter"]
    assert shake > 1.0
    for name in ("pan_left", "pan_right", "tilt_up", "zoom_in", "orbit_ccw", "static"):
        assert shake > 5 * measured[name]["motion_jitter"], name
    static = measured["static"]
    assert static["motion_magnitude"] < 0.2
    assert static["motion_jitter"] < 0.2
    assert measured["pan_left"]["motion_magnitude"] > 5 * static["motion_magnitude"]


def _textured_frame() -> np.ndarray:
    rng = np.random.default_rng(7)
    noise = rng.integers(0, 256, size=(64, 64), dtype=np.uint8)
    image = cv2.resize(noise, (384, 384), interpolation=cv2.INTER_CUBIC)
    return cv2.cvtColor(cv2.GaussianBlur(image, (0, 0), 2.0), cv2.COLOR_GRAY2RGB)


@pytest.mark.parametrize("angle_step", [1.0, -1.0])
def test_curl_convention_against_opencv_rotation(tmp_path: Path, angle_step: float) -> None:
    # Independent of kb.demo.clips: cv2.getRotationMatrix2D documents positive angles as
    # counter-clockwise (origin top-left), which the schema says must give motion_curl > 0.
    base = _textured_frame()
    frames = []
    for i in range(12):
        matrix = cv2.getRotationMatrix2D((192, 192), angle_step * i, 1.0)
        frames.append(cv2.warpAffine(base, matrix, (384, 384), borderMode=cv2.BORDER_REFLECT_101)[64:320, 64:320])
    result = measure_motion(write_mp4(tmp_path / "rotation.mp4", frames))
    expected = 2 * math.radians(angle_step)  # curl of a rigid rotation = 2 * angular speed
    assert math.copysign(1, result["motion_curl"]) == math.copysign(1, angle_step)
    assert abs(result["motion_curl"]) == pytest.approx(abs(expected), rel=0.35)


def test_resizes_to_analysis_size(tmp_path: Path) -> None:
    # A 512 x 384 video shifting 4 px/frame to the right measures ~ 4 * 256/512 = 2 px/frame.
    base = cv2.resize(_textured_frame(), (640, 640))
    frames = [base[100:484, 40 - 4 * i : 552 - 4 * i] for i in range(8)]
    result = measure_motion(write_mp4(tmp_path / "wide.mp4", frames))
    assert (result["width"], result["height"]) == (512, 384)
    assert result["motion_dx"] == pytest.approx(4 * ANALYSIS_SIZE / 512, rel=0.15)
    assert abs(result["motion_dy"]) < 0.1


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.mp4"
    with pytest.raises(MotionMeasurementError, match="nope.mp4"):
        measure_motion(path)


def test_text_file_renamed_mp4(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video, just some text\n" * 20)
    with pytest.raises(MotionMeasurementError, match="notes.mp4"):
        measure_motion(path)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    with pytest.raises(MotionMeasurementError, match="empty.mp4"):
        measure_motion(str(path))


def test_single_frame_video(tmp_path: Path) -> None:
    path = write_mp4(tmp_path / "one.mp4", [_textured_frame()[:256, :256]])
    with pytest.raises(MotionMeasurementError, match=r"one\.mp4.*1 decodable frame"):
        measure_motion(path)


def test_error_is_a_value_error() -> None:
    assert issubclass(MotionMeasurementError, ValueError)
