"""Content-addressed cache of a reference clip's latents and inverted noise, under `<data>/cache/motion-prior/`.

Why: encoding a reference clip with the VAE, and above all inverting it along the sampler's ODE
(as many denoiser calls as a generation without guidance), costs as much as a small generation;
the same best clip is reused for many videos (seeds, batch lines, evaluation). The key is the
clip file's SHA-256, the backbone folder's content hash, and every parameter the tensor depends
on (kind, frames, size, steps), so an edited clip or a retrained backbone never reads a stale
entry. Entries are written atomically (temporary file, then rename); an unreadable entry is
recomputed and overwritten, never trusted.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from kb.interchange import sha256_file

CACHE_SUBDIR = "motion-prior"
FOLDER_HASH_MEMO = "backbone-hashes.json"


def _stat_signature(folder: Path) -> list[list[Any]]:
    """(relative path, size, mtime_ns) of every file under `folder`, sorted: cheap evidence the content is unchanged."""
    rows = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        stat = path.stat()
        rows.append([path.relative_to(folder).as_posix(), stat.st_size, stat.st_mtime_ns])
    return rows


def folder_content_hash(folder: Path, memo_file: Path | None = None) -> str:
    """SHA-256 over every file's relative path and content hash; memoised in `memo_file` while sizes and mtimes hold.

    A multi-GB backbone is hashed once; later processes reuse the memo as long as no file under
    the folder changed size or modification time (any change: the folder is hashed again).
    """
    folder = Path(folder).resolve()
    signature = _stat_signature(folder)
    memo: dict[str, Any] = {}
    if memo_file is not None and memo_file.is_file():
        try:
            memo = json.loads(memo_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            memo = {}
    entry = memo.get(str(folder))
    if isinstance(entry, dict) and entry.get("signature") == signature and isinstance(entry.get("sha256"), str):
        return entry["sha256"]
    digest = hashlib.sha256()
    for relative, _size, _mtime in signature:
        digest.update(relative.encode("utf-8") + b"\0" + bytes.fromhex(sha256_file(folder / relative)))
    value = digest.hexdigest()
    if memo_file is not None:
        memo[str(folder)] = {"signature": signature, "sha256": value}
        _atomic_write(memo_file, json.dumps(memo).encode("utf-8"))
    return value


def _atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder and a rename (never half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class ReferenceCache:
    """Reference latents and inverted noise, one `.pt` file per (clip, backbone, kind, parameters)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @classmethod
    def under(cls, cache_dir: Path) -> ReferenceCache:
        """The cache in its usual place below a data directory's cache folder."""
        return cls(Path(cache_dir) / CACHE_SUBDIR)

    def key(self, clip: Path, model_dir: Path, kind: str, **parameters: Any) -> str:
        """The entry name: SHA-256 of the clip's bytes, the backbone folder's content, `kind` and `parameters`."""
        payload = {
            "clip_sha256": sha256_file(Path(clip)),
            "backbone_sha256": folder_content_hash(Path(model_dir), self.root / FOLDER_HASH_MEMO),
            "kind": kind,
            "parameters": parameters,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()

    def path(self, key: str) -> Path:
        """The file holding entry `key`."""
        return self.root / f"{key}.pt"

    def load_or_compute(self, key: str, compute: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, bool]:
        """(tensor, True) read from the cache, or (tensor, False) computed by `compute` and stored; float32 on CPU either way."""
        path = self.path(key)
        if path.is_file():
            try:
                cached = torch.load(path, map_location="cpu", weights_only=True)
            except Exception:  # noqa: BLE001 - a damaged entry is recomputed, whatever the damage
                cached = None
            if isinstance(cached, torch.Tensor):
                return cached, True
        value = compute()
        stored = value.detach().to("cpu", torch.float32).contiguous()
        buffer = io.BytesIO()
        torch.save(stored, buffer)
        _atomic_write(path, buffer.getvalue())
        return stored, False
