"""Files inside a directory, opened so that nothing leads outside it: no symlink, no `..`, only regular files.

Why: an ACKB directory comes from someone else. A path checked first and opened later can be a
symlink by then (`media/clips -> /etc`), so checking names is not enough: every directory on the way
is opened with O_NOFOLLOW relative to its parent's descriptor, the file itself with O_NOFOLLOW, and
the opened descriptor is checked (fstat) to be a regular file. The same walk writes into the store's
media folder, so a symlink planted there cannot redirect a write either. The root directory itself
may be reached through a symlink: the caller named it.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path

FILE_MODE = 0o640  # media files written into the store
DIR_MODE = 0o750  # folders created in the store's media folder
READ_CHUNK = 1 << 20


class RefusedFile(ValueError):
    """The path leads to a symlink, device, fifo or socket, or cannot be opened; the message says which."""


class Absent(Exception):
    """The file does not exist (or a directory, or a file on the way, stands in its place)."""


def relative_parts(relative: str) -> list[str]:
    """The '/'-separated parts of a path inside a directory; ValueError for absolute paths, '..', '.', empty parts."""
    parts = relative.split("/")
    if relative.startswith("/") or "\\" in relative or "\x00" in relative or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"{relative!r} must be a relative path inside the directory ('/'-separated, no '..')")
    return parts


def open_regular(path: str | Path, *, dir_fd: int | None = None) -> int:
    """A read-only descriptor on `path`, refusing a symlink (last component) or anything not a regular file.

    A missing file raises FileNotFoundError (NotADirectoryError, IsADirectoryError), a refused one RefusedFile.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except (FileNotFoundError, NotADirectoryError):
        raise
    except OSError as exc:
        raise RefusedFile("is a symbolic link, refused" if exc.errno == errno.ELOOP else f"cannot be opened ({exc.strerror})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
        raise RefusedFile("is not a regular file (a device, fifo or socket), refused")
    return fd


def open_dir(root: Path, parts: list[str], *, create: bool = False) -> int:
    """A descriptor on the directory `root/parts...`, following no symlink below `root`; created (DIR_MODE) if asked."""
    if create:
        Path(root).mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    for index, part in enumerate(parts):
        fd = _enter(fd, part, "/".join(parts[: index + 1]), create=create)
    return fd


def open_inside(root: Path, relative: str) -> int:
    """A read-only descriptor on the regular file `root/relative`.

    Raises ValueError for a path that is not relative, Absent for a missing file (or a directory in
    its place), RefusedFile (a ValueError) for a symlink, device, fifo or socket anywhere on the way.
    """
    parts = relative_parts(relative)
    try:
        fd = open_dir(root, parts[:-1])
        try:
            return open_regular(parts[-1], dir_fd=fd)
        finally:
            os.close(fd)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        raise Absent(relative) from None
    except PermissionError as exc:
        raise RefusedFile(f"cannot be opened ({exc.strerror})") from None


def is_regular_inside(root: Path, relative: str) -> bool:
    """Whether `root/relative` is a regular file reached without a symlink (False when absent or refused)."""
    try:
        os.close(open_inside(root, relative))
    except (Absent, ValueError):
        return False
    return True


def sha256_fd(fd: int) -> str:
    """Hex SHA-256 of an open file's bytes (read with pread: the offset is left alone)."""
    digest, offset = hashlib.sha256(), 0
    while chunk := os.pread(fd, READ_CHUNK, offset):
        digest.update(chunk)
        offset += len(chunk)
    return digest.hexdigest()


def _enter(parent_fd: int, name: str, shown: str, *, create: bool) -> int:
    """The directory `name` inside `parent_fd` (which is closed), opened without following a symlink."""
    try:
        if create:
            try:
                os.mkdir(name, DIR_MODE, dir_fd=parent_fd)
            except FileExistsError:
                pass
        try:
            return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR) and stat.S_ISLNK(os.stat(name, dir_fd=parent_fd, follow_symlinks=False).st_mode):
                raise RefusedFile(f"goes through {shown}, a symbolic link; refused") from None
            raise
    finally:
        os.close(parent_fd)
