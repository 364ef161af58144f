"""One writer per embedded store: an advisory lock the curation app holds for its whole life.

Ladybug allows one writing process per database, and the app hands its handle over for a moment
whenever SAR, generation or a console query opens the database itself. Without a lock of its own,
`kdcvg kb import` could slip into that moment. So the app (`kdcvg ui`, or the first session of a
server started otherwise) takes an exclusive `flock` on `<database>.app.lock` and keeps it until it
exits; every `kdcvg` command that opens the store for writing takes the same lock and refuses, with
one clear line, when it is held. Neo4j serves many writers: no lock there.

The lock file holds `PID ROLE` of the holder, for the message only (the kernel lock is the truth:
it goes away with the process, even after kill -9).
"""

from __future__ import annotations

import fcntl
import os
import time
from dataclasses import dataclass
from pathlib import Path

from kdcvg import errors
from kdcvg.config import Settings

APP = "app"  # the holder role of the curation app
INHERITED_FD = "KDCVG_UI_LOCK_FD"  # `kdcvg ui` passes its lock to the Streamlit server it becomes
HOLDER_WAIT_S = 2.0  # a holder writes its line just after taking the lock: a refused writer waits this long to name it


class StoreBusyError(errors.ConflictError):
    """Another process holds the store's writer lock; the message says which and what to do."""


@dataclass
class WriterLock:
    """A held writer lock (an open file descriptor with an exclusive flock)."""

    path: Path
    fd: int

    def release(self) -> None:
        """Drop the lock (closing the descriptor releases it)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def lock_path(settings: Settings) -> Path:
    """The lock file next to the embedded database."""
    database = settings.ladybug_path
    return database.with_name(database.name + ".app.lock")


def _holder(fd: int) -> tuple[str, str]:
    """(pid, role) written by the holder, or ("?", "") if it has not written them yet."""
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 200).decode("utf-8", "replace").split()
    return (text[0], " ".join(text[1:])) if text else ("?", "")


def busy_message(pid: str, role: str) -> str:
    """What a refused writer is told."""
    if role == APP:
        return f"the curation app is running on this store (pid {pid}); stop it or use its pages"
    return f"another kdcvg command is writing to this store (pid {pid}: {role or 'unknown'}); wait for it to finish"


def acquire(settings: Settings, role: str) -> WriterLock | None:
    """Take the store's writer lock without waiting, as `role`; None for Neo4j; StoreBusyError if held."""
    if settings.store_backend != "ladybug":
        return None
    path = lock_path(settings)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid, holder = _holder(fd)
        deadline = time.monotonic() + HOLDER_WAIT_S
        while pid == "?" and time.monotonic() < deadline:  # locked, line not written yet
            time.sleep(0.01)
            pid, holder = _holder(fd)
        os.close(fd)
        raise StoreBusyError(busy_message(pid, holder)) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()} {role}\n".encode(), 0)
    return WriterLock(path, fd)


def adopt_inherited(settings: Settings) -> WriterLock | None:
    """The lock `kdcvg ui` took and passed on through exec (same file, still locked), or None."""
    value = os.environ.get(INHERITED_FD, "")
    if not value.isdigit() or settings.store_backend != "ladybug":
        return None
    fd = int(value)
    path = lock_path(settings)
    try:
        same = os.path.samestat(os.fstat(fd), path.stat())
    except OSError:
        return None
    if not same:
        return None
    os.set_inheritable(fd, False)  # child processes (ffmpeg, ...) must not keep it
    os.environ.pop(INHERITED_FD, None)
    return WriterLock(path, fd)


PRIVATE_UMASK = 0o077  # files the app and the CLI writers create: owner only


def make_private(settings: Settings) -> None:
    """Create the data folder owner-only and take group/other access from it, its ui and media folders and the database files."""
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    for folder in (settings.data_dir, settings.media_dir, settings.ui_users_path.parent):
        if folder.is_dir() and not folder.is_symlink() and folder.stat().st_uid == os.getuid():
            folder.chmod(0o700)
    database = settings.ladybug_path
    for path in database.parent.glob(database.name + "*"):
        if path.is_file() and not path.is_symlink() and path.stat().st_uid == os.getuid():
            path.chmod(0o600)
