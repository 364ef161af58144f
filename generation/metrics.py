"""Quality metrics of a generated video, each a small function on frames (uint8, T×H×W×3 numpy).

Why: `kdcvg generation eval` compares MKR against the same backbone without knowledge; these are
the numbers it compares. Each is measured, never invented: a metric that cannot be measured here
(no CLIP model configured) is reported as unavailable, with the reason.

- `text_video_alignment`: CLIP image–text cosine, averaged over frames, with the configured local
  open_clip model (`retrieval.clip_image.OpenClipEncoder`). Range [-1, 1], higher is better.
- `motion_fidelity`: how closely the video moves like the reference clip. Both are resampled to the
  same frames and size; dense Farneback optical flow is computed between consecutive frames with
  `kb.motion`'s settings (grey frames scaled to its 256-px analysis size), averaged over a coarse
  `FLOW_GRID`×`FLOW_GRID` grid (the coarse motion the MKR prior transfers, not pixel detail), and the two
  flow fields are compared by their uncentred correlation (cosine): 1 = the same motion, about 0 =
  unrelated, -1 = the opposite motion (e.g. the clip played backwards). Uncentred, because a
  steady pan is a near-constant field that a centred (Pearson) correlation would reduce to noise.
- `temporal_consistency`: mean SSIM (structural similarity, colour, `skimage`) between consecutive
  frames. 1 = still; flicker and frame-to-frame noise lower it. SSIM rather than CLIP-image cosine
  so it needs no model and means the same whether CLIP is configured or not.
- `dynamic_degree` (VBench, Huang et al. 2024): 1.0 if the video moves, else 0.0; averaged over
  videos it is the share of dynamic videos. A frame pair's score is the mean of its largest 5 %
  flow magnitudes (px/frame at the 256-px analysis size); the video is dynamic when at least
  round(4·T/16) (at least 1) pairs score above `DYNAMIC_THRESHOLD` = 6 px (VBench's rule; Farneback
  flow here instead of RAFT, so no model is needed).
- `motion_smoothness` (VBench's definition with a classical interpolator): every inner frame is
  predicted from its two neighbours by flow-based midpoint interpolation (Farneback flow between
  the neighbours, both warped half-way and averaged); the score is (255 − mean absolute error) / 255,
  1 = motion that interpolation explains perfectly (still or steady), jitter lowers it. VBench uses
  a learned interpolator (AMT), so absolute values differ; comparisons between methods hold.
- `motion_magnitude`: mean optical-flow length in px/frame at the analysis size (how fast the video
  moves; compared with the reference's in the evaluation: generated videos that move at a quarter of
  the reference's speed show here).
- `runtime_s`: the request's wall time from generate's timings (`total_s`).
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import pairwise

import cv2
import numpy as np
from skimage.metrics import structural_similarity

from kb.motion import farneback_flow, to_analysis_grey
from kdcvg.errors import BadInputError
from retrieval.clip_image import OpenClipEncoder

FLOW_GRID = 8  # flow fields are averaged over FLOW_GRID × FLOW_GRID cells
STILL_FLOW = 0.05  # mean flow length (px/frame at 256 px) below which a video counts as still
DYNAMIC_THRESHOLD = 6.0  # VBench: 6 px/frame at 256 px (its thres = 6·min(H, W)/256 at the video's size)
DYNAMIC_TOP_FRACTION = 0.05  # VBench scores a frame pair by the mean of its top 5 % flow magnitudes
CLIP_UNAVAILABLE = (
    "text-video alignment unavailable: no CLIP model configured "
    "(set KDCVG_CLIP_MODEL and KDCVG_CLIP_CHECKPOINT to a local open_clip model and weights file)"
)


class MetricError(BadInputError):
    """The frames cannot be measured: wrong type or shape, or too few frames."""


def check_frames(frames: np.ndarray, min_frames: int = 1) -> np.ndarray:
    """`frames` as a uint8 (T, H, W, 3) array with at least `min_frames` frames, or a MetricError."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise MetricError(f"frames must be a uint8 (T, H, W, 3) array, got {frames.dtype} {frames.shape}")
    if len(frames) < min_frames:
        raise MetricError(f"this metric needs at least {min_frames} frames, got {len(frames)}")
    return frames


def text_video_alignment(frames: np.ndarray, text: str, encoder: OpenClipEncoder) -> float:
    """Mean over frames of the cosine between each frame's CLIP image embedding and `text`'s."""
    frames = check_frames(frames)
    if not text.strip():
        raise MetricError("text-video alignment needs a non-empty text")
    images = encoder.encode_images(frames)  # L2-normalised rows
    (text_vector,) = encoder.encode_texts([text])
    return float((images @ text_vector).mean())


