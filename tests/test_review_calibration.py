"""Calibration for production review: exact bounds checked by hand, the fixed-sequence choice on
a case worked out by hand, and `preannot review calibrate` end to end on a real Label Studio
harvest of a real spaCy rules pipeline, first with too few reviews, then with enough."""

from __future__ import annotations

import json
import math
import random
import uuid

import pytest
from click.testing import CliRunner
from scipy.stats import binom

from preannot.cli import cli
from preannot.engine.config import load_config
from preannot.evaluation.split import in_eval_split
from preannot.review.calibration import (Calibration, clopper_pearson_upper, fewest_tasks,
                                         in_fit_half, is_right, learn_then_test,
                                         reviews_needed)


def test_the_exact_bound_by_hand():
    # no errors in n tasks: the bound solves (1 - p)^n = delta
    assert clopper_pearson_upper(0, 299, 0.05) == pytest.approx(1 - 0.05 ** (1 / 299), abs=1e-12)
    assert clopper_pearson_upper(0, 299, 0.05) <= 0.01 < clopper_pearson_upper(0, 298, 0.05)
    assert fewest_tasks(0.99, 0.05) == 299
    # one error in ten: the bound is the p at which seeing at most one error has chance delta
    upper = clopper_pearson_upper(1, 10, 0.05)
    assert binom.cdf(1, 10, upper) == pytest.approx(0.05, abs=1e-9)
    assert clopper_pearson_upper(10, 10, 0.05) == 1.0


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


KNOWN = ["Acme widget", "Zeta bolt", "Omega drill", "Delta saw"]
UNKNOWN = ["Nova grinder"]  # the rules never find it: a human adds it


@pytest.fixture
def reviewed_pipeline(tmp_path, labelstudio, monkeypatch):
    for key, value in labelstudio.env().items():
        monkeypatch.setenv(key, value)
    title = f"review {uuid.uuid4().hex[:8]}"
    rng = random.Random(5)
    rows = []
    for i in range(400):
        product = UNKNOWN[0] if i % 10 == 0 else rng.choice(KNOWN)
        text = f"Order {i}: please send 3 {product} to Lyon."
        rows.append({"id": f"mail{i}", "text": text, "product": product,
                     "start": text.index(product)})
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "products.csv").write_text(
        "term,label\n" + "".join(f"{p},PRODUCT\n" for p in KNOWN))
    (tmp_path / "mails.jsonl").write_text("".join(
        json.dumps({"id": r["id"], "text": r["text"]}) + "\n" for r in rows))
    (tmp_path / "preannot.toml").write_text(f"""
[input]
paths = ["mails.jsonl"]
[output]
path = "out/predictions.json"
[[annotators]]
name = "rules"
type = "rules"
rules = "rules"
[training]
eval_fraction = 1.0
[review]
target_precision = 0.98   # 149 right tasks can show it (0.99 needs 299: a slower test)
[labelstudio]
project = "{title}"
""")
    result = CliRunner().invoke(cli, ["ls", "push", "-c", str(tmp_path / "preannot.toml"),
                                      "--no-progress"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    client = labelstudio.client()
    project = client.project(title).id
    tasks = {t["meta"]["preannot_id"]: t for t in client.export(project)}

    def review(selected):
        for row in selected:
            task = tasks[row["id"]]
            result = [dict(r) for r in task["predictions"][0]["result"]]  # kept as predicted
            if row["product"] in UNKNOWN:
                result.append({"id": f"h{row['id']}", "from_name": "label", "to_name": "text",
                               "type": "labels", "value": {
                                   "start": row["start"], "end": row["start"] + len(row["product"]),
                                   "text": row["product"], "labels": ["PRODUCT"]}})
            client.sdk.annotations.create(task["id"], result=result)

    return tmp_path, rows, review


def calibrate(folder):
    for command in (["ls", "pull"], ["review", "calibrate"]):
        result = CliRunner().invoke(cli, [*command, "-c", str(folder / "preannot.toml")],
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.output
    stored = json.loads((folder / "review" / "calibration.json").read_text())
    return result.output, stored["versions"][stored["current"]]


def test_calibrate_end_to_end_first_too_few_reviews_then_a_guarantee(reviewed_pipeline):
    folder, rows, review = reviewed_pipeline
    config = load_config(folder / "preannot.toml")
    assert all(in_eval_split(r["id"], config.training.eval_fraction) for r in rows)

    assert fewest_tasks(0.98, 0.05) == 149
    review(rows[:100])
    output, stored = calibrate(folder)
    tested = [r for r in rows[:100] if not in_fit_half({"preannot_id": r["id"]})]
    assert (stored["fit_tasks"], stored["test_tasks"]) == (100 - len(tested), len(tested))
    assert stored["test_right"] == sum(r["product"] in KNOWN for r in tested)
    assert stored["threshold"] is None and stored["steps"] == []
    confident = len(tested) // 2  # the more confident half holds no error
    needed = math.ceil(149 / (confident / len(tested)) / (len(tested) / 100))
    assert f"needs about {needed - 100} more reviewed tasks" in output
    assert (folder / "review" / "calibration.html").read_text().count("<svg") == 2

    review(rows[100:])
    output, stored = calibrate(folder)
    assert "auto-accept tasks whose calibrated probability is at least" in output
    calibration = Calibration.from_json(stored)
    # recount the chosen point on the test half from what the simulated human did
    pushed = {t["meta"]["preannot_id"]: t
              for t in json.loads((folder / "out" / "predictions.json").read_text())}
    tested = [r for r in rows if not in_fit_half({"preannot_id": r["id"]})]
    above = [r for r in tested if calibration.probability(
        pushed[r["id"]]["predictions"][0]["result"]) >= calibration.threshold]
    chosen = calibration.chosen
    assert (chosen.tasks, chosen.errors) == (len(above), sum(r["product"] in UNKNOWN
                                                            for r in above))
    assert chosen.errors == 0 and chosen.tasks >= 149 and chosen.upper_error <= 0.02
    # every task the rules found nothing in is left to humans: none is above the threshold
    assert all(r["product"] in KNOWN for r in above)
    assert len(above) == sum(r["product"] in KNOWN for r in tested)
    assert is_right({"predicted": [], "human": [{"classification": "added"}]}) is False
