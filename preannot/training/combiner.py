"""The learned combiner of the ``fusion`` annotator: the probability that a candidate region is
right, from what every source said about its part of the task.

A *candidate* is one distinct region (same label and extent, as the harvest matches them)
proposed by one or more sources; candidates that overlap form a conflict group. Its features:
which sources proposed it and with which score, its label and each (source, label) pair, how
many sources agree, which sources ran and stayed silent on the group, which proposed something
else there, and (spans) its length and shape (capitals, digits). A logistic regression over them
is fitted on reviewed tasks the sources never learned from (:func:`fit`, scikit-learn imported
there only); the decision threshold is the one that maximises the fused F1 of out-of-fold
probabilities. The fitted weights are plain numbers in a JSON file: predicting needs nothing but
this module.

Cold start: a candidate proposed only by sources the combiner was not fitted with (a model that
appeared since) weighs its own score (``prior`` when it has none), and those sources' silence
counts for nothing: neither trusted blindly nor silenced.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..evaluation.match import same
from ..extras import require
from ..model import Region, Span
from ..regions import kind_of

FORMAT = 1


@dataclass
class Candidate:
    """One distinct region of a conflict group and the sources that proposed it."""

    region: Region
    scores: dict[str, float | None] = field(default_factory=dict)
    """source -> that source's own score for it (None: it gave none)."""
    members: list[tuple[str, Region]] = field(default_factory=list)
    group: int = 0


def conflict(a: Region, b: Region, thresholds: Mapping[str, float]) -> bool:
    """Two regions that cannot both be right: spans sharing a character, shapes over the IoU."""
    if a.type != b.type or a.to_name != b.to_name:
        return False
    return kind_of(a).conflicts(a, b, thresholds)


def candidates(sourced: Sequence[tuple[str, Region]], thresholds: Mapping[str, float]
               ) -> tuple[list[Candidate], list[list[tuple[str, Region]]]]:
    """The distinct candidates of a task's regions and the conflict groups (every region of
    each group, by source), candidates numbered by group."""
    groups: list[list[tuple[str, Region]]] = []
    for source, region in sourced:
        hits = [g for g in groups if any(conflict(region, r, thresholds) for _, r in g)]
        merged = [(source, region)]
        for g in hits:
            merged = g + merged
            groups.remove(g)
        groups.append(merged)
    out: list[Candidate] = []
    for gi, group in enumerate(groups):
        mine: list[Candidate] = []
        for source, region in group:
            for c in mine:
                if same(region, c.region, thresholds):
                    c.members.append((source, region))
                    if source not in c.scores or (region.score or 0) > (c.scores[source] or 0):
                        c.scores[source] = region.score
                    break
            else:
                mine.append(Candidate(region, {source: region.score}, [(source, region)], gi))
        out.extend(mine)
    return out, groups


def features(c: Candidate, group: Sequence[tuple[str, Region]], ran: Iterable[str],
             silence: bool = True) -> dict[str, float]:
    """The named features of a candidate (absent names are 0); ``silence``: whether a source
    that ran and said nothing in the group is one (off, no source's silence can veto another's
    region: a dictionary that learned the reviewed tasks looks, there, as if it missed nothing)."""
    label = c.region.label
    f: dict[str, float] = {"bias": 1.0, f"label:{label}": 1.0,
                           "agree": float(len(c.scores) - 1)}
    for source, score in c.scores.items():
        f[f"src:{source}"] = 1.0
        f[f"src_label:{source}:{label}"] = 1.0
        if score is None:
            f[f"noscore:{source}"] = 1.0
        else:
            f[f"score:{source}"] = float(score)
    in_group = {s for s, _ in group}
    for source in ran:
        if source in c.scores:
            continue
        if source in in_group:
            f[f"other:{source}"] = 1.0
        elif silence:
            f[f"silent:{source}"] = 1.0
            f[f"silent_label:{source}:{label}"] = 1.0
    if c.region.type == Span.type:
        text = c.region.text or ""  # type: ignore[attr-defined]
        f["len"] = math.log1p(c.region.end - c.region.start)  # type: ignore[attr-defined]
        f["words"] = float(len(text.split()) > 1)
        # the shape of a name: a dictionary's common-word misfires ("a dead pixel") are
        # lower case, product and model names have capitals and digits
        f["upper"] = float(any(ch.isupper() for ch in text))
        f["digit"] = float(any(ch.isdigit() for ch in text))
        for source in c.scores:
            f[f"src_upper:{source}"] = f["upper"]
    return f


def cold_probability(c: Candidate, prior: float) -> float:
    """What a candidate weighs without a fitted record: its agreeing sources' own scores
    combined as independent votes (``prior`` for a source that gave none)."""
    miss = 1.0
    for score in c.scores.values():
        miss *= 1.0 - (prior if score is None else float(score))
    return 1.0 - miss


def probability(c: Candidate, group: Sequence[tuple[str, Region]], ran: Iterable[str],
                model: Mapping[str, Any] | None, prior: float) -> float:
    """The probability that ``c`` is right: the fitted combiner's when it knows one of the
    sources that proposed it (unknown sources' features are left out), else cold."""
    if not model or not (known := set(model["sources"])) & set(c.scores):
        return cold_probability(c, prior)
    weights = model["weights"]
    f = features(c, group, [s for s in ran if s in known], model.get("silence", True))
    z = sum(weights.get(name, 0.0) * value for name, value in f.items()
            if not _about_unknown(name, known))
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


