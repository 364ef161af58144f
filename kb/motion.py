"""Motion descriptors of a video clip, measured from its pixels with dense optical flow.

Why: the ACKB stores, for every creative clip, six numbers that describe how the picture moves
(`kb.schema.MOTION_DESCRIPTORS`). Retrieval and the motion-aware parts of generation compare clips
by these numbers, so they must come from the video itself, never from a label someone typed.

What: `measure_motion(path)` decodes the clip, converts every frame to grey, resizes it so its
longer side is `ANALYSIS_SIZE` (256) pixels, runs OpenCV's Farneback dense optical flow between each
pair of consecutive frames, and reduces the flow fields to:

- `motion_dx`, `motion_dy`: mean flow (pixels/frame at 256 px). Image axes: x to the right, y
  downwards, so `motion_dx > 0` means the content moves right (the camera pans left) and
  `motion_dy > 0` means the content moves down (the camera tilts up).
- `motion_magnitude`: mean length of the flow vectors.
- `motion_divergence`: mean of du/dx + dv/dy (> 0: expansion, i.e. zoom in; < 0: zoom out). Per
  pixel, in 1/frame: a uniform zoom by factor s per frame gives about 2 * (s - 1).
- `motion_curl`: mean rotation of the flow, positive when the content turns counter-clockwise *as
  seen on screen*. Because the image y axis points down, the usual dv/dx - du/dy computed in image
  coordinates is positive for a clockwise on-screen turn; we flip y to an upward axis first, which
  gives curl = du/dy - dv/dx in image coordinates. A rotation by w radians/frame gives about 2 * w.
- `motion_jitter`: the norm of the standard deviation over time of the per-frame mean flow vector
  (dx, dy): near 0 for a steady pan, large for a handheld shake.

Derivatives (divergence, curl) are averaged over the interior of the frame only (a margin of
1/16 of each side is left out), where Farneback's estimates are reliable.

It also reports `duration_s` (= num_frames / fps), `fps`, `width`, `height` (of the decoded video,
before resizing) and `num_frames` (decoded frames). Floats are rounded to `DECIMALS` places so the
JSON written from them is stable.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from kb.schema import MOTION_DESCRIPTORS
from kdcvg.errors import BadInputError

ANALYSIS_SIZE = 256  # longer side of the frames the flow is computed on
DECIMALS = 6
BORDER_FRACTION = 1 / 16  # left out of the divergence/curl means

# Farneback parameters: a 3-level pyramid copes with shakes of several pixels per frame at 256 px.
FARNEBACK_PARAMS = {
    "pyr_scale": 0.5,
    "levels": 3,
    "winsize": 15,
    "iterations": 3,
    "poly_n": 5,
    "poly_sigma": 1.2,
    "flags": 0,
}


class MotionMeasurementError(BadInputError):
    """The file cannot be measured: missing, not a readable video, or fewer than 2 frames."""


@dataclass(frozen=True)
class FlowStats:
    """What one flow field between two consecutive frames contributes to the descriptors."""

    mean_dx: float
    mean_dy: float
    mean_magnitude: float
    mean_divergence: float
    mean_curl: float


@dataclass(frozen=True)
class VideoInfo:
    """Container facts about a video, read before decoding its frames."""

    fps: float
    width: int
    height: int


def measure_motion(video_path: str | Path) -> dict[str, float | int]:
    """Measure the six motion descriptors and the basic video facts of `video_path`.

    Returns a dict with the keys of `kb.schema.MOTION_DESCRIPTORS` plus `duration_s`, `fps`,
    `width`, `height` and `num_frames`. Raises `MotionMeasurementError` for a missing file, a file
    that is not a readable video, or a video with fewer than 2 frames.
    """
    path = Path(video_path)
    if not path.exists():
        raise MotionMeasurementError(f"{path}: no such video file")
    if not path.is_file():
        raise MotionMeasurementError(f"{path}: not a file, cannot be a video")
    capture = _open_video(path)
    try:
        info = _video_info(capture, path)
        stats, num_frames = _flow_over_frames(_grey_frames(capture), path)
    finally:
        capture.release()
    if num_frames == 0:
        raise MotionMeasurementError(f"{path}: not a readable video file (no frame could be decoded)")
    if num_frames < 2:
        raise MotionMeasurementError(
            f"{path}: video has {num_frames} decodable frame; at least 2 are needed to measure motion"
        )
    result: dict[str, float | int] = dict(_reduce(stats))
    result.update(
        duration_s=_round(num_frames / info.fps),
        fps=_round(info.fps),
        width=info.width,
        height=info.height,
        num_frames=num_frames,
    )
    return result


def _open_video(path: Path) -> cv2.VideoCapture:
    """Open `path` with OpenCV's FFmpeg backend, or raise a clear error."""
    if path.stat().st_size == 0:
        raise MotionMeasurementError(f"{path}: file is empty, not a video")
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not capture.isOpened():
        capture.release()
        raise MotionMeasurementError(f"{path}: not a readable video file (FFmpeg could not open it)")
    return capture


