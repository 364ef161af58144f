"""Small real video files for tests (encoded by the ffmpeg binary bundled with imageio-ffmpeg)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import imageio_ffmpeg


def write_video(path: Path, *, shade: int = 128, size: str = "32x32", fps: int = 8, seconds: float = 1.0, codec: str = "libx264", fmt: str = "mp4") -> Path:
    """Encode a plain video of one grey `shade` (different shades give different bytes); returns `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    colour = f"0x{shade:02x}{shade:02x}{shade:02x}"
    command = [
        imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
        "-f", "lavfi", "-i", f"color=c={colour}:s={size}:r={fps}:d={seconds}",
        "-c:v", codec, "-pix_fmt", "yuv420p", "-threads", "1", "-fflags", "+bitexact", "-map_metadata", "-1",
        *(["-movflags", "+faststart"] if fmt == "mp4" else []), "-f", fmt, str(path),
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True)
    return path
