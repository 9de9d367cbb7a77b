"""Measure a model on the evaluation split, and decide whether a new version may replace the
current one: better on the configured metric by the margin, and no label much worse.

Evaluation runs the real annotator (the one the version will be used through) and matches its
regions to the human-final ones exactly as a harvest does (:func:`preannot.labelstudio.match`),
so the gate's numbers mean what the harvest report's numbers mean.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..annotator import Annotator, ConfigError, Example, batches
from ..engine.runner import predict
from ..evaluation.match import ACCEPTED, DEFAULT_THRESHOLDS, match
from ..evaluation.metrics import f1_score, ratio

METRICS = ("f1", "precision", "recall")


def _scores(c: Counter[str]) -> dict[str, Any]:
    p, r = ratio(c["tp"], c["tp"] + c["fp"]), ratio(c["tp"], c["tp"] + c["fn"])
    return {"tp": c["tp"], "fp": c["fp"], "fn": c["fn"], "support": c["tp"] + c["fn"],
            "precision": p or 0.0, "recall": r or 0.0, "f1": f1_score(p or 0.0, r or 0.0) or 0.0}


def evaluate(annotators: Sequence[Annotator], target: str, examples: Sequence[Example], *,
             learns: Sequence[str] | None = None,
             thresholds: Mapping[str, float] = DEFAULT_THRESHOLDS, batch_size: int = 64,
             progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Micro and per-label precision, recall and F1 of annotator ``target`` (run in the chain
    ``annotators``) against the examples' human regions (of the types in ``learns``)."""
    per_label: dict[str, Counter[str]] = defaultdict(Counter)
    failed: list[str] = []
    for batch in batches(examples, batch_size):
        outputs, failures = predict(annotators, [e.task for e in batch])
        for i, example in enumerate(batch):
            human = [r for r in example.regions if learns is None or r.type in learns]
            prediction = outputs.get(target, [None] * len(batch))[i]
            if i in failures or prediction is None:
                reason = failures.get(i, ("no prediction", ""))
                failed.append(f"{example.task.source}: {' '.join(reason).strip()}")
                predicted = []
            else:
                predicted = [r for r in prediction.regions if learns is None or r.type in learns]
            tally(per_label, predicted, human, thresholds)
        if progress:
            progress(len(batch))
    return scores(per_label, len(examples), failed)


def tally(per_label: dict[str, Counter[str]], predicted: Sequence[Any], human: Sequence[Any],
          thresholds: Mapping[str, float] = DEFAULT_THRESHOLDS) -> None:
    """Add one task's true and false positives and misses, per label, to ``per_label``."""
    matching = match(predicted, human, thresholds)
    for region, (kind, _, _) in zip(predicted, matching.predicted):
        per_label[region.label]["tp" if kind == ACCEPTED else "fp"] += 1
    matched = {j for kind, j, _ in matching.predicted if kind == ACCEPTED}
    for j, region in enumerate(human):
        if j not in matched:
            per_label[region.label]["fn"] += 1


def scores(per_label: Mapping[str, Counter[str]], tasks: int, failed: list[str] | None = None
           ) -> dict[str, Any]:
    """An evaluation (micro and per label) from tallied counts."""
    total = sum(per_label.values(), Counter())
    return {"tasks": tasks, "failed": failed or [], "overall": _scores(total),
            "labels": {label: _scores(c) for label, c in sorted(per_label.items())}}


@dataclass
class GatePolicy:
    """``[training]`` metric, margin, label_tolerance and min_label_support."""

    metric: str = "f1"
    margin: float = 0.0
    """How much better (absolute) the new version must be on ``metric``."""
    label_tolerance: float = 0.05
    """How much worse (absolute F1) any one label may get."""
    min_label_support: int = 5
    """Labels with fewer human regions in the evaluation split are shown but not gated."""
    min_score: float = 0.0
    """What a first version (nothing to beat) must reach on ``metric``; it must beat 0 anyway."""

    @classmethod
    def from_settings(cls, settings: Any) -> GatePolicy:
        """From ``[training]`` (:class:`preannot.engine.config.TrainingSettings`)."""
        policy = cls(**{k: getattr(settings, k) for k in ("metric", "margin", "label_tolerance",
                                                          "min_label_support", "min_score")})
        if policy.metric not in METRICS:
            raise ConfigError(f"[training] metric = {policy.metric!r}: use one of {', '.join(METRICS)}")
        return policy


@dataclass
class GateVerdict:
    promote: bool
    reasons: list[str] = field(default_factory=list)


def decide(candidate: Mapping[str, Any], baseline: Mapping[str, Any] | None,
           policy: GatePolicy) -> GateVerdict:
    """Promote ``candidate`` over ``baseline`` (None: nothing to beat)?"""
    if candidate["tasks"] == 0:
        return GateVerdict(False, ["the evaluation split is empty: pull more reviewed tasks, or "
                                "raise [training] eval_fraction"])
    new = candidate["overall"][policy.metric]
    if baseline is None:
        ok = new > 0 and new >= policy.min_score - 1e-12
        return GateVerdict(ok, [f"no current version: {policy.metric} {new:.3f} on "
                             f"{candidate['tasks']} evaluation tasks (needs more than 0 and at "
                             f"least min_score {policy.min_score})"])
    old = baseline["overall"][policy.metric]
    reasons, ok = [], new >= old + policy.margin - 1e-12
    reasons.append(f"{policy.metric} {old:.3f} -> {new:.3f} (needs at least "
                   f"{old + policy.margin:.3f}): {'better' if ok else 'not better enough'}")
    for label, before in baseline["labels"].items():
        after = candidate["labels"].get(label, {"f1": 0.0})
        if before["support"] < policy.min_label_support:
            continue
        if after["f1"] < before["f1"] - policy.label_tolerance - 1e-12:
            ok = False
            reasons.append(f"label {label}: F1 {before['f1']:.3f} -> {after['f1']:.3f} drops "
                           f"more than the tolerance {policy.label_tolerance}")
    return GateVerdict(ok, reasons)
