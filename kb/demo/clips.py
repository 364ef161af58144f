"""Rendering of the demo's creative clips: a drawn product over a real photograph, filmed by a moving camera.

Why: the demo ACKB needs real video files whose motion can be *measured* (`kb.motion`), so every
clip is rendered as an actual camera move over a still scene, not labelled after the fact.

How: a square canvas (`CANVAS` px) is built from a photograph that ships inside scikit-image
(`skimage.data`, loaded offline) with the product drawn on it by OpenCV (its shape, colour and name,
plus a badge with an icon for the selling point). A `CameraMove` (zoom ramp, pan/tilt ramp, rotation
ramp about the centre, seeded shake, or a static camera with sensor noise, or a slide-in reveal of
the product) gives one affine map per frame from the canvas to the 256 x 256 output; the frames are
encoded as H.264/yuv420p MP4 by the ffmpeg binary bundled with imageio-ffmpeg.

Conventions (image axes: x right, y down), matching `kb.motion`:
- `shift` moves the *camera* (view centre): pan_right has shift x > 0, so the content moves left
  on screen (measured `motion_dx < 0`); tilt_up has shift y < 0, so the content moves down
  (`motion_dy > 0`).
- `turn_deg` turns the *content on screen*: positive is counter-clockwise as seen by the viewer
  (measured `motion_curl > 0`).
- `direction` in `camera_move`: for orbit, +1 = counter-clockwise on screen, -1 = clockwise; for
  reveal, +1 = the product enters from the left (moves right), -1 = from the right.

Everything is deterministic from the clip's seed, and the encoder runs single-threaded with
bit-exact flags, so the same seed gives the same MP4 bytes.
"""

from __future__ import annotations

import math
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import imageio_ffmpeg
import numpy as np

from kb.demo.spec import CLIP_SIZE, FPS, PRODUCTS, SCENES
from kdcvg.errors import KdcvgError

CANVAS = 576  # side of the scene canvas the camera films, in canvas pixels
VIEW = 384  # canvas pixels spanned by the output frame at zoom 1
CENTRE = (CANVAS / 2, CANVAS / 2)
PRODUCT_CENTRE = (288, 270)  # where the product is drawn on the canvas (before PRODUCT_SCALE)
PRODUCT_SCALE = 0.72  # the drawing is made at a comfortable size, then shrunk about the centre
CRF = 23  # x264 quality: 256 px clips of 2-4 s come out at roughly 15-60 kB

Colour = tuple[float, float, float]

MOTION_TYPES: tuple[str, ...] = (
    "zoom_in", "zoom_out", "pan_left", "pan_right", "tilt_up", "tilt_down",
    "orbit", "shake", "static", "reveal",
)


class ClipRenderError(KdcvgError):
    """Rendering or encoding a clip failed."""


# --------------------------------------------------------------------------------------------
# Camera


@dataclass(frozen=True)
class CameraMove:
    """A camera path over the canvas, in canvas pixels and degrees (see module docstring)."""

    zoom: tuple[float, float] = (1.0, 1.0)  # zoom at the first and last frame (exponential ramp)
    shift: tuple[float, float] = (0.0, 0.0)  # total travel of the view centre (camera), linear
    turn_deg: float = 0.0  # total on-screen rotation of the content, + = counter-clockwise
    shake_px: float = 0.0  # std of per-frame random jolts of the view centre
    shake_deg: float = 0.0  # std of per-frame random roll
    noise: float = 0.0  # std of per-pixel sensor noise added to the frames (0..255 scale)
    reveal_from: tuple[float, float] | None = None  # start offset of the product layer, eased to 0


