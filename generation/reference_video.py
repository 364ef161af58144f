"""A reference clip as frames: decode an mp4, resample it in time, resize and centre-crop it.

Why a module of its own: the motion prior, the IP-Adapter keyframe, the motion LoRA, the demo
training and the evaluation all read references the same way, and none of them should have to
import the others to do it.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from kdcvg.errors import BadInputError


class ReferenceVideoError(BadInputError):
    """The reference clip cannot be read: missing, not a video, or asked for a non-positive size."""


def decode_frames(video_path: str | Path) -> list[np.ndarray]:
    """Decode every frame of a video as RGB uint8 (H, W, 3) arrays; ReferenceVideoError if none decodes."""
    path = Path(video_path)
    if not path.is_file():
        raise ReferenceVideoError(f"reference video {path} does not exist")
    capture = cv2.VideoCapture(str(path))
    frames: list[np.ndarray] = []
    try:
        while capture.isOpened():
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    finally:
        capture.release()
    if not frames:
        raise ReferenceVideoError(f"reference video {path} is not a readable video (no frames decoded)")
    return frames


def read_reference(video_path: str | Path, num_frames: int, height: int, width: int) -> torch.Tensor:
    """Decode a clip, sample `num_frames` evenly over time, resize + centre-crop to (height, width); [-1, 1]."""
    if num_frames < 1 or height < 1 or width < 1:
        raise ReferenceVideoError(f"num_frames, height and width must be positive, got {num_frames}, {height}, {width}")
    frames = decode_frames(video_path)
    indices = np.linspace(0, len(frames) - 1, num_frames).round().astype(int)
    picked = [_resize_crop(frames[i], height, width) for i in indices]
    video = torch.from_numpy(np.stack(picked)).permute(0, 3, 1, 2).float()
    return video / 127.5 - 1.0


def _resize_crop(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    """Scale so the frame covers (height, width), then crop the centre."""
    h, w = frame.shape[:2]
    scale = max(height / h, width / w)
    new_h, new_w = max(height, round(h * scale)), max(width, round(w * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    resized = cv2.resize(frame, (new_w, new_h), interpolation=interpolation)
    top, left = (new_h - height) // 2, (new_w - width) // 2
    return resized[top : top + height, left : left + width]
