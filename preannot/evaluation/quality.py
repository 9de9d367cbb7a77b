"""How reliable each human annotator is, from what Label Studio holds; nothing here talks HTTP.

Three sources, each used when the harvest has it:

- **ground truth** (honeypots): an annotation flagged ``ground_truth`` is the answer key; every
  other annotation of that task is matched to it (:func:`match.match`) and counted per label:
  a region with the same label and an overlap within the threshold is a true positive, any
  other region of the annotator a false positive, any ground-truth region left unmatched (or
  matched with another label) a false negative;
- **agreement** (tasks annotated by several people): regions at the same place (overlap within
  the threshold, whatever their labels) form a *location*; each annotator answers a label, or
  "nothing here", at each location of the tasks they annotated. A Dawid-Skene model
  (:func:`dawid_skene`: a confusion matrix per annotator and a latent true label per location,
  fitted by EM) estimates each annotator's accuracy per label without any answer key, and
  Krippendorff's alpha per label (the ``krippendorff`` package) says how far the annotators
  agree beyond chance;
- **behaviour**: Label Studio's ``lead_time`` per annotation, and the share of predicted regions
  an annotator left exactly as they were (careless acceptance shows as a high share with low
  accuracy).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from ..lsjson import result_to_region
from ..model import Region
from .match import ACCEPTED, DEFAULT_THRESHOLDS, match, threshold

NOTHING = ""
"""The answer "no region here" (a location another annotator marked)."""
KEPT_TOLERANCE = 1e-6
CARELESS_ACCEPTANCE = 0.8
CARELESS_GAP = 0.1
"""Careless: leaves at least 80% of predicted regions as they were, and is at least 10 points
less accurate than the most accurate annotator."""


def annotator_name(annotation: Mapping[str, Any], names: Mapping[int, str] | None = None) -> str:
    """Who made an annotation: the user's email from ``names`` (user id -> email), else as Label
    Studio exported it (an id, or an expanded user)."""
    who = annotation.get("completed_by")
    if isinstance(who, dict):
        return str(who.get("email") or who.get("username") or who.get("id"))
    if names and who in names:
        return names[who]
    return f"user {who}" if who is not None else "unknown"


@dataclass
class Annotation:
    """One usable (not skipped) human annotation of a task, parsed."""

    annotator: str
    regions: list[Region]
    lead_time: float | None = None
    ground_truth: bool = False


def parse_regions(result: Iterable[Mapping[str, Any]]) -> list[Region]:
    """Regions of a result list; items that are not regions or unreadable are skipped (the
    correction classifier reports them)."""
    out = []
    for item in result:
        if item.get("type") in ("relation", "textarea", "rating", "number", "datetime"):
            continue
        try:
            out.append(result_to_region(item))
        except (KeyError, ValueError, TypeError, AttributeError):
            continue
    return out


def annotations_of(task: Mapping[str, Any], names: Mapping[int, str] | None = None,
                   usable: Any = None) -> list[Annotation]:
    """The task's annotations that were not skipped (``usable``: a further filter)."""
    out = []
    for a in task.get("annotations") or []:
        if not isinstance(a, dict) or a.get("was_cancelled") or (usable and not usable(a)):
            continue
        lead = a.get("lead_time")
        out.append(Annotation(annotator_name(a, names), parse_regions(a.get("result") or []),
                              float(lead) if isinstance(lead, (int, float)) else None,
                              bool(a.get("ground_truth"))))
    return out


def locations(annotations: Sequence[Sequence[Region]],
              thresholds: Mapping[str, float] = DEFAULT_THRESHOLDS) -> list[dict[int, int]]:
    """Regions at the same place across annotations, whatever their labels: per location,
    annotation index -> region index. The first region seen at a place stands for it; a region
    joins it when :func:`match.match` pairs them with an overlap within the threshold."""
    reps: list[Region] = []
    found: list[dict[int, int]] = []
    for a, regions in enumerate(annotations):
        m = match(reps, regions, thresholds)
        placed = set()
        for loc, (_, j, overlap) in enumerate(m.predicted):
            if j is not None and overlap >= threshold(reps[loc], thresholds) - 1e-9:
                found[loc][a] = j
                placed.add(j)
        for j, region in enumerate(regions):
            if j not in placed:
                reps.append(region)
                found.append({a: j})
    return found


def answers(annotations: Sequence[Sequence[Region]],
            thresholds: Mapping[str, float] = DEFAULT_THRESHOLDS) -> list[list[str]]:
    """Per location, each annotation's label there (:data:`NOTHING`: it drew nothing there)."""
    return [[annotations[a][loc[a]].label if a in loc else NOTHING for a in range(len(annotations))]
            for loc in locations(annotations, thresholds)]


