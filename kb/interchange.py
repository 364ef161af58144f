"""Import and export of a whole ACKB in the interchange format of docs/ackb-format.md.

Import reads and validates everything first (every problem reported as FILE:LINE:FIELD: reason),
and writes nothing unless all of it is valid; then it writes in ONE transaction: new rows bulk-
loaded, changed rows updated, unchanged rows left alone. Export writes rows sorted, keys sorted,
so the same knowledge base always gives the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import ValidationError
from tqdm import tqdm

from kb import media_placement as placement
from kb.media import VIDEO_SUFFIXES, MediaError, MediaLimits, check_fd
from kb.records import NODE_RECORDS, REL_RECORDS, loads_json
from kb.safefs import Absent, RefusedFile, is_regular_inside, open_inside, sha256_fd
from kb.schema import AUDIT_PROPERTIES, NODE_TYPES, REL_TYPES, rel_type
from kb.store import GraphStore, Row, Transaction
from kb.timestamps import utc_now
from kb.values import stored_properties, without_nulls
from kdcvg.errors import BadInputError, TargetExistsError

FORMAT = "ackb"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MAX_PROBLEMS = 1_000  # problems kept (and listed); all of them are counted
# Labels whose records own a file under media/ (clips' and generated videos, motion LoRAs' weights) -> the
# property naming it: imported, exported and checked alike.
MEDIA_LABELS: dict[str, str] = {label: spec.media for label, spec in NODE_TYPES.items() if spec.media}
WHOSE = {"CreativeClip": "clip", "GeneratedVideo": "generated video", "MotionLora": "motion LoRA"}
OWN_FILE = {
    "CreativeClip": "each clip or generated video needs a file of its own",
    "GeneratedVideo": "each clip or generated video needs a file of its own",
    "MotionLora": "each motion LoRA needs a weights file of its own",
}
LORA_SUFFIXES = (".safetensors",)
MAX_SAFETENSORS_HEADER = 16 << 20  # bytes of a safetensors file's JSON header
LOOKUP_BATCH = 5_000  # ids per `UNWIND $ids ... MATCH {id: i}` (primary-key lookups; `IN $ids` scans)
MAX_LINE_BYTES = 1 << 20  # a longer line is refused without being held in memory
MAX_MANIFEST_BYTES = 1 << 20
MAX_ROWS_PER_FILE = 2_000_000
MAX_ROWS_TOTAL = 10_000_000


class ImportValidationError(BadInputError):
    """The import directory has problems; nothing was written. `problems` lists the first ones, `total` counts all."""

    SHOWN = 50

    def __init__(self, problems: list[str], total: int | None = None) -> None:
        self.problems = problems
        self.total = max(total or 0, len(problems))
        shown = "\n".join(f"  {p}" for p in problems[: self.SHOWN])
        more = f"\n  ... and {len(problems) - self.SHOWN} more" if len(problems) > self.SHOWN else ""
        unlisted = self.total - len(problems)
        kept = f"; {len(problems)} problems kept, {unlisted} more not listed" if unlisted else ""
        super().__init__(f"{self.total} problem(s) found, nothing was written{kept}:\n{shown}{more}")


@dataclass(frozen=True)
class MediaPlan:
    """One video file of the import to copy into the store's media folder, as validated."""

    relative: str  # under media/ of the import and of the store's media folder
    sha256: str


@dataclass
class ParsedACKB:
    """A validated import directory: rows per label and per relationship type, and media to copy."""

    directory: Path
    nodes: dict[str, list[Row]] = field(default_factory=dict)
    relationships: dict[str, list[Row]] = field(default_factory=dict)
    media: list[MediaPlan] = field(default_factory=list)
    media_owners: dict[str, tuple[str, str]] = field(default_factory=dict)  # video_path -> (label, id) claiming it

    @property
    def media_paths(self) -> list[str]:
        """Every video file the import's records name (clips and generated videos)."""
        return sorted({row[name] for label, name in MEDIA_LABELS.items() for row in self.nodes.get(label, []) if row.get(name)})


@dataclass
class ImportReport:
    """What an import did, per label/type: created, updated, unchanged."""

    created: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)
    unchanged: dict[str, int] = field(default_factory=dict)
    media_copied: int = 0