def _video_info(capture: cv2.VideoCapture, path: Path) -> VideoInfo:
    fps = float(capture.get(cv2.CAP_PROP_FPS))
    width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
    height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    if not np.isfinite(fps) or fps <= 0 or width <= 0 or height <= 0:
        raise MotionMeasurementError(
            f"{path}: not a readable video file (fps={fps}, size={width}x{height})"
        )
    return VideoInfo(fps=fps, width=width, height=height)


def _grey_frames(capture: cv2.VideoCapture) -> Iterator[np.ndarray]:
    """Decoded frames as grey uint8 images whose longer side is ANALYSIS_SIZE."""
    while True:
        ok, frame = capture.read()
        if not ok or frame is None:
            return
        yield to_analysis_grey(frame)


def to_analysis_grey(frame: np.ndarray) -> np.ndarray:
    """Grey at the analysis size (longest side ANALYSIS_SIZE): flow is measured at one scale for every clip."""
    grey = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    height, width = grey.shape
    scale = ANALYSIS_SIZE / max(height, width)
    if scale == 1.0:
        return grey
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(grey, size, interpolation=interpolation)


def _flow_over_frames(frames: Iterator[np.ndarray], path: Path) -> tuple[list[FlowStats], int]:
    """Flow statistics for each consecutive pair of frames, and the number of frames seen."""
    stats: list[FlowStats] = []
    previous: np.ndarray | None = None
    count = 0
    for frame in frames:
        count += 1
        if previous is not None:
            if frame.shape != previous.shape:
                raise MotionMeasurementError(f"{path}: frame {count} changes size mid-video")
            stats.append(_flow_stats(farneback_flow(previous, frame)))
        previous = frame
    return stats, count


def farneback_flow(previous: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Dense flow (H x W x 2, float32): where each pixel of `previous` moves to in `current`."""
    return cv2.calcOpticalFlowFarneback(previous, current, None, **FARNEBACK_PARAMS)


def _flow_stats(flow: np.ndarray) -> FlowStats:
    u = flow[..., 0].astype(np.float64)
    v = flow[..., 1].astype(np.float64)
    du_dy, du_dx = np.gradient(u)  # np.gradient returns d/d(axis 0 = y), then d/d(axis 1 = x)
    dv_dy, dv_dx = np.gradient(v)
    inner = _interior(u.shape)
    return FlowStats(
        mean_dx=float(u.mean()),
        mean_dy=float(v.mean()),
        mean_magnitude=float(np.hypot(u, v).mean()),
        mean_divergence=float((du_dx + dv_dy)[inner].mean()),
        # y axis flipped to point up, so that positive is counter-clockwise on screen
        mean_curl=float((du_dy - dv_dx)[inner].mean()),
    )


def _interior(shape: tuple[int, ...]) -> tuple[slice, slice]:
    height, width = shape[:2]
    my = min(int(height * BORDER_FRACTION), (height - 1) // 2)
    mx = min(int(width * BORDER_FRACTION), (width - 1) // 2)
    return slice(my, height - my), slice(mx, width - mx)


def _reduce(stats: list[FlowStats]) -> dict[str, float]:
    """Average the per-pair statistics over time; jitter is the spread of the mean flow."""
    dx = np.array([s.mean_dx for s in stats])
    dy = np.array([s.mean_dy for s in stats])
    values = {
        "motion_dx": dx.mean(),
        "motion_dy": dy.mean(),
        "motion_magnitude": np.mean([s.mean_magnitude for s in stats]),
        "motion_divergence": np.mean([s.mean_divergence for s in stats]),
        "motion_curl": np.mean([s.mean_curl for s in stats]),
        "motion_jitter": float(np.hypot(dx.std(), dy.std())),
    }
    assert tuple(values) == MOTION_DESCRIPTORS
    return {name: _round(value) for name, value in values.items()}


def _round(value: float) -> float:
    """Round to DECIMALS places; -0.0 becomes 0.0 so the JSON is stable."""
    rounded = round(float(value), DECIMALS)
    return 0.0 if rounded == 0 else rounded