# --- the latent-truth model ---------------------------------------------------------------

@dataclass
class DawidSkene:
    """A fitted Dawid-Skene model: the classes, their prior, each annotator's confusion matrix
    (row: true class, column: answer) and, per item, the posterior over the true class."""

    classes: list[str]
    prior: Any
    confusion: dict[str, Any]
    posterior: Any
    iterations: int = 0

    def truth(self, votes: Mapping[str, str]) -> str:
        """The most probable true class of a new item from its ``annotator -> answer`` votes
        (annotators the model does not know are not counted; none known: a plain majority)."""
        import numpy as np

        index = {c: k for k, c in enumerate(self.classes)}
        known = [(w, v) for w, v in votes.items() if w in self.confusion and v in index]
        if not known:
            counts = Counter(votes.values())
            return max(sorted(counts), key=lambda c: counts[c])
        log = np.log(np.maximum(self.prior, 1e-300)).copy()
        for w, v in known:
            log += np.log(np.maximum(self.confusion[w][:, index[v]], 1e-300))
        return self.classes[int(np.argmax(log))]


def dawid_skene(items: Sequence[Mapping[str, str]], *, smoothing: float = 0.01,
                diagonal: float = 1.0, max_iterations: int = 100, tol: float = 1e-4
                ) -> DawidSkene:
    """Fit Dawid and Skene's model (1979) by EM on ``items`` (each: annotator -> answer).

    Start: each item's true class is its majority answer (ties split evenly). M-step: the prior
    is the mean posterior, an annotator's confusion row for class k is the posterior-weighted
    count of their answers on items of class k, plus ``smoothing`` in every cell and
    ``diagonal`` on the right answer, normalised. The diagonal prior keeps a rare class (often
    "nothing here") from turning into "what the worst annotator says", which a free confusion
    row can do when the class has few items.
    E-step: posterior(k) is proportional to prior(k) times each annotator's confusion(k, answer).
    Stops when no posterior moves more than ``tol``."""
    import numpy as np

    classes = sorted({v for item in items for v in item.values()})
    workers = sorted({w for item in items for w in item})
    k_of = {c: k for k, c in enumerate(classes)}
    n, K = len(items), len(classes)
    # per annotator: the items they answered and their answers, as index arrays
    rows: dict[str, list[int]] = {w: [] for w in workers}
    said: dict[str, list[int]] = {w: [] for w in workers}
    votes = np.zeros((n, K))
    for i, item in enumerate(items):
        for w, v in item.items():
            rows[w].append(i)
            said[w].append(k_of[v])
            votes[i, k_of[v]] += 1
    idx = {w: np.asarray(rows[w], dtype=int) for w in workers}
    ans = {w: np.asarray(said[w], dtype=int) for w in workers}
    onehot = {w: np.eye(K)[ans[w]] for w in workers}
    top = votes == votes.max(axis=1, keepdims=True) if n else votes
    post = top / np.maximum(top.sum(axis=1, keepdims=True), 1)
    confusion: dict[str, Any] = {}
    prior = np.full(K, 1.0 / max(K, 1))
    iterations = 0
    for iterations in range(1, max_iterations + 1):
        prior = post.mean(axis=0) if n else prior
        confusion = {}
        for w in workers:
            c = np.full((K, K), float(smoothing)) + diagonal * np.eye(K)
            c += post[idx[w]].T @ onehot[w]
            sums = c.sum(axis=1, keepdims=True)
            confusion[w] = np.divide(c, sums, out=np.full_like(c, 1.0 / K), where=sums > 0)
        with np.errstate(divide="ignore"):
            log = np.tile(np.log(prior), (n, 1))
            for w in workers:
                log[idx[w]] += np.log(confusion[w])[:, ans[w]].T  # one answer per item each
        finite = np.isfinite(log).any(axis=1)
        safe = np.where(np.isfinite(log), log, -np.inf)
        peak = np.where(finite, safe.max(axis=1), 0.0)
        p = np.exp(safe - peak[:, None])
        new = np.where(finite[:, None], p / np.maximum(p.sum(axis=1, keepdims=True), 1e-300), post)
        moved = float(np.abs(new - post).max()) if n else 0.0
        post = new
        if moved <= tol:
            break
    return DawidSkene(classes, prior, confusion, post, iterations)


