"""The app's doors without a browser: server-side sessions, their key, sign-in throttling and checks,
the writer lock shared with the CLI, private file modes, and the upload caps read from video headers.

Real files, real sqlite, real `kdcvg` processes, real mp4 files; the clock is passed in where a
test needs to step past a lockout (no sleeps, no timing assertions).
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import bcrypt
import cv2
import numpy as np
import pytest
import yaml
from starlette.exceptions import HTTPException
from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager
from streamlit.runtime.uploaded_file_manager import UploadedFileRec
from typer.testing import CliRunner

from cli.main import app
from kb import store_lock
from kb.repository import RecordValidationError
from kdcvg.config import load_settings
from ui import uploads
from ui.auth import User, add_user, load_users, throttle_subjects, verify
from ui.sessions import FIRST_WAIT_S, FREE_FAILURES, SESSION_HOURS, SessionFileError, SessionStore

runner = CliRunner()


def mode(path: Path) -> int:
    """The permission bits of `path`."""
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """An empty data dir (no store, no users) with no personal config."""
    return {"KDCVG_DATA": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path / "config")}


def users_dir(env: dict[str, str]) -> Path:
    """The app's private folder (users file, session key, sessions) for `env`."""
    return Path(env["KDCVG_DATA"]) / "ui"


def add(env: dict[str, str], username: str, password: str, *options: str) -> None:
    """`kdcvg ui add-user` with the password piped in; must succeed."""
    result = runner.invoke(app, ["ui", "add-user", username, "--role", "reviewer", *options, "--password-stdin"], input=password + "\n", env=env)
    assert result.exit_code == 0, result.output


# --- sessions and their key ---


def test_only_tokens_the_server_issued_open_a_session(tmp_path: Path) -> None:
    sessions = SessionStore(tmp_path / "ui")
    token = sessions.start("rev")
    assert sessions.user_of(token) == "rev"
    forged = [None, "", "rev", '{"username": "rev", "exp_date": 9999999999}', token + "x", token[:-1]]
    assert [sessions.user_of(f) for f in forged] == [None] * len(forged)
    assert token.encode() not in sessions.db_path.read_bytes()  # the file holds HMACs, not tokens


def test_sign_out_ends_that_session_only_and_sessions_expire(tmp_path: Path) -> None:
    now = [1_000_000.0]
    sessions = SessionStore(tmp_path / "ui", clock=lambda: now[0])
    first, second = sessions.start("rev"), sessions.start("rev")
    sessions.end(first)
    assert sessions.user_of(first) is None and sessions.user_of(second) == "rev"
    now[0] += SESSION_HOURS * 3600
    assert sessions.user_of(second) is None


def test_key_and_sessions_files_are_private_and_an_open_key_is_refused(tmp_path: Path) -> None:
    sessions = SessionStore(tmp_path / "ui")
    sessions.start("rev")
    assert (mode(sessions.folder), mode(sessions.key_path), mode(sessions.db_path)) == (0o700, 0o600, 0o600)
    sessions.key_path.chmod(0o644)
    with pytest.raises(SessionFileError, match="chmod 600"):
        sessions.user_of("anything")


def test_rotating_the_key_ends_every_session(tmp_path: Path) -> None:
    sessions = SessionStore(tmp_path / "ui")
    tokens = [sessions.start("rev"), sessions.start("ann")]
    key = sessions.key_path.read_bytes()
    assert sessions.rotate_key() == 2
    assert [sessions.user_of(t) for t in tokens] == [None, None]
    assert sessions.key_path.read_bytes() != key and mode(sessions.key_path) == 0o600


# --- sign-in checks ---


def test_throttle_after_failures_per_user_and_per_client_with_backoff(tmp_path: Path) -> None:
    now = [1_000_000.0]
    sessions = SessionStore(tmp_path / "ui", clock=lambda: now[0])
    attempt = throttle_subjects("rev", "10.0.0.1")
    for _ in range(FREE_FAILURES - 1):
        sessions.failed(attempt)
        assert sessions.wait_s(attempt) == 0
    sessions.failed(attempt)
    assert sessions.wait_s(attempt) == FIRST_WAIT_S
    assert sessions.wait_s(throttle_subjects("rev", "10.0.0.2")) > 0  # the user, from anywhere
    assert sessions.wait_s(throttle_subjects("ann", "10.0.0.1")) > 0  # the client, for anyone
    assert sessions.wait_s(throttle_subjects("ann", "10.0.0.2")) == 0
    now[0] += FIRST_WAIT_S
    assert sessions.wait_s(attempt) == 0
    sessions.failed(attempt)
    assert sessions.wait_s(attempt) == 2 * FIRST_WAIT_S  # each further failure doubles the wait
    sessions.succeeded(attempt[1:])
    assert sessions.wait_s(throttle_subjects("rev", "10.0.0.2")) == 0


