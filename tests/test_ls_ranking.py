"""The built-in rankers, and Label Studio serving the top-ranked task first."""

import json
import uuid

import numpy as np
import pytest

from annotators import Keywords, KeywordsPlugin
from preannot import Box, ConfigError, Mask, Polygon, Prediction, Span, Task
from preannot.labelstudio.push import PRIORITY_FIELD, VIEW_TITLE, ensure_project, push_tasks
from preannot.engine.host import load_host
from preannot.labelstudio.ranking import priority_to_score
from preannot.engine.config import RankingSettings, load_config
from preannot.labelstudio import sync
from preannot.engine.runner import annotate_batch

HOST = load_host()


def span(label, start, end, score=None, **provenance):
    return Span(label=label, start=start, end=end, text="x" * (end - start), score=score,
                provenance=provenance)


def ranker(**settings):
    name = settings.pop("ranker", None)
    return HOST.ranker(RankingSettings(name, settings))


def test_rankers_are_registered_as_the_built_in_plugin():
    assert {"uncertainty", "disagreement", "business"} <= set(HOST.ranker_types())
    assert all(plugin == "preannot" for plugin, _ in HOST.ranker_types().values())
    with pytest.raises(ConfigError, match="'nope' is not installed"):
        ranker(ranker="nope")


def test_uncertainty_puts_the_least_confident_task_first():
    r = ranker(ranker="uncertainty", empty=0.25)
    task = Task("t", {"text": "..."})
    sure = [Prediction("t", "a", "v", [span("A", 0, 3, 0.9), span("B", 4, 6, 0.8)])]
    unsure = [Prediction("t", "a", "v", [span("A", 0, 3, 0.9), span("B", 4, 6, 0.1)])]
    assert r.priority(task, unsure) == pytest.approx(0.9)
    assert r.priority(task, sure) == pytest.approx(0.2)
    assert r.priority(task, [Prediction("t", "a", "v", [])]) == 0.25
    assert priority_to_score(0.9) < priority_to_score(0.2)
    # a task score (spacy-ner's beam: the whole entity set is right) counts, so a likely miss
    # is seen: sure regions, or none, with a doubtful whole
    missed = [Prediction("t", "a", "v", [span("A", 0, 3, 0.9)], score=0.3)]
    assert r.priority(task, missed) == pytest.approx(0.7)
    assert r.priority(task, [Prediction("t", "a", "v", [], score=0.6)]) == pytest.approx(0.4)


def test_disagreement_grows_as_annotators_part_ways():
    r = ranker(ranker="disagreement")
    task = Task("t", {"text": "..."})
    a = Prediction("t", "a", "v", [span("A", 0, 10), span("B", 20, 30)])
    same = Prediction("t", "b", "v", [span("A", 1, 10), span("B", 20, 30)])
    half = Prediction("t", "b", "v", [span("A", 0, 10), span("A", 20, 30)])
    assert r.priority(task, [a, same]) == 0.0
    assert r.priority(task, [a, half]) == pytest.approx(0.5)
    assert r.priority(task, [a]) == 0.0
    box = dict(image_width=100, image_height=100, label="car")
    boxes = [Prediction("t", "y", "v", [Box(x=0, y=0, width=10, height=10, **box)]),
             Prediction("t", "z", "v", [Box(x=50, y=50, width=10, height=10, **box)])]
    assert r.priority(task, boxes) == 1.0


def test_disagreement_compares_the_annotators_named_with_the_matchers_overlap():
    task = Task("t", {"text": "..."})
    a = Prediction("t", "rules", "rules-1", [span("A", 0, 10)])
    b = Prediction("t", "ner", "ner-v1", [span("A", 0, 10)])
    c = Prediction("t", "other", "other-1", [span("B", 40, 50)])
    assert ranker(ranker="disagreement").priority(task, [a, b, c]) == pytest.approx(2 / 3)
    assert ranker(ranker="disagreement", annotators=["rules", "ner"]).priority(
        task, [a, b, c]) == 0.0
    assert ranker(ranker="disagreement", annotators=["rules", "other"]).priority(
        task, [a, b, c]) == 1.0
    # polygons overlap by their pixels, not their bounding boxes: two triangles with the same
    # box (IoU 1 by boxes) share a third of their area (IoU 1/3 rasterised)
    size = dict(image_width=100, image_height=100, label="part")
    left = Prediction("t", "y", "v", [Polygon(points=[(0, 0), (60, 0), (0, 60)], **size)])
    right = Prediction("t", "z", "v", [Polygon(points=[(0, 0), (60, 0), (60, 60)], **size)])
    assert ranker(ranker="disagreement").priority(task, [left, right]) == 1.0
    assert ranker(ranker="disagreement", threshold=0.3).priority(task, [left, right]) == 0.0
    # two empty masks cover nothing: not the same region (the matcher's IoU of 0)
    empty = [Prediction("t", n, "v", [Mask(mask=np.zeros((4, 4), bool), label="part")])
             for n in ("y", "z")]
    assert ranker(ranker="disagreement").priority(task, empty) == 1.0