def estimated_accuracy(model: DawidSkene, items: Sequence[Mapping[str, str]]
                       ) -> dict[str, dict[str, Any]]:
    """Per annotator: the expected share of their answers that are right (over the items they
    answered, the posterior of the class they gave), overall and per true class."""
    right: dict[str, float] = defaultdict(float)
    answered: Counter[str] = Counter()
    right_by: dict[tuple[str, str], float] = defaultdict(float)
    mass_by: dict[tuple[str, str], float] = defaultdict(float)
    index = {c: k for k, c in enumerate(model.classes)}
    for i, item in enumerate(items):
        for w, v in item.items():
            answered[w] += 1
            right[w] += float(model.posterior[i][index[v]])
            for c, k in index.items():
                mass_by[(w, c)] += float(model.posterior[i][k])
            right_by[(w, v)] += float(model.posterior[i][index[v]])
    out = {}
    for w in sorted(answered):
        per_label = {c or "(nothing)": _round(right_by[(w, c)] / mass_by[(w, c)])
                     for c in model.classes if mass_by[(w, c)] >= 1.0}  # a whole item at least
        out[w] = {"items": answered[w], "accuracy": _round(right[w] / answered[w]),
                  "labels": per_label}
    return out


def _round(v: float | None) -> float | None:
    return None if v is None or math.isnan(v) else round(v, 4)


def krippendorff_alpha(units: Sequence[Mapping[str, str]], label: str) -> float | None:
    """Krippendorff's alpha (nominal) of "is it ``label``?" over locations (each:
    annotator -> answer; an annotator absent from a location did not annotate that task).
    None when it is not defined (one value throughout, or fewer than two annotators)."""
    import numpy as np

    try:
        import krippendorff
    except ImportError:  # an optional extra: pip install preannot[quality]
        return None
    workers = sorted({w for u in units for w in u})
    if len(workers) < 2 or not units:
        return None
    data = np.full((len(workers), len(units)), np.nan)
    row = {w: r for r, w in enumerate(workers)}
    for col, unit in enumerate(units):
        for w, v in unit.items():
            data[row[w], col] = float(v == label)
    values = data[~np.isnan(data)]
    if len(np.unique(values)) < 2:
        return None
    try:
        return _round(float(krippendorff.alpha(reliability_data=data,
                                                level_of_measurement="nominal")))
    except (ValueError, ZeroDivisionError):
        return None


# --- the accumulator ----------------------------------------------------------------------

def _prf(c: Counter[str]) -> dict[str, Any]:
    p = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else None
    r = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else None
    f = (2 * p * r / (p + r) if p + r else 0.0) if p is not None and r is not None else None
    return {"tp": c["tp"], "fp": c["fp"], "fn": c["fn"], "precision": _round(p),
            "recall": _round(r), "f1": _round(f)}


