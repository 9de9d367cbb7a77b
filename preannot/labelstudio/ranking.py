"""What humans should look at first: the built-in rankers and how a rank reaches Label Studio.

The ranker is picked in ``preannot.toml`` (``[ranking] ranker = "uncertainty"``, its other keys
are the ranker's options). Label Studio's "Uncertainty sampling" serves the task whose prediction
has the lowest ``score`` first, so a pushed prediction's score is ``1 - priority``; each region
keeps its own original confidence in its ``score``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import Any

from ..annotator import ConfigError, Ranker
from ..evaluation.match import iou
from ..model import Prediction, Region, Task


def priority_to_score(priority: float) -> float:
    """The prediction score Label Studio's uncertainty sampler serves lowest-first."""
    return round(1.0 - min(1.0, max(0.0, priority)), 6)


class Uncertainty(Ranker):
    """Least sure first: 1 - the lowest prediction score of the task. A prediction's score is
    its own task score where the annotator gives one (``spacy-ner`` with a beam: the
    probability that its whole entity set is right, so a likely miss counts too, even in a
    task where nothing was found), else its weakest region's. ``empty``: the priority of a
    task with no score at all."""

    type = "uncertainty"
    description = "least confident predictions first"

    def priority(self, task: Task, predictions: Sequence[Prediction]) -> float:
        scores = [p.score for p in predictions if p.score is not None]
        return 1.0 - min(scores) if scores else float(self.options.get("empty", 0.5))


class Disagreement(Ranker):
    """Tasks where annotators disagree first: 1 - the share of regions the others also found.

    Options: ``threshold`` (overlap that counts as the same region, default 0.5; the overlap is
    the harvest matcher's :func:`preannot.evaluation.match.iou`) and ``annotators`` (names to
    compare, as configured; default all).
    """

    type = "disagreement"
    description = "tasks where annotators disagree first"

    def _agreement(self, a: Sequence[Region], b: Sequence[Region]) -> float:
        if not a and not b:
            return 1.0
        threshold = float(self.options.get("threshold", 0.5))

        def found(r: Region, others: Sequence[Region]) -> bool:
            return any(r.label == o.label and iou(r, o) >= threshold for o in others)

        matched_a = sum(found(r, b) for r in a)
        matched_b = sum(found(r, a) for r in b)
        return (matched_a + matched_b) / (len(a) + len(b))

    def priority(self, task: Task, predictions: Sequence[Prediction]) -> float:
        wanted = self.options.get("annotators")
        chosen = [p for p in predictions if not wanted or p.annotator in wanted]
        pairs = list(combinations(chosen, 2))
        if not pairs:
            return 0.0
        return 1.0 - sum(self._agreement(a.regions, b.regions) for a, b in pairs) / len(pairs)


class Business(Ranker):
    """Priority from what was found: the highest weight among the task's regions.

    Options: ``labels`` (label -> weight) and ``sources`` (a provenance value such as a rule
    set or annotator name -> weight); weights are scaled by the largest one configured.
    """

    type = "business"
    description = "business priority from label and rule weights"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        self.labels = {str(k): float(v) for k, v in self.options.get("labels", {}).items()}
        self.sources = {str(k): float(v) for k, v in self.options.get("sources", {}).items()}
        self.top = max([*self.labels.values(), *self.sources.values(), 0.0])
        if self.top <= 0:
            raise ConfigError("[ranking] ranker 'business' needs positive weights in "
                              "labels = {LABEL = weight} or sources = {name = weight}")

    def priority(self, task: Task, predictions: Sequence[Prediction]) -> float:
        best = 0.0
        for prediction in predictions:
            for region in prediction.regions:
                best = max(best, self.labels.get(region.label, 0.0),
                           *(self.sources.get(str(v), 0.0) for v in region.provenance.values()))
        return best / self.top


BUILT_IN = (Uncertainty, Disagreement, Business)
