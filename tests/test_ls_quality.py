"""Annotation quality against a real Label Studio with several users: reliability against
ground-truth tasks, the latent-truth estimate without one, the adjudication tab, and label
specs that change (a rename mapped forward, a split queued for re-annotation)."""

import json
import uuid

import pytest

from preannot import Prediction, Span, Task
from preannot.engine.config import parse_config
from preannot.evaluation.quality import dawid_skene, estimated_accuracy, krippendorff_alpha
from preannot.harvest.pull import pull as harvest_pull
from preannot.lsjson import region_to_result, task_to_ls

LABELS = ("PRODUCT", "BRAND", "COLOR")


def config_of(*labels):
    return ('<View><Text name="text" value="$text"/><Labels name="label" toName="text">'
            + "".join(f'<Label value="{x}"/>' for x in labels) + "</Labels></View>")


def item(text, sub, label, rid=None):
    """A result item as the editor saves it."""
    start = text.index(sub)
    result = region_to_result(Span(start=start, end=start + len(sub), text=sub, label=label,
                                   from_name="label", to_name="text", id=rid))
    for key in ("preannot", "score", "origin"):
        result.pop(key, None)
    return result


@pytest.fixture(scope="module")
def people(labelstudio):
    """Four annotators (users of the organization), by short name: their user ids."""
    client = labelstudio.client()
    run = uuid.uuid4().hex[:6]
    out = {}
    for name in ("ann", "ben", "cid", "dot"):
        user = client.sdk.users.create(username=f"{name}-{run}", email=f"{name}-{run}@example.org")
        out[name] = user.id
    return out


def harvest(client, project, tmp_path, **harvest_settings):
    config = parse_config({"labelstudio": {"project": project}, "harvest": harvest_settings},
                          tmp_path, "test")
    return config, harvest_pull(config, client)


def who(client, people):
    names = client.users()
    return {short: names[uid] for short, uid in people.items()}


def test_reliability_against_ground_truth_tasks_as_worked_out_by_hand(labelstudio, people,
                                                                       tmp_path):
    client = labelstudio.client()
    project = labelstudio.project(config_of(*LABELS), "honeypots")
    g1, g2 = "Acme widget by Omega Inc and Zeta bolt", "Buy Zeta bolt"
    predicted = [Span(start=0, end=11, text="Acme widget", label="PRODUCT", id="p1",
                      from_name="label", to_name="text", score=0.9),
                 Span(start=15, end=24, text="Omega Inc", label="BRAND", id="p2",
                      from_name="label", to_name="text", score=0.9)]
    ids = client.sdk.projects.import_tasks(project, return_task_ids=True, request=[
        task_to_ls(Task("g1", {"text": g1}), [Prediction("g1", "rules", "v1", predicted)]),
        {"text": g2}]).task_ids
    create = client.sdk.annotations.create
    truth1 = [item(g1, "Acme widget", "PRODUCT", "p1"), item(g1, "Omega Inc", "BRAND", "p2"),
              item(g1, "Zeta bolt", "PRODUCT")]
    create(ids[0], result=truth1, ground_truth=True)  # by the admin: the answer key
    create(ids[1], result=[item(g2, "Zeta bolt", "PRODUCT")], ground_truth=True)
    create(ids[0], result=truth1, completed_by=people["ann"], lead_time=10.0)  # all right
    create(ids[1], result=[], completed_by=people["ann"], lead_time=20.0)      # missed one
    create(ids[0], completed_by=people["ben"], lead_time=4.0, result=[
        item(g1, "Acme widget", "BRAND", "p1"),  # wrong label: FP BRAND, FN PRODUCT
        item(g1, "Omega Inc", "BRAND", "p2"),    # right: TP BRAND
        item(g1, "Zeta", "PRODUCT")])            # wrong span (4/9 < 1): FP and FN PRODUCT
    create(ids[1], result=[item(g2, "Zeta bolt", "PRODUCT")], completed_by=people["ben"],
           lead_time=6.0)                        # right: TP PRODUCT
    _, pulled = harvest(client, project, tmp_path)
    quality = pulled.metrics["quality"]
    names = who(client, people)
    ann, ben = quality["annotators"][names["ann"]], quality["annotators"][names["ben"]]
    # ann: PRODUCT 2 TP + 1 FN, BRAND 1 TP
    assert ann["ground_truth"] == {
        "labels": {"BRAND": {"tp": 1, "fp": 0, "fn": 0, "precision": 1.0, "recall": 1.0, "f1": 1.0},
                   "PRODUCT": {"tp": 2, "fp": 0, "fn": 1, "precision": 1.0,
                               "recall": round(2 / 3, 4), "f1": 0.8}},
        "tp": 3, "fp": 0, "fn": 1, "precision": 1.0, "recall": 0.75,
        "f1": round(2 * 0.75 / 1.75, 4), "tasks": 2}
    # ben: BRAND 1 TP 1 FP; PRODUCT 1 TP 1 FP 2 FN
    assert ben["ground_truth"]["labels"] == {
        "BRAND": {"tp": 1, "fp": 1, "fn": 0, "precision": 0.5, "recall": 1.0,
                  "f1": round(2 * 0.5 / 1.5, 4)},
        "PRODUCT": {"tp": 1, "fp": 1, "fn": 2, "precision": 0.5, "recall": round(1 / 3, 4),
                    "f1": 0.4}}
    assert (ben["ground_truth"]["precision"], ben["ground_truth"]["recall"],
            ben["ground_truth"]["f1"]) == (0.5, 0.5, 0.5)
    assert (ann["accuracy"], ben["accuracy"]) == (round(2 * 0.75 / 1.75, 4), 0.5)
    assert (ann["lead_time_mean"], ben["lead_time_mean"]) == (15.0, 5.0)
    # of the two predicted regions on g1, ann kept both, ben relabelled p1
    assert (ann["acceptance_rate"], ben["acceptance_rate"]) == (1.0, 0.5)
    assert (ann["careless"], ben["careless"]) == (False, False)  # ben keeps only half
    html = (tmp_path / "harvest" / "report.html").read_text()
    assert "Human annotators" in html and names["ben"] in html


