"""Putting an import's video files into the store's media folder so that a crash at any moment is recoverable.

Why: the graph commits in one transaction, but files move one by one; a process killed between the
two (or half-way through the moves) used to leave clips without their files, or stale partial files
forever. How:

1. `stage` copies each file next to its target as a hidden partial file
   (`.<name>.partial-<pid>-<import id>`, mode 0640, fsynced), re-reading the import's file without
   following symlinks and refusing it if its bytes are not the ones validated;
2. `write_journal` writes `.import-<import id>.journal` in the media folder (fsynced) listing every
   partial -> target move, before the graph commits;
3. the graph transaction records the import as an `AuditEvent` (action `import`, entity_id the
   import id): the commit and its marker are one;
4. `place` moves the partials over their targets, then the journal is removed.

`recover(store, media_dir)` (run before every import, and callable at start-up) finishes what a dead
process left: a journal whose import id is in the graph is completed (the remaining moves are made),
one whose import id is not is rolled back (its partials removed); partial files of dead processes
that no journal lists are removed. A journal of a live process is left alone.

`KDCVG_TEST_PAUSE_AFTER` (tests only) makes the importer print `paused after <stage>` on stderr and
wait to be killed, at the stage named: `validated` (everything read and checked, nothing written),
`staged` (journal written, graph not committed), `writing` (inside the graph transaction, every
node written, nothing committed), `commit` (graph committed, no file moved) or `move` (one file moved).
Any other value does nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kb.audit import record_audit
from kb.processes import process_alive
from kb.safefs import FILE_MODE, READ_CHUNK, Absent, open_dir, open_inside, relative_parts
from kb.schema import AUDIT_LABEL
from kb.store import GraphStore, Transaction
from kdcvg.errors import BadInputError

IMPORT_ACTOR = "kdcvg import"
IMPORT_ACTION = "import"
IMPORT_ENTITY = "ACKB"
PAUSE_ENV = "KDCVG_TEST_PAUSE_AFTER"
PAUSE_STAGES = ("validated", "staged", "writing", "commit", "move")  # where an import can be paused, in order
_JOURNAL = re.compile(r"^\.import-([0-9a-f]{16})\.journal$")
_PARTIAL = re.compile(r"^\..+\.partial-(\d+)(?:-([0-9a-f]{16}))?$")


class MediaChangedError(BadInputError):
    """An import's file changed between validation and copying; nothing was written."""


@dataclass(frozen=True)
class Move:
    """One staged file: `partial` replaces `target` (both relative to the media folder) once the graph commits."""

    partial: str
    target: str
    sha256: str


@dataclass
class RecoveryReport:
    """What `recover` did: imports completed, imports rolled back, stale partial files removed."""

    completed: list[str] = field(default_factory=list)
    rolled_back: list[str] = field(default_factory=list)
    stale_removed: int = 0


def new_import_id() -> str:
    """A fresh import id (16 hex digits)."""
    return secrets.token_hex(8)


def stage(source_root: Path, files: list[tuple[str, str]], media_dir: Path, import_id: str) -> list[Move]:
    """Copy (relative path, validated sha256) files from `source_root/media/` beside their targets in `media_dir`.

    On any failure the partials written so far are removed and the error raised.
    """
    moves: list[Move] = []
    try:
        for relative, sha256 in files:
            parts = relative_parts(relative)
            partial = "/".join([*parts[:-1], f".{parts[-1]}.partial-{os.getpid()}-{import_id}"])
            moves.append(Move(partial, relative, sha256))
            _copy(source_root, f"media/{relative}", media_dir, partial, sha256)
    except BaseException:
        discard(media_dir, moves)
        raise
    return moves


def _copy(source_root: Path, source: str, media_dir: Path, partial: str, sha256: str) -> None:
    """Copy one file into a new partial file (exclusive create, FILE_MODE, fsynced), checking its digest."""
    parts = relative_parts(partial)
    src = open_inside(source_root, source)
    try:
        folder = open_dir(media_dir, parts[:-1], create=True)
        try:
            out = os.open(parts[-1], os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE, dir_fd=folder)
        finally:
            os.close(folder)
        try:
            os.fchmod(out, FILE_MODE)
            digest = hashlib.sha256()
            while chunk := os.read(src, READ_CHUNK):
                digest.update(chunk)
                os.write(out, chunk)
            os.fsync(out)
        finally:
            os.close(out)
    finally:
        os.close(src)
    if digest.hexdigest() != sha256:
        raise MediaChangedError(f"{source}: changed while being imported (its bytes are not the ones validated)")


def discard(media_dir: Path, moves: list[Move]) -> None:
    """Remove the partial files of `moves` (those that exist)."""
    for move in moves:
        _unlink(media_dir, move.partial)


def _unlink(media_dir: Path, relative: str) -> None:
    parts = relative_parts(relative)
    try:
        folder = open_dir(media_dir, parts[:-1])
    except (OSError, ValueError):
        return
    try:
        os.unlink(parts[-1], dir_fd=folder)
    except FileNotFoundError:
        pass
    finally:
        os.close(folder)


def journal_name(import_id: str) -> str:
    return f".import-{import_id}.journal"


