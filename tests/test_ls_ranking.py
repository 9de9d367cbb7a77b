"""The built-in rankers, and Label Studio serving the top-ranked task first."""

import json

import pytest

from ls_plugin import Keywords
from preannot import Box, ConfigError, Prediction, Span, Task
from preannot.labelstudio.push import PRIORITY_FIELD, VIEW_TITLE, ensure_project, push_tasks
from preannot.plugins import load_host
from preannot.ranking import load_ranker, priority_to_score
from preannot.runner import annotate_batch

HOST = load_host()


def span(label, start, end, score=None, **provenance):
    return Span(label=label, start=start, end=end, text="x" * (end - start), score=score,
                provenance=provenance)


def ranker(**settings):
    return load_ranker(settings, HOST)


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