class _Problems(list):
    """Problem messages: the first MAX_PROBLEMS kept, all counted in `total`."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def add(self, where: str, what: str) -> None:
        self.total += 1
        if len(self) < MAX_PROBLEMS:
            self.append(f"{where}: {what}")

    def error(self) -> ImportValidationError:
        return ImportValidationError(list(self), self.total)


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, as the manifest records it."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_manifest(directory: Path, problems: _Problems) -> dict[str, Any] | None:
    if not directory.is_dir():
        problems.add(str(directory), "not a directory")
        return None
    try:
        fd = open_inside(directory, MANIFEST)
    except Absent:
        problems.add(MANIFEST, "missing: an ACKB directory needs a manifest.json (see docs/ackb-format.md)")
        return None
    except RefusedFile as exc:
        problems.add(MANIFEST, str(exc))
        return None
    try:
        data = os.read(fd, MAX_MANIFEST_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_MANIFEST_BYTES:
        problems.add(MANIFEST, f"larger than {MAX_MANIFEST_BYTES:,} bytes; a manifest only names files")
        return None
    try:
        manifest = loads_json(data.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, duplicate keys, huge ints, deep nesting
        problems.add(MANIFEST, f"not valid JSON: {str(exc)[:200] or type(exc).__name__}")
        return None
    if not isinstance(manifest, dict):
        problems.add(MANIFEST, "must be a JSON object")
        return None
    if manifest.get("format") != FORMAT:
        problems.add(f"{MANIFEST}:format", f"must be {FORMAT!r}, got {manifest.get('format')!r}")
    version = manifest.get("format_version")
    if type(version) is not int or version != FORMAT_VERSION:  # not True, not 1.0
        problems.add(f"{MANIFEST}:format_version", f"this version reads format_version {FORMAT_VERSION}, got {manifest.get('format_version')!r}")
    for section, known in (("nodes", NODE_TYPES), ("relationships", REL_TYPES)):
        entries = manifest.get(section, {})
        if not isinstance(entries, dict):
            problems.add(f"{MANIFEST}:{section}", "must be an object mapping names to file entries")
            continue
        for name, entry in entries.items():
            where = f"{MANIFEST}:{section}.{name}"
            if name not in known:
                problems.add(where, f"unknown {'label' if section == 'nodes' else 'relationship type'}; known: {', '.join(known)}")
            elif not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
                problems.add(where, "must be an object with a 'file' string")
            else:
                problem = _file_problem(directory, entry["file"])
                if problem:
                    problems.add(where, f"file {entry['file']!r} {problem}")
    return manifest


def _file_problem(directory: Path, relative: str) -> str | None:
    """Why `relative` cannot be read as a data file inside `directory`, or None."""
    try:
        os.close(open_inside(directory, relative))
    except RefusedFile as exc:
        return str(exc)
    except ValueError:
        return "must be a relative path inside the directory"
    except Absent:
        return "does not exist"
    return None


class _JsonLines:
    """The lines of an open file, read in bounded chunks: (number, bytes), or (number, None) for an over-long line.

    After iteration `count` is the number of lines (a final newline ends the last one) and `sha256`
    the digest of every byte read, so counts and checksums describe the very bytes parsed.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.count = 0
        self._digest = hashlib.sha256()

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    def __iter__(self) -> Iterator[tuple[int, bytes | None]]:
        pending, too_long = bytearray(), False
        while chunk := os.read(self.fd, 1 << 20):
            self._digest.update(chunk)
            start = 0
            while (end := chunk.find(b"\n", start)) != -1:
                self.count += 1
                too_long = too_long or len(pending) + end - start > MAX_LINE_BYTES
                yield self.count, None if too_long else bytes(pending) + chunk[start:end]
                pending.clear()
                too_long, start = False, end + 1
            if not too_long:
                pending += chunk[start:]
                if len(pending) > MAX_LINE_BYTES:
                    too_long = True
                    pending.clear()
        if pending or too_long:
            self.count += 1
            yield self.count, None if too_long else bytes(pending)


