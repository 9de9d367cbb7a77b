"""The probability that a whole task is right, and an auto-accept threshold with a guarantee.

A task is *right* when the human kept every predicted region as it was (accepted, not moved)
and added none: what the harvest's classification already says. The features are what the
pipeline knows before any human sees the task (:data:`FEATURES`, plus a count per label).
Platt scaling, generalised to these features (scikit-learn's logistic regression), maps them
to a probability; the fitted weights are stored as plain numbers, so scoring in production
needs neither scikit-learn nor a pickle.

The threshold comes from Learn-then-Test (Angelopoulos et al., 2021) on tasks the fit never
saw: thresholds are tested from the highest down (starting at the first that holds enough
tasks to prove anything, a choice that does not look at the labels), each with an exact
one-sided Clopper-Pearson bound on the error rate of the tasks at or above it, and the lowest
threshold of the unbroken run that passes is kept. That fixed sequence keeps the chance of any
false pass at most ``delta``, so the precision of auto-accepted tasks is at least the target
with confidence ``1 - delta``, for production data like the calibration data.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..evaluation.corrections import ACCEPTED, ADDED
from ..evaluation.split import fraction

FEATURES = (
    "min_score",    # the lowest region score (1.0 without scored regions): the weakest link
    "mean_score",   # the mean region score (1.0 without scored regions)
    "regions",      # log(1 + number of predicted regions)
    "empty",        # 1 when nothing was predicted (right only if the human adds nothing)
    "unscored",     # share of regions without a score (rules often give none)
    "agreeing",     # share of regions that two or more fused sources agreed on
    "annotators",   # how many annotators the regions come from
    "doubt",        # log10(1 - the prediction's own score), floored at -9: an annotator's
                    # confidence in the whole task (spacy-ner: that nothing is missing either)
    "dropped",      # log(1 + candidates a fusion dropped in the task): its sources disagreed
)
FIT_SALT = "preannot-calibrate"
"""Splits the evaluation tasks in two, by task id: one half fits, the other tests."""


def features(result: Sequence[Mapping[str, Any]], labels: Sequence[str],
             score: float | None = None) -> list[float]:
    """The feature vector of one prediction's result items (Label Studio format, with
    preannot provenance) and its own score (:func:`task_score`; None: its weakest region's),
    then one count per label in ``labels``."""
    scores = [float(r["score"]) for r in result if isinstance(r.get("score"), (int, float))]
    whole = min(scores, default=1.0) if score is None else float(score)
    provenance = [r.get("preannot") or {} for r in result]
    agreeing = sum(len((p.get("fused") or {}).get("sources") or []) >= 2 for p in provenance)
    annotators = {p.get("annotator") for p in provenance if p.get("annotator")}
    n = len(result)
    row = [min(scores, default=1.0), sum(scores) / len(scores) if scores else 1.0,
           math.log1p(n), float(n == 0), (n - len(scores)) / n if n else 0.0,
           agreeing / n if n else 0.0, float(len(annotators)),
           math.log10(max(1.0 - whole, 1e-9)),
           math.log1p(max((float((p.get("fused") or {}).get("dropped") or 0) for p in provenance),
                          default=0.0))]
    found = [label_of(r) for r in result]
    return row + [float(found.count(label)) for label in labels]


def task_score(predictions: Sequence[Mapping[str, Any]]) -> float | None:
    """The score of a task's predictions (Label Studio's prediction ``score``): the lowest, or
    None when none has one."""
    scores = [float(p["score"]) for p in predictions if isinstance(p.get("score"), (int, float))]
    return min(scores, default=None)


def label_of(item: Mapping[str, Any]) -> str:
    value = item.get("value") or {}
    labels = value.get(item.get("type")) or [""]
    return str(labels[0])


def is_right(record: Mapping[str, Any]) -> bool:
    """Whether the human kept the whole prediction: every region accepted unmoved, none added,
    nothing unreadable."""
    return (not record.get("errors")
            and all(p.get("classification") == ACCEPTED and not p.get("edited")
                    for p in record.get("predicted") or [])
            and not any(h.get("classification") == ADDED for h in record.get("human") or []))


def clopper_pearson_upper(errors: int, tasks: int, delta: float) -> float:
    """The exact one-sided upper ``1 - delta`` confidence bound on an error rate."""
    from scipy.stats import beta
    if errors >= tasks:
        return 1.0
    return float(beta.ppf(1 - delta, errors + 1, tasks - errors))


def clopper_pearson_lower(errors: int, tasks: int, delta: float) -> float:
    """The exact one-sided lower ``1 - delta`` confidence bound on an error rate."""
    from scipy.stats import beta
    if errors <= 0:
        return 0.0
    return float(beta.ppf(delta, errors, tasks - errors + 1))


def fewest_tasks(target: float, delta: float) -> int:
    """The fewest tasks, all right, that can show precision >= target at confidence 1 - delta."""
    return math.ceil(math.log(delta) / math.log(target))


@dataclass
class Step:
    """One threshold tested: the tasks at or above it, their errors, the bound, the verdict."""

    threshold: float
    tasks: int
    errors: int
    upper_error: float
    passed: bool


def learn_then_test(probs: Sequence[float], right: Sequence[bool], target: float,
                    delta: float) -> tuple[float | None, list[Step]]:
    """The lowest threshold of the fixed sequence that passes (None if the first fails, or no
    threshold holds enough tasks), and every step tested."""
    p, ok = np.asarray(probs, dtype=float), np.asarray(right, dtype=bool)
    least, chosen, steps = fewest_tasks(target, delta), None, []
    for threshold in sorted(set(p.tolist()), reverse=True):
        above = p >= threshold
        tasks = int(above.sum())
        if tasks < least:  # decided by counts alone: the labels are not looked at
            continue
        errors = tasks - int(ok[above].sum())
        upper = clopper_pearson_upper(errors, tasks, delta)
        steps.append(Step(threshold, tasks, errors, upper, upper <= 1 - target))
        if not steps[-1].passed:
            break
        chosen = threshold
    return chosen, steps


def reviews_needed(probs: Sequence[float], right: Sequence[bool], target: float, delta: float,
                   test_share: float) -> tuple[int | None, float]:
    """About how many evaluation tasks the guarantee needs (None: never, at this error rate),
    from the error rate of the more confident half of the test tasks, and that rate."""
    p, ok = np.asarray(probs, dtype=float), np.asarray(right, dtype=bool)
    if len(p) == 0:
        return math.ceil(fewest_tasks(target, delta) / 0.5 / test_share), 0.0
    top = np.argsort(-p)[:max(1, len(p) // 2)]
    rate = 1 - float(ok[top].mean())
    if rate >= 1 - target:
        return None, rate
    tasks = fewest_tasks(target, delta)
    while clopper_pearson_upper(math.ceil(rate * tasks), tasks, delta) > 1 - target:
        tasks = math.ceil(tasks * 1.05)
    return math.ceil(tasks / (len(top) / len(p)) / test_share), rate


@dataclass
class Calibration:
    """A fitted calibration of one pipeline version, as stored in ``calibration.json``."""

    model_version: str
    target_precision: float
    delta: float
    labels: list[str]
    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float
    threshold: float | None
    fit_tasks: int
    test_tasks: int
    test_right: int
    low: list[float] = field(default_factory=list)
    high: list[float] = field(default_factory=list)
    """The range of each of :data:`FEATURES` over the fitted tasks."""
    steps: list[Step] = field(default_factory=list)
    needed: int | None = None
    """Without a threshold: about how many evaluation tasks the guarantee needs."""
    top_error_rate: float | None = None
    created: str = ""
    id: str = ""

    def probability(self, result: Sequence[Mapping[str, Any]], score: float | None = None
                    ) -> float:
        """The calibrated probability that a task with this prediction is right."""
        z = (np.asarray(features(result, self.labels, score)) - self.mean) / self.scale
        return float(1 / (1 + np.exp(-(z @ np.asarray(self.coef) + self.intercept))))

    def unknown_labels(self, result: Sequence[Mapping[str, Any]]) -> list[str]:
        """Labels in a prediction that no calibration task held: such a task goes to review."""
        return sorted({label_of(r) for r in result} - set(self.labels))

    def unlike(self, result: Sequence[Mapping[str, Any]], score: float | None = None
               ) -> list[str]:
        """The features of a prediction outside the range the calibration saw: its probability
        there is an extrapolation, so such a task goes to review."""
        row = features(result, [], score)
        return [name for name, x, lo, hi in zip(FEATURES, row, self.low, self.high)
                if not lo <= x <= hi]

    @property
    def chosen(self) -> Step | None:
        return next((s for s in self.steps if s.threshold == self.threshold), None)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Calibration:
        return cls(**{**data, "steps": [Step(**s) for s in data.get("steps") or []]})


def in_fit_half(record: Mapping[str, Any], salt: str = FIT_SALT) -> bool:
    """Which half of the evaluation tasks a record is in, by task id: one fits, one tests
    (another ``salt``, another split: what a benchmark repeats the calibration over)."""
    return fraction(str(record.get("preannot_id") or record.get("task")), salt) < 0.5


def fit(records: Iterable[Mapping[str, Any]], model_version: str, *, target: float,
        delta: float, salt: str = FIT_SALT) -> Calibration:
    """Fit on one half of reviewed evaluation records (corrections records of tasks the models
    never trained on), choose the threshold on the other half."""
    from sklearn.linear_model import LogisticRegression

    halves: dict[bool, list[Mapping[str, Any]]] = {True: [], False: []}
    for record in records:
        halves[in_fit_half(record, salt)].append(record)
    fitting, testing = halves[True], halves[False]
    labels = sorted({label_of(p) for r in fitting for p in r.get("predicted") or []})
    x = np.asarray([features(r.get("predicted") or [], labels, r.get("predicted_score"))
                    for r in fitting], dtype=float)
    y = np.asarray([is_right(r) for r in fitting], dtype=bool)
    width = len(FEATURES) + len(labels)
    mean = x.mean(axis=0) if len(x) else np.zeros(width)
    scale = x.std(axis=0) if len(x) else np.ones(width)
    scale[scale == 0] = 1.0
    coef, intercept = np.zeros(width), 0.0
    if len(set(y.tolist())) == 2:
        model = LogisticRegression(max_iter=1000).fit((x - mean) / scale, y)
        coef, intercept = model.coef_[0], float(model.intercept_[0])
    elif len(y):  # one class only: every task gets the (smoothed) rate seen
        rate = (y.sum() + 0.5) / (len(y) + 1)
        intercept = float(math.log(rate / (1 - rate)))
    calibration = Calibration(model_version, target, delta, labels, mean.tolist(),
                              scale.tolist(), list(map(float, coef)), intercept, None,
                              len(fitting), len(testing), sum(map(is_right, testing)))
    if len(x):
        calibration.low = x[:, :len(FEATURES)].min(axis=0).tolist()
        calibration.high = x[:, :len(FEATURES)].max(axis=0).tolist()
    probs = [calibration.probability(r.get("predicted") or [], r.get("predicted_score"))
             for r in testing]
    right = [is_right(r) for r in testing]
    calibration.threshold, calibration.steps = learn_then_test(probs, right, target, delta)
    if calibration.threshold is None:
        share = len(testing) / max(1, len(fitting) + len(testing)) or 0.5
        calibration.needed, calibration.top_error_rate = reviews_needed(
            probs, right, target, delta, share)
    calibration.created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    calibration.id = hashlib.blake2b(json.dumps(
        [model_version, calibration.created, calibration.coef, calibration.threshold]).encode(),
        digest_size=6).hexdigest()
    return calibration
