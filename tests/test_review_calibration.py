"""Calibration for production review: exact bounds checked by hand, and the fixed-sequence
choice on cases worked out by hand (end to end: test_review_production.py)."""

from __future__ import annotations

import json
import math

import pytest
from scipy.stats import binom

from annotators import GazetteerPlugin
from preannot.engine.config import load_config
from preannot.engine.host import get_host, load_host
from preannot.evaluation.split import in_eval_split
from preannot.training import retrain
from preannot.production import calibrate as review
from preannot.labelstudio import sync
from preannot.production.calibrate import evaluation_records
from preannot.production.calibration import (FEATURES, clopper_pearson_lower,
                                             clopper_pearson_upper, features, fewest_tasks, fit,
                                             learn_then_test, reviews_needed, task_score)
from preannot.training import flow
from preannot.training.dataset import load_dataset
from preannot.training.registry import Registry, trained_on
from test_training import project  # noqa: F401  (a fixture: a gazetteer trainer's project)


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
    from preannot.production.review_pass import decide
    from preannot.production.calibration import FEATURES, Calibration

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
    assert why(task(0.8)) == ("route", "below the threshold: probability 0.2689 < 0.6000")
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


def test_the_prediction_score_is_a_feature_and_the_fit_learns_from_it():
    """A prediction's own score (spacy-ner: that nothing is wrong or missing) reaches the
    calibrator: the feature is log10(1 - score), floored at -9; without one, the weakest
    region's score stands in. On records where only that score tells right from wrong, the
    fitted probability follows it."""
    result = [{"type": "labels", "score": 0.8, "value": {"labels": ["A"]}},
              {"type": "labels", "score": 0.95, "value": {"labels": ["A"]}}]
    assert features(result, [], 0.999)[FEATURES.index("doubt")] == pytest.approx(-3.0)
    assert features(result, [])[FEATURES.index("doubt")] == pytest.approx(math.log10(0.2))
    assert features([], [], 1.0)[FEATURES.index("doubt")] == -9.0
    # a fusion that dropped candidates (its sources disagreed) says so on every kept region
    fused = [{**r, "preannot": {"fused": {"dropped": 3}}} for r in result]
    assert features(fused, [])[FEATURES.index("dropped")] == pytest.approx(math.log(4))
    assert features(result, [])[FEATURES.index("dropped")] == 0.0
    assert task_score([{"score": 0.9}, {"score": 0.99}, {"result": []}]) == 0.9
    assert task_score([{"result": []}]) is None

    def record(i, score, right):
        return {"task": i, "preannot_id": f"t{i}", "status": "annotated", "predicted": [],
                "predicted_score": score,
                "human": [] if right else [{"classification": "added"}]}

    records = [record(i, 0.99999 if i % 10 else 0.9, bool(i % 10)) for i in range(400)]
    calibration = fit(records, "v1", target=0.9, delta=0.05)
    sure, unsure = calibration.probability([], 0.99999), calibration.probability([], 0.9)
    assert sure > 0.95 and unsure < 0.1  # (logistic regression, regularised)
    assert calibration.threshold is not None and unsure < calibration.threshold <= sure


def test_calibration_takes_every_review_the_current_models_never_learned_from(project):
    """`preannot train` keeps the ids a version learned from (``trained.txt``); calibration
    then uses the evaluation split and every task reviewed since, never one trained on."""
    from test_training import write_corrections

    write_corrections(project, 60)
    config = load_config(project / "preannot.toml")
    host = load_host((GazetteerPlugin(),))
    spec = flow.trainer_specs(config)[0]
    assert flow.train(config, host, spec, log=lambda message: None).promoted
    data = load_dataset(project / "harvest" / "corrections.jsonl", learns=("labels",),
                        field="text", eval_fraction=0.3)
    learned = {e.task.id for e in data.train + data.dev}
    registry = Registry(config.registry_dir)
    assert registry.current("terms").trained_on() == learned
    assert trained_on(config.annotators, registry) == learned
    write_corrections(project, 90)  # 30 more reviewed after the training
    built = sync.annotators(config, host)
    records, failed = evaluation_records(config, built, "v")
    expected = {e.task.id for e in data.eval} | {f"doc{i}" for i in range(60, 90)}
    assert failed == 0 and {r["preannot_id"] for r in records} == expected
    # so each further review counts once, not 1 / eval_fraction times
    calibrated = review.calibrate(config, built=built)
    assert calibrated.calibration.threshold is None
    assert calibrated.more_reviews == calibrated.calibration.needed - len(expected)
    (registry.current("terms").folder / "trained.txt").unlink()  # unknown: the split alone
    records, _ = evaluation_records(config, built, "v")
    split = {f"doc{i}" for i in range(90) if in_eval_split(f"doc{i}", 0.3)}
    assert {r["preannot_id"] for r in records} == split
    # a learned fusion's combiner fitted on some of them (as `preannot train` records it): the
    # pipeline learned from those too
    with (project / "preannot.toml").open("a") as f:
        f.write('[[annotators]]\nname = "fused"\ntype = "fusion"\nafter = ["learned"]\n'
                'policy = "learned"\n')
    fitted = sorted(split)[:5]
    (project / ".preannot" / "fusion").mkdir(parents=True)
    (project / ".preannot" / "fusion" / "fused.tasks.txt").write_text("\n".join(fitted))
    config = load_config(project / "preannot.toml")
    records, _ = evaluation_records(config, sync.annotators(config, host), "v")
    assert {r["preannot_id"] for r in records} == split - set(fitted)


def test_a_pipeline_version_without_calibration_is_calibrated_after_a_harvest(project):
    """A pipeline that became another version without a promotion (here: its config changed;
    in use, a fusion re-learning from `ls pull`'s harvest) is calibrated at once by what runs
    after every harvest, so `review run` never routes everything as "not calibrated"."""
    from test_training import write_corrections

    write_corrections(project, 60)
    config = load_config(project / "preannot.toml")
    flow.train(config, load_host((GazetteerPlugin(),)), flow.trainer_specs(config)[0],
               log=lambda message: None)
    first = review.calibrate(config).calibration.model_version
    lines: list[str] = []
    assert retrain.retrain_if_due(config, log=lines.append) is None and lines == []  # current
    with (project / "preannot.toml").open("a") as f:
        f.write('[labelstudio]\nmodel_version = "terms-pinned"\n')
    config = load_config(project / "preannot.toml")
    get_host().hook.harvested(config=config, log=lines.append, interactive=False)  # the event
    assert lines[0] == "the pipeline is now terms-pinned, which has no calibration yet"
    stored = json.loads((project / "review" / "calibration.json").read_text())
    assert sorted(stored["versions"]) == sorted([first, "terms-pinned"])
    assert stored["current"] == "terms-pinned"


def test_retraining_counts_the_reviews_of_both_projects_as_training_does(project):
    """`[training] retrain_after` counts the reviewed tasks training learns from: the
    labeling project's harvest and the production review's (a drifted task reviewed there
    counts), each task once."""
    from test_training import record, write_corrections

    write_corrections(project, 60)
    with (project / "preannot.toml").open("a") as f:
        f.write("retrain_after = 80\n")  # in [training], the file's last table
    config = load_config(project / "preannot.toml")
    spec = flow.trainer_specs(config)[0]
    assert flow.due(config, spec) == (False, 60, 0)
    folder = project / "review" / "harvest"
    folder.mkdir(parents=True)
    rows = [record(i, "Zeta saw", "PRODUCT") for i in range(50, 80)]  # 10 seen, 20 new
    (folder / "corrections.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert flow.due(config, spec) == (True, 80, 0)