def _objects(lines: Iterable[tuple[int, bytes | None]], relative: str, problems: _Problems) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, raw in lines:
        where = f"{relative}:{number}"
        if raw is None:
            problems.add(where, f"line longer than {MAX_LINE_BYTES:,} bytes")
            continue
        if not raw.strip():
            problems.add(where, "blank line (one JSON object per line, no blank lines)")
            continue
        try:
            value = loads_json(raw.decode("utf-8"))
        except UnicodeDecodeError:
            problems.add(where, "not valid UTF-8")
            continue
        except json.JSONDecodeError as exc:
            problems.add(where, f"malformed JSON: {exc.msg} at column {exc.colno}")
            continue
        except (ValueError, RecursionError) as exc:  # duplicate keys, integers over Python's digit limit, absurd nesting
            problems.add(where, f"malformed JSON: {str(exc)[:200] or 'nested too deeply'}")
            continue
        if not isinstance(value, dict):
            problems.add(where, f"expected a JSON object, got {type(value).__name__}")
            continue
        yield number, value


def _check_entry(entry: dict[str, Any], relative: str, lines: _JsonLines, problems: _Problems) -> None:
    if "count" in entry and (type(entry["count"]) is not int or entry["count"] != lines.count):
        problems.add(f"{MANIFEST}:{relative}", f"manifest says {entry['count']!r} rows, the file has {lines.count}")
    if "sha256" in entry and entry["sha256"] != lines.sha256:
        problems.add(f"{MANIFEST}:{relative}", "sha256 does not match the file's contents (was it edited after export?)")


def _parse_rows(directory: Path, entry: dict[str, Any], model: type, key: Any, problems: _Problems, budget: list[int]) -> tuple[list[Row], list[int]]:
    """Validated rows of one file, their line numbers, and problems for bad or duplicate rows.

    `budget` holds the rows still allowed in this import (all files together); it is decreased.
    """
    relative = entry["file"]
    rows, numbers, seen = [], [], {}
    problem = _file_problem(directory, relative)
    if problem:  # replaced after the manifest was checked
        problems.add(f"{MANIFEST}:{relative}", problem)
        return rows, numbers
    fd = open_inside(directory, relative)
    try:
        lines = _JsonLines(fd)
        limit = min(MAX_ROWS_PER_FILE, budget[0])
        for number, value in _objects(lines, relative, problems):
            if len(rows) >= limit:
                what = f"more than {MAX_ROWS_PER_FILE:,} rows in one file" if limit == MAX_ROWS_PER_FILE else f"more than {MAX_ROWS_TOTAL:,} rows in the import"
                problems.add(f"{relative}:{number}", f"{what}; split the import")
                break
            try:
                row = model.model_validate(value).row()
            except ValidationError as exc:
                for error in exc.errors():
                    field_name = ".".join(str(part) for part in error["loc"]) or "-"
                    problems.add(f"{relative}:{number}:{field_name}", error["msg"])
                continue
            identity = key(row)
            if identity in seen:
                problems.add(f"{relative}:{number}:{'id' if isinstance(identity, str) else 'from/to'}", f"duplicate of line {seen[identity]}")
                continue
            seen[identity] = number
            rows.append(row)
            numbers.append(number)
        else:
            _check_entry(entry, relative, lines, problems)
    finally:
        os.close(fd)
    budget[0] -= len(rows)
    return rows, numbers


def _existing_ids(store: GraphStore, label: str, ids: Iterable[str]) -> set[str]:
    ids = sorted(set(ids))
    found: set[str] = set()
    for start in range(0, len(ids), LOOKUP_BATCH):
        batch = ids[start : start + LOOKUP_BATCH]
        found.update(
            r["id"] for r in store.read(lambda tx: tx.run(f"UNWIND $ids AS i MATCH (n:{label} {{id: i}}) RETURN n.id AS id", ids=batch))
        )
    return found


