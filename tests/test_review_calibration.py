"""Calibration for production review: exact bounds checked by hand, and the fixed-sequence
choice on cases worked out by hand (end to end: test_review_production.py)."""

from __future__ import annotations

import pytest
from scipy.stats import binom

from preannot.review.calibration import (
    clopper_pearson_lower,
    clopper_pearson_upper,
    fewest_tasks,
    learn_then_test,
    reviews_needed,
)


def test_the_exact_bound_by_hand():
    # no errors in n tasks: the bound solves (1 - p)^n = delta
    assert clopper_pearson_upper(0, 299, 0.05) == pytest.approx(1 - 0.05 ** (1 / 299), abs=1e-12)
    assert clopper_pearson_upper(0, 299, 0.05) <= 0.01 < clopper_pearson_upper(0, 298, 0.05)
    assert fewest_tasks(0.99, 0.05) == 299
    # one error in ten: the bound is the p at which seeing at most one error has chance delta
    upper = clopper_pearson_upper(1, 10, 0.05)
    assert binom.cdf(1, 10, upper) == pytest.approx(0.05, abs=1e-9)
    assert clopper_pearson_upper(10, 10, 0.05) == 1.0
    # the lower bound: the p at which seeing at least k errors has chance delta
    lower = clopper_pearson_lower(3, 10, 0.05)
    assert binom.sf(2, 10, lower) == pytest.approx(0.05, abs=1e-9)
    assert clopper_pearson_lower(0, 10, 0.05) == 0.0


def test_learn_then_test_keeps_the_last_threshold_of_the_unbroken_run():
    # 300 right tasks on top, then wrong ones: thresholds holding fewer than 299 tasks are not
    # tested; 299 and 300 tasks with no error pass; the 301st task is an error and fails
    probs = [1 - i / 1000 for i in range(400)]
    right = [i < 300 for i in range(400)]
    chosen, steps = learn_then_test(probs, right, 0.99, 0.05)
    assert [(s.tasks, s.errors, s.passed) for s in steps] == [(299, 0, True), (300, 0, True),
                                                             (301, 1, False)]
    assert chosen == pytest.approx(1 - 299 / 1000)
    # an early failure ends the sequence even if lower thresholds would pass again
    right[0] = False
    assert learn_then_test(probs, right, 0.99, 0.05)[0] is None


def test_too_little_data_auto_accepts_nothing_and_says_how_much_more():
    chosen, steps = learn_then_test([0.9] * 200, [True] * 200, 0.99, 0.05)
    assert (chosen, steps) == (None, [])
    # no error among the confident half: 299 such tasks are needed, twice as many tested
    # (only the confident half counts), at a test share of one half
    assert reviews_needed([0.9] * 200, [True] * 200, 0.99, 0.05, 0.5) == (299 * 2 * 2, 0.0)
    # wrong more often than the target allows: no amount of data helps
    assert reviews_needed([0.9] * 100, [i % 10 != 0 for i in range(100)], 0.99, 0.05, 0.5) \
        == (None, pytest.approx(0.1, abs=0.02))


def test_decide_routes_failures_new_labels_odd_inputs_and_low_probabilities():
    from preannot.loop.production import decide
    from preannot.review.calibration import FEATURES, Calibration

    width = len(FEATURES) + 1
    calibration = Calibration(
        "v1", 0.99, 0.05, ["PRODUCT"], [0.0] * width, [1.0] * width,
        [10.0] + [0.0] * (width - 1), -9.0, 0.6, 10, 10, 10,
        low=[0.5, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0], high=[1.0, 1.0, 2.0, 1.0, 1.0, 1.0, 1.0],
        id="cal1")

    def task(score, label="PRODUCT", n=1):
        return {"data": {"text": "x"}, "predictions": [{"result": [
            {"type": "labels", "score": score, "value": {"labels": [label]}}] * n}]}

    def why(t, failure=None, off=None, rate=0.0, key="k"):
        d = decide(key, t, failure, calibration, "v1", off, rate)
        return d.decision, d.reason

    # probability = sigmoid(10 * min_score - 9): 0.731 at 1.0, 0.5 at 0.9, 0.269 at 0.8
    assert why(task(1.0)) == ("auto", "probability at or above the threshold")
    assert why(task(0.8)) == ("route", "probability 0.2689 below the threshold 0.6000")
    assert why(task(1.0), failure="annotator 'rules' failed") == (
        "route", "an annotator failed: annotator 'rules' failed")
    assert why(task(1.0, "BRAND")) == ("route", "label BRAND was never calibrated")
    assert why(task(0.4)) == ("route", "unlike the calibration tasks (min_score, mean_score out "
                                       "of range)")
    assert why(task(1.0, n=9)) == ("route", "unlike the calibration tasks (regions out of range)")
    assert why(task(1.0), off="suspended") == ("route", "auto-accept is suspended")
    assert why(task(1.0), rate=1.0) == ("audit", "released, and audited by a human")
    assert decide("k", task(1.0), None, None, "v2", None, 0.0).reason == \
        "pipeline version v2 is not calibrated"
