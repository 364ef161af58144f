"""An approximate-nearest-neighbour index over clip embeddings (usearch HNSW, cosine, float32).

`ClipIndex.build(clip_ids, embeddings)` keeps the L2-normalised embeddings next to the HNSW graph,
so a search restricted to a small `allowed` set of clips (a product's, a category's, ...) is an
exact cosine scan over just those clips, and a large restriction over-fetches from the ANN and
filters. An index of at most `EXACT_MAX` clips is always scanned exactly: at that size a numpy
scan is as fast as the HNSW search, and it never misses a neighbour. `save(directory)` writes three files (`FILES`); `ClipIndex.load(directory)` reads them
back, the embeddings memory-mapped and the HNSW graph only when a search first needs it (an index
scanned exactly never loads usearch).

Import order matters: usearch's extension loaded before torch makes `torch.jit.script` (which
`import torch_geometric` runs) spin forever, so torch, when installed, is imported first, in
`_usearch_index_class`, the one place that imports usearch.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from itertools import repeat
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kdcvg.errors import BadInputError, MissingFileError

if TYPE_CHECKING:
    from usearch.index import Index

INDEX_FILE = "clips.usearch"
IDS_FILE = "clip_ids.json"
EMBEDDINGS_FILE = "embeddings.npy"
FILES = (INDEX_FILE, IDS_FILE, EMBEDDINGS_FILE)

MAX_K = 1_000
EXACT_MAX = 20_000  # an index, or an `allowed` set, this small (or <= EXACT_FRACTION of the index) is scanned exactly
EXACT_FRACTION = 0.05
CONNECTIVITY = 16
EXPANSION_ADD = 64
EXPANSION_SEARCH = 256


def _usearch_index_class() -> type[Index]:
    """usearch's Index, imported lazily (a slow import) and after torch (see the module docstring)."""
    try:
        import torch  # noqa: F401
    except ImportError:  # pragma: no cover - torch is a project dependency
        pass
    from usearch.index import Index

    return Index


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= MAX_K:
        raise BadInputError(f"k must be an integer between 1 and {MAX_K}, got {k!r}")


