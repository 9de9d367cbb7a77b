"""Harvest against a real Label Studio: a human plays the scenario through the API, we pull,
and every classification count and metric is checked against values worked out by hand."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from preannot import Box, Mask, Prediction, Span, Task
from preannot.cli import cli
from preannot.evaluation.corrections import classify, write_outputs
from preannot.evaluation.metrics import compute
from preannot.harvest.store import HarvestStore, pull
from preannot.lsjson import prediction_to_ls, region_to_result, result_to_region, task_to_ls

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
    metrics = write_outputs(store.tasks(), tmp_path / "out")
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
    # 3 plots of the predictions, 3 of the human annotator (accuracy, speed, kept predictions),
    # the prediction-vs-human heatmap; no human-vs-human one: one person annotated t5 twice
    assert html.count("<svg") == 7
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


def test_pull_full_refetches_and_model_version_picks_what_is_measured(scenario, labelstudio,
                                                                       tmp_path, monkeypatch):
    client, project, ids = scenario
    (tmp_path / "preannot.toml").write_text(f"[labelstudio]\nproject = {project}\n")
    for key, value in labelstudio.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)

    def pull_cli(*args):
        result = CliRunner().invoke(cli, ["ls", "pull", "--no-progress", *args])
        assert result.exit_code == 0, result.output
        return result.output, json.loads((tmp_path / "harvest" / "metrics.json").read_text())

    out, default = pull_cli()
    assert f"pulled 7 changed tasks of project {project}" in out
    assert "pulled 0 changed tasks" in pull_cli()[0]  # incremental: nothing changed since
    out, full = pull_cli("--full")
    assert "pulled 7 changed tasks" in out and full == default
    assert pull_cli("--model-version", VERSION)[1] == default  # the only version there
    _, other = pull_cli("--model-version", "no-such-version")
    annotated = default["tasks"]["annotated"]
    assert other["annotators"] == {} and other["tasks"]["annotated without prediction"] == annotated


def test_a_ground_truth_annotation_wins_over_the_majority(labelstudio, tmp_path):
    client = labelstudio.client()
    project = labelstudio.project(CONFIG, "ground truth")
    text = "Acme widget and Zeta bolt"
    predicted = [span(text, "Acme widget", "PRODUCT", "g1")]
    [tid] = client.sdk.projects.import_tasks(project, return_task_ids=True, request=[
        task_to_ls(Task("gt", {"text": text}), [Prediction("gt", "rules", VERSION, predicted)])
    ]).task_ids
    acme = region_to_result(span(text, "Acme widget", "PRODUCT", "g1"))
    zeta = region_to_result(span(text, "Zeta bolt", "PRODUCT", "h1"))
    client.sdk.annotations.create(tid, result=[acme])
    client.sdk.annotations.create(tid, result=[acme, zeta], ground_truth=True)
    client.sdk.annotations.create(tid, result=[acme])
    store = HarvestStore(tmp_path / "ledger.sqlite", f"{client.url}#{project}")
    assert pull(client, project, store).fetched == 1
    [task] = store.tasks()
    record = classify(task)
    assert (record["annotations"], record["agreement"]) == (1, None)  # the ground truth alone
    assert [(h["value"]["text"], h["classification"]) for h in record["human"]] == [
        ("Acme widget", "matched"), ("Zeta bolt", "added")]
    for annotation in task["annotations"]:
        annotation["ground_truth"] = False
    majority = classify(task)  # without it, two of three said Acme widget alone
    assert (majority["annotations"], majority["agreement"]) == (3, pytest.approx(7 / 9))
    assert [h["value"]["text"] for h in majority["human"]] == ["Acme widget"]


VISION = ('<View><Image name="image" value="$image"/>'
          '<RectangleLabels name="box" toName="image"><Label value="car"/></RectangleLabels>'
          '<BrushLabels name="mask" toName="image"><Label value="car"/></BrushLabels></View>')


def test_boxes_and_masks_go_to_label_studio_and_come_back_classified(labelstudio, tmp_path):
    """Vision regions through a real server: boxes in percent, masks as the SDK's RLE."""
    client = labelstudio.client()
    project = labelstudio.project(VISION, "vision harvest")

    def mask(rows, cols):
        pixels = np.zeros((100, 200), dtype=bool)
        pixels[rows, cols] = True
        return Mask(mask=pixels, label="car", from_name="mask", to_name="image", score=0.7)

    size = dict(image_width=200, image_height=100, from_name="box", to_name="image")
    kept_box = Box(x=10, y=20, width=30, height=40, label="car", id="b1", score=0.9, **size)
    moved = Box(x=100, y=10, width=40, height=40, label="car", id="b2", score=0.5, **size)
    shrunk, gone = mask(slice(5, 15), slice(5, 15)), mask(slice(60, 90), slice(150, 190))
    shrunk.id, gone.id = "m1", "m2"
    regions = [kept_box, moved, shrunk, gone]
    [tid] = client.sdk.projects.import_tasks(project, return_task_ids=True, request=[task_to_ls(
        Task("img", {"image": "/data/upload/1/a.png"}),
        [Prediction("img", "det", "det-v1", [*regions])])]).task_ids

    def as_human(region):
        item = region_to_result(region)
        for key in ("preannot", "score", "origin"):
            item.pop(key, None)
        return item

    moved_by_human = Box(x=110, y=10, width=40, height=40, label="car", id="b2", **size)
    eroded = mask(slice(6, 14), slice(6, 14))  # 64 of 100 pixels: IoU 0.64
    eroded.id = "m1"
    added = Box(x=0, y=0, width=20, height=20, label="car", id="h1", **size)
    client.sdk.annotations.create(tid, result=[as_human(r) for r in (
        kept_box, moved_by_human, eroded, added)])
    store = HarvestStore(tmp_path / "ledger.sqlite", f"{client.url}#{project}")
    assert pull(client, project, store).fetched == 1
    [record] = [classify(t) for t in store.tasks()]
    got = [(p["id"], p["type"], p["classification"], p["iou"]) for p in record["predicted"]]
    # the moved box keeps 30 of 40 columns: IoU 1200 / 2000 = 0.6, accepted at 0.5
    assert got == [("b1", "rectanglelabels", "accepted", 1.0),
                   ("b2", "rectanglelabels", "accepted", 0.6),
                   ("m1", "brushlabels", "accepted", 0.64),
                   ("m2", "brushlabels", "deleted", 0.0)]
    assert [(h["id"], h["classification"]) for h in record["human"]] == [
        ("b1", "matched"), ("b2", "matched"), ("m1", "matched"), ("h1", "added")]
    # accepted within the thresholds, but moved and eroded: edits the human paid for
    assert [p["edited"] for p in record["predicted"]] == [False, True, True, False]
    measured = compute([record])["annotators"]["det-v1"]  # no provenance: its version
    assert {k: measured[k] for k in ("accepted", "edited", "modified", "deleted", "added",
                                     "acceptance_rate", "edits_per_task")} == {
        "accepted": 3, "edited": 2, "modified": 0, "deleted": 1, "added": 1,
        "acceptance_rate": 0.0, "edits_per_task": 4.0}
    # the geometry came back exactly: pixels for boxes, the very mask for masks
    back = {h["id"]: result_to_region(h) for h in record["human"]}
    assert back["b2"].xyxy == pytest.approx((110, 10, 150, 50), abs=1e-9)
    assert np.array_equal(back["m1"].mask, eroded.mask)