# Ten tasks of three regions; dot annotates all, two of ann, ben, cid each. Errors are planted
# as relabelled regions: dot 3 on t0, 2 on t1, 1 on t2..t7; cid 1 on t8.
TEXTS = [f"Item{i} widget by Maker{i} in shade{i}" for i in range(10)]
GOLD = [[(f"Item{i} widget", "PRODUCT"), (f"Maker{i}", "BRAND"), (f"shade{i}", "COLOR")]
        for i in range(10)]
PAIRS = [("ann", "ben"), ("ben", "cid"), ("ann", "cid")]
WRONG = {"PRODUCT": "BRAND", "BRAND": "COLOR", "COLOR": "PRODUCT"}
DOT_ERRORS = {0: 3, 1: 2, **{i: 1 for i in range(2, 8)}}


def planted(i, name):
    errors = DOT_ERRORS.get(i, 0) if name == "dot" else (1 if (name, i) == ("cid", 8) else 0)
    regions = GOLD[i]
    if name == "cid":  # cid errs on the last region, dot on the first ones: never the same
        return [item(TEXTS[i], s, WRONG[lb] if k >= 3 - errors else lb)
                for k, (s, lb) in enumerate(regions)]
    return [item(TEXTS[i], s, WRONG[lb] if k < errors else lb) for k, (s, lb) in enumerate(regions)]


@pytest.fixture(scope="module")
def crowd(labelstudio, people):
    client = labelstudio.client()
    project = labelstudio.project(config_of(*LABELS), "crowd")
    ids = client.sdk.projects.import_tasks(project, return_task_ids=True, request=[
        {"text": t} for t in TEXTS]).task_ids
    done = {}
    for i, tid in enumerate(ids):
        for name in (*PAIRS[i % 3], "dot"):
            client.sdk.annotations.create(tid, result=planted(i, name),
                                          completed_by=people[name], lead_time=30.0)
            done.setdefault(name, []).append(i)
    return client, project, ids, done


def true_accuracy(name, tasks):
    wrong = sum(DOT_ERRORS.get(i, 0) if name == "dot" else int((name, i) == ("cid", 8))
                for i in tasks)
    return 1 - wrong / (3 * len(tasks))