def read_ackb(directory: Path, store: GraphStore | None = None, media_dir: Path | None = None, *, media_limits: MediaLimits | None = None) -> ParsedACKB:
    """Read and validate an ACKB directory completely; raises ImportValidationError listing every problem.

    With a store (and its media dir), relationship ends and media files may also be found there;
    without, the directory must be self-contained (as when evaluating a knowledge base offline).
    With `media_limits` (an import), every video file to be copied is checked to be a decodable
    video within the limits, and may not take over a file of another clip (`parsed.media` lists them).
    """
    directory = Path(directory)
    problems = _Problems()
    manifest = _read_manifest(directory, problems)
    if manifest is None or problems:
        raise problems.error()
    parsed = ParsedACKB(directory)
    budget = [MAX_ROWS_TOTAL]
    for label, entry in manifest.get("nodes", {}).items():
        rows, numbers = _parse_rows(directory, entry, NODE_RECORDS[label], lambda r: r["id"], problems, budget)
        parsed.nodes[label] = rows
        if label in MEDIA_LABELS:
            _check_media(parsed, label, entry["file"], rows, numbers, store, media_dir, media_limits, problems)
    for type_, entry in manifest.get("relationships", {}).items():
        spec = rel_type(type_)
        rows, numbers = _parse_rows(directory, entry, REL_RECORDS[type_], lambda r: (r["from"], r["to"]), problems, budget)
        parsed.relationships[type_] = rows
        for end, label in (("from", spec.source), ("to", spec.target)):
            imported = {row["id"] for row in parsed.nodes.get(label, [])}
            missing = {row[end] for row in rows} - imported
            missing -= _existing_ids(store, label, missing) if missing and store is not None else set()
            for row, number in zip(rows, numbers):
                if row[end] in missing:
                    problems.add(f"{entry['file']}:{number}:{end}", f"no {label} with id {row[end]!r} in this import or in the store")
    if problems.total:
        raise problems.error()
    return parsed


Owner = tuple[str, str]  # (label, id) of the record whose video a media file is


def _stored_owners(store: GraphStore | None, paths: list[str]) -> dict[str, Owner]:
    """media path -> (label, id) of the stored record (clip, generated video, motion LoRA) using that path."""
    owners: dict[str, Owner] = {}
    if store is None:
        return owners
    for label, name in MEDIA_LABELS.items():  # schema labels and properties only reach the query text
        query = f"MATCH (c:{label}) WHERE c.{name} IN $paths RETURN c.id AS id, c.{name} AS path"
        for start in range(0, len(paths), LOOKUP_BATCH):
            for record in store.read(lambda tx, batch=paths[start : start + LOOKUP_BATCH]: tx.run(query, paths=batch)):
                owners.setdefault(record["path"], (label, record["id"]))
    return owners


def _check_media(
    parsed: ParsedACKB,
    label: str,
    relative: str,
    rows: list[Row],
    numbers: list[int],
    store: GraphStore | None,
    media_dir: Path | None,
    limits: MediaLimits | None,
    problems: _Problems,
) -> None:
    """Each record's file (clips' and generated videos, LoRA weights): in the import (a regular file, no symlink) or
    in the store; with limits, checked and planned. One file belongs to one record, across labels, import and store."""
    name = MEDIA_LABELS[label]
    imported = {(label, row["id"]) for row in rows}
    stored = _stored_owners(store, sorted({row[name] for row in rows if row.get(name)}))
    for path, owner in stored.items():
        if owner not in imported:  # an imported record brings its own path; a stored one keeps its file
            parsed.media_owners.setdefault(path, owner)
    checks: list[tuple[str, str, Owner]] = []  # (where, path, owner)
    for row, number in zip(rows, numbers):
        path = row.get(name)
        if not path:
            continue
        where = f"{relative}:{number}:{name}"
        owner = parsed.media_owners.setdefault(path, (label, row["id"]))
        if owner != (label, row["id"]):
            what = "weights file" if owner[0] == "MotionLora" else "video"
            problems.add(where, f"media/{path} is already the {what} of {WHOSE[owner[0]]} {owner[1]!r}; {OWN_FILE[label]}")
        else:
            checks.append((where, path, owner))
    # each check waits on FFmpeg processes: run them side by side, report in file order
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        results = pool.map(lambda c: _media_problem(parsed.directory, c[1], c[2], stored.get(c[1]), media_dir, limits), checks)
        for (where, _, _), (problem, plan) in zip(checks, results):
            if problem:
                problems.add(where, problem)
            elif plan:
                parsed.media.append(plan)