def test_a_source_new_in_round_two_is_measured_on_the_tasks_it_predicted(labelstudio, tmp_path):
    """Round one: the rules predicted three tasks; round two: the model, new, predicted only
    the third (its prediction is the newest there). The model's recall used to divide by the
    human regions of all three tasks (1/5); it saw two of them."""
    client = labelstudio.client()
    project = labelstudio.project(CONFIG, "two rounds")
    texts = {"r1": "Acme widget and Zeta bolt", "r2": "Zeta bolt ships",
             "r3": "Omega drill and Acme widget"}
    rules = {k: [span(t, sub, "PRODUCT", f"{k}p")]
             for (k, t), sub in zip(texts.items(), ["Acme widget", "Zeta bolt", "Acme widget"])}
    ids = dict(zip(texts, client.sdk.projects.import_tasks(project, return_task_ids=True, request=[
        task_to_ls(Task(k, {"text": t}), [Prediction(k, "rules", "rules-v1", rules[k])])
        for k, t in texts.items()]).task_ids))
    model = span(texts["r3"], "Omega drill", "PRODUCT", "r3m", annotator="model", rule_file="",
                 rule="")
    client.sdk.projects.import_predictions(project, request=[{
        "task": ids["r3"], **prediction_to_ls(Prediction("r3", "model", "model-v1", [model]))}])

    def result(key, *subs):
        return [region_to_result(span(texts[key], sub, "PRODUCT", f"h{i}"))
                for i, sub in enumerate(subs)]

    client.sdk.annotations.create(ids["r1"], result=result("r1", "Acme widget", "Zeta bolt"))
    client.sdk.annotations.create(ids["r2"], result=result("r2", "Zeta bolt"))
    client.sdk.annotations.create(ids["r3"], result=result("r3", "Omega drill", "Acme widget"))
    store = HarvestStore(tmp_path / "ledger.sqlite", f"{client.url}#{project}")
    assert pull(client, project, store).fetched == 3
    measured = compute(classify(task) for task in store.tasks())["annotators"]
    assert {name: (m["predicted"], m["accepted"], m["human"], m["precision"], m["recall"])
            for name, m in measured.items()} == {"model": (1, 1, 2, 1.0, 0.5),
                                                 "rules": (2, 2, 3, 1.0, 0.6667)}