def test_latent_truth_ranks_planted_annotators_and_the_tab_holds_the_disagreements(
        crowd, people, tmp_path):
    client, project, ids, done = crowd
    _, pulled = harvest(client, project, tmp_path)
    quality = pulled.metrics["quality"]
    assert quality["locations"] == 30
    names = who(client, people)
    estimated = {short: quality["annotators"][names[short]]["estimated"]["accuracy"]
                 for short in ("ann", "ben", "cid", "dot")}
    for short, value in estimated.items():
        assert value == pytest.approx(true_accuracy(short, done[short]), abs=0.05), short
    assert sorted(estimated, key=estimated.get)[0] == "dot"
    assert estimated["dot"] < 0.7 < min(estimated[s] for s in ("ann", "ben", "cid"))
    alpha = quality["krippendorff_alpha"]
    assert set(alpha) == set(LABELS) and all(-1 <= a < 1 for a in alpha.values())
    # t0: dot relabelled all 3 regions: pairwise F1 1, 0, 0; t1: 1, 1/3, 1/3; the rest at
    # most one region: 1, 2/3, 2/3 -> 0.2222, under the 0.3 threshold
    adjudicate = pulled.metrics["adjudication"]["tasks"]
    assert [(t["task"], t["disagreement"]) for t in adjudicate] == [
        (ids[0], round(1 - 1 / 3, 4)), (ids[1], round(1 - (1 + 2 / 3) / 3, 4))]
    view, count = pulled.tabs["needs adjudication"]
    assert count == 2 and client.view_tasks(view, project) == [ids[0], ids[1]]
    # a second pull finds the same tasks and leaves one tab
    again = harvest(client, project, tmp_path)[1]
    assert again.tabs["needs adjudication"] == (view, 2)
    assert client.view_tasks(view, project) == [ids[0], ids[1]]
    # the human-vs-human confusion counts every pair at every location: 30 locations, 3 pairs
    human = quality["human_confusion"]
    assert sum(map(sum, human["counts"])) == 2 * 30 * 3


def test_weighted_truth_follows_the_reliable_annotators(crowd, tmp_path):
    """On t0 dot relabelled everything; majority and weighting agree with the two good
    annotators there. Weighting is chosen in the config and recorded in metrics.json."""
    client, project, ids, _ = crowd
    _, pulled = harvest(client, project, tmp_path, truth="weighted")
    assert pulled.metrics["truth"] == "weighted"
    records = {r["task"]: r for r in map(json.loads,
                                         (tmp_path / "harvest" / "corrections.jsonl").open())}
    for i, tid in enumerate(ids):
        assert sorted((h["value"]["text"], h["value"]["labels"][0])
                      for h in records[tid]["human"]) == sorted(GOLD[i]), i


def test_dawid_skene_on_a_hand_made_case():
    """A and B always agree; C says X where they say Y once. Started from the majority and
    without smoothing or prior, EM stops after one round: A and B right every time, C on 3 of 4 items
    (on the items truly Y, 1 of 2)."""
    items = [{"A": "X", "B": "X", "C": "X"}, {"A": "Y", "B": "Y", "C": "X"},
             {"A": "X", "B": "X", "C": "X"}, {"A": "Y", "B": "Y", "C": "Y"}]
    model = dawid_skene(items, smoothing=0, diagonal=0)
    assert model.iterations == 1 and model.prior.tolist() == [0.5, 0.5]
    assert model.posterior.tolist() == [[1, 0], [0, 1], [1, 0], [0, 1]]
    assert estimated_accuracy(model, items) == {
        "A": {"items": 4, "accuracy": 1.0, "labels": {"X": 1.0, "Y": 1.0}},
        "B": {"items": 4, "accuracy": 1.0, "labels": {"X": 1.0, "Y": 1.0}},
        "C": {"items": 4, "accuracy": 0.75, "labels": {"X": 1.0, "Y": 0.5}}}
    assert model.confusion["C"].tolist() == [[1, 0], [0.5, 0.5]]
    assert model.truth({"A": "Y", "C": "X"}) == "Y"
    # alpha of "is it X?": values per item (1,1,1), (0,0,1), (1,1,1), (0,0,0). Coincidences:
    # o00 = 4, o11 = 6, o01 = o10 = 1 (n = 12, n0 = 5, n1 = 7), so alpha = 1 - Do / De =
    # 1 - (2 / 12) / (2 * 5 * 7 / (12 * 11)) = 1 - 264 / 840
    assert krippendorff_alpha(items, "X") == round(1 - 264 / 840, 4)