def test_business_priority_from_label_and_rule_weights():
    r = ranker(ranker="business", labels={"RECALL": 4, "PRODUCT": 1}, sources={"urgent.yml": 2})
    task = Task("t", {"text": "..."})
    assert r.priority(task, [Prediction("t", "a", "v", [span("PRODUCT", 0, 3)])]) == 0.25
    assert r.priority(task, [Prediction("t", "a", "v", [span("X", 0, 3, rules="urgent.yml")])]) == 0.5
    assert r.priority(task, [Prediction("t", "a", "v", [span("RECALL", 0, 3),
                                                        span("PRODUCT", 4, 6)])]) == 1.0
    with pytest.raises(ConfigError, match="positive weights"):
        ranker(ranker="business")


def test_label_studio_serves_the_top_ranked_task_first(labelstudio):
    client = labelstudio.client()
    kw = Keywords("kw", {"words": {"apple": ["FRUIT", 0.9], "pear": ["FRUIT", 0.15],
                                   "bolt": ["PART", 0.6]}})
    texts = ["an apple", "a bolt", "a pear and an apple", "an apple and a bolt"]
    rows = annotate_batch([kw], [Task(f"r{i}", {"text": t}) for i, t in enumerate(texts)])
    project = ensure_project(client, None, title="ranking test", annotators=[kw])
    summary = push_tasks(client, project, [(r["key"], json.loads(r["result"])) for r in rows],
                         model_version=kw.model_version, ranker=ranker(ranker="uncertainty"))
    assert summary.created == 4
    served = client.next_task(project)
    assert served["data"]["text"] == "a pear and an apple"
    assert served["data"][PRIORITY_FIELD] == pytest.approx(0.85)
    settings = client.sdk.projects.get(project)
    assert settings.model_version == kw.model_version
    assert "Uncertainty" in str(settings.sampling)
    views = client.sdk.views.list(project=project)
    assert [v.data["ordering"] for v in views if v.data.get("title") == VIEW_TITLE] == [
        [f"-tasks:data.{PRIORITY_FIELD}"]]


def test_disagreement_between_the_configured_annotators_reaches_label_studio(labelstudio, tmp_path):
    """The ranker sees each prediction under its annotator's configured name, both when a run's
    output is pushed and when the tasks already in a project are pre-annotated."""
    texts = ["an apple", "a bolt", "nothing here"]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n"
                                               for i, t in enumerate(texts)))
    (tmp_path / "preannot.toml").write_text("""
[input]
paths = ["in.jsonl"]
[output]
path = "out/pred.json"
[[annotators]]
name = "a"
type = "keywords"
words = {apple = ["FRUIT", 0.9], bolt = ["PART", 0.6]}
[[annotators]]
name = "b"
type = "keywords"
words = {apple = ["FRUIT", 0.8]}
[[annotators]]
name = "c"
type = "keywords"
words = {pear = ["FRUIT", 0.7]}
[ranking]
ranker = "disagreement"
annotators = ["a", "b"]
[labelstudio]
title = "ranking %s"
""" % uuid.uuid4().hex[:8])
    config = load_config(tmp_path / "preannot.toml")
    host = load_host((KeywordsPlugin(),))
    client = labelstudio.client()
    summary = sync.push(config, client, host=host)
    assert (summary.created, summary.failures) == (3, [])
    priorities = {t["data"]["text"]: t["data"][PRIORITY_FIELD]
                  for t in client.export(summary.project_id)}
    assert priorities == {"an apple": 0.0, "a bolt": 1.0, "nothing here": 0.0}

    project = ensure_project(client, None, title="ranking existing", annotators=[
        Keywords("a", {"words": {"apple": ["FRUIT", 0.9], "bolt": ["PART", 0.6]}})])
    client.sdk.projects.import_tasks(project, request=[{"text": t} for t in texts])
    config.ranking = RankingSettings("disagreement", {})  # every pair: c disagrees on apples
    summary = sync.push(config, client, project=str(project), existing=True, host=host)
    assert (summary.predicted, summary.failures) == (3, [])
    # tasks already there keep their data: the rank is the prediction's score, 1 - priority
    scores = {t["data"]["text"]: [p.score for p in client.sdk.predictions.list(task=t["id"])]
              for t in client.export(project)}
    assert scores == {"an apple": [priority_to_score(2 / 3)], "a bolt": [priority_to_score(2 / 3)],
                      "nothing here": [1.0]}
