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
