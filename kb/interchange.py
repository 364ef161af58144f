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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from tqdm import tqdm

from kb.records import NODE_RECORDS, REL_RECORDS
from kb.schema import AUDIT_PROPERTIES, NODE_TYPES, REL_TYPES, rel_type
from kb.store import GraphStore, Row, Transaction
from kb.timestamps import utc_now

FORMAT = "ackb"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MAX_PROBLEMS = 1_000  # stop collecting after this many; the count says there were more
LOOKUP_BATCH = 5_000  # ids per `UNWIND $ids ... MATCH {id: i}` (primary-key lookups; `IN $ids` scans)


class ImportValidationError(ValueError):
    """The import directory has problems; nothing was written. `problems` lists each one."""

    SHOWN = 50

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        shown = "\n".join(f"  {p}" for p in problems[: self.SHOWN])
        more = f"\n  ... and {len(problems) - self.SHOWN} more" if len(problems) > self.SHOWN else ""
        super().__init__(f"{len(problems)} problem(s) found, nothing was written:\n{shown}{more}")


@dataclass
class ParsedACKB:
    """A validated import directory: rows per label and per relationship type."""

    directory: Path
    nodes: dict[str, list[Row]] = field(default_factory=dict)
    relationships: dict[str, list[Row]] = field(default_factory=dict)

    @property
    def media_paths(self) -> list[str]:
        return sorted({row["video_path"] for row in self.nodes.get("CreativeClip", []) if row.get("video_path")})


@dataclass
class ImportReport:
    """What an import did, per label/type: created, updated, unchanged."""

    created: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)
    unchanged: dict[str, int] = field(default_factory=dict)
    media_copied: int = 0


class _Problems(list):
    """Problem messages, capped at MAX_PROBLEMS."""

    def add(self, where: str, what: str) -> None:
        if len(self) < MAX_PROBLEMS:
            self.append(f"{where}: {what}")


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, as the manifest records it."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_manifest(directory: Path, problems: _Problems) -> dict[str, Any] | None:
    path = directory / MANIFEST
    if not directory.is_dir():
        problems.add(str(directory), "not a directory")
        return None
    if not path.is_file():
        problems.add(MANIFEST, "missing: an ACKB directory needs a manifest.json (see docs/ackb-format.md)")
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, huge ints, deep nesting
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
            elif Path(entry["file"]).is_absolute() or ".." in Path(entry["file"]).parts:
                problems.add(where, f"file {entry['file']!r} must be a relative path inside the directory")
            elif not (directory / entry["file"]).is_file():
                problems.add(where, f"file {entry['file']!r} does not exist")
    return manifest


def _lines(path: Path, relative: str, problems: _Problems) -> tuple[int, list[tuple[int, dict[str, Any]]]]:
    """The file's line count and (line number, JSON object) of each good line; bad lines become problems."""
    lines = path.read_bytes().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the final newline
    return len(lines), list(_objects(lines, relative, problems))


def _objects(lines: list[bytes], relative: str, problems: _Problems) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, raw in enumerate(lines, start=1):
        where = f"{relative}:{number}"
        if not raw.strip():
            problems.add(where, "blank line (one JSON object per line, no blank lines)")
            continue
        try:
            value = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            problems.add(where, "not valid UTF-8")
            continue
        except json.JSONDecodeError as exc:
            problems.add(where, f"malformed JSON: {exc.msg} at column {exc.colno}")
            continue
        except (ValueError, RecursionError) as exc:  # integers over Python's digit limit, absurd nesting
            problems.add(where, f"malformed JSON: {str(exc)[:200] or 'nested too deeply'}")
            continue
        if not isinstance(value, dict):
            problems.add(where, f"expected a JSON object, got {type(value).__name__}")
            continue
        yield number, value


def _check_entry(directory: Path, entry: dict[str, Any], relative: str, rows: int, problems: _Problems) -> None:
    if "count" in entry and (type(entry["count"]) is not int or entry["count"] != rows):
        problems.add(f"{MANIFEST}:{relative}", f"manifest says {entry['count']!r} rows, the file has {rows}")
    if "sha256" in entry and entry["sha256"] != sha256_file(directory / relative):
        problems.add(f"{MANIFEST}:{relative}", "sha256 does not match the file's contents (was it edited after export?)")


def _parse_rows(directory: Path, entry: dict[str, Any], model: type, key: Any, problems: _Problems) -> tuple[list[Row], list[int]]:
    """Validated rows of one file, their line numbers, and problems for bad or duplicate rows."""
    relative = entry["file"]
    rows, numbers, seen = [], [], {}
    line_count, objects = _lines(directory / relative, relative, problems)
    for number, value in objects:
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
    _check_entry(directory, entry, relative, line_count, problems)
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