@dataclass
class Quality:
    """Fed one task at a time (:meth:`add`); :meth:`result` gives the JSON-ready figures and
    :attr:`model` the fitted latent-truth model (for reliability-weighted truth)."""

    thresholds: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    names: Mapping[int, str] | None = None
    usable: Any = None
    """A filter on annotations (those of a compatible label spec)."""
    items: list[dict[str, str]] = field(default_factory=list)
    gt: dict[tuple[str, str], Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    gt_tasks: Counter[str] = field(default_factory=Counter)
    lead: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    kept: Counter[str] = field(default_factory=Counter)
    shown: Counter[str] = field(default_factory=Counter)
    human_pairs: Counter[tuple[str, str]] = field(default_factory=Counter)
    model: DawidSkene | None = None

    def add(self, task: Mapping[str, Any], prediction: Sequence[Region] | None = None) -> None:
        """One Label Studio task; ``prediction``: the regions pre-annotated on it."""
        annotations = annotations_of(task, self.names, self.usable)
        for a in annotations:
            if a.lead_time is not None:
                self.lead[a.annotator].append(a.lead_time)
            if prediction:
                m = match(list(prediction), a.regions, self.thresholds)
                self.shown[a.annotator] += len(prediction)
                self.kept[a.annotator] += sum(1 for kind, _, overlap in m.predicted
                                              if kind == ACCEPTED and overlap >= 1 - KEPT_TOLERANCE)
        # every annotation flagged: imported ones (Label Studio flags them), not a honeypot
        flagged = [a for a in annotations if a.ground_truth]
        truth = flagged[0] if flagged and len(flagged) < len(annotations) else None
        if truth is not None:
            for a in annotations:
                if a is not truth and a.annotator != truth.annotator:
                    self._against(a, truth)
            return  # a ground truth task is an exam: its answers are scored, not voted on
        if len({a.annotator for a in annotations}) < 2:
            return  # one person twice says nothing about anyone's reliability
        by = [a.regions for a in annotations]
        for row in answers(by, self.thresholds):
            item: dict[str, str] = {}
            for a, label in zip(annotations, row):
                item.setdefault(a.annotator, label)  # one vote per person
            self.items.append(item)
            for x, y in combinations(row, 2):
                self.human_pairs[(x, y)] += 1
                self.human_pairs[(y, x)] += 1

    def _against(self, a: Annotation, truth: Annotation) -> None:
        self.gt_tasks[a.annotator] += 1
        m = match(a.regions, truth.regions, self.thresholds)
        for region, (kind, j, _) in zip(a.regions, m.predicted):
            if kind == ACCEPTED:
                self.gt[(a.annotator, region.label)]["tp"] += 1
            else:
                self.gt[(a.annotator, region.label)]["fp"] += 1
                if j is not None:
                    self.gt[(a.annotator, truth.regions[j].label)]["fn"] += 1
        for j in m.added:
            self.gt[(a.annotator, truth.regions[j].label)]["fn"] += 1

    def fit(self) -> DawidSkene | None:
        if self.model is None and self.items:
            self.model = dawid_skene(self.items)
        return self.model

    def result(self) -> dict[str, Any]:
        model = self.fit()
        estimated = estimated_accuracy(model, self.items) if model else {}
        ground: dict[str, dict[str, Any]] = defaultdict(lambda: {"labels": {}})
        totals: dict[str, Counter[str]] = defaultdict(Counter)
        for (w, label), c in sorted(self.gt.items()):
            ground[w]["labels"][label] = _prf(c)
            totals[w].update(c)
        for w, c in totals.items():
            ground[w].update(_prf(c), tasks=self.gt_tasks[w])
        labels = sorted({v for item in self.items for v in item.values()} - {NOTHING})
        alpha = {label: krippendorff_alpha(self.items, label) for label in labels}
        names = sorted(set(estimated) | set(ground) | set(self.lead) | set(self.shown))
        table = {}
        for w in names:
            lead = sorted(self.lead.get(w, []))
            accuracy = (ground[w]["f1"] if w in ground else None)
            if accuracy is None and w in estimated:
                accuracy = estimated[w]["accuracy"]
            table[w] = {
                "annotations": len(lead) if lead else None,
                "ground_truth": dict(ground[w]) if w in ground else None,
                "estimated": estimated.get(w),
                "accuracy": accuracy,
                "accuracy_source": "ground truth F1" if w in ground and ground[w]["f1"] is not None
                else ("latent-truth estimate" if w in estimated else None),
                "lead_time_mean": _round(sum(lead) / len(lead)) if lead else None,
                "lead_time_median": _round(lead[len(lead) // 2]) if lead else None,
                "predicted_shown": self.shown[w],
                "acceptance_rate": _round(self.kept[w] / self.shown[w]) if self.shown[w] else None}
        best = max((r["accuracy"] for r in table.values() if r["accuracy"] is not None), default=None)
        for r in table.values():
            r["careless"] = bool(best is not None and r["accuracy"] is not None
                                 and r["acceptance_rate"] is not None
                                 and r["acceptance_rate"] >= CARELESS_ACCEPTANCE
                                 and r["accuracy"] <= best - CARELESS_GAP)
        human = sorted({x for pair in self.human_pairs for x in pair})
        return {
            "method": "ground truth (honeypots) where present, else Dawid-Skene over locations",
            "locations": len(self.items), "annotators": table,
            "krippendorff_alpha": alpha,
            "human_confusion": {"labels": [x or "(nothing)" for x in human],
                                "counts": [[self.human_pairs[(x, y)] for y in human]
                                           for x in human]}}


def weighted_consensus(annotations: Sequence[Sequence[Region]], annotators: Sequence[str],
                       model: DawidSkene,
                       thresholds: Mapping[str, float] = DEFAULT_THRESHOLDS
                       ) -> list[tuple[int, int]]:
    """The reliability-weighted region set of several annotations of one task, as
    (annotation, region) indices like :func:`match.consensus`: at each location the model's
    most probable label wins (nothing, if that is likelier), spoken by the first annotation
    that gave it."""
    kept = []
    for loc in locations(annotations, thresholds):
        votes: dict[str, str] = {}
        for a, name in enumerate(annotators):
            votes.setdefault(name, annotations[a][loc[a]].label if a in loc else NOTHING)
        label = model.truth(votes)
        if label == NOTHING:
            continue
        for a in sorted(loc):
            if annotations[a][loc[a]].label == label:
                kept.append((a, loc[a]))
                break
    return kept


def disagreement(annotations: Sequence[Sequence[Region]],
                 thresholds: Mapping[str, float] = DEFAULT_THRESHOLDS) -> float:
    """1 - mean pairwise region F1 (:func:`match.pair_f1`): 0 when all annotations agree."""
    from .match import pair_f1

    pairs = list(combinations(annotations, 2))
    if not pairs:
        return 0.0
    return round(1 - sum(pair_f1(x, y, thresholds) for x, y in pairs) / len(pairs), 4)
