"""The built-in selectors: which set of tasks humans label next, seeing the whole pool.

``[selection] selector = "hybrid"`` picks one (its other keys are its options). All of them are
k-center greedy (the coreset of Sener and Savarese, 2018) over the task embeddings, with a
weight per task: ``diversity`` weighs every task the same, ``hybrid`` by the predictions'
uncertainty, ``balance`` by how rare the task's predicted labels are among the labeled ones.
"""

from __future__ import annotations

from typing import Any

from ..annotator import ConfigError, Pool, Selector


def k_center_greedy(vectors: Any, k: int, labeled: Any = None, weights: Any = None) -> list[int]:
    """Indices of up to ``k`` rows of ``vectors``, each the farthest (Euclidean, times its
    weight) from the labeled rows and the rows picked before it. Without labeled rows the
    first pick is the row nearest the mean: the most typical task, not an outlier."""
    import numpy as np

    x = np.asarray(vectors, dtype=np.float32)
    n = len(x)
    k = min(int(k), n)
    if k <= 0:
        return []
    w = np.ones(n, dtype=np.float32) if weights is None else np.asarray(weights, np.float32)
    nearest = np.full(n, np.inf, dtype=np.float32)
    if labeled is not None and len(labeled):
        for chunk in range(0, len(labeled), 1024):
            nearest = np.minimum(nearest, _distances(x, np.asarray(labeled[chunk:chunk + 1024],
                                                                   np.float32)).min(axis=1))
        first = int(np.argmax(nearest * w))
    else:
        first = int(np.argmin(((x - x.mean(axis=0)) ** 2).sum(axis=1) / np.maximum(w, 1e-9)))
    picked = [first]
    nearest = np.minimum(nearest, _distances(x, x[first:first + 1])[:, 0])
    while len(picked) < k:
        score = nearest * w
        score[picked] = -1.0
        pick = int(np.argmax(score))
        if score[pick] <= 0:  # what is left is a copy of what is picked: in pool order
            taken = set(picked)
            rest = [i for i in np.argsort(-w, kind="stable") if i not in taken]
            picked += [int(i) for i in rest[:k - len(picked)]]
            break
        picked.append(pick)
        nearest = np.minimum(nearest, _distances(x, x[pick:pick + 1])[:, 0])
    return picked


def _distances(x: Any, centers: Any) -> Any:
    import numpy as np

    squared = (x * x).sum(axis=1)[:, None] - 2 * x @ centers.T + (centers * centers).sum(axis=1)
    return np.sqrt(np.maximum(squared, 0.0))


class Diversity(Selector):
    """k-center greedy: each pick the task farthest from everything labeled or picked."""

    type = "diversity"
    description = "spread-out tasks first (k-center greedy over the embeddings)"
    known_options = frozenset()

    def select(self, pool: Pool, k: int) -> list[int]:
        return k_center_greedy(pool.vectors, k, pool.labeled)


class Hybrid(Selector):
    """Uncertain and spread out: k-center greedy among the ``candidates`` x k least sure tasks
    (the diverse mini-batch of Zhdanov, 2019, with k-center in place of k-means), each
    distance weighted by ``(1 - weight) + weight * uncertainty``. ``candidates = 0`` looks at
    the whole pool; with ``weight = 0`` too it is pure diversity."""

    type = "hybrid"
    description = "uncertain and spread-out tasks first (k-center among the least sure)"
    known_options = frozenset({"weight", "candidates"})

    def __init__(self, options=None) -> None:
        super().__init__(options)
        self.weight = float(self.options.get("weight", 0.5))
        self.candidates = float(self.options.get("candidates", 3))
        if not 0 <= self.weight <= 1:
            raise ConfigError(f"[selection] weight = {self.weight}: must be between 0 and 1")
        if self.candidates != 0 and self.candidates < 1:
            raise ConfigError(f"[selection] candidates = {self.candidates}: must be 0 (the "
                              "whole pool) or at least 1 (times k)")

    def select(self, pool: Pool, k: int) -> list[int]:
        import numpy as np

        if pool.uncertainty is None:
            return k_center_greedy(pool.vectors, k, pool.labeled)
        u = np.clip(np.asarray(pool.uncertainty, dtype=np.float32), 0.0, 1.0)
        weights = (1 - self.weight) + self.weight * u + 1e-6
        among = int(np.ceil(self.candidates * k))
        if not among or among >= len(u):
            return k_center_greedy(pool.vectors, k, pool.labeled, weights)
        top = np.argsort(-u, kind="stable")[:among]
        picked = k_center_greedy(np.asarray(pool.vectors)[top], k, pool.labeled, weights[top])
        return [int(top[i]) for i in picked]


class Balance(Selector):
    """Rare labels first: k-center weighted by ``1 / sqrt(1 + n)``, n the labeled count of the
    rarest label predicted in the task (a task with no prediction counts as the rarest)."""

    type = "balance"
    description = "tasks with labels rare among the labeled ones first"
    known_options = frozenset()

    def select(self, pool: Pool, k: int) -> list[int]:
        counts = pool.labeled_counts
        weights = [max((1 / (1 + counts.get(label, 0)) ** 0.5 for label in labels), default=1.0)
                   for labels in (pool.labels or [[] for _ in pool.ids])]
        return k_center_greedy(pool.vectors, k, pool.labeled, weights)


class Random(Selector):
    """A shuffled pool (``seed`` option): the baseline the others are measured against."""

    type = "random"
    description = "tasks in a random order (a baseline)"
    known_options = frozenset({"seed"})

    def select(self, pool: Pool, k: int) -> list[int]:
        import numpy as np

        order = np.random.default_rng(int(self.options.get("seed", 0))).permutation(len(pool.ids))
        return [int(i) for i in order[:k]]


BUILT_IN = (Diversity, Hybrid, Balance, Random)
