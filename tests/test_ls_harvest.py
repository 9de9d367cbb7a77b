"""Harvest against a real Label Studio: a human plays the scenario through the API, we pull,
and every classification count and metric is checked against values worked out by hand."""

import json

import pytest
from click.testing import CliRunner

from preannot import Prediction, Span, Task
from preannot.cli import cli
from preannot.labelstudio.harvest import HarvestStore, pull, write_outputs
from preannot.lsjson import region_to_result, task_to_ls

CONFIG = ('<View><Text name="text" value="$text"/><Labels name="label" toName="text">'
          '<Label value="PRODUCT"/><Label value="BRAND"/><Label value="COLOR"/></Labels></View>')
VERSION = "rules-v1+colors-v1"


def span(text, sub, label, rid, annotator="rules", rule_file="products.csv", rule="2", score=0.9,
         occurrence=0):
    start = text.index(sub) if not occurrence else text.rindex(sub)
    return Span(start=start, end=start + len(sub), text=sub, label=label, score=score, id=rid,
                from_name="label", to_name="text",
                provenance={"annotator": annotator, "rule_file": rule_file, "rule": rule})


def color(text, sub, rid, rule):
    return span(text, sub, "COLOR", rid, annotator="colors", rule_file="colors.txt", rule=rule,
                score=0.8)


TEXTS = {
    "t1": "Buy Acme widget in red now",
    "t2": "Acme gadget and Zeta bolt",
    "t3": "Bolt here, ask Omega Inc about blue",
    "t4": "Acme widget, skipped by the human",
    "t5": "Omega Inc sells Acme widget",
    "t6": "Omega Inc ships",
    "t7": "Zeta bolt again",
}
PREDICTED = {
    "t1": [span(TEXTS["t1"], "Acme widget", "PRODUCT", "p1"), color(TEXTS["t1"], "red", "p2", "1")],
    "t2": [span(TEXTS["t2"], "Acme gadget", "PRODUCT", "p3", rule="3"),
           span(TEXTS["t2"], "Zeta", "PRODUCT", "p4", rule="4", score=0.6)],
    "t3": [span(TEXTS["t3"], "Bolt", "PRODUCT", "p5", rule="5", score=0.3),
           color(TEXTS["t3"], "blue", "p6", "2")],
    "t4": [span(TEXTS["t4"], "Acme widget", "PRODUCT", "p7")],
    "t5": [span(TEXTS["t5"], "Acme widget", "PRODUCT", "p8")],
    "t6": [],
    "t7": [span(TEXTS["t7"], "Zeta bolt", "PRODUCT", "p9", rule="4")],
}


def human(task, sub, label, rid):
    """A result item as the editor saves it (no provenance, no score)."""
    item = region_to_result(span(TEXTS[task], sub, label, rid))
    for key in ("preannot", "score", "origin"):
        item.pop(key, None)
    return item


def kept(task, index):
    """A predicted region accepted as is: the editor keeps its id and geometry."""
    return human(task, PREDICTED[task][index].text, PREDICTED[task][index].label,
                 PREDICTED[task][index].id)


@pytest.fixture(scope="module")
def scenario(labelstudio):
    client = labelstudio.client()
    project = labelstudio.project(CONFIG, "harvest")
    payload = [task_to_ls(Task(key, {"text": text}), [Prediction(key, "rules", VERSION, PREDICTED[key])])
               for key, text in TEXTS.items()]
    ids = dict(zip(TEXTS, client.sdk.projects.import_tasks(project, request=payload,
                                                           return_task_ids=True).task_ids))
    annotate = client.sdk.annotations.create
    annotate(ids["t1"], result=[kept("t1", 0), kept("t1", 1)])              # accept both
    annotate(ids["t2"], result=[human("t2", "Acme gadget", "BRAND", "p3"),  # label fixed
                                human("t2", "Zeta bolt", "PRODUCT", "p4")])  # offsets fixed
    annotate(ids["t3"], result=[kept("t3", 1),                              # "Bolt" deleted
                                human("t3", "Omega Inc", "BRAND", "h1")])    # added
    annotate(ids["t4"], result=[], was_cancelled=True)                      # skipped
    annotate(ids["t5"], result=[kept("t5", 0), human("t5", "Omega Inc", "BRAND", "h2")])
    annotate(ids["t5"], result=[kept("t5", 0)])                             # second annotator
    annotate(ids["t6"], result=[human("t6", "Omega Inc", "BRAND", "h3")])   # added
    return client, project, ids                                             # t7: not annotated yet


