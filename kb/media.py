"""Is this file a decodable video of bounded size, duration, fps and resolution? Checked before decoding.

Why: video files reach the store from ACKB imports and from the curation app's uploads; a file named
`.mp4` may be HTML, a decompression bomb (a tiny file declaring 100,000 x 100,000 pixels or ten hours
at 1,000 fps), or a playlist that makes FFmpeg read other files. What, in this order:

1. the file is opened without following a symlink and must be a regular file
   (`kb.safefs.open_regular`) of at most `max_bytes`;
2. its first bytes must be one of the allowed containers (ISO-BMFF .mp4/.m4v/.mov, Matroska
   .webm/.mkv, RIFF .avi), matching the file's suffix;
3. the container header is read by FFmpeg with that demuxer forced and only the `file` protocol
   allowed (no playlists, no network, no other files), reading the already-open descriptor, so the
   file checked is the file opened; codec, width, height, fps and duration come from the header and
   must be within `MediaLimits` (codec from an allow-list, duration known);
4. only then the first video frame is really decoded (a separate FFmpeg process, bounded in time).

`probe_video(path)` does 1-3 without the limits on duration/fps/resolution (size cap only), and
`check_video(path, limits)` does 1-4 and raises `MediaError` saying what is wrong.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kb.safefs import RefusedFile, open_regular
from kdcvg.config import Settings
from kdcvg.errors import BadInputError

PROBE_TIMEOUT_S = 20.0
DECODE_TIMEOUT_S = 60.0
HEAD_BYTES = 16

# container (FFmpeg demuxer) -> the suffixes it may carry
CONTAINERS: dict[str, tuple[str, ...]] = {"mov": (".mp4", ".m4v", ".mov"), "matroska": (".webm", ".mkv"), "avi": (".avi",)}
VIDEO_SUFFIXES: tuple[str, ...] = tuple(s for suffixes in CONTAINERS.values() for s in suffixes)
VIDEO_CODECS: frozenset[str] = frozenset({"h264", "hevc", "vp8", "vp9", "av1", "mpeg4", "mjpeg"})

_DURATION = re.compile(r"Duration: (\d+):(\d{2}):(\d{2}(?:\.\d+)?)")
_VIDEO_STREAM = re.compile(r"Stream #\d+:\d+\S*: Video: (\w+)(.*)")
_SIZE = re.compile(r", (\d{1,6})x(\d{1,6})\b")
_RATE = re.compile(r", (\d+(?:\.\d+)?)(k?) (fps|tbr)\b")


class MediaError(BadInputError):
    """The file is not an acceptable video; the message says why (`check_video`/`probe_video` start it with the path)."""


@dataclass(frozen=True)
class MediaLimits:
    """Caps on a video accepted into the store; defaults are those of `kdcvg.config.Settings`."""

    max_bytes: int = Settings.model_fields["media_max_bytes"].default
    max_seconds: float = Settings.model_fields["media_max_seconds"].default
    max_fps: float = Settings.model_fields["media_max_fps"].default
    max_pixels: int = Settings.model_fields["media_max_pixels"].default

    @classmethod
    def from_settings(cls, settings: Settings) -> "MediaLimits":
        """The limits configured in `settings` (media_max_bytes, media_max_seconds, media_max_fps, media_max_pixels)."""
        return cls(settings.media_max_bytes, settings.media_max_seconds, settings.media_max_fps, settings.media_max_pixels)


@dataclass(frozen=True)
class VideoInfo:
    """What a video's container header says, plus the file's size."""

    container: str
    codec: str
    width: int
    height: int
    fps: float
    duration_s: float | None
    size_bytes: int


def container_of(head: bytes) -> str | None:
    """The allowed container whose signature starts `head`, or None."""
    if head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip"):
        return "mov"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    return None


def probe_fd(fd: int, suffix: str, max_bytes: int) -> VideoInfo:
    """Container facts of the open regular file `fd` whose name ends in `suffix`; size capped, nothing decoded."""
    size = os.fstat(fd).st_size
    if size == 0:
        raise MediaError("is empty, not a video")
    if size > max_bytes:
        raise MediaError(f"is too large ({size:,} bytes; at most {max_bytes:,})")
    container = container_of(os.pread(fd, HEAD_BYTES, 0))
    if container is None:
        raise MediaError("is not a video: its bytes are no MP4/MOV, WebM/Matroska or AVI container")
    if suffix.lower() not in CONTAINERS[container]:
        expected = ", ".join(CONTAINERS[container])
        raise MediaError(f"holds a {container} container but is named {suffix or '(no suffix)'}; expected one of {expected}")
    stderr = _ffmpeg(fd, container, [], PROBE_TIMEOUT_S).stderr.decode("utf-8", "replace")
    return _parse_header(stderr, container, size)


def _parse_header(text: str, container: str, size: int) -> VideoInfo:
    """VideoInfo from FFmpeg's description of its input (the first video stream)."""
    stream = _VIDEO_STREAM.search(text)
    if stream is None:
        reason = text.strip().splitlines()[-1][:200] if text.strip() else "no video stream"
        raise MediaError(f"is not a readable video: {reason}")
    codec, details = stream.group(1), stream.group(2)
    size_match, rate = _SIZE.search(details), _RATE.search(details)
    if size_match is None or rate is None:
        raise MediaError("is not a readable video: its header gives no frame size or frame rate")
    fps = float(rate.group(1)) * (1000 if rate.group(2) else 1)
    duration = _DURATION.search(text)
    seconds = None if duration is None else int(duration.group(1)) * 3600 + int(duration.group(2)) * 60 + float(duration.group(3))
    return VideoInfo(container, codec, int(size_match.group(1)), int(size_match.group(2)), fps, seconds, size)