def read_ackb(directory: Path, store: GraphStore | None = None, media_dir: Path | None = None) -> ParsedACKB:
    """Read and validate an ACKB directory completely; raises ImportValidationError listing every problem.

    With a store (and its media dir), relationship ends and media files may also be found there;
    without, the directory must be self-contained (as when evaluating a knowledge base offline).
    """
    directory = Path(directory)
    problems = _Problems()
    manifest = _read_manifest(directory, problems)
    if manifest is None or problems:
        raise ImportValidationError(problems)
    parsed = ParsedACKB(directory)
    for label, entry in manifest.get("nodes", {}).items():
        rows, numbers = _parse_rows(directory, entry, NODE_RECORDS[label], lambda r: r["id"], problems)
        parsed.nodes[label] = rows
        if label == "CreativeClip":
            for row, number in zip(rows, numbers):
                path = row.get("video_path")
                if path and not (directory / "media" / path).is_file() and not (media_dir and (media_dir / path).is_file()):
                    problems.add(f"{entry['file']}:{number}:video_path", f"media/{path} is neither in the import nor in the store's media folder")
    for type_, entry in manifest.get("relationships", {}).items():
        spec = rel_type(type_)
        rows, numbers = _parse_rows(directory, entry, REL_RECORDS[type_], lambda r: (r["from"], r["to"]), problems)
        parsed.relationships[type_] = rows
        for end, label in (("from", spec.source), ("to", spec.target)):
            imported = {row["id"] for row in parsed.nodes.get(label, [])}
            missing = {row[end] for row in rows} - imported
            missing -= _existing_ids(store, label, missing) if missing and store is not None else set()
            for row, number in zip(rows, numbers):
                if row[end] in missing:
                    problems.add(f"{entry['file']}:{number}:{end}", f"no {label} with id {row[end]!r} in this import or in the store")
    if problems:
        raise ImportValidationError(problems)
    return parsed


def stored_properties(value: Row) -> Row:
    """A node or relationship as read from the store: its properties, without `_label`/`_type` and nulls."""
    return {k: v for k, v in value.items() if not k.startswith("_") and v is not None}


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


def _without_nulls(row: Row) -> Row:
    return {k: v for k, v in row.items() if v is not None}


def _plan_node(row: Row, stored: Row | None, now: str) -> Row | None:
    """The row to write (audit fields filled), or None when the stored node already equals it."""
    given = {k: row[k] for k in AUDIT_PROPERTIES if row.get(k) is not None}
    if stored is None:
        created = given.get("created_at", now)
        return {**row, "created_at": created, "updated_at": given.get("updated_at", created), "version": given.get("version", 1)}
    same_content = all(_without_nulls(row).get(k) == stored.get(k) for k in set(row) | set(stored) if k not in AUDIT_PROPERTIES)
    desired = {
        **row,
        "created_at": given.get("created_at", stored.get("created_at")),
        "updated_at": given.get("updated_at", stored.get("updated_at") if same_content else now),
        "version": given.get("version", stored.get("version", 0) if same_content else stored.get("version", 0) + 1),
    }
    return None if _without_nulls(desired) == stored else desired


def _plan_relationship(row: Row, stored: Row | None, now: str, timestamped: bool) -> Row | None:
    if stored is None:
        return {**row, "updated_at": row.get("updated_at") or now} if timestamped else row
    desired = dict(row)
    if timestamped and desired.get("updated_at") is None:
        same = all(_without_nulls(row).get(k) == stored.get(k) for k in set(row) | set(stored) if k != "updated_at")
        desired["updated_at"] = stored.get("updated_at") if same else now
    return None if _without_nulls(desired) == stored else desired


def _stage_media(parsed: ParsedACKB, media_dir: Path) -> list[tuple[Path, Path]]:
    """Copy the import's new or changed video files next to their targets as hidden partial files.

    Returns (partial, target) pairs; they replace the targets only after the graph write commits,
    so a failed import leaves the media folder as it was. Identical files are not copied.
    """
    staged: list[tuple[Path, Path]] = []
    for relative in parsed.media_paths:
        source = parsed.directory / "media" / relative
        target = media_dir / relative
        if not source.is_file():
            continue  # validated: the file is already in the store's media folder
        if target.is_file() and target.stat().st_size == source.stat().st_size and sha256_file(target) == sha256_file(source):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
        shutil.copyfile(source, partial)
        staged.append((partial, target))
    return staged


def import_ackb(store: GraphStore, directory: Path, media_dir: Path, *, progress: bool = False) -> ImportReport:
    """Validate `directory` completely, then write it to the store in one transaction."""
    parsed = read_ackb(Path(directory), store, Path(media_dir))
    staged = _stage_media(parsed, Path(media_dir))
    report = ImportReport(media_copied=len(staged))
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

    try:
        store.write(work)
    except BaseException:
        for partial, _ in staged:
            partial.unlink(missing_ok=True)
        raise
    for partial, target in staged:
        os.replace(partial, target)
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


def export_ackb(store: GraphStore, directory: Path, media_dir: Path, *, overwrite: bool = False, progress: bool = False) -> dict[str, int]:
    """Write the whole ACKB to `directory` (which must be absent or empty unless `overwrite`)."""
    directory = Path(directory)
    if directory.exists() and any(directory.iterdir()) and not overwrite:
        raise FileExistsError(f"{directory} is not empty; choose an empty directory or pass overwrite")
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
                row = {k: v for k, v in record["row"].items() if not k.startswith("_") and v is not None}
                if section == "relationships":
                    row = {"from": record["source"], "to": record["target"], **row}
                elif row.get("video_path"):
                    media.append(row["video_path"])
                handle.write(json_line(row) + "\n")
        manifest[section][name] = {"file": relative, "count": len(records), "sha256": sha256_file(partial / relative)}
        counts[name] = len(records)
    for relative in media:
        source = Path(media_dir) / relative
        if source.is_file():
            (partial / "media" / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, partial / "media" / relative)
    _write_manifest(partial, manifest)
    if directory.exists():
        shutil.rmtree(directory)
    os.replace(partial, directory)
    return counts