def resample(frames: np.ndarray, num_frames: int, height: int, width: int) -> np.ndarray:
    """`num_frames` frames evenly spaced in time, each resized to (height, width): to compare unequal clips."""
    frames = check_frames(frames)
    picks = np.linspace(0, len(frames) - 1, num_frames).round().astype(int)
    if frames.shape[1:3] == (height, width):
        return frames[picks]
    return np.stack([cv2.resize(frames[i], (width, height), interpolation=cv2.INTER_AREA) for i in picks])


def flow_fields(frames: np.ndarray, grid: int = FLOW_GRID) -> np.ndarray:
    """(T-1, grid, grid, 2) float32 optical flow between consecutive frames, averaged over grid cells."""
    frames = check_frames(frames, min_frames=2)
    greys = [to_analysis_grey(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)) for frame in frames]
    return np.stack([cv2.resize(farneback_flow(a, b), (grid, grid), interpolation=cv2.INTER_AREA) for a, b in pairwise(greys)])


def motion_fidelity(frames: np.ndarray, reference: np.ndarray, grid: int = FLOW_GRID) -> float:
    """Uncentred correlation of the coarse flow fields of `frames` and `reference` (resampled to match).

    In [-1, 1]. Two still videos (mean flow below STILL_FLOW) move alike: 1.0; one still and one
    moving: 0.0.
    """
    frames = check_frames(frames, min_frames=2)
    reference = resample(reference, len(frames), frames.shape[1], frames.shape[2])
    a, b = flow_fields(frames, grid).ravel(), flow_fields(reference, grid).ravel()
    still_a = np.hypot(*a.reshape(-1, 2).T).mean() < STILL_FLOW
    still_b = np.hypot(*b.reshape(-1, 2).T).mean() < STILL_FLOW
    if still_a or still_b:
        return 1.0 if still_a and still_b else 0.0
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def temporal_consistency(frames: np.ndarray) -> float:
    """Mean SSIM between consecutive frames (1 = identical frames; flicker lowers it)."""
    frames = check_frames(frames, min_frames=2)
    if min(frames.shape[1:3]) < 7:
        raise MetricError(f"SSIM needs frames of at least 7×7 pixels, got {frames.shape[2]}×{frames.shape[1]}")
    scores = [structural_similarity(a, b, channel_axis=-1, data_range=255) for a, b in pairwise(frames)]
    return float(np.mean(scores))


def runtime_s(timings: Mapping[str, float]) -> float:
    """The request's wall time in seconds (`total_s` of generate's / generate_frames' timings)."""
    if "total_s" not in timings:
        raise MetricError(f"timings have no total_s (keys: {', '.join(sorted(timings)) or 'none'})")
    return float(timings["total_s"])


def _full_flows(frames: np.ndarray) -> list[np.ndarray]:
    """Dense Farneback flow (px/frame at the analysis size) between consecutive frames."""
    greys = [to_analysis_grey(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)) for frame in frames]
    return [farneback_flow(a, b) for a, b in pairwise(greys)]


def motion_magnitude(frames: np.ndarray) -> float:
    """Mean optical-flow length between consecutive frames, px/frame at the 256-px analysis size."""
    frames = check_frames(frames, min_frames=2)
    return float(np.mean([np.hypot(flow[..., 0], flow[..., 1]).mean() for flow in _full_flows(frames)]))


def dynamic_degree(frames: np.ndarray) -> float:
    """VBench's dynamic degree of one video: 1.0 when enough frame pairs move fast enough, else 0.0."""
    frames = check_frames(frames, min_frames=2)
    needed = max(1, round(4 * len(frames) / 16))
    moving = 0
    for flow in _full_flows(frames):
        lengths = np.sort(np.hypot(flow[..., 0], flow[..., 1]).ravel())
        top = lengths[-max(1, int(len(lengths) * DYNAMIC_TOP_FRACTION)) :]
        moving += int(top.mean() > DYNAMIC_THRESHOLD)
    return 1.0 if moving >= needed else 0.0


def interpolate_midpoint(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """The frame half-way between two RGB uint8 frames: both warped half-way along their Farneback flow, averaged."""
    grey_before, grey_after = (cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in (before, after))
    flow = farneback_flow(grey_before, grey_after)  # before -> after, at the frames' own size
    height, width = flow.shape[:2]
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    half = 0.5 * flow
    from_before = cv2.remap(before, xs - half[..., 0], ys - half[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    from_after = cv2.remap(after, xs + half[..., 0], ys + half[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return ((from_before.astype(np.float32) + from_after.astype(np.float32)) / 2.0).round().astype(np.uint8)


def motion_smoothness(frames: np.ndarray) -> float:
    """(255 − mean |frame − its interpolation from the two neighbours|) / 255 over inner frames (VBench-style)."""
    frames = check_frames(frames, min_frames=3)
    errors = [
        np.abs(interpolate_midpoint(frames[i - 1], frames[i + 1]).astype(np.float32) - frames[i].astype(np.float32)).mean()
        for i in range(1, len(frames) - 1)
    ]
    return float((255.0 - np.mean(errors)) / 255.0)