def test_a_renamed_label_maps_forward_and_a_split_one_is_queued(labelstudio, people,
                                                                 tmp_path):
    client = labelstudio.client()
    project = labelstudio.project(config_of("PRODUCT", "GADGET", "BRAND"), "spec change")
    texts = ["Acme gadget", "Omega Inc", "Zeta bolt"]
    ids = client.sdk.projects.import_tasks(project, return_task_ids=True, request=[
        {"text": t} for t in texts]).task_ids
    create = client.sdk.annotations.create
    create(ids[0], result=[item(texts[0], "Acme gadget", "GADGET")], completed_by=people["ann"])
    create(ids[1], result=[item(texts[1], "Omega Inc", "BRAND")], completed_by=people["ann"])
    create(ids[2], result=[item(texts[2], "Zeta bolt", "PRODUCT")], completed_by=people["ann"])
    settings = {"labelstudio": {"project": project}, "labels": {"rename": {"GADGET": "PRODUCT"}}}
    config = parse_config(settings, tmp_path, "test")
    first = harvest_pull(config, client)
    v1 = first.metrics["spec"]["version"]
    assert first.metrics["spec"] == {"version": v1, "changed": False}
    # GADGET becomes PRODUCT (renamed), BRAND is split into MAKER and SELLER
    client.sdk.projects.update(project, label_config=config_of("PRODUCT", "MAKER", "SELLER"))
    second = harvest_pull(config, client)
    spec = second.metrics["spec"]
    assert spec["changed"] and spec["previous"] == v1 and spec["version"] != v1
    assert (spec["added"], spec["removed"]) == (["MAKER", "SELLER"], ["BRAND", "GADGET"])
    records = {r["task"]: r for r in map(json.loads,
                                         (tmp_path / "harvest" / "corrections.jsonl").open())}
    assert [h["value"]["labels"] for h in records[ids[0]]["human"]] == [["PRODUCT"]]
    assert records[ids[0]]["status"] == "annotated"
    assert (records[ids[1]]["status"], records[ids[1]]["outdated_labels"]) == (
        "outdated spec", ["BRAND"])
    assert records[ids[2]]["status"] == "annotated"
    assert second.metrics["tasks"] == {"annotated": 2, "annotated without prediction": 2,
                                       "outdated spec": 1}
    assert second.metrics["reannotate"]["tasks"] == [
        {"task": ids[1], "labels": ["BRAND"], "spec": v1}]
    view, count = second.tabs["needs re-annotation"]
    assert count == 1 and client.view_tasks(view, project) == [ids[1]]
    # re-annotated under the new spec: the task is usable again and leaves the tab
    annotation = client.sdk.tasks.get(ids[1]).annotations[0]["id"]
    client.sdk.annotations.update(annotation, result=[item(texts[1], "Omega Inc", "MAKER")])
    third = harvest_pull(config, client)
    records = {r["task"]: r for r in map(json.loads,
                                         (tmp_path / "harvest" / "corrections.jsonl").open())}
    assert records[ids[1]]["status"] == "annotated"
    assert "needs re-annotation" not in third.tabs
    assert client.view_tasks(view, project) == []


def test_an_annotation_changed_back_and_forth_across_pulls_is_listed(labelstudio, people,
                                                                      tmp_path):
    client = labelstudio.client()
    project = labelstudio.project(config_of(*LABELS), "churn")
    text = "Acme widget"
    [tid, steady] = client.sdk.projects.import_tasks(project, return_task_ids=True, request=[
        {"text": text}, {"text": text}]).task_ids
    create = client.sdk.annotations.create
    flipping = create(tid, result=[item(text, "Acme widget", "PRODUCT")],
                      completed_by=people["ann"]).id
    create(steady, result=[item(text, "Acme widget", "PRODUCT")], completed_by=people["ben"])
    config = parse_config({"labelstudio": {"project": project}}, tmp_path, "test")
    harvest_pull(config, client)
    for label in ("BRAND", "PRODUCT"):  # PRODUCT -> BRAND -> PRODUCT, a pull after each
        client.sdk.annotations.update(flipping, result=[item(text, "Acme widget", label)])
        pulled = harvest_pull(config, client)
    assert pulled.metrics["churn"] == [
        {"task": tid, "annotation": flipping, "changes": 2, "reverted": True}]
    html = (tmp_path / "harvest" / "report.html").read_text()
    assert f'{client.url}/projects/{project}/data?task={tid}' in html


