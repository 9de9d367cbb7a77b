"""The vector index beside the ledger: usearch (HNSW, cosine) when installed (``pip install
"preannot[select]"``), else an exact numpy search that holds every vector in memory.

Vectors are added as tasks arrive (keys from :class:`~preannot.selection.store.EmbeddingStore`)
and the index is saved to ``.preannot/index/<model version>.usearch``; usearch can also search
a saved index memory-mapped (``view``), so memory stays bounded at a million tasks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..annotator import digest


def index_path(index_dir: Path, version: str) -> Path:
    return index_dir / f"{digest(version, size=8)}.usearch"


class VectorIndex:
    """Cosine nearest neighbours over integer keys."""

    def __init__(self, path: Path | None, dim: int, *, exact: bool = False) -> None:
        self.path = path
        self.dim = dim
        try:
            if exact:
                raise ImportError
            from usearch.index import Index
        except ImportError:
            self.index = None
            self.keys_: list[int] = []
            self.rows: list[Any] = []
            return
        # measured at 1M x 256 (benchmarks/active_learning.py): recall@10 0.98 at 32x a
        # numpy search; connectivity 16 and expansion 64 gave 0.89
        self.index = Index(ndim=dim, metric="cos", dtype="f32", connectivity=32,
                           expansion_add=128, expansion_search=256)
        if path is not None and path.exists():
            self.index.load(str(path))

    def __len__(self) -> int:
        return len(self.index) if self.index is not None else len(self.keys_)

    def __contains__(self, key: int) -> bool:
        if self.index is not None:
            return bool(self.index.contains(int(key)))
        return key in set(self.keys_)

    def add(self, keys: list[int], vectors: Any, *, replace: bool = False) -> None:
        """Add vectors (rows) under keys; ``replace``: keys already there get the new vector."""
        import numpy as np

        if not len(keys):
            return
        vectors = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32).reshape(len(keys), -1))
        if self.index is None:
            if replace:
                drop = set(keys)
                kept = [(k, r) for k, r in zip(self.keys_, self.rows) if k not in drop]
                self.keys_, self.rows = [k for k, _ in kept], [r for _, r in kept]
            self.keys_ += [int(k) for k in keys]
            self.rows += list(vectors)
            return
        keys_arr = np.asarray(keys, dtype=np.uint64)
        if replace:
            present = np.array([self.index.contains(int(k)) for k in keys_arr], dtype=bool)
            if present.any():
                self.index.remove(keys_arr[present])
        self.index.add(keys_arr, vectors, threads=0)

    def search(self, queries: Any, k: int) -> tuple[Any, Any]:
        """(keys, cosine similarities), one row per query, best first; -1 where fewer than k."""
        import numpy as np

        q = np.asarray(queries, dtype=np.float32)
        q = q.reshape(1, -1) if q.ndim == 1 else q
        k = max(1, min(k, len(self)))
        if not len(self):
            return np.full((len(q), 1), -1, dtype=np.int64), np.zeros((len(q), 1), np.float32)
        if self.index is None:
            matrix = np.stack(self.rows)
            sims = q @ matrix.T
            top = np.argsort(-sims, axis=1, kind="stable")[:, :k]
            keys = np.asarray(self.keys_, dtype=np.int64)[top]
            return keys, np.take_along_axis(sims, top, axis=1)
        found = self.index.search(q, k, threads=0, exact=len(self) <= 2048)
        keys = np.asarray(found.keys, dtype=np.int64).reshape(len(q), -1)
        sims = 1.0 - np.asarray(found.distances, dtype=np.float32).reshape(len(q), -1)
        counts = np.asarray(getattr(found, "counts", [len(found.keys)])).reshape(-1)
        for row, count in enumerate(counts):
            keys[row, count:] = -1
        return keys, sims

    def save(self) -> None:
        if self.index is not None and self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.index.save(str(self.path))
