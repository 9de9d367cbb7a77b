"""The embedding space of a config: which embedder, its cache, its index; and the set-level
work done in it (selection order, near-duplicate groups, nearest tasks to a query)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..annotator import Annotator, ConfigError, Pool, Selector, can_embed
from ..engine.config import RunConfig
from ..model import Task
from .index import VectorIndex, index_path
from .store import EmbeddingStore, Embedder, embed_tasks
from .text import TfidfEmbedder


def choose_embedder(config: RunConfig, annotators: Sequence[Annotator],
                    fit_on: Sequence[Task] | Callable[[], Sequence[Task]] = ()) -> Embedder:
    """``[selection] embedder`` (an annotator's name), else the first configured annotator
    that can embed, else TF-IDF + SVD of ``[selection] field`` fitted on ``fit_on`` (a
    function giving them: read only when no fit is kept yet)."""
    wanted = config.selection.embedder
    if wanted and wanted not in ("tfidf", "tfidf-svd"):
        found = [a for a in annotators if a.name == wanted]
        if not found:
            names = ", ".join(a.name for a in annotators) or "none"
            raise ConfigError(f"[selection] embedder = {wanted!r}: no annotator of that name is "
                              f"configured (configured: {names}; or \"tfidf\")")
        if not can_embed(found[0]):
            raise ConfigError(f"[selection] embedder = {wanted!r}: annotator type "
                              f"{found[0].type!r} cannot embed tasks; name another or \"tfidf\"")
        return found[0]
    if not wanted:
        for annotator in annotators:
            if can_embed(annotator):
                return annotator
    embedder = TfidfEmbedder(config.workspace.index, config.selection.data_field,
                             config.selection.dim)
    if embedder.model is None:
        embedder.fit(list(fit_on() if callable(fit_on) else fit_on))
    return embedder


class Space:
    """Embeddings of one embedder, cached in ``.preannot/embeddings.sqlite`` and indexed in
    ``.preannot/index/``; :meth:`add` embeds and indexes tasks, computing only what is new."""

    def __init__(self, config: RunConfig, embedder: Embedder, *, exact: bool = False) -> None:
        self.embedder = embedder
        self.version = embedder.model_version
        self.store = EmbeddingStore(config.workspace.embeddings)
        self.path = index_path(config.workspace.index, self.version)
        self.exact = exact
        self.index: VectorIndex | None = None

    def add(self, tasks: Sequence[Task], progress: Callable[[int], None] | None = None
            ) -> tuple[list[Any], list[tuple[str, str]]]:
        """(a unit vector or None per task, failures); the vectors go into the index too."""
        import numpy as np

        vectors, failures = embed_tasks(tasks, self.embedder, self.store, progress=progress)
        done = [(t, v) for t, v in zip(tasks, vectors) if v is not None]
        if not done:
            return vectors, failures
        if self.index is None:
            self.index = VectorIndex(self.path, len(done[0][1]), exact=self.exact)
        stale = {t.id for t in self.store.stale(self.version, [t for t, _ in done])}
        keys = self.store.keys(self.version, [t for t, _ in done])
        new = [(k, v) for k, (t, v) in zip(keys, done) if t.id in stale or k not in self.index]
        if new:
            self.index.add([k for k, _ in new], np.stack([v for _, v in new]), replace=True)
            self.index.save()
        return vectors, failures

    def nearest(self, query: Any, k: int, among: set[str] | None = None
                ) -> list[tuple[str, float]]:
        """(task id, cosine) of the ``k`` nearest indexed tasks to ``query``, best first,
        only those in ``among`` (None: all). Asks the index for more while too few are left."""
        if self.index is None or not len(self.index):
            return []
        want = k
        while True:
            keys, sims = self.index.search(query, want)
            names = self.store.tasks_of(self.version, [int(x) for x in keys[0] if x >= 0])
            found = [(names[int(x)], float(s)) for x, s in zip(keys[0], sims[0])
                     if x >= 0 and int(x) in names
                     and (among is None or names[int(x)] in among)]
            if len(found) >= k or want >= len(self.index):
                return found[:k]
            want = min(len(self.index), want * 4)

    def close(self) -> None:
        self.store.close()


def duplicate_groups(space: Space, tasks: Sequence[Task], vectors: Sequence[Any],
                     threshold: float, neighbours: int = 10) -> list[list[int]]:
    """Groups (indices into ``tasks``, two or more) of tasks whose cosine is ``threshold`` or
    more, joined transitively; each group in task order, so its first is the representative."""
    import numpy as np

    present = [i for i, v in enumerate(vectors) if v is not None]
    if threshold > 1 or len(present) < 2 or space.index is None:
        return []
    parent = list(range(len(tasks)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    position = {t.id: i for i, t in enumerate(tasks)}
    for start in range(0, len(present), 4096):
        chunk = present[start:start + 4096]
        keys, sims = space.index.search(np.stack([vectors[i] for i in chunk]),
                                        neighbours + 1)
        names = space.store.tasks_of(space.version, {int(x) for x in keys.reshape(-1) if x >= 0})
        for i, row_keys, row_sims in zip(chunk, keys, sims):
            for key, sim in zip(row_keys, row_sims):
                j = position.get(names.get(int(key), ""), -1)
                if j >= 0 and j != i and sim >= threshold - 1e-6:
                    a, b = root(i), root(j)
                    if a != b:
                        parent[max(a, b)] = min(a, b)
    groups: dict[int, list[int]] = {}
    for i in present:
        groups.setdefault(root(i), []).append(i)
    return sorted((g for g in groups.values() if len(g) > 1), key=lambda g: g[0])


@dataclass
class Selection:
    """A selection over a pool: the order, and what near-duplicates were set aside."""

    order: list[str]
    """Task ids, the first to label first (representatives of duplicate groups only)."""
    duplicates: dict[str, str] = field(default_factory=dict)
    """Task id -> the id of its group's representative, for the copies set aside."""
    failures: list[tuple[str, str]] = field(default_factory=list)

    def priorities(self, ids: Sequence[str]) -> dict[str, float]:
        """Ranker priorities: the selected in order from 1 down to just above 0.5, the rest
        of the pool 0.25, duplicates set aside 0 (last in the queue)."""
        out = {i: 0.25 for i in ids}
        k = max(1, len(self.order))
        for rank, task_id in enumerate(self.order):
            out[task_id] = round(1.0 - 0.5 * rank / k, 6)
        for task_id in self.duplicates:
            out[task_id] = 0.0
        return out


def select(space: Space, selector: Selector, pool: Sequence[Task], k: int, *,
           labeled: Sequence[Task] = (), uncertainty: Sequence[float] | None = None,
           labels: Sequence[list[str]] | None = None, labeled_counts: dict[str, int] | None = None,
           duplicates: float = 2.0, progress: Callable[[int], None] | None = None) -> Selection:
    """Embed ``pool`` and ``labeled`` (cached), set near-duplicate copies aside and let
    ``selector`` order up to ``k`` of what is left."""
    import numpy as np

    vectors, failures = space.add(list(pool), progress)
    seen, _ = space.add(list(labeled)) if labeled else ([], [])
    groups = duplicate_groups(space, pool, vectors, duplicates)
    copies = {pool[j].id: pool[g[0]].id for g in groups for j in g[1:]}
    keep = [i for i, v in enumerate(vectors) if v is not None and pool[i].id not in copies]
    if not keep:
        return Selection([], copies, failures)
    chosen = Pool(ids=[pool[i].id for i in keep], vectors=np.stack([vectors[i] for i in keep]),
                  labeled=np.stack([v for v in seen if v is not None])
                  if any(v is not None for v in seen) else None,
                  uncertainty=None if uncertainty is None
                  else np.asarray([uncertainty[i] for i in keep], dtype=np.float32),
                  labels=[list(labels[i]) for i in keep] if labels is not None else [],
                  labeled_counts=dict(labeled_counts or {}))
    picks = selector.select(chosen, min(k, len(keep)))
    return Selection([chosen.ids[i] for i in picks], copies, failures)