def test_corrections_that_repeat_are_listed_with_their_tasks():
    """The same rule relabelled three times the same way is listed; twice is not."""
    from preannot.evaluation.metrics import compute

    def record(task, rule, human_label):
        return {"task": task, "status": "annotated", "model_version": "v1", "human": [],
                "predicted": [{"classification": "modified", "annotator": "rules",
                               "label": "PRODUCT", "human_label": human_label,
                               "value": {"labels": ["PRODUCT"]}, "type": "labels",
                               "preannot": {"rule_file": "p.csv", "rule": rule}}]}
    metrics = compute([record(1, "2", "BRAND"), record(2, "2", "BRAND"), record(5, "2", "BRAND"),
                       record(3, "3", "BRAND"), record(4, "3", "BRAND"),
                       record(6, "2", "COLOR")])
    assert metrics["repeated_corrections"] == [
        {"annotator": "rules", "rule": "p.csv:2", "label": "PRODUCT",
         "correction": "relabelled BRAND", "count": 3, "tasks": [1, 2, 5]}]
    assert metrics["confusion"] == {"labels": ["BRAND", "COLOR", "PRODUCT"], "counts": [
        [0, 0, 0], [0, 0, 0], [5, 1, 0]]}


def test_imported_annotations_all_flagged_ground_truth_are_no_answer_key(labelstudio, people,
                                                                         tmp_path):
    """Label Studio flags imported annotations as ground truth: when every annotation of a task
    is flagged, the majority decides and nobody is scored against anybody."""
    client = labelstudio.client()
    project = labelstudio.project(config_of(*LABELS), "imported")
    text = "Acme widget"
    [tid] = client.sdk.projects.import_tasks(project, return_task_ids=True, request=[{
        "data": {"text": text}, "annotations": [
            {"result": [item(text, "Acme widget", label)], "completed_by": people[name]}
            for name, label in (("ann", "PRODUCT"), ("ben", "PRODUCT"), ("cid", "BRAND"))]}]
    ).task_ids
    task = next(client.annotated_tasks(project))
    assert [a["ground_truth"] for a in task["annotations"]] == [True, True, True]
    _, pulled = harvest(client, project, tmp_path)
    record = json.loads((tmp_path / "harvest" / "corrections.jsonl").read_text())
    assert (record["task"], record["annotations"]) == (tid, 3)
    assert [h["value"]["labels"] for h in record["human"]] == [["PRODUCT"]]
    people_quality = pulled.metrics["quality"]["annotators"]
    assert [q["ground_truth"] for q in people_quality.values()] == [None, None, None]
    assert pulled.metrics["quality"]["locations"] == 1


def test_a_server_that_refuses_the_extras_still_gets_its_outputs(crowd, tmp_path, monkeypatch):
    """Fault injection (a mock, named as such): a token that may not list users (403 on
    Enterprise for annotators) and a server gone before the tabs are written; the shared server
    can produce neither. The outputs are written all the same, and the pull says what it
    could not do."""
    from preannot.labelstudio.client import LabelStudioError, Unreachable

    client, project, ids, _ = crowd

    def refuse(*args, **kwargs):
        raise LabelStudioError("Label Studio refused listing users (403)")

    def gone(*args, **kwargs):
        raise Unreachable("Label Studio is not reachable")
    monkeypatch.setattr(client, "users", refuse)
    monkeypatch.setattr(client, "ensure_view", gone)
    _, pulled = harvest(client, project, tmp_path)
    assert pulled.warnings == [
        "annotators are shown by user id: Label Studio refused listing users (403)",
        "Data Manager tabs not updated: Label Studio is not reachable; the next `preannot ls "
        "pull` tries again"]
    assert pulled.tabs == {} and len(pulled.metrics["adjudication"]["tasks"]) == 2
    assert all(name.startswith("user ") for name in pulled.metrics["quality"]["annotators"])