def camera_move(motion: str, rng: np.random.Generator, *, direction: int | None = None) -> CameraMove:
    """A seeded camera move of the given motion type (one of MOTION_TYPES)."""
    if motion not in MOTION_TYPES:
        raise ValueError(f"unknown motion type {motion!r}; known: {', '.join(MOTION_TYPES)}")
    sign = int(direction) if direction else int(rng.choice((-1, 1)))
    base = float(rng.uniform(0.95, 1.05))
    travel = float(rng.uniform(90.0, 130.0))
    factory: dict[str, Callable[[], CameraMove]] = {
        "zoom_in": lambda: CameraMove(zoom=(base, base * float(rng.uniform(1.25, 1.45)))),
        "zoom_out": lambda: CameraMove(zoom=(base * float(rng.uniform(1.25, 1.45)), base)),
        "pan_left": lambda: CameraMove(zoom=(base, base), shift=(-travel, 0.0)),
        "pan_right": lambda: CameraMove(zoom=(base, base), shift=(travel, 0.0)),
        "tilt_up": lambda: CameraMove(zoom=(base, base), shift=(0.0, -travel)),
        "tilt_down": lambda: CameraMove(zoom=(base, base), shift=(0.0, travel)),
        "orbit": lambda: CameraMove(zoom=(1.05, 1.05), turn_deg=sign * float(rng.uniform(18.0, 28.0))),
        "shake": lambda: CameraMove(zoom=(base, base), shake_px=float(rng.uniform(4.0, 7.0)), shake_deg=0.8),
        "static": lambda: CameraMove(zoom=(base, base), shake_px=0.1, noise=1.5),
        "reveal": lambda: CameraMove(zoom=(base, base), reveal_from=_reveal_start(rng, direction, sign)),
    }
    return factory[motion]()


def _reveal_start(rng: np.random.Generator, direction: int | None, sign: int) -> tuple[float, float]:
    distance = float(rng.uniform(300.0, 360.0))
    if direction is None and rng.random() < 1 / 3:
        return (0.0, distance)  # slides up from the bottom
    return (-sign * distance, 0.0)


def camera_matrices(move: CameraMove, num_frames: int, rng: np.random.Generator) -> list[np.ndarray]:
    """One 2x3 affine map (canvas -> output frame) per frame."""
    t = np.linspace(0.0, 1.0, num_frames)
    zoom = move.zoom[0] * (move.zoom[1] / move.zoom[0]) ** t
    cx = CENTRE[0] + move.shift[0] * (t - 0.5)
    cy = CENTRE[1] + move.shift[1] * (t - 0.5)
    turn = move.turn_deg * (t - 0.5)
    if move.shake_px > 0:
        jolts = rng.normal(0.0, move.shake_px, size=(num_frames, 2))
        cx, cy = cx + jolts[:, 0], cy + jolts[:, 1]
    if move.shake_deg > 0:
        turn = turn + rng.normal(0.0, move.shake_deg, size=num_frames)
    return [_affine(zoom[i], math.radians(turn[i]), (cx[i], cy[i])) for i in range(num_frames)]


def _affine(zoom: float, angle: float, centre: tuple[float, float]) -> np.ndarray:
    """out = s * R * (p - centre) + output centre, R turning the content counter-clockwise on screen."""
    s = CLIP_SIZE / VIEW * zoom
    cos, sin = math.cos(angle), math.sin(angle)
    a = s * np.array([[cos, sin], [-sin, cos]])  # y axis down: this is a counter-clockwise turn
    b = np.array([CLIP_SIZE / 2, CLIP_SIZE / 2]) - a @ np.asarray(centre)
    return np.hstack([a, b[:, None]]).astype(np.float64)


# --------------------------------------------------------------------------------------------
# Background


@lru_cache(maxsize=None)
def _photo(loader: str) -> np.ndarray:
    """An RGB (or grey) uint8 photograph from skimage.data; only images stored in the package."""
    from skimage import data as skdata

    image = np.asarray(getattr(skdata, loader)())
    if image.ndim == 3 and image.shape[2] == 4:
        image = image[..., :3]
    return np.ascontiguousarray(image)


