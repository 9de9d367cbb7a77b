"""Metrics edge cases on hand-made corrections records."""

from preannot.evaluation.metrics import compute


def item(kind, label="A", annotator="x", score=None, rule=None):
    out = {"classification": kind, "label": label, "annotator": annotator, "score": score}
    if rule:
        out["preannot"] = {"annotator": annotator, "rule_file": "r.txt", "rule": rule}
    return out


def human(label, added=False):
    return {"type": "labels", "value": {"labels": [label]},
            "classification": "added" if added else "matched"}


def record(predicted, humans, status="annotated", **extra):
    return {"status": status, "model_version": "v1", "predicted": predicted, "human": humans,
            "cancelled": 0, "errors": [], **extra}


def test_empty_harvest_has_no_ratios():
    m = compute([])
    assert m["annotators"] == {} and m["labels"] == {} and m["agreement"]["mean"] is None


def test_skipped_and_unannotated_count_but_measure_nothing():
    m = compute([record([item("deleted")], [], status="skipped", cancelled=2),
                 record([], [], status="unannotated"),
                 record([item("accepted")], [human("A")], errors=["task 3: bad item"])])
    assert m["tasks"] == {"annotated": 1, "measured": 1, "skipped": 1, "unannotated": 1}
    assert m["cancelled_annotations"] == 2 and m["errors"] == 1
    assert m["annotators"]["x"]["predicted"] == 1


def test_precision_recall_acceptance_edits():
    m = compute([
        record([item("accepted", score=0.95), item("deleted", score=0.25)], [human("A")]),
        record([item("modified", score=0.55)], [human("B"), human("A", added=True)]),
        record([], [human("A", added=True)]),
    ])
    x = m["annotators"]["x"]
    # 3 predicted, 1 accepted; human A regions: 1 matched + 2 added = 3 (B was never predicted)
    assert (x["precision"], x["recall"]) == (round(1 / 3, 4), round(1 / 3, 4))
    assert x["acceptance_rate"] == 0.0  # every task had a deletion, a modification or an A added
    assert x["edits_per_task"] == round((1 + 1 + 2) / 3, 4)
    assert m["labels"]["B"]["precision"] is None and m["labels"]["B"]["recall"] == 0.0
    assert m["confidence_histogram"]["accepted"][9] == 1
    assert m["confidence_histogram"]["rejected"][2] == 1 and m["confidence_histogram"]["rejected"][5] == 1


def test_per_rule_precision_and_task_without_prediction():
    m = compute([record([item("accepted", rule="1"), item("deleted", rule="2")], [human("A")]),
                 record([item("deleted", rule="2")], []),
                 {**record([], [human("A")]), "model_version": None}])
    rules = {r["rule"]: (r["predicted"], r["precision"], r["misfires"]) for r in m["rules"]}
    assert rules == {"1": (1, 1.0, 0), "2": (2, 0.0, 2)}
    assert m["tasks"]["annotated without prediction"] == 1


def test_a_source_is_measured_only_on_the_tasks_it_predicted():
    """A second round: the model predicted only the two newest tasks, the rules the three of
    round one. The model's recall used to divide by the human regions of all five (1/9)."""
    def rules(kind):
        return {**item(kind, "PRODUCT", "rules"), "preannot": {"annotator": "rules"}}

    def model(kind):
        return {**item(kind, "PRODUCT", "model"), "preannot": {"annotator": "model"}}

    one = [record([rules("accepted")], [human("PRODUCT"), human("PRODUCT", added=True)],
                  model_version="rules-v1") for _ in range(3)]
    two = [record([model("accepted"), model("deleted")],
                  [human("PRODUCT"), human("PRODUCT", added=True)], model_version="model-v1"),
           record([], [human("PRODUCT", added=True)], model_version="model-v1")]
    m = compute(one + two)["annotators"]
    assert {k: m["model"][k] for k in ("human", "added", "tasks", "precision", "recall")} == {
        "human": 3, "added": 2, "tasks": 2, "precision": 0.5, "recall": 0.3333}
    assert m["model"]["edits_per_task"] == 1.5  # (1 deleted + 2 added) / 2 tasks
    assert {k: m["rules"][k] for k in ("human", "tasks", "precision", "recall")} == {
        "human": 6, "tasks": 3, "precision": 1.0, "recall": 0.5}
