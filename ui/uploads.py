"""Clip uploads in the app: who may upload, how big, how long, and why the store stays free meanwhile.

- Only a session signed in with the curate capability may store an uploaded file in the server:
  Streamlit's upload endpoint accepts files for any open session, so `install_gate` puts an
  allow-list in front of the runtime's upload manager (the uploader widget is also only drawn for
  curators). Files of a session that loses the right are dropped.
- Size is capped by Streamlit (`server.maxUploadSize`, set by `kdcvg ui`) and again here; duration,
  frame rate, resolution and frame count are read from the container header (`kb.media`) and
  capped BEFORE any frame is decoded.
- Motion is measured (all frames decoded) OUTSIDE the store lock: the Curator works on a view of the
  shared store that takes the lock only for its final write, so other sessions are served meanwhile;
  one measurement runs at a time per server so uploads cannot starve the CPU.
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path
from typing import Any

from kb.curation import VIDEO_SUFFIXES, Curator
from kb.media import MediaError, MediaLimits, VideoInfo, check_video
from kb.repository import RecordValidationError
from kb.store import Row

MAX_UPLOAD_MB = 20  # also Streamlit's server.maxUploadSize (kdcvg ui)
MAX_SECONDS = 30.0
MAX_FPS = 60.0
MAX_PIXELS = 1920 * 1080
MAX_FRAMES = 900
# The app's caps are tighter than an import's: one upload's motion is measured while annotators wait.
UPLOAD_LIMITS = MediaLimits(max_bytes=MAX_UPLOAD_MB * 1024 * 1024, max_seconds=MAX_SECONDS, max_fps=MAX_FPS, max_pixels=MAX_PIXELS)
MEASURING = threading.BoundedSemaphore(1)  # one motion measurement at a time in this server


def frame_count(info: VideoInfo) -> int:
    """The number of frames the header promises (duration times rate)."""
    return round((info.duration_s or 0.0) * info.fps)


def check_upload(filename: str, data: bytes) -> VideoInfo:
    """Refuse an upload over the size cap or whose container header passes a cap, before its frames are decoded.

    One check for every door: `kb.media.check_video` (container, codec, size, duration, rate and
    picture read from the header, then one frame decoded), with the app's tighter limits.
    """
    if len(data) > UPLOAD_LIMITS.max_bytes:
        raise RecordValidationError(f"{filename!r} is too large ({len(data):,} bytes; at most {MAX_UPLOAD_MB} MB)", field="file")
    suffix = Path(filename).suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise RecordValidationError(f"{filename!r} is not a video file: expected one of {', '.join(VIDEO_SUFFIXES)}", field="file")
    with tempfile.TemporaryDirectory(prefix="kdcvg-upload-") as folder:  # mode 0700
        path = Path(folder) / f"upload{suffix}"
        path.write_bytes(data)
        try:
            info = check_video(path, UPLOAD_LIMITS)
        except MediaError as exc:
            reason = str(exc).removeprefix(f"{path}: ")
            raise RecordValidationError(f"{filename!r} is refused before decoding: it {reason}", field="file") from None
    if frame_count(info) > MAX_FRAMES:
        raise RecordValidationError(f"{filename!r} is refused before decoding: it has {frame_count(info)} frames; at most {MAX_FRAMES}", field="file")
    return info


def upload_clip(shared: Any, username: str, filename: str, data: bytes, record: Row, *, product_id: str | None, motion_id: str | None) -> Row:
    """Check the caps, then store, measure and create the clip as `username`; only the final write holds the store lock.

    `shared` is the app's SharedStore (ui.state); kb.curation.Curator validates, measures and audits.
    """
    if not data:
        raise RecordValidationError(f"{filename!r} is empty", field="file")
    check_upload(filename, data)
    curator = Curator(shared.per_call(), username, shared.settings.media_dir, media_limits=UPLOAD_LIMITS)
    with MEASURING:
        return curator.upload_clip(filename, data, record, product_id=product_id, motion_id=motion_id)


# --- who may upload: an allow-list in front of Streamlit's upload manager ---

_ALLOWED: set[str] = set()
_GATE_LOCK = threading.Lock()


def _manager() -> Any:
    """The running server's uploaded-file manager, or None outside a server (AppTest, scripts)."""
    from streamlit import runtime

    return runtime.get_instance().uploaded_file_mgr if runtime.exists() else None


def gate(manager: Any) -> None:
    """Make `manager` (Streamlit's uploaded-file manager) keep a file only for sessions on the allow-list (idempotent)."""
    from starlette.exceptions import HTTPException  # Streamlit's server is Starlette: this becomes the HTTP answer

    with _GATE_LOCK:
        if getattr(manager, "_kdcvg_gated", False):
            return
        original = manager.add_file

        def add_file(session_id: str, file: Any) -> None:
            """Keep the file only if its session is signed in with the curate capability (else HTTP 403)."""
            if session_id not in _ALLOWED:
                raise HTTPException(status_code=403, detail="uploads need a session signed in with the curate role")
            original(session_id=session_id, file=file)

        manager.add_file = add_file
        manager._kdcvg_gated = True


def install_gate() -> None:
    """Gate the running server's upload manager (a no-op outside a server)."""
    manager = _manager()
    if manager is not None:
        gate(manager)


def allow_session(session_id: str, allowed: bool, manager: Any = None) -> None:
    """Put a browser session on the upload allow-list, or take it off and drop the files it uploaded."""
    if allowed:
        _ALLOWED.add(session_id)
        return
    _ALLOWED.discard(session_id)
    if manager is not None:
        manager.remove_session_files(session_id)


def allow_this_session(allowed: bool) -> None:
    """allow_session for the browser session running this script."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    context = get_script_run_ctx()
    if context is not None:
        allow_session(context.session_id, allowed, _manager())