def test_pull_classifies_and_measures_exactly(scenario, tmp_path):
    client, project, ids = scenario
    store = HarvestStore(tmp_path / "ledger.sqlite", f"{client.url}#{project}")
    assert pull(client, project, store).fetched == 7
    metrics = write_outputs(store, tmp_path / "out")
    records = {r["task"]: r for r in map(json.loads, (tmp_path / "out" / "corrections.jsonl").open())}
    kinds = {r["id"]: r["classification"] for rec in records.values() for r in rec["predicted"]}
    # t4 was skipped and t7 not annotated: their predictions are not judged
    assert kinds == {"p1": "accepted", "p2": "accepted", "p3": "modified", "p4": "modified",
                     "p5": "deleted", "p6": "accepted", "p8": "accepted"}
    assert records[ids["t4"]]["status"] == "skipped" and records[ids["t4"]]["cancelled"] == 1
    assert records[ids["t7"]]["status"] == "unannotated"
    assert [h["value"]["text"] for h in records[ids["t5"]]["human"]] == ["Acme widget"]  # consensus
    assert records[ids["t2"]]["predicted"][0]["human_label"] == "BRAND"
    added = sorted((rec["task"], h["value"]["text"]) for rec in records.values()
                   for h in rec["human"] if h["classification"] == "added")
    assert added == [(ids["t3"], "Omega Inc"), (ids["t6"], "Omega Inc")]

    assert metrics["tasks"] == {"annotated": 5, "measured": 5, "skipped": 1, "unannotated": 1}
    assert metrics["cancelled_annotations"] == 1 and metrics["errors"] == 0
    assert metrics["agreement"]["tasks"] == 1
    assert metrics["agreement"]["mean"] == round(2 * 1 / (2 + 1), 4)  # t5: 1 agreed of 2 and 1
    rules = metrics["annotators"]["rules"]
    # rules predicted p1 p3 p4 p5 p8; accepted p1 p8; humans drew 3 PRODUCT regions
    assert {k: rules[k] for k in ("predicted", "accepted", "modified", "deleted", "added")} == {
        "predicted": 5, "accepted": 2, "modified": 2, "deleted": 1, "added": 0}
    assert rules["precision"] == 0.4 and rules["recall"] == round(2 / 3, 4)
    assert rules["f1"] == round(2 * 0.4 * (2 / 3) / (0.4 + 2 / 3), 4)
    assert rules["acceptance_rate"] == round(3 / 5, 4)  # t1, t5, and t6 where it said nothing
    assert rules["edits_per_task"] == round(3 / 5, 4)
    colors = metrics["annotators"]["colors"]
    assert (colors["precision"], colors["recall"], colors["acceptance_rate"],
            colors["edits_per_task"]) == (1.0, 1.0, 1.0, 0.0)
    brand = metrics["labels"]["BRAND"]
    assert (brand["predicted"], brand["human"], brand["added"], brand["precision"],
            brand["recall"]) == (0, 3, 2, None, 0.0)
    by_rule = {(r["rule_file"], r["rule"]): (r["predicted"], r["precision"]) for r in metrics["rules"]}
    assert by_rule == {("products.csv", "2"): (2, 1.0), ("products.csv", "3"): (1, 0.0),
                       ("products.csv", "4"): (1, 0.0), ("products.csv", "5"): (1, 0.0),
                       ("colors.txt", "1"): (1, 1.0), ("colors.txt", "2"): (1, 1.0)}
    hist = metrics["confidence_histogram"]
    assert sum(hist["accepted"]) == 4 and sum(hist["rejected"]) == 3
    assert hist["rejected"][3] == 1  # p5 scored 0.3 and was deleted

    html = (tmp_path / "out" / "report.html").read_text()
    assert html.count("<svg") == 3
    assert all(label in html for label in ("PRODUCT", "BRAND", "COLOR", "products.csv:5"))


def test_pull_is_incremental(scenario, tmp_path):
    client, project, ids = scenario
    store = HarvestStore(tmp_path / "ledger.sqlite", f"{client.url}#{project}")
    assert pull(client, project, store).fetched == 7
    assert pull(client, project, store).fetched == 0
    client.sdk.annotations.create(ids["t7"], result=[kept("t7", 0)])
    assert pull(client, project, store).fetched == 1
    assert pull(client, project, store).fetched == 0
    t7 = next(t for t in store.tasks() if t["id"] == ids["t7"])
    assert len(t7["annotations"]) == 1


def test_cli_pull_and_suggest(scenario, labelstudio, tmp_path, monkeypatch):
    client, project, ids = scenario
    (tmp_path / "preannot.toml").write_text(f"[labelstudio]\nproject = {project}\n"
                                            "[harvest]\noutput_dir = 'h'\nspan_iou = 0.5\n")
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "products.csv").write_text("term,label,canonical,synonyms\n" + "".join(
        f"term{i},PRODUCT,,\n" for i in range(2, 6)))
    for key, value in labelstudio.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    result = runner.invoke(cli, ["ls", "pull", "--no-progress"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "h" / "metrics.json").read_text())
    # at span IoU 0.5, "Zeta" (4 chars) in "Zeta bolt" (9) is still a modification: 4/9 < 0.5
    assert metrics["thresholds"]["span_iou"] == 0.5
    assert metrics["annotators"]["rules"]["modified"] == 2
    result = runner.invoke(cli, ["ls", "suggest-rules", "--rules", "rules", "--min-count", "2",
                                 "--min-support", "1", "--min-precision", "0.5", "-o", "fix.patch"])
    assert result.exit_code == 0, result.output
    patch = (tmp_path / "fix.patch").read_text()
    assert "+Omega Inc,BRAND,Omega Inc," in patch  # added twice by humans (t3, t6)
    assert "-term3,PRODUCT,," in patch and "-term5,PRODUCT,," in patch  # misfiring rows
    assert "-term2,PRODUCT,," not in patch  # rule 2 was right every time
