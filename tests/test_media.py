"""kb.media: a video is accepted only as a regular, bounded, decodable file; its header is checked before decoding."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kb.media import MediaError, MediaLimits, VideoInfo, check_video, probe_video
from kdcvg.config import Settings
from tests.videos import write_video


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid 2 s, 8 fps, 48x32 H.264 MP4 (moov first)."""
    return write_video(tmp_path_factory.mktemp("media") / "clip.mp4", size="48x32", fps=8, seconds=2.0)


def _frames_zeroed(source: Path, target: Path) -> Path:
    """A copy of `source` whose frame data (the mdat box after a moov-first header) is all zeros."""
    data = bytearray(source.read_bytes())
    mdat = data.index(b"mdat") + 4
    data[mdat:] = bytes(len(data) - mdat)
    target.write_bytes(bytes(data))
    return target


def test_a_valid_video_is_described_from_its_header(clip: Path) -> None:
    info = probe_video(clip)
    assert info == VideoInfo(container="mov", codec="h264", width=48, height=32, fps=8.0, duration_s=2.0, size_bytes=clip.stat().st_size)
    assert check_video(clip) == info


@pytest.mark.parametrize(
    ("fmt", "codec", "name", "container", "expected_codec"),
    [("webm", "libvpx", "v.webm", "matroska", "vp8"), ("avi", "mpeg4", "v.avi", "avi", "mpeg4"), ("mov", "libx264", "v.mov", "mov", "h264")],
)
def test_other_allowed_containers_are_accepted(tmp_path: Path, fmt: str, codec: str, name: str, container: str, expected_codec: str) -> None:
    info = check_video(write_video(tmp_path / name, codec=codec, fmt=fmt))
    assert (info.container, info.codec, info.width, info.height) == (container, expected_codec, 32, 32)


def test_html_named_mp4_is_refused_before_ffmpeg_reads_it(tmp_path: Path) -> None:
    fake = tmp_path / "page.mp4"
    fake.write_bytes(b"<!doctype html><html><script>alert(1)</script></html>")
    with pytest.raises(MediaError, match=r"page\.mp4: is not a video: its bytes are no MP4/MOV, WebM/Matroska or AVI container"):
        check_video(fake)


def test_a_playlist_named_mp4_cannot_make_ffmpeg_read_other_files(tmp_path: Path) -> None:
    playlist = tmp_path / "list.mp4"
    playlist.write_text("#EXTM3U\n#EXTINF:1,\nfile:///etc/passwd\n")
    with pytest.raises(MediaError, match="is not a video"):
        probe_video(playlist)


def test_container_must_match_the_suffix(clip: Path, tmp_path: Path) -> None:
    renamed = tmp_path / "clip.webm"
    renamed.write_bytes(clip.read_bytes())
    with pytest.raises(MediaError, match=r"holds a mov container but is named \.webm; expected one of \.mp4, \.m4v, \.mov"):
        check_video(renamed)


def test_empty_and_oversized_files_are_refused(clip: Path, tmp_path: Path) -> None:
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(MediaError, match="is empty, not a video"):
        check_video(tmp_path / "empty.mp4")
    size = clip.stat().st_size
    with pytest.raises(MediaError, match=f"is too large \\({size:,} bytes; at most {size - 1:,}\\)"):
        check_video(clip, MediaLimits(max_bytes=size - 1))
    assert check_video(clip, MediaLimits(max_bytes=size)).size_bytes == size


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        (MediaLimits(max_seconds=1.5), "lasts 2 s; at most 1.5 s"),
        (MediaLimits(max_fps=5), "has 8 frames per second; at most 5"),
        (MediaLimits(max_pixels=48 * 32 - 1), "is 48x32 pixels; at most 1,535 pixels per frame"),
    ],
)
def test_header_limits_are_enforced(clip: Path, limits: MediaLimits, message: str) -> None:
    with pytest.raises(MediaError, match=message):
        check_video(clip, limits)


def test_header_limits_are_checked_before_any_frame_is_decoded(clip: Path, tmp_path: Path) -> None:
    broken = _frames_zeroed(clip, tmp_path / "broken.mp4")
    assert probe_video(broken).width == 48  # the header is intact
    with pytest.raises(MediaError, match="is 48x32 pixels"):  # refused by the header, not by the decoder
        check_video(broken, MediaLimits(max_pixels=100))
    with pytest.raises(MediaError, match="is not a decodable video"):
        check_video(broken)


def test_a_codec_outside_the_allow_list_is_refused(tmp_path: Path) -> None:
    mpeg2 = write_video(tmp_path / "old.mp4", codec="mpeg2video")
    with pytest.raises(MediaError, match="uses the video codec 'mpeg2video'; accepted: av1, h264, hevc, mjpeg, mpeg4, vp8, vp9"):
        check_video(mpeg2)


def test_symlinks_fifos_directories_and_missing_files_are_refused(clip: Path, tmp_path: Path) -> None:
    link = tmp_path / "link.mp4"
    link.symlink_to(clip)
    with pytest.raises(MediaError, match=r"link\.mp4: is a symbolic link, refused"):
        check_video(link)
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    with pytest.raises(MediaError, match=r"pipe\.mp4: is not a regular file \(a device, fifo or socket\), refused"):
        check_video(fifo)  # does not block waiting for a writer
    with pytest.raises(MediaError, match="no such video file"):
        check_video(tmp_path / "absent.mp4")
    (tmp_path / "dir.mp4").mkdir()
    with pytest.raises(MediaError, match="no such video file"):
        check_video(tmp_path / "dir.mp4")


def test_limits_come_from_settings() -> None:
    settings = Settings(media_max_bytes=10, media_max_seconds=2.5, media_max_fps=30, media_max_pixels=640 * 480)
    assert MediaLimits.from_settings(settings) == MediaLimits(max_bytes=10, max_seconds=2.5, max_fps=30, max_pixels=640 * 480)
    assert MediaLimits() == MediaLimits.from_settings(Settings())