def _media_problem(
    directory: Path, path: str, owner: Owner, stored_owner: Owner | None, media_dir: Path | None, limits: MediaLimits | None
) -> tuple[str | None, MediaPlan | None]:
    """(why the record's video `path` cannot be imported, or None; the copy to make, or None when nothing is to copy)."""
    try:
        fd = open_inside(directory, f"media/{path}")
    except Absent:
        if media_dir is not None and is_regular_inside(media_dir, path):
            return None, None
        return f"media/{path} is neither in the import nor in the store's media folder", None
    except RefusedFile as exc:
        return f"media/{path} {exc}", None
    try:
        if limits is None:
            return None, None
        suffix = PurePosixPath(path).suffix.lower()
        lora = owner[0] == "MotionLora"
        allowed = LORA_SUFFIXES if lora else VIDEO_SUFFIXES
        if suffix not in allowed:
            return f"media/{path} is not named as a {'safetensors file' if lora else 'video'}: expected one of {', '.join(allowed)}", None
        digest = sha256_fd(fd)
        stored_digest = _stored_digest(media_dir, path)
        if stored_digest == digest:
            return None, None  # the same bytes are already in the store
        if stored_digest is not None and stored_owner != owner:
            return f"media/{path}: the store's media folder already holds a different file there, not this record's; refused", None
        try:
            check_safetensors_fd(fd, limits.max_bytes) if lora else check_fd(fd, suffix, limits)
        except MediaError as exc:
            return f"media/{path} {exc}", None
        return None, MediaPlan(path, digest)
    finally:
        os.close(fd)