def write_journal(media_dir: Path, import_id: str, moves: list[Move]) -> None:
    """Durably record the moves of `import_id` (temporary file, fsync, rename, fsync of the folder)."""
    data = json.dumps({"import_id": import_id, "pid": os.getpid(), "moves": [vars(m) for m in moves]}, sort_keys=True).encode()
    folder = open_dir(media_dir, [], create=True)
    try:
        temporary = f"{journal_name(import_id)}.partial-{os.getpid()}"  # removed as stale if this process dies
        out = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=folder)
        try:
            os.write(out, data)
            os.fsync(out)
        finally:
            os.close(out)
        os.replace(temporary, journal_name(import_id), src_dir_fd=folder, dst_dir_fd=folder)
        os.fsync(folder)
    finally:
        os.close(folder)


def remove_journal(media_dir: Path, import_id: str) -> None:
    _unlink(media_dir, journal_name(import_id))


def record_commit(tx: Transaction, import_id: str, moves: list[Move]) -> None:
    """Inside the import's transaction: the marker `recover` reads to know the graph committed."""
    record_audit(
        tx,
        actor=IMPORT_ACTOR,
        action=IMPORT_ACTION,
        entity_label=IMPORT_ENTITY,
        entity_id=import_id,
        before=None,
        after={"media_files": len(moves)},
    )


def place(media_dir: Path, moves: list[Move], *, pause: bool = False) -> int:
    """Move every staged partial over its target (already moved ones skipped); returns how many moved."""
    moved = 0
    for move in moves:
        parts, partial = relative_parts(move.target), relative_parts(move.partial)[-1]
        folder = open_dir(media_dir, parts[:-1])
        try:
            os.replace(partial, parts[-1], src_dir_fd=folder, dst_dir_fd=folder)
            os.fsync(folder)
            moved += 1
        except FileNotFoundError:
            pass  # moved before a crash; recovery goes on with the rest
        finally:
            os.close(folder)
        if pause and moved == 1:
            pause_for_test("move")
    return moved


def pause_for_test(stage_name: str) -> None:
    """Tests only: when KDCVG_TEST_PAUSE_AFTER names this stage, say so on stderr and wait to be killed."""
    if stage_name not in PAUSE_STAGES:
        raise ValueError(f"unknown pause stage {stage_name!r}; known: {', '.join(PAUSE_STAGES)}")
    if os.environ.get(PAUSE_ENV) == stage_name:
        print(f"paused after {stage_name}", file=sys.stderr, flush=True)
        while True:
            time.sleep(3600)


def committed(store: GraphStore, import_id: str) -> bool:
    """Whether the import `import_id` committed its graph transaction (its marker is in the graph)."""
    rows = store.read(
        lambda tx: tx.run(
            f"MATCH (e:{AUDIT_LABEL}) WHERE e.entity_id = $id AND e.action = $action AND e.entity_label = $label RETURN count(e) AS c",
            id=import_id,
            action=IMPORT_ACTION,
            label=IMPORT_ENTITY,
        )
    )
    return rows[0]["c"] > 0


def settle(store: GraphStore, media_dir: Path, import_id: str, moves: list[Move]) -> bool:
    """Finish an import's media placement: all moves made if its graph write committed, else its partials removed.

    Returns whether it committed. If the store cannot tell, the journal stays for a later `recover`.
    """
    if moves and committed(store, import_id):
        place(media_dir, moves)
        remove_journal(media_dir, import_id)
        return True
    discard(media_dir, moves)
    remove_journal(media_dir, import_id)
    return False


def _alive(pid: int) -> bool:
    """Whether the import that wrote a journal or partial may still be running (never this process)."""
    return pid != os.getpid() and process_alive(pid)


def _read_journal(media_dir: Path, name: str) -> dict[str, Any] | None:
    try:
        fd = open_inside(media_dir, name)
    except (Absent, ValueError, OSError):  # an unreadable journal is left in place, untouched
        return None
    try:
        return json.loads(os.read(fd, 64 << 20))
    except ValueError:
        return None
    finally:
        os.close(fd)


def recover(store: GraphStore, media_dir: Path) -> RecoveryReport:
    """Complete or roll back the media placement of imports whose process died; remove their stale partials."""
    report = RecoveryReport()
    media_dir = Path(media_dir)
    if not media_dir.is_dir():
        return report
    live: set[str] = set()
    for name in sorted(os.listdir(media_dir)):
        match = _JOURNAL.match(name)
        if match is None:
            continue
        journal = _read_journal(media_dir, name)
        if journal is None or journal.get("import_id") != match.group(1):
            continue
        moves = [Move(**m) for m in journal["moves"]]
        if _alive(int(journal["pid"])):
            live.update(m.partial for m in moves)
            continue
        done = settle(store, media_dir, journal["import_id"], moves)
        (report.completed if done else report.rolled_back).append(journal["import_id"])
    report.stale_removed = _remove_stale_partials(media_dir, live)
    return report


def _remove_stale_partials(media_dir: Path, keep: set[str]) -> int:
    """Remove partial files of dead processes not listed in `keep` (relative paths); returns how many."""
    removed = 0
    for folder, directories, files in os.walk(media_dir, followlinks=False):
        directories[:] = [d for d in directories if not os.path.islink(os.path.join(folder, d))]
        for name in files:
            match = _PARTIAL.match(name)
            if not match or _alive(int(match.group(1))):
                continue
            relative = os.path.relpath(os.path.join(folder, name), media_dir).replace(os.sep, "/")
            if relative not in keep:
                _unlink(media_dir, relative)
                removed += 1
    return removed