def _about_unknown(name: str, known: set[str]) -> bool:
    kind, _, rest = name.partition(":")
    return kind in {"src", "src_label", "noscore", "score"} and rest.split(":")[0] not in known


def decode(cands: Sequence[Candidate], probs: Sequence[float], threshold: float,
           thresholds: Mapping[str, float]) -> list[int]:
    """The candidates kept: by probability, at least ``threshold``, none conflicting with one
    kept before."""
    kept: list[int] = []
    for i in sorted(range(len(cands)), key=lambda i: (-probs[i], i)):
        if probs[i] < threshold - 1e-12:
            continue
        if any(conflict(cands[i].region, cands[j].region, thresholds) for j in kept):
            continue
        kept.append(i)
    return kept


# --- fitting (the training flow calls this; scikit-learn is imported here only) --------------

@dataclass
class TaskCandidates:
    """One reviewed task's candidates, groups, the sources that ran, and the truth."""

    cands: list[Candidate]
    groups: list[list[tuple[str, Region]]]
    ran: list[str]
    truth: list[bool]
    """Per candidate: a human-final region is the same (label and extent)."""
    human: int
    """Human regions of the task (of the types fused)."""
    group: str = ""
    """Its group key (``[training] group_by``): folds never split a group."""


def task_candidates(sourced: Sequence[tuple[str, Region]], ran: Sequence[str],
                    human: Sequence[Region], thresholds: Mapping[str, float],
                    group: str = "") -> TaskCandidates:
    cands, groups = candidates(sourced, thresholds)
    truth = [any(same(c.region, h, thresholds) for h in human) for c in cands]
    return TaskCandidates(cands, groups, list(ran), truth, len(human), group)


def _rows(tasks: Sequence[TaskCandidates], silence: bool
          ) -> tuple[list[dict[str, float]], list[int]]:
    X, y = [], []
    for t in tasks:
        for c, ok in zip(t.cands, t.truth):
            X.append(features(c, t.groups[c.group], t.ran, silence))
            y.append(int(ok))
    return X, y


def _fit_weights(tasks: Sequence[TaskCandidates], sources: Sequence[str], C: float,
                 silence: bool = True) -> dict[str, Any]:
    require("review", "a learned fusion's combiner")
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LogisticRegression

    X, y = _rows(tasks, silence)
    if len(set(y)) < 2:  # all right or all wrong: a constant, a little short of certain
        p = (sum(y) + 1) / (len(y) + 2)
        return {"sources": list(sources), "weights": {"bias": math.log(p / (1 - p))},
                "silence": silence}
    vec = DictVectorizer(sparse=False)
    matrix = vec.fit_transform(X)
    clf = LogisticRegression(C=C, max_iter=2000, fit_intercept=False)
    clf.fit(matrix, y)
    weights = {name: round(float(w), 6) for name, w in zip(vec.feature_names_, clf.coef_[0])
               if abs(w) > 1e-9}
    return {"sources": list(sources), "weights": weights, "silence": silence}


def fused_counts(tasks: Sequence[TaskCandidates], probs: Sequence[Sequence[float]],
                 threshold: float, thresholds: Mapping[str, float]) -> tuple[int, int, int]:
    """(tp, fp, fn) of the fused output at ``threshold``."""
    tp = fp = fn = 0
    for t, p in zip(tasks, probs):
        kept = decode(t.cands, p, threshold, thresholds)
        hits = sum(t.truth[i] for i in kept)
        tp, fp, fn = tp + hits, fp + len(kept) - hits, fn + t.human - hits
    return tp, fp, fn


def _f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def fit(tasks: Sequence[TaskCandidates], sources: Sequence[str], *,
        thresholds: Mapping[str, float], prior: float = 0.5, folds: int = 5, C: float = 1.0,
        seed: int = 0, silence: bool = True) -> tuple[dict[str, Any], list[list[float]]]:
    """The combiner fitted on ``tasks`` (every one), its threshold chosen on out-of-fold
    probabilities (folds keep a group whole); and those out-of-fold probabilities per task,
    which are what the combiner says about a task it did not learn from."""
    keys = sorted({t.group for t in tasks})
    random.Random(seed).shuffle(keys)
    fold_of = {k: i % folds for i, k in enumerate(keys)}
    oof: list[list[float]] = [[] for _ in tasks]
    for f in range(min(folds, len(keys))):
        train = [t for t in tasks if fold_of[t.group] != f]
        model = _fit_weights(train, sources, C, silence) if train else None
        for i, t in enumerate(tasks):
            if fold_of[t.group] == f:
                oof[i] = [probability(c, t.groups[c.group], t.ran, model, prior) for c in t.cands]
    grid = [round(0.05 * i, 2) for i in range(1, 20)]
    best = max(grid, key=lambda th: (_f1(*fused_counts(tasks, oof, th, thresholds)),
                                     -abs(th - 0.5)))
    model = _fit_weights(tasks, sources, C, silence)
    tp, fp, fn = fused_counts(tasks, oof, best, thresholds)
    model.update({"format": FORMAT, "threshold": best, "tasks": len(tasks),
                  "candidates": sum(len(t.cands) for t in tasks),
                  "out_of_fold": {"tp": tp, "fp": fp, "fn": fn, "f1": round(_f1(tp, fp, fn), 4)}})
    return model, oof