def check_safetensors_fd(fd: int, max_bytes: int) -> None:
    """MediaError unless the open file is a whole safetensors file: a JSON header of tensors that exactly fill the rest."""
    size = os.fstat(fd).st_size
    if size > max_bytes:
        raise MediaError(f"is {size} bytes, over the {max_bytes}-byte limit")
    head = os.pread(fd, 8, 0)
    length = int.from_bytes(head, "little") if len(head) == 8 else -1
    if not 2 <= length <= min(MAX_SAFETENSORS_HEADER, size - 8):
        raise MediaError("is not a safetensors file (no valid header length)")
    try:
        header = loads_json(os.pread(fd, length, 8).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise MediaError("is not a safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise MediaError("is not a safetensors file (its header is not a JSON object)")
    end = 0
    for key, spec in header.items():
        if key == "__metadata__":
            continue
        offsets = spec.get("data_offsets") if isinstance(spec, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets) and 0 <= offsets[0] <= offsets[1]):
            raise MediaError(f"is not a safetensors file (tensor {key[:80]!r} has no valid data_offsets)")
        end = max(end, offsets[1])
    if 8 + length + end != size:
        raise MediaError(f"is truncated or padded: its header describes {8 + length + end} bytes, the file has {size}")


def _stored_digest(media_dir: Path | None, path: str) -> str | None:
    """SHA-256 of the store's file at `path`, None when absent; a symlink or device there counts as a different file."""
    if media_dir is None:
        return None
    try:
        fd = open_inside(media_dir, path)
    except Absent:
        return "refused" if os.path.lexists(media_dir / path) else None  # a folder stands there
    except ValueError:
        return "refused"
    try:
        return sha256_fd(fd)
    finally:
        os.close(fd)


def nodes_by_id(tx: Transaction, label: str, ids: list[str]) -> list[Row]:
    """The stored nodes of `label` among `ids` (primary-key lookups in batches; absent ids skipped)."""
    rows: list[Row] = []
    for start in range(0, len(ids), LOOKUP_BATCH):
        query = f"UNWIND $ids AS i MATCH (n:{label} {{id: i}}) RETURN n"
        rows.extend(stored_properties(record["n"]) for record in tx.run(query, ids=ids[start : start + LOOKUP_BATCH]))
    return rows


def relationships_from(tx: Transaction, type_: str, sources: list[str]) -> list[Row]:
    """Stored `type_` relationships leaving `sources`, as interchange rows ({from, to, properties})."""
    spec = rel_type(type_)
    query = (
        f"UNWIND $ids AS i MATCH (a:{spec.source} {{id: i}})-[r:{spec.type}]->(b:{spec.target}) "
        "RETURN a.id AS source, b.id AS target, r"
    )
    rows: list[Row] = []
    for start in range(0, len(sources), LOOKUP_BATCH):
        for record in tx.run(query, ids=sources[start : start + LOOKUP_BATCH]):
            rows.append({"from": record["source"], "to": record["target"], **stored_properties(record["r"])})
    return rows


def _plan_node(row: Row, stored: Row | None, now: str) -> Row | None:
    """The row to write (audit fields filled), or None when the stored node already equals it."""
    given = {k: row[k] for k in AUDIT_PROPERTIES if row.get(k) is not None}
    if stored is None:
        created = given.get("created_at", now)
        return {**row, "created_at": created, "updated_at": given.get("updated_at", created), "version": given.get("version", 1)}
    same_content = all(without_nulls(row).get(k) == stored.get(k) for k in set(row) | set(stored) if k not in AUDIT_PROPERTIES)
    desired = {
        **row,
        "created_at": given.get("created_at", stored.get("created_at")),
        "updated_at": given.get("updated_at", stored.get("updated_at") if same_content else now),
        "version": given.get("version", stored.get("version", 0) if same_content else stored.get("version", 0) + 1),
    }
    return None if without_nulls(desired) == stored else desired


def _plan_relationship(row: Row, stored: Row | None, now: str, timestamped: bool) -> Row | None:
    if stored is None:
        return {**row, "updated_at": row.get("updated_at") or now} if timestamped else row
    desired = dict(row)
    if timestamped and desired.get("updated_at") is None:
        same = all(without_nulls(row).get(k) == stored.get(k) for k in set(row) | set(stored) if k != "updated_at")
        desired["updated_at"] = stored.get("updated_at") if same else now
    return None if without_nulls(desired) == stored else desired


def import_ackb(
    store: GraphStore, directory: Path, media_dir: Path, *, progress: bool = False, media_limits: MediaLimits | None = None
) -> ImportReport:
    """Validate `directory` completely, then write it to the store in one transaction and place its media.

    A previous import's media placement that a crash interrupted is completed or rolled back first.
    """
    media_dir = Path(media_dir)
    placement.recover(store, media_dir)
    parsed = read_ackb(Path(directory), store, media_dir, media_limits=media_limits or MediaLimits())
    placement.pause_for_test("validated")
    import_id = placement.new_import_id()
    try:
        moves = placement.stage(parsed.directory, [(m.relative, m.sha256) for m in parsed.media], media_dir, import_id)
    except (placement.MediaChangedError, RefusedFile, Absent) as exc:
        raise ImportValidationError([f"media: {exc}"]) from None
    report = ImportReport(media_copied=len(moves))
    total = sum(map(len, parsed.nodes.values())) + sum(map(len, parsed.relationships.values()))
    now = utc_now()

    def work(tx: Transaction) -> None:
        with tqdm(total=total, unit="row", desc="import", disable=not progress, leave=False) as bar:
            for label in NODE_TYPES:  # schema order: ends exist before relationships
                rows = parsed.nodes.get(label, [])
                bar.set_postfix_str(label)
                stored = {node["id"]: node for node in nodes_by_id(tx, label, [r["id"] for r in rows])}
                plans = [(_plan_node(row, stored.get(row["id"]), now), row["id"] in stored) for row in rows]
                new = [plan for plan, exists in plans if plan is not None and not exists]
                changed = [plan for plan, exists in plans if plan is not None and exists]
                store.bulk_create_nodes(tx, label, new)
                store.bulk_update_nodes(tx, label, changed)
                _count(report, label, len(new), len(changed), len(rows))
                bar.update(len(rows))
            placement.pause_for_test("writing")
            for type_ in REL_TYPES:
                rows = parsed.relationships.get(type_, [])
                bar.set_postfix_str(type_)
                timestamped = "updated_at" in rel_type(type_).properties
                stored = {(r["from"], r["to"]): r for r in relationships_from(tx, type_, sorted({r["from"] for r in rows}))}
                plans = [(_plan_relationship(row, stored.get((row["from"], row["to"])), now, timestamped), (row["from"], row["to"]) in stored) for row in rows]
                new = [plan for plan, exists in plans if plan is not None and not exists]
                changed = [plan for plan, exists in plans if plan is not None and exists]
                store.bulk_create_relationships(tx, type_, new)
                store.bulk_update_relationships(tx, type_, changed)
                _count(report, type_, len(new), len(changed), len(rows))
                bar.update(len(rows))
        if moves:
            placement.record_commit(tx, import_id, moves)

    try:
        if moves:
            placement.write_journal(media_dir, import_id, moves)
            placement.pause_for_test("staged")
        store.write(work)
    except BaseException:
        placement.settle(store, media_dir, import_id, moves)
        raise
    placement.pause_for_test("commit")
    placement.place(media_dir, moves, pause=True)
    placement.remove_journal(media_dir, import_id)
    return report


def _count(report: ImportReport, name: str, created: int, updated: int, total: int) -> None:
    report.created[name] = created
    report.updated[name] = updated
    report.unchanged[name] = total - created - updated


def json_line(row: Row) -> str:
    """The format's canonical JSON line: sorted keys, no insignificant whitespace, UTF-8 kept."""
    return json.dumps(row, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def write_ackb(directory: Path, nodes: dict[str, list[Row]], relationships: dict[str, list[Row]], *, extra: dict[str, Any] | None = None) -> dict[str, int]:
    """Write rows (not from a store) as an ACKB directory: sorted, with counts and checksums.

    `extra` adds informational top-level manifest keys (ignored on import). Returns rows per name.
    """
    directory = Path(directory)
    manifest: dict[str, Any] = {**(extra or {}), "format": FORMAT, "format_version": FORMAT_VERSION, "nodes": {}, "relationships": {}}
    counts: dict[str, int] = {}
    for section, groups in (("nodes", nodes), ("relationships", relationships)):
        (directory / section).mkdir(parents=True, exist_ok=True)
        key = (lambda r: r["id"]) if section == "nodes" else (lambda r: (r["from"], r["to"]))
        for name, rows in groups.items():
            relative = f"{section}/{name}.jsonl"
            (directory / relative).write_text("".join(json_line(r) + "\n" for r in sorted(rows, key=key)), encoding="utf-8")
            manifest[section][name] = {"file": relative, "count": len(rows), "sha256": sha256_file(directory / relative)}
            counts[name] = len(rows)
    _write_manifest(directory, manifest)
    return counts


def _export_media_file(media_dir: Path, relative: str, target: Path) -> None:
    """Copy one stored video into the export, reading it without following symlinks (absent or refused: skipped)."""
    try:
        fd = open_inside(media_dir, relative)
    except (Absent, ValueError):
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    with os.fdopen(fd, "rb") as source, target.open("wb") as out:
        shutil.copyfileobj(source, out)


def export_ackb(store: GraphStore, directory: Path, media_dir: Path, *, overwrite: bool = False, progress: bool = False) -> dict[str, int]:
    """Write the whole ACKB to `directory` (which must be absent or empty unless `overwrite`)."""
    directory = Path(directory)
    if directory.exists() and any(directory.iterdir()) and not overwrite:
        raise TargetExistsError(f"{directory} is not empty; choose an empty directory or pass overwrite")
    partial = directory.with_name(f".{directory.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    manifest: dict[str, Any] = {"format": FORMAT, "format_version": FORMAT_VERSION, "nodes": {}, "relationships": {}}
    counts: dict[str, int] = {}
    queries = [("nodes", label, f"MATCH (n:{label}) RETURN n AS row ORDER BY n.id") for label in NODE_TYPES] + [
        (
            "relationships",
            spec.type,
            f"MATCH (a:{spec.source})-[r:{spec.type}]->(b:{spec.target}) "
            "RETURN a.id AS source, b.id AS target, r AS row ORDER BY source, target",
        )
        for spec in REL_TYPES.values()
    ]
    media: list[str] = []
    # One read transaction for every label and type, so no relationship can outlive its exported ends.
    results = store.read(lambda tx: [tx.run(query) for _, _, query in queries])
    for (section, name, _), records in tqdm(list(zip(queries, results)), desc="export", disable=not progress, leave=False):
        relative = f"{section}/{name}.jsonl"
        (partial / section).mkdir(parents=True, exist_ok=True)
        with (partial / relative).open("w", encoding="utf-8", newline="\n") as handle:
            for record in records:
                row = stored_properties(record["row"])
                if section == "relationships":
                    row = {"from": record["source"], "to": record["target"], **row}
                elif name in MEDIA_LABELS and row.get(MEDIA_LABELS[name]):
                    media.append(row[MEDIA_LABELS[name]])
                handle.write(json_line(row) + "\n")
        manifest[section][name] = {"file": relative, "count": len(records), "sha256": sha256_file(partial / relative)}
        counts[name] = len(records)
    for relative in media:
        _export_media_file(Path(media_dir), relative, partial / "media" / relative)
    _write_manifest(partial, manifest)
    if directory.exists():
        shutil.rmtree(directory)
    os.replace(partial, directory)
    return counts
