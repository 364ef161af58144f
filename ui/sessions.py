"""Server-side sign-in sessions and sign-in throttling, kept in the app's own private folder.

Why server-side: a signed cookie that names a user can be forged by anyone who reads the key, and
it stays valid after sign-out. Here a signed-in browser session holds only a random token (in
Streamlit's server-side session state, never in a cookie); the sessions file maps
HMAC(key, token) to (user, expiry). Signing out deletes the row; a password change deletes the
user's rows; rotating the key deletes every row. The app checks the row on every interaction, so
an ended session is signed out at its next click, whatever process ended it.

Files, next to the users file (`<data>/ui/` by default), folder 0700:
- `session.key` (0600): 32 random bytes; never in the users file, the store or the media folder;
- `sessions.sqlite` (0600): sessions and failed sign-in counters (per user and per client address).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import sqlite3
import stat
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path

from kdcvg.errors import KdcvgError

KEY_FILE = "session.key"
SESSIONS_FILE = "sessions.sqlite"
SESSION_HOURS = 12.0  # a session ends this long after sign-in, whatever happens
FREE_FAILURES = 5  # failed sign-ins per user or client before each further try must wait
FIRST_WAIT_S = 30.0  # the wait after FREE_FAILURES failures; doubles with each further failure
MAX_WAIT_S = 15 * 60.0
FAILURE_MEMORY_S = 24 * 3600.0  # a counter untouched this long starts again from zero

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, username TEXT NOT NULL, expires_at REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS sessions_user ON sessions(username)",
    "CREATE TABLE IF NOT EXISTS failures (subject TEXT PRIMARY KEY, count INTEGER NOT NULL, last_at REAL NOT NULL)",
)


class SessionFileError(KdcvgError):
    """The key or sessions file is unsafe or unreadable; the message says how to fix it."""


def private_folder(folder: Path) -> Path:
    """Create `folder` owner-only (0700) if absent; tighten it if it is ours and open to others."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = folder.stat()
    if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) & 0o077:
        folder.chmod(0o700)
    return folder


def _write_private(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically with mode 0600."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


class SessionStore:
    """The sessions and failure counters of one app (one users file), shared by the app and `kdcvg ui` commands."""

    def __init__(self, folder: Path, clock: Callable[[], float] = time.time) -> None:
        self.folder = folder
        self.clock = clock

    @property
    def key_path(self) -> Path:
        return self.folder / KEY_FILE

    @property
    def db_path(self) -> Path:
        return self.folder / SESSIONS_FILE

    def _key(self) -> bytes:
        """The session key, created on first use; refused if others may read it."""
        private_folder(self.folder)
        path = self.key_path
        if not path.exists():
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            except FileExistsError:
                pass  # another process made it just now
            else:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(secrets.token_bytes(32))
        info = path.lstat()
        if not stat.S_ISREG(info.st_mode) or stat.S_IMODE(info.st_mode) & 0o077:
            raise SessionFileError(f"{path} must be a regular file only its owner can read (chmod 600 {path})")
        key = path.read_bytes()
        if len(key) < 32:
            raise SessionFileError(f"{path} is too short to be a session key: run `kdcvg ui rotate-key`")
        return key

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """A connection to the sessions file (created 0600), committed when the block ends."""
        private_folder(self.folder)
        if not self.db_path.exists():
            os.close(os.open(self.db_path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600))
        with closing(sqlite3.connect(self.db_path, timeout=10, isolation_level=None)) as connection:
            connection.execute("BEGIN IMMEDIATE")
            for statement in SCHEMA:
                connection.execute(statement)
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    def _id(self, token: str) -> str:
        """What the sessions file stores for a token: its HMAC under the key (useless without the key)."""
        return hmac.new(self._key(), token.encode("utf-8"), hashlib.sha256).hexdigest()

    def check(self) -> None:
        """Create the key and the sessions file if absent, and refuse them if unsafe (before the app starts)."""
        self._key()
        with self._db():
            pass

    # sessions

    def start(self, username: str) -> str:
        """Open a session for `username`; the random token the browser session keeps."""
        token = secrets.token_urlsafe(32)
        with self._db() as db:
            db.execute("DELETE FROM sessions WHERE expires_at <= ?", (self.clock(),))
            db.execute("INSERT INTO sessions VALUES (?, ?, ?)", (self._id(token), username, self.clock() + SESSION_HOURS * 3600))
        return token

    def user_of(self, token: str | None) -> str | None:
        """The username of a live session, or None (unknown, ended or expired token)."""
        if not token:
            return None
        with self._db() as db:
            row = db.execute("SELECT username FROM sessions WHERE id = ? AND expires_at > ?", (self._id(token), self.clock())).fetchone()
        return row[0] if row else None

    def end(self, token: str | None) -> None:
        """End one session (sign-out)."""
        if token:
            with self._db() as db:
                db.execute("DELETE FROM sessions WHERE id = ?", (self._id(token),))

    def end_user(self, username: str) -> int:
        """End every session of `username` (password change, user replaced); how many there were."""
        with self._db() as db:
            return db.execute("DELETE FROM sessions WHERE username = ?", (username,)).rowcount

    def rotate_key(self) -> int:
        """Replace the key with a fresh one and end every session; how many sessions ended."""
        private_folder(self.folder)
        with self._db() as db:
            ended = db.execute("DELETE FROM sessions").rowcount
            _write_private(self.key_path, secrets.token_bytes(32))
        return ended

    # throttling

    def wait_s(self, subjects: Sequence[str]) -> float:
        """How long the next sign-in attempt for these subjects must wait (0: it may go ahead)."""
        now = self.clock()
        longest = 0.0
        with self._db() as db:
            for subject in subjects:
                row = db.execute("SELECT count, last_at FROM failures WHERE subject = ?", (subject,)).fetchone()
                if row is None or now - row[1] > FAILURE_MEMORY_S or row[0] < FREE_FAILURES:
                    continue
                wait = min(FIRST_WAIT_S * 2 ** (row[0] - FREE_FAILURES), MAX_WAIT_S)
                longest = max(longest, row[1] + wait - now)
        return longest

    def failed(self, subjects: Sequence[str]) -> None:
        """Count one failed sign-in against each subject."""
        now = self.clock()
        with self._db() as db:
            db.execute("DELETE FROM failures WHERE last_at < ?", (now - FAILURE_MEMORY_S,))
            for subject in subjects:
                db.execute(
                    "INSERT INTO failures VALUES (?, 1, ?) ON CONFLICT(subject) DO UPDATE SET count = count + 1, last_at = excluded.last_at",
                    (subject, now),
                )

    def succeeded(self, subjects: Sequence[str]) -> None:
        """Forget the failures of these subjects after a good sign-in."""
        with self._db() as db:
            db.executemany("DELETE FROM failures WHERE subject = ?", [(s,) for s in subjects])