def background(scene: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
    """A CANVAS x CANVAS float32 RGB backdrop: a seeded crop of the scene's photograph."""
    image = _photo(scene["loader"]).astype(np.float32)
    if image.ndim == 2:
        tint = np.asarray(scene.get("tint") or (1.0, 1.0, 1.0), dtype=np.float32)
        image = image[..., None] * tint
    height, width = image.shape[:2]
    scale = CANVAS / min(height, width) * float(rng.uniform(1.0, 1.35))
    size = (max(CANVAS, math.ceil(width * scale)), max(CANVAS, math.ceil(height * scale)))
    image = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    y0 = int(rng.integers(0, size[1] - CANVAS + 1))
    x0 = int(rng.integers(0, size[0] - CANVAS + 1))
    image = image[y0 : y0 + CANVAS, x0 : x0 + CANVAS]
    if rng.random() < 0.5:
        image = image[:, ::-1]
    image = cv2.GaussianBlur(np.ascontiguousarray(image), (0, 0), 0.8)  # a touch of depth of field
    return np.clip(image * 0.78 + 12.0, 0, 255).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Product drawing


class Layer:
    """An RGBA drawing surface (float32 colour, float32 alpha in 0..1) the size of the canvas."""

    def __init__(self, size: int = CANVAS) -> None:
        self.rgb = np.zeros((size, size, 3), np.float32)
        self.alpha = np.zeros((size, size), np.float32)

    def scaled(self, factor: float) -> "Layer":
        """This layer shrunk or grown by `factor` about the canvas centre."""
        matrix = cv2.getRotationMatrix2D(CENTRE, 0.0, factor)
        size = self.alpha.shape[::-1]
        out = Layer(self.alpha.shape[0])
        out.rgb = cv2.warpAffine(self.rgb, matrix, size, flags=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)
        out.alpha = cv2.warpAffine(self.alpha, matrix, size, flags=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)
        return out

    def paint(self, draw: Callable[[np.ndarray], None], colour: Colour, *, shade: bool = True,
              opacity: float = 1.0) -> None:
        """Draw a shape with `draw(mask)` (OpenCV calls, value 255) and fill it with `colour`."""
        mask = np.zeros(self.alpha.shape, np.uint8)
        draw(mask)
        ys, xs = np.nonzero(mask)
        if len(xs) == 0:
            return
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        m = mask[y0:y1, x0:x1].astype(np.float32) / 255.0 * opacity
        fill = np.empty((y1 - y0, x1 - x0, 3), np.float32)
        fill[:] = colour
        if shade:
            fill *= _cylinder_shading(x1 - x0)[None, :, None]
        region = self.rgb[y0:y1, x0:x1]
        region[:] = fill * m[..., None] + region * (1 - m[..., None])
        a = self.alpha[y0:y1, x0:x1]
        a[:] = m + a * (1 - m)


def _cylinder_shading(width: int) -> np.ndarray:
    """Brightness across a rounded object: darker edges, a highlight left of centre."""
    t = (np.arange(width, dtype=np.float32) + 0.5) / max(width, 1)
    body = 0.68 + 0.34 * np.sin(np.pi * t) ** 0.6
    highlight = 0.22 * np.exp(-(((t - 0.3) / 0.07) ** 2))
    return body + highlight


def _rounded_rect(p0: tuple[int, int], p1: tuple[int, int], radius: int) -> Callable[[np.ndarray], None]:
    def draw(mask: np.ndarray) -> None:
        (x0, y0), (x1, y1) = p0, p1
        r = max(0, min(radius, (x1 - x0) // 2, (y1 - y0) // 2))
        cv2.rectangle(mask, (x0 + r, y0), (x1 - r, y1), 255, -1, cv2.LINE_AA)
        cv2.rectangle(mask, (x0, y0 + r), (x1, y1 - r), 255, -1, cv2.LINE_AA)
        for cx, cy in ((x0 + r, y0 + r), (x1 - r, y0 + r), (x0 + r, y1 - r), (x1 - r, y1 - r)):
            cv2.circle(mask, (cx, cy), r, 255, -1, cv2.LINE_AA)

    return draw


def _poly(points: Sequence[tuple[int, int]]) -> Callable[[np.ndarray], None]:
    return lambda mask: cv2.fillPoly(mask, [np.array(points, np.int32)], 255, cv2.LINE_AA)


def _circle(centre: tuple[int, int], radius: int, thickness: int = -1) -> Callable[[np.ndarray], None]:
    return lambda mask: cv2.circle(mask, centre, radius, 255, thickness, cv2.LINE_AA)


def _ellipse(centre: tuple[int, int], axes: tuple[int, int], start: float = 0, end: float = 360,
             thickness: int = -1, angle: float = 0) -> Callable[[np.ndarray], None]:
    return lambda mask: cv2.ellipse(mask, centre, axes, angle, start, end, 255, thickness, cv2.LINE_AA)


def _text(text: str, centre: tuple[int, int], max_width: int, thickness: int = 2) -> Callable[[np.ndarray], None]:
    """Centred Hershey text, scaled down to fit `max_width`."""
    font = cv2.FONT_HERSHEY_DUPLEX
    (w, _), _ = cv2.getTextSize(text, font, 1.0, thickness)
    scale = min(1.1, max_width / max(w, 1))
    (w, h), _ = cv2.getTextSize(text, font, scale, thickness)
    origin = (int(centre[0] - w / 2), int(centre[1] + h / 2))
    return lambda mask: cv2.putText(mask, text, origin, font, scale, 255, thickness, cv2.LINE_AA)


def _darker(colour: Colour, factor: float = 0.55) -> Colour:
    return tuple(c * factor for c in colour)  # type: ignore[return-value]


def _draw_toothbrush(layer: Layer, cx: int, cy: int, colour: Colour, accent: Colour) -> None:
    layer.paint(_ellipse((cx, cy + 150), (60, 18)), (200, 200, 205))
    layer.paint(_rounded_rect((cx - 24, cy - 60), (cx + 24, cy + 150), 22), colour)
    layer.paint(_rounded_rect((cx - 10, cy - 135), (cx + 10, cy - 50), 8), accent)
    layer.paint(_rounded_rect((cx - 22, cy - 185), (cx + 22, cy - 120), 16), accent)
    for row in range(4):
        for col in (-1, 0, 1):
            x, y = cx + col * 12, cy - 175 + row * 15
            layer.paint(_rounded_rect((x - 4, y), (x + 4, y + 10), 3), (120, 210, 240), shade=False)
    layer.paint(_circle((cx, cy + 10), 11), accent, shade=False)


def _draw_tube(layer: Layer, cx: int, cy: int, colour: Colour, accent: Colour) -> None:
    layer.paint(_poly([(cx - 75, cy - 130), (cx + 75, cy - 130), (cx + 45, cy + 95), (cx - 45, cy + 95)]), colour)
    layer.paint(_rounded_rect((cx - 78, cy - 150), (cx + 78, cy - 126), 4), _darker(colour, 0.85))
    layer.paint(_rounded_rect((cx - 38, cy + 92), (cx + 38, cy + 145), 8), accent)
    layer.paint(_poly([(cx - 60, cy - 70), (cx + 60, cy - 70), (cx + 50, cy - 10), (cx - 50, cy - 10)]),
                accent, shade=False, opacity=0.9)


def _draw_bottle(layer: Layer, cx: int, cy: int, colour: Colour, accent: Colour) -> None:
    layer.paint(_rounded_rect((cx - 68, cy - 75), (cx + 68, cy + 140), 34), colour)
    layer.paint(_ellipse((cx, cy - 70), (68, 38), 180, 360), colour)
    layer.paint(_rounded_rect((cx - 22, cy - 120), (cx + 22, cy - 95), 4), colour)
    layer.paint(_rounded_rect((cx - 32, cy - 165), (cx + 32, cy - 115), 8), accent)
    layer.paint(_rounded_rect((cx - 52, cy - 20), (cx + 52, cy + 90), 10), (245, 240, 230), opacity=0.92)


def _draw_pump(layer: Layer, cx: int, cy: int, colour: Colour, accent: Colour) -> None:
    layer.paint(_rounded_rect((cx - 58, cy - 70), (cx + 58, cy + 140), 26), colour)
    layer.paint(_rounded_rect((cx - 28, cy - 100), (cx + 28, cy - 66), 6), accent)
    layer.paint(_rounded_rect((cx - 7, cy - 150), (cx + 7, cy - 98), 3), accent)
    layer.paint(_rounded_rect((cx - 30, cy - 170), (cx + 62, cy - 148), 8), accent)
    layer.paint(_rounded_rect((cx - 44, cy - 20), (cx + 44, cy + 90), 10), (250, 250, 250), opacity=0.9)


def _draw_jar(layer: Layer, cx: int, cy: int, colour: Colour, accent: Colour) -> None:
    layer.paint(_rounded_rect((cx - 100, cy - 25), (cx + 100, cy + 120), 30), colour)
    layer.paint(_rounded_rect((cx - 106, cy - 85), (cx + 106, cy - 20), 14), accent)
    layer.paint(_rounded_rect((cx - 80, cy + 10), (cx + 80, cy + 85), 8), (250, 245, 235), opacity=0.85)


def _draw_mask(layer: Layer, cx: int, cy: int, colour: Colour, accent: Colour) -> None:
    layer.paint(_rounded_rect((cx - 95, cy - 140), (cx + 95, cy + 140), 18), colour)
    layer.paint(_poly([(cx - 95, cy - 140), (cx + 95, cy - 140), (cx + 95, cy - 120), (cx - 95, cy - 120)]),
                _darker(colour, 0.8), shade=False)
    layer.paint(_ellipse((cx, cy - 5), (58, 78)), accent)
    dark = _darker(colour, 0.8)
    layer.paint(_ellipse((cx - 22, cy - 25), (13, 8)), dark, shade=False)
    layer.paint(_ellipse((cx + 22, cy - 25), (13, 8)), dark, shade=False)
    layer.paint(_ellipse((cx, cy + 38), (20, 7)), dark, shade=False)


def _draw_tumbler(layer: Layer, cx: int, cy: int, colour: Colour, accent: Colour) -> None:
    layer.paint(_rounded_rect((cx - 52, cy - 110), (cx + 52, cy + 145), 22), colour)
    layer.paint(_ellipse((cx, cy - 178), (22, 20), thickness=8), accent, shade=False)
    layer.paint(_rounded_rect((cx - 44, cy - 165), (cx + 44, cy - 104), 12), accent)
    layer.paint(_rounded_rect((cx - 52, cy + 95), (cx + 52, cy + 108), 2), _darker(colour, 0.7))


def _draw_mug(layer: Layer, cx: int, cy: int, colour: Colour, accent: Colour) -> None:
    layer.paint(_ellipse((cx + 72, cy + 20), (42, 62), -90, 90, thickness=18), _darker(colour, 0.8))
    layer.paint(_poly([(cx - 78, cy - 80), (cx + 78, cy - 80), (cx + 62, cy + 135), (cx - 62, cy + 135)]), colour)
    layer.paint(_rounded_rect((cx - 84, cy - 118), (cx + 84, cy - 76), 12), accent)
    layer.paint(_rounded_rect((cx - 20, cy - 132), (cx + 36, cy - 112), 6), accent)


def _draw_earbuds(layer: Layer, cx: int, cy: int, colour: Colour, accent: Colour) -> None:
    layer.paint(_rounded_rect((cx - 90, cy + 10), (cx + 90, cy + 130), 40), colour)
    layer.paint(_rounded_rect((cx - 90, cy + 42), (cx + 90, cy + 46), 1), _darker(colour, 0.7), shade=False)
    layer.paint(_circle((cx, cy + 100), 5), accent, shade=False)
    for side in (-1, 1):
        x = cx + side * 55
        layer.paint(_rounded_rect((x - 11, cy - 85), (x + 11, cy - 5), 10), colour)
        layer.paint(_circle((x, cy - 95), 33), colour)
        layer.paint(_circle((x - side * 16, cy - 100), 14), _darker(accent, 0.6))


def _draw_headphones(layer: Layer, cx: int, cy: int, colour: Colour, accent: Colour) -> None:
    layer.paint(_ellipse((cx, cy + 10), (118, 140), 180, 360, thickness=24), colour)
    for side in (-1, 1):
        x = cx + side * 118
        layer.paint(_rounded_rect((x - 34, cy - 10), (x + 34, cy + 120), 26), accent)
        layer.paint(_rounded_rect((x - 22, cy + 5), (x + 22, cy + 105), 18), colour)


def _draw_speaker(layer: Layer, cx: int, cy: int, colour: Colour, accent: Colour) -> None:
    layer.paint(_rounded_rect((cx + 60, cy - 80), (cx + 92, cy + 60), 14), accent)
    layer.paint(_rounded_rect((cx - 75, cy - 140), (cx + 75, cy + 140), 55), colour)
    for row in range(7):
        for col in range(-3, 4):
            layer.paint(_circle((cx + col * 17, cy - 70 + row * 20), 4), _darker(colour, 0.45), shade=False)
    layer.paint(_ellipse((cx, cy - 118), (48, 12)), accent, shade=False)


SHAPES: dict[str, Callable[[Layer, int, int, Colour, Colour], None]] = {
    "toothbrush": _draw_toothbrush,
    "tube": _draw_tube,
    "bottle": _draw_bottle,
    "pump": _draw_pump,
    "jar": _draw_jar,
    "mask": _draw_mask,
    "tumbler": _draw_tumbler,
    "mug": _draw_mug,
    "earbuds": _draw_earbuds,
    "headphones": _draw_headphones,
    "speaker": _draw_speaker,
}


def _draw_cue(layer: Layer, cue: str, centre: tuple[int, int], accent: Colour) -> None:
    """A round badge with a small icon for the selling point."""
    x, y = centre
    layer.paint(_circle((x, y), 38), (250, 250, 250), shade=False)
    layer.paint(_circle((x, y), 38, thickness=5), accent, shade=False)
    icon = ICONS.get(cue)
    if icon is not None:
        for draw in icon(x, y):
            layer.paint(draw, accent, shade=False)


def _star_points(x: int, y: int, points: int, outer: int, inner: int) -> list[tuple[int, int]]:
    out = []
    for i in range(points * 2):
        r = outer if i % 2 == 0 else inner
        a = math.pi * i / points - math.pi / 2
        out.append((int(x + r * math.cos(a)), int(y + r * math.sin(a))))
    return out


ICONS: dict[str, Callable[[int, int], list[Callable[[np.ndarray], None]]]] = {
    "drop": lambda x, y: [_circle((x, y + 6), 14), _poly([(x - 13, y + 2), (x + 13, y + 2), (x, y - 22)])],
    "bolt": lambda x, y: [_poly([(x + 4, y - 24), (x - 14, y + 4), (x - 1, y + 4), (x - 6, y + 24),
                                 (x + 14, y - 6), (x + 1, y - 6)])],
    "battery": lambda x, y: [_rounded_rect((x - 20, y - 11), (x + 16, y + 11), 3),
                             _rounded_rect((x + 16, y - 5), (x + 22, y + 5), 1)],
    "clock": lambda x, y: [_circle((x, y), 20, thickness=4),
                           lambda m: cv2.line(m, (x, y), (x, y - 13), 255, 4, cv2.LINE_AA),
                           lambda m: cv2.line(m, (x, y), (x + 10, y + 4), 255, 4, cv2.LINE_AA)],
    "leaf": lambda x, y: [_ellipse((x, y), (22, 11), angle=-40)],
    "shield": lambda x, y: [_poly([(x - 18, y - 20), (x + 18, y - 20), (x + 18, y), (x, y + 22), (x - 18, y)])],
    "snow": lambda x, y: [
        (lambda a: (lambda m: cv2.line(m, (int(x - 22 * math.cos(a)), int(y - 22 * math.sin(a))),
                                       (int(x + 22 * math.cos(a)), int(y + 22 * math.sin(a))), 255, 4,
                                       cv2.LINE_AA)))(math.pi * k / 3)
        for k in range(3)
    ],
    "flame": lambda x, y: [_circle((x, y + 8), 13), _poly([(x - 13, y + 4), (x + 13, y + 4), (x + 3, y - 24)])],
    "sparkle": lambda x, y: [_poly(_star_points(x, y, 4, 24, 7))],
    "star": lambda x, y: [_poly(_star_points(x, y, 5, 23, 10))],
    "wave": lambda x, y: [_ellipse((x - 14, y), (r, r), -45, 45, thickness=4) for r in (10, 20, 30)],
    "check": lambda x, y: [lambda m: cv2.polylines(m, [np.array([(x - 16, y), (x - 4, y + 13), (x + 17, y - 14)])],
                                                   False, 255, 6, cv2.LINE_AA)],
    "sun": lambda x, y: [_circle((x, y), 11)] + [
        (lambda a: (lambda m: cv2.line(m, (int(x + 15 * math.cos(a)), int(y + 15 * math.sin(a))),
                                       (int(x + 24 * math.cos(a)), int(y + 24 * math.sin(a))), 255, 3,
                                       cv2.LINE_AA)))(math.pi * k / 4)
        for k in range(8)
    ],
    "heart": lambda x, y: [_circle((x - 9, y - 6), 11), _circle((x + 9, y - 6), 11),
                           _poly([(x - 19, y - 2), (x + 19, y - 2), (x, y + 20)])],
    "lock": lambda x, y: [_rounded_rect((x - 16, y - 4), (x + 16, y + 20), 4),
                          _ellipse((x, y - 6), (11, 14), 180, 360, thickness=5)],
    "feather": lambda x, y: [_ellipse((x, y), (24, 8), angle=-50),
                             lambda m: cv2.line(m, (x - 18, y + 20), (x + 4, y - 4), 255, 3, cv2.LINE_AA)],
}


def product_layer(product: Mapping[str, Any], selling_point: Mapping[str, Any] | None = None) -> Layer:
    """The product drawing (shape, colours, brand name, selling-point badge) with a soft shadow."""
    shape = product.get("shape", "bottle")
    if shape not in SHAPES:
        raise ValueError(f"unknown product shape {shape!r}; known: {', '.join(SHAPES)}")
    colour, accent = tuple(map(float, product["colour"])), tuple(map(float, product["accent"]))
    cx, cy = PRODUCT_CENTRE
    layer = Layer()
    SHAPES[shape](layer, cx, cy, colour, accent)  # type: ignore[arg-type]
    badge_colour = accent if sum(accent) / 3 < 200 else _darker(colour, 0.8)  # visible on a white badge
    if selling_point is not None:
        _draw_cue(layer, str(selling_point.get("cue", "")), (cx + 125, cy - 140), badge_colour)  # type: ignore[arg-type]
    brand = str(product.get("brand") or product.get("name", ""))
    banner = _rounded_rect((cx - 130, cy + 160), (cx + 130, cy + 208), 14)
    layer.paint(banner, (25, 25, 30), shade=False, opacity=0.8)
    layer.paint(_text(brand, (cx, cy + 184), 236), (245, 245, 245), shade=False)
    return layer.scaled(PRODUCT_SCALE)


# --------------------------------------------------------------------------------------------
# Frames and encoding


def render_frames(move: CameraMove, backdrop: np.ndarray, product: Layer | None, num_frames: int,
                  rng: np.random.Generator) -> list[np.ndarray]:
    """The clip's frames (uint8 RGB, CLIP_SIZE square) filmed along `move`."""
    matrices = camera_matrices(move, num_frames, rng)
    shadow = _shadow(product.alpha) if product is not None else None
    still = _composite(backdrop, product, shadow, (0.0, 0.0)) if move.reveal_from is None else None
    frames = []
    for i, matrix in enumerate(matrices):
        if still is not None:
            canvas = still
        else:
            canvas = _composite(backdrop, product, shadow, _reveal_offset(move, i, num_frames))
        frame = cv2.warpAffine(canvas, matrix, (CLIP_SIZE, CLIP_SIZE), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT_101)
        if move.noise > 0:
            frame = frame + rng.normal(0.0, move.noise, frame.shape).astype(np.float32)
        frames.append(np.clip(np.rint(frame), 0, 255).astype(np.uint8))
    return frames


def _reveal_offset(move: CameraMove, index: int, num_frames: int) -> tuple[float, float]:
    """Ease-out slide of the product from `reveal_from` to its place over the first 60% of the clip."""
    assert move.reveal_from is not None
    progress = min(1.0, index / max(1.0, 0.6 * (num_frames - 1)))
    remaining = (1.0 - progress) ** 3
    return move.reveal_from[0] * remaining, move.reveal_from[1] * remaining


def _shadow(alpha: np.ndarray) -> np.ndarray:
    """A soft drop shadow (0..1) below and right of the product."""
    shadow = cv2.GaussianBlur(alpha, (0, 0), 10.0)
    return cv2.warpAffine(shadow, np.float32([[1, 0, 10], [0, 1, 14]]), (CANVAS, CANVAS))


def _composite(backdrop: np.ndarray, product: Layer | None, shadow: np.ndarray | None,
               offset: tuple[float, float]) -> np.ndarray:
    """Backdrop with the product and its shadow on top, shifted by `offset` (canvas px)."""
    if product is None or shadow is None:
        return backdrop
    rgb, alpha = product.rgb, product.alpha
    if offset != (0.0, 0.0):
        shift = np.float32([[1, 0, offset[0]], [0, 1, offset[1]]])
        rgb, alpha, shadow = (cv2.warpAffine(x, shift, (CANVAS, CANVAS), flags=cv2.INTER_LINEAR)
                              for x in (rgb, alpha, shadow))
    out = backdrop * (1.0 - 0.45 * shadow)[..., None]
    return out * (1.0 - alpha[..., None]) + rgb * alpha[..., None]


def write_mp4(path: str | Path, frames: Sequence[np.ndarray], fps: float = FPS) -> Path:
    """Encode uint8 RGB frames as H.264 (yuv420p) MP4, single-threaded and bit-exact."""
    path = Path(path)
    if not frames:
        raise ClipRenderError(f"{path}: no frames to write")
    height, width = frames[0].shape[:2]
    command = [
        imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(fps), "-i", "pipe:0",
        "-an", "-c:v", "libx264", "-preset", "medium", "-crf", str(CRF), "-pix_fmt", "yuv420p",
        "-threads", "1", "-fflags", "+bitexact", "-flags:v", "+bitexact", "-map_metadata", "-1",
        "-movflags", "+faststart", "-f", "mp4", str(path),
    ]
    data = b"".join(np.ascontiguousarray(f, dtype=np.uint8).tobytes() for f in frames)
    result = subprocess.run(command, input=data, capture_output=True, check=False)
    if result.returncode != 0:
        raise ClipRenderError(f"{path}: ffmpeg failed ({result.returncode}): {result.stderr.decode(errors='replace')}")
    return path


def render_clip(
    path: str | Path,
    *,
    motion: str,
    seed: int,
    num_frames: int = 36,
    fps: float = FPS,
    product: Mapping[str, Any] | None = None,
    selling_point: Mapping[str, Any] | None = None,
    scene: str | Mapping[str, Any] | None = None,
    direction: int | None = None,
) -> Path:
    """Render one clip of `motion` to `path` (MP4), deterministic from `seed`.

    `product`/`selling_point` are entries of `kb.demo.spec.PRODUCTS` (default: the first product,
    no badge); `scene` is a key of `kb.demo.spec.SCENES` or a scene dict (default: seeded choice);
    `direction` fixes the orbit/reveal direction (see module docstring).
    """
    if num_frames < 2:
        raise ValueError("a clip needs at least 2 frames")
    rng = np.random.default_rng(seed)
    scene_spec = _scene(scene, rng)
    backdrop = background(scene_spec, rng)
    layer = product_layer(product if product is not None else PRODUCTS[0], selling_point)
    move = camera_move(motion, rng, direction=direction)
    frames = render_frames(move, backdrop, layer, num_frames, rng)
    return write_mp4(path, frames, fps)


def _scene(scene: str | Mapping[str, Any] | None, rng: np.random.Generator) -> Mapping[str, Any]:
    if isinstance(scene, Mapping):
        return scene
    if scene is None:
        return SCENES[int(rng.integers(0, len(SCENES)))]
    for candidate in SCENES:
        if candidate["key"] == scene:
            return candidate
    raise ValueError(f"unknown scene {scene!r}; known: {', '.join(s['key'] for s in SCENES)}")