def _normalised(embeddings: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32); zero or non-finite rows are refused."""
    matrix = np.ascontiguousarray(embeddings, dtype=np.float32)
    if not np.isfinite(matrix).all():
        bad = int(np.flatnonzero(~np.isfinite(matrix).all(axis=1))[0])
        raise ValueError(f"embedding row {bad} has a NaN or infinite value")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    if (norms == 0).any():
        bad = int(np.flatnonzero(norms[:, 0] == 0)[0])
        raise ValueError(f"embedding row {bad} is all zeros: its cosine similarity is undefined")
    return matrix / norms


class ClipIndex:
    """Clip ids, their unit-length embeddings (N, d) and an HNSW index whose key i is row i.

    The HNSW index is given, or read from `index_file` when a search first needs it.
    """

    def __init__(self, clip_ids: list[str], embeddings: np.ndarray, index: Index | None = None, *, index_file: Path | None = None) -> None:
        if (index is None) == (index_file is None):
            raise ValueError("give the HNSW index or the file to read it from (one of them)")
        self.clip_ids = list(clip_ids)
        self.embeddings = embeddings
        self._index = index
        self._index_file = index_file
        if len(clip_ids) != embeddings.shape[0]:
            raise ValueError(f"{len(clip_ids)} clip ids and {embeddings.shape[0]} embeddings must agree")
        if index is not None:
            self._check_index(index)
        self.row_of = {clip_id: row for row, clip_id in enumerate(self.clip_ids)}

    def _check_index(self, index: Index) -> None:
        if len(index) != len(self.clip_ids):
            raise ValueError(f"{len(self.clip_ids)} clip ids and embeddings but {len(index)} indexed vectors: they must agree")

    @property
    def index(self) -> Index:
        """The usearch HNSW index (read from its file on first use)."""
        if self._index is None:
            assert self._index_file is not None
            index = _usearch_index_class().restore(str(self._index_file))
            if index is None or index.ndim != self.dim:
                raise ValueError(f"{self._index_file} is not a usearch index of dimension {self.dim}")
            self._check_index(index)
            index.expansion_search = EXPANSION_SEARCH  # the file does not keep it: a restored index would search with usearch's default
            self._index = index
        return self._index

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])

    def __len__(self) -> int:
        return len(self.clip_ids)

    @classmethod
    def build(
        cls,
        clip_ids: Sequence[str],
        embeddings: np.ndarray,
        *,
        connectivity: int = CONNECTIVITY,
        expansion_add: int = EXPANSION_ADD,
        expansion_search: int = EXPANSION_SEARCH,
        threads: int = 0,
    ) -> ClipIndex:
        """Index `embeddings[i]` as clip `clip_ids[i]` (threads=0: every core)."""
        clip_ids = [str(c) for c in clip_ids]
        embeddings = np.asarray(embeddings)
        if embeddings.ndim != 2 or embeddings.shape[1] == 0:
            raise ValueError(f"embeddings must be a (clips, dim) matrix, got shape {embeddings.shape}")
        if len(clip_ids) != embeddings.shape[0]:
            raise ValueError(f"{len(clip_ids)} clip ids but {embeddings.shape[0]} embedding rows")
        if len(set(clip_ids)) != len(clip_ids):
            seen: set[str] = set()
            duplicate = next(c for c in clip_ids if c in seen or seen.add(c))  # type: ignore[func-returns-value]
            raise ValueError(f"clip id {duplicate!r} appears more than once")
        vectors = _normalised(embeddings)
        index = _usearch_index_class()(
            ndim=vectors.shape[1],
            metric="cos",
            dtype="f32",
            connectivity=connectivity,
            expansion_add=expansion_add,
            expansion_search=expansion_search,
        )
        if len(clip_ids):
            index.add(np.arange(len(clip_ids), dtype=np.uint64), vectors, threads=threads)
        return cls(clip_ids, vectors, index)

    def save(self, directory: Path | str) -> Path:
        """Write the index, the clip ids (JSON) and the embeddings (.npy) into `directory`."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.index.save(str(directory / INDEX_FILE))
        (directory / IDS_FILE).write_text(
            json.dumps({"dim": self.dim, "metric": "cos", "clip_ids": self.clip_ids}), encoding="utf-8"
        )
        np.save(directory / EMBEDDINGS_FILE, np.ascontiguousarray(self.embeddings, dtype=np.float32))
        return directory

    @classmethod
    def load(cls, directory: Path | str, *, mmap: bool = True) -> ClipIndex:
        """Read what `save` wrote; FileNotFoundError names each missing file."""
        directory = Path(directory)
        missing = [name for name in FILES if not (directory / name).is_file()]
        if missing:
            raise MissingFileError(
                f"clip index at {directory} is incomplete: missing {', '.join(missing)} (expected {', '.join(FILES)})"
            )
        meta = json.loads((directory / IDS_FILE).read_text(encoding="utf-8"))
        clip_ids = meta["clip_ids"]
        embeddings = np.load(directory / EMBEDDINGS_FILE, mmap_mode="r" if mmap else None)
        if embeddings.ndim != 2 or embeddings.shape != (len(clip_ids), meta["dim"]):
            raise ValueError(
                f"{directory / EMBEDDINGS_FILE} has shape {embeddings.shape}, expected ({len(clip_ids)}, {meta['dim']})"
            )
        return cls(clip_ids, embeddings, index_file=directory / INDEX_FILE)

    @property
    def memory_bytes(self) -> int:
        """usearch's own memory (graph + vectors) plus the in-memory copy of the embeddings."""
        embeddings = 0 if isinstance(self.embeddings, np.memmap) else self.embeddings.nbytes
        return int(self.index.memory_usage) + embeddings

    def _query(self, query: np.ndarray) -> np.ndarray:
        vector = np.asarray(query, dtype=np.float32)
        if vector.ndim != 1 or vector.shape[0] != self.dim:
            raise ValueError(f"query must be a vector of dimension {self.dim}, got shape {vector.shape}")
        norm = float(np.linalg.norm(vector))
        if not np.isfinite(norm) or norm == 0:
            raise ValueError("query vector is all zeros or not finite: its cosine similarity is undefined")
        return vector / norm

    def search(self, query: np.ndarray, k: int, allowed: set[str] | None = None) -> list[tuple[str, float]]:
        """Up to `k` (clip id, cosine similarity), best first; only clips in `allowed` when given."""
        _check_k(k)
        vector = self._query(query)
        if allowed is None:
            return self._exact(vector, k, None) if len(self) <= EXACT_MAX else self._ann(vector, k, None)
        rows = np.fromiter(map(self.row_of.get, allowed, repeat(-1)), dtype=np.int64, count=len(allowed))
        rows = rows[rows >= 0]  # ids not in the index are ignored
        if rows.size == 0:
            return []
        if rows.size <= max(EXACT_MAX, EXACT_FRACTION * len(self)):
            return self._exact(vector, k, np.sort(rows))
        mask = np.zeros(len(self), dtype=bool)
        mask[rows] = True
        found = self._ann(vector, k, mask)
        if len(found) < k:  # the ANN graph did not reach every allowed clip: scan them exactly
            return self._exact(vector, k, np.sort(rows))
        return found

    def _exact(self, vector: np.ndarray, k: int, rows: np.ndarray | None) -> list[tuple[str, float]]:
        """Exact cosine over `rows` (sorted row numbers; None: every clip)."""
        if rows is None:
            rows = np.arange(len(self))
            scores = np.asarray(self.embeddings @ vector, dtype=np.float32)
        else:
            scores = np.asarray(self.embeddings[rows] @ vector, dtype=np.float32)
        if scores.size > k:
            top = np.argpartition(-scores, k - 1)[:k]
        else:
            top = np.arange(scores.size)
        top = top[np.lexsort((rows[top], -scores[top]))]  # best first, ties by row (stable)
        return [(self.clip_ids[rows[i]], float(scores[i])) for i in top]

    def _ann(self, vector: np.ndarray, k: int, mask: np.ndarray | None) -> list[tuple[str, float]]:
        """ANN search; with a mask, over-fetch k·4, k·16, ... until k allowed hits or the whole index is fetched."""
        total = len(self)
        if total == 0:
            return []
        fetch = min(k if mask is None else k * 4, total)
        while True:
            matches = self.index.search(vector, fetch, threads=1)
            keys = np.asarray(matches.keys, dtype=np.int64)
            similarities = 1.0 - np.asarray(matches.distances, dtype=np.float64)
            if mask is not None:
                keep = mask[keys]
                keys, similarities = keys[keep], similarities[keep]
            if len(keys) >= k or fetch >= total:
                return [(self.clip_ids[key], float(s)) for key, s in zip(keys[:k], similarities[:k])]
            fetch = min(fetch * 4, total)