def check_limits(info: VideoInfo, limits: MediaLimits) -> None:
    """Refuse a header outside `limits` or an unknown codec, before anything is decoded."""
    if info.codec not in VIDEO_CODECS:
        raise MediaError(f"uses the video codec {info.codec!r}; accepted: {', '.join(sorted(VIDEO_CODECS))}")
    if info.width < 1 or info.height < 1 or info.width * info.height > limits.max_pixels:
        raise MediaError(f"is {info.width}x{info.height} pixels; at most {limits.max_pixels:,} pixels per frame")
    if not 0 < info.fps <= limits.max_fps:
        raise MediaError(f"has {info.fps:g} frames per second; at most {limits.max_fps:g}")
    if info.duration_s is None:
        raise MediaError("does not state its duration in the container header")
    if info.duration_s > limits.max_seconds:
        raise MediaError(f"lasts {info.duration_s:g} s; at most {limits.max_seconds:g} s")


def decode_first_frame(fd: int, container: str) -> None:
    """Really decode the first video frame (tiny grey output) or raise MediaError."""
    result = _ffmpeg(fd, container, ["-map", "0:v:0", "-frames:v", "1", "-s", "8x8", "-pix_fmt", "gray", "-f", "rawvideo", "-"], DECODE_TIMEOUT_S)
    if result.returncode != 0 or len(result.stdout) != 64:
        reason = result.stderr.decode("utf-8", "replace").strip().splitlines()
        raise MediaError(f"is not a decodable video: {reason[-1][:200] if reason else 'no frame could be decoded'}")


def check_fd(fd: int, suffix: str, limits: MediaLimits) -> VideoInfo:
    """Probe, cap and decode one frame of the open regular file `fd` (named with `suffix`)."""
    info = probe_fd(fd, suffix, limits.max_bytes)
    check_limits(info, limits)
    decode_first_frame(fd, info.container)
    return info


def probe_video(path: Path) -> VideoInfo:
    """Container facts of the video at `path` (no symlink, regular file, default size cap); raises MediaError."""
    return _with_fd(Path(path), lambda fd: probe_fd(fd, Path(path).suffix, MediaLimits().max_bytes))


def check_video(path: Path, limits: MediaLimits | None = None) -> VideoInfo:
    """Accept `path` only as a decodable video within `limits` (header checked before decoding); raises MediaError."""
    return _with_fd(Path(path), lambda fd: check_fd(fd, Path(path).suffix, limits or MediaLimits()))


def _with_fd(path: Path, work: Callable[[int], VideoInfo]) -> VideoInfo:
    """Run `work(fd)` on `path` opened safely; MediaError messages are prefixed with the path."""
    try:
        fd = open_regular(path)
    except RefusedFile as exc:
        raise MediaError(f"{path}: {exc}") from None
    except OSError:
        raise MediaError(f"{path}: no such video file") from None
    try:
        return work(fd)
    except MediaError as exc:
        raise MediaError(f"{path}: {exc}") from None
    finally:
        os.close(fd)


def _ffmpeg(fd: int, container: str, output: list[str], timeout_s: float) -> subprocess.CompletedProcess[bytes]:
    """Run the bundled FFmpeg on the open descriptor (as /dev/fd/N) with the container's demuxer forced."""
    import imageio_ffmpeg

    command = [
        imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-threads", "1",
        "-protocol_whitelist", "file", "-f", container, "-i", f"/dev/fd/{fd}", *output,
    ]  # fmt: skip
    try:
        return subprocess.run(command, pass_fds=(fd,), capture_output=True, timeout=timeout_s, check=False, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise MediaError(f"could not be read within {timeout_s:g} s") from None