def test_unknown_and_known_users_run_the_same_bcrypt_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ui" / "users.yaml"
    add_user(path, "rev", "right-pass-1", ["reviewer"], "Rey")
    config = load_users(path)
    checked: list[bytes] = []
    real = bcrypt.checkpw

    def counting(password: bytes, hashed: bytes) -> bool:
        checked.append(hashed)
        return real(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", counting)  # a counter around the library, our logic untouched
    assert verify(config, "rev", "wrong-pass-1") is None
    assert verify(config, "nobody", "wrong-pass-1") is None
    assert verify(config, "rev", "right-pass-1") == User("rev", "Rey", ("reviewer",))
    assert verify(config, "rev", "right-pass-1" + "x" * 100) is None  # longer than bcrypt reads: no error, no match
    assert len(checked) == 4
    cost = [h.split(b"$")[2] for h in checked]
    assert cost[0] == cost[1] == cost[2]  # the unknown name's dummy hash costs what a real one costs


# --- the CLI ends sessions ---


def test_password_change_replace_and_rotate_key_end_sessions(env: dict[str, str]) -> None:
    add(env, "rev", "first-pass-1")
    add(env, "ann", "first-pass-1")
    sessions = SessionStore(users_dir(env))
    rev, ann = sessions.start("rev"), sessions.start("ann")
    changed = runner.invoke(app, ["ui", "set-password", "rev", "--password-stdin"], input="second-pass-2\n", env=env)
    assert changed.exit_code == 0 and "1 session(s) ended" in changed.output
    assert sessions.user_of(rev) is None and sessions.user_of(ann) == "ann"
    assert verify(load_users(users_dir(env) / "users.yaml"), "rev", "second-pass-2") is not None
    add(env, "ann", "third-pass-3", "--replace")
    assert sessions.user_of(ann) is None
    both = [sessions.start("rev"), sessions.start("ann")]
    rotated = runner.invoke(app, ["ui", "rotate-key"], env=env)
    assert rotated.exit_code == 0 and "2 session(s) ended" in rotated.output
    assert [sessions.user_of(t) for t in both] == [None, None]


def test_users_file_holds_no_secret_and_an_old_cookie_key_is_removed(env: dict[str, str]) -> None:
    add(env, "rev", "first-pass-1")
    path = users_dir(env) / "users.yaml"
    assert set(yaml.safe_load(path.read_text())) == {"credentials"} and mode(path.parent) == 0o700
    old = yaml.safe_load(path.read_text())
    old["cookie"] = {"name": "kdcvg_ui", "key": "k" * 32, "expiry_days": 1}
    path.write_text(yaml.safe_dump(old))
    assert runner.invoke(app, ["ui", "list-users"], env=env).exit_code == 0  # still readable
    rotated = runner.invoke(app, ["ui", "rotate-key"], env=env)
    assert rotated.exit_code == 0 and "old cookie key removed" in rotated.output
    assert "cookie" not in yaml.safe_load(path.read_text()) and mode(path) == 0o600


# --- one writer: the app's lock, taken by every CLI writer ---


def kdcvg(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run the real `kdcvg` in a child process with `env`."""
    full = {**{k: v for k, v in os.environ.items() if k not in ("KDCVG_CONFIG", "NEO4J_URI")}, **env}
    return subprocess.run([sys.executable, "-m", "cli.main", *args], env=full, capture_output=True, text=True, check=False, timeout=300)


def test_writers_are_refused_while_the_app_holds_the_store_and_write_private_files(env: dict[str, str]) -> None:
    settings = load_settings(environ=env)
    lock = store_lock.acquire(settings, store_lock.APP)
    try:
        refused = kdcvg(env, "kb", "migrate")
    finally:
        assert lock is not None
        lock.release()
    assert refused.returncode == 2, refused.stderr
    assert f"the curation app is running on this store (pid {os.getpid()}); stop it or use its pages" in refused.stderr
    assert "Traceback" not in refused.stderr and not settings.ladybug_path.exists()
    done = kdcvg(env, "kb", "migrate")
    assert done.returncode == 0, done.stderr
    assert mode(settings.data_dir) == 0o700 and mode(settings.ladybug_path) == 0o600


def test_the_app_refuses_to_start_its_store_while_a_cli_writer_holds_it(env: dict[str, str]) -> None:
    from ui.state import SharedStore

    settings = load_settings(environ=env)
    writer = store_lock.acquire(settings, "kdcvg kb import")
    try:
        with pytest.raises(store_lock.StoreBusyError, match=rf"another kdcvg command is writing to this store \(pid {os.getpid()}: kdcvg kb import\)"):
            SharedStore(settings)
    finally:
        assert writer is not None
        writer.release()


# --- uploads ---


def write_video(path: Path, width: int, height: int, fps: float, frames: int) -> Path:
    """A real mp4 (moving noise) with that header."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    rng = np.random.default_rng(0)
    for _ in range(frames):
        writer.write(rng.integers(0, 255, (height, width, 3), dtype=np.uint8))
    writer.release()
    return path


@pytest.mark.parametrize(
    "width, height, fps, frames, reason",
    [
        (64, 64, 60, 1200, "it has 1200 frames; at most 900"),  # the reproduced 20 s at 60 fps
        (64, 64, 120, 12, "120 frames per second"),
        (64, 64, 10, 400, "lasts 40 s"),
        (2000, 1200, 10, 2, "2000x1200"),
    ],
)
def test_uploads_over_the_header_caps_are_refused_before_decoding(tmp_path: Path, width: int, height: int, fps: float, frames: int, reason: str) -> None:
    data = write_video(tmp_path / "in.mp4", width, height, fps, frames).read_bytes()
    with pytest.raises(RecordValidationError, match="refused before decoding") as refused:
        uploads.check_upload("in.mp4", data)
    assert reason in str(refused.value)


def test_uploads_within_the_caps_pass_and_non_videos_are_named(tmp_path: Path) -> None:
    header = uploads.check_upload("ok.mp4", write_video(tmp_path / "ok.mp4", 64, 48, 12, 24).read_bytes())
    assert (header.width, header.height, uploads.frame_count(header)) == (64, 48, 24) and header.duration_s == pytest.approx(2.0)
    with pytest.raises(RecordValidationError, match="is not a video"):
        uploads.check_upload("page.mp4", b"<html>" * 100)
    with pytest.raises(RecordValidationError, match="at most 20 MB"):
        uploads.check_upload("big.mp4", b"\0" * (uploads.MAX_UPLOAD_MB * 1024 * 1024 + 1))


def test_only_allowed_sessions_may_store_an_uploaded_file() -> None:
    manager = MemoryUploadedFileManager("/_stcore/upload_file")
    uploads.gate(manager)
    uploads.gate(manager)  # idempotent: one gate
    record = UploadedFileRec(file_id="f1", name="x.mp4", type="video/mp4", data=b"x" * 10)
    with pytest.raises(HTTPException) as refused:
        manager.add_file(session_id="anonymous-session", file=record)
    assert refused.value.status_code == 403 and manager.get_files("anonymous-session", ["f1"]) == []
    uploads.allow_session("curator-session", True)
    manager.add_file(session_id="curator-session", file=record)
    assert [f.file_id for f in manager.get_files("curator-session", ["f1"])] == ["f1"]
    uploads.allow_session("curator-session", False, manager)  # signed out: its files go
    assert manager.get_files("curator-session", ["f1"]) == []


def test_the_app_does_not_start_with_a_key_others_can_read(env: dict[str, str]) -> None:
    add(env, "rev", "first-pass-1")
    sessions = SessionStore(users_dir(env))
    sessions.check()
    sessions.key_path.chmod(0o644)
    result = runner.invoke(app, ["ui"], env=env)
    assert result.exit_code == 2 and f"chmod 600 {sessions.key_path}" in result.output
