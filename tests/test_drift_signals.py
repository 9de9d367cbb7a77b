"""Drift signals on constructed shifts (seeded): each shift fires its own signals and only
those, a window from the reference's distribution fires none, and Holm's correction is the
step-down worked out by hand (end to end with Label Studio: test_drift.py)."""

from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image

from preannot.production.drift_signals import Signal, compare, holm, image_stats, new_terms, profile

KNOWN = ["acme widget", "zeta bolt", "omega drill", "delta saw"]
NEW = ["helix pump", "orbit lathe", "quasar lamp"]
CITIES = ["Lyon", "Paris", "Nice", "Lille"]


def tasks(n, seed, *, new_words=0.0, style=0.1, low_scores=False, brand=0.0, empty=0.0,
          wrong=0.01, dark=False):
    rng = random.Random(seed)
    out = []
    for i in range(n):
        product = rng.choice(NEW if rng.random() < new_words else KNOWN)
        verb = "ship" if rng.random() < style else "send"
        text = f"Order {i}: please {verb} {rng.randint(1, 9)} {product} to {rng.choice(CITIES)}."
        score = rng.uniform(0.5, 0.8) if low_scores else rng.uniform(0.8, 1.0)
        label = "BRAND" if rng.random() < brand else "PRODUCT"
        result = [] if rng.random() < empty else [
            {"type": "labels", "score": score, "value": {"labels": [label]},
             "preannot": {"annotator": "ner"}}]
        probability = 0.5 + score / 2 if result else rng.uniform(0.9, 1.0)
        image = None
        if dark is not None:
            pixels = np.random.default_rng(seed * 1000 + i).normal(
                90 if dark else 128, 40, (24, 32)).clip(0, 255).astype(np.uint8)
            image = image_stats(Image.fromarray(pixels))
        p = profile(f"t{seed}-{i}", {"text": text}, result, probability, 0.9, image)
        p["right"] = rng.random() >= wrong
        out.append(p)
    return out


REFERENCE = tasks(300, 1)


def fired(window):
    return {s.name for s in compare(REFERENCE, window, alpha=0.001)[0] if s.fired}


@pytest.mark.parametrize("shift, expected", [
    ({}, set()),
    ({"new_words": 0.3}, {"unseen words", "text embedding (TF-IDF)"}),
    ({"style": 0.6}, {"text embedding (TF-IDF)"}),
    ({"low_scores": True}, {"calibrated confidence", "scores ner/PRODUCT"}),
    ({"brand": 0.3}, {"predicted label mix"}),
    ({"empty": 0.3}, {"empty predictions"}),
    ({"wrong": 0.15}, {"acceptance above threshold"}),
    ({"dark": True}, {"image brightness"}),
])
def test_each_signal_fires_on_its_shift_and_only_there(shift, expected):
    assert fired(tasks(300, 2, **shift)) == expected


def test_same_distribution_windows_stay_quiet():
    # ten seeded windows like the reference: at alpha 0.001 a false alarm has chance <= 1%
    assert [fired(tasks(200, seed)) for seed in range(10, 20)] == [set()] * 10


def test_signals_report_their_statistics():
    signals = {s.name: s for s in compare(REFERENCE, tasks(300, 2, brand=0.3, new_words=0.3),
                                          alpha=0.001)[0]}
    unseen = signals["unseen words"]
    assert unseen.reference == 0.0 and unseen.tasks == (300, 300)
    assert unseen.window == pytest.approx(
        sum(w in NEW for w in [p["text"].split(" ", 5)[-1].rsplit(" to ", 1)[0]
                               for p in tasks(300, 2, brand=0.3, new_words=0.3)]) / 300)
    mix = signals["predicted label mix"]
    assert mix.labels == ["BRAND", "PRODUCT"] and mix.test == "chi-square"
    assert signals["calibrated confidence"].psi is not None
    assert signals["acceptance below threshold"].p_value is None  # no task below 0.9


def test_holm_steps_down_and_stops_at_the_first_failure():
    signals = [Signal(name, "input", "t", 0.0, p) for name, p in
               [("a", 0.0001), ("b", 0.0004), ("c", 0.0004), ("d", 0.9), ("e", None)]]
    holm(signals, 0.001)
    # levels alpha/4, alpha/3, alpha/2, alpha/1 over the four tested: a passes (<= 0.00025),
    # b fails (> 0.000333), so c does not fire although it is below its own level 0.0005
    assert [(s.name, s.fired) for s in signals] == [("a", True), ("b", False), ("c", False),
                                                   ("d", False), ("e", False)]
    assert [s.level for s in signals[:4]] == pytest.approx([0.00025, 0.001 / 3, 0.0005, 0.001])
    assert signals[4].verdict == "not tested: too few tasks"


def test_new_terms_lists_what_reviewers_added_that_the_reference_never_had():
    vocab = {"acme", "widget", "zeta", "bolt"}
    added = [("Helix pump", "PRODUCT")] * 3 + [("Acme widget", "PRODUCT"), ("Orbit lathe", "PRODUCT")]
    assert new_terms(added, vocab) == [("Helix pump", "PRODUCT", 3), ("Orbit lathe", "PRODUCT", 1)]
