"""Fusion of a gazetteer's and a model's spans: precedence, the learned combiner, provenance,
and each source's own truth in the harvest."""

import json
import math

import pytest

from annotators import KeywordsPlugin
from preannot import ConfigError, Context, Prediction, Span, Task
from preannot.engine.config import RunConfig
from preannot.training.fusion import FusionAnnotator
from preannot.engine.host import load_host
from preannot.engine.runner import run
from helpers import run_cli

TEXT = "Send two Acme drill kits and a Zeta saw"


def span(sub, label, source, score=None, rule=None):
    start = TEXT.index(sub)
    provenance = {"annotator": source, **({"rule": rule} if rule else {})}
    return Span(start=start, end=start + len(sub), text=sub, label=label, score=score,
                provenance=provenance, from_name="label", to_name="text")


# The two sources disagree on "Acme drill kits" (rules: the brand only; model: the product),
# agree on "Zeta saw", and each finds one thing alone.
RULES = [span("Acme", "BRAND", "rules", 0.8, rule="12"), span("Zeta saw", "PRODUCT", "rules", 0.8),
         span("two", "QUANTITY", "rules", 0.9)]
MODEL = [span("Acme drill kits", "PRODUCT", "ner"), span("Zeta saw", "PRODUCT", "ner")]


def fuse(options, context=None):
    annotator = FusionAnnotator("fused", {"after": ["rules", "ner"], **options}, context)
    task = Task("t", {"text": TEXT})
    upstream = {"rules": [Prediction("t", "rules", "r1", RULES)],
                "ner": [Prediction("t", "ner", "n1", MODEL)]}
    return annotator.annotate([task], upstream)[0].regions


def summary(regions):
    return [(r.text, r.label, r.provenance["annotator"]) for r in regions]


def test_precedence_keeps_the_first_source_in_each_conflict():
    assert summary(fuse({})) == [("two", "QUANTITY", "rules"), ("Acme", "BRAND", "rules"),
                                 ("Zeta saw", "PRODUCT", "rules")]
    model_first = fuse({"order": ["ner", "rules"]})
    assert summary(model_first) == [("two", "QUANTITY", "rules"),
                                    ("Acme drill kits", "PRODUCT", "ner"),
                                    ("Zeta saw", "PRODUCT", "ner")]
    zeta = model_first[-1]
    assert zeta.provenance["fused"]["sources"] == ["ner", "rules"]  # both said it


def write_combiner(tmp_path, weights, threshold=0.5, sources=("rules", "ner"), **more):
    """A fitted combiner's file, as `preannot train` writes it (plain numbers)."""
    path = tmp_path / "combiner.json"
    path.write_text(json.dumps({"format": 1, "sources": list(sources), "weights": weights,
                                "threshold": threshold, **more}))
    return path


def test_the_combiner_scores_candidates_with_its_fitted_weights(tmp_path):
    # a record where the brand rule misfires and the model's products are right
    write_combiner(tmp_path, {"bias": -1.0, "src:ner": 3.0, "src_label:rules:BRAND": -2.0,
                              "src:rules": 1.5, "agree": 1.0})
    fused = fuse({"policy": "learned", "combiner": "combiner.json"}, Context(base_dir=tmp_path))
    assert summary(fused) == [("two", "QUANTITY", "rules"), ("Acme drill kits", "PRODUCT", "ner"),
                              ("Zeta saw", "PRODUCT", "rules")]
    sig = lambda z: 1 / (1 + math.exp(-z))  # noqa: E731
    two, acme, zeta = fused
    assert two.score == pytest.approx(sig(-1 + 1.5), abs=1e-4)
    assert acme.score == pytest.approx(sig(-1 + 3), abs=1e-4)  # "Acme" BRAND: sig(-1.5), lost
    assert zeta.score == pytest.approx(sig(-1 + 3 + 1.5 + 1), abs=1e-4)
    # what the production review reads: every source's own candidate, the agreeing sources,
    # and how many candidates of the task were not kept
    assert acme.provenance["fused"]["candidates"] == [
        {"source": "rules", "label": "BRAND", "score": 0.8, "start": 9, "end": 13},
        {"source": "ner", "label": "PRODUCT", "score": None, "start": 9, "end": 24}]
    assert zeta.provenance["fused"]["sources"] == ["ner", "rules"]
    assert [c["source"] for c in zeta.provenance["fused"]["candidates"]] == ["rules", "ner"]
    assert {r.provenance["fused"]["dropped"] for r in fused} == {1}
    assert acme.provenance["annotator"] == "ner"


def test_threshold_drops_what_the_combiner_doubts(tmp_path):
    write_combiner(tmp_path, {"bias": -1.0, "src:ner": 1.2, "src:rules": 1.5, "agree": 1.0},
                   threshold=0.6)
    fused = fuse({"policy": "learned", "combiner": "combiner.json"}, Context(base_dir=tmp_path))
    # rules alone sig(0.5)=0.62 kept, ner alone sig(0.2)=0.55 dropped, both sig(2.7) kept
    assert summary(fused) == [("two", "QUANTITY", "rules"), ("Acme", "BRAND", "rules"),
                              ("Zeta saw", "PRODUCT", "rules")]
    assert {r.provenance["fused"]["dropped"] for r in fused} == {1}


def test_cold_start_a_source_the_combiner_never_saw_is_neither_trusted_nor_silenced(tmp_path):
    # fitted before the model existed: it knows the rules only, and would veto nothing
    write_combiner(tmp_path, {"bias": 0.4, "src:rules": 0.0}, sources=("rules",))
    context = Context(base_dir=tmp_path)
    fused = fuse({"policy": "learned", "combiner": "combiner.json"}, context)
    # the model's spans weigh their own score (0.5 without one: kept at threshold 0.5, not by
    # a strict cut), the rules' are scored by the combiner, the model's silence counts for nothing
    assert [(r.text, r.score) for r in fused] == [("two", pytest.approx(0.5987, abs=1e-4)),
                                                   ("Acme", pytest.approx(0.5987, abs=1e-4)),
                                                   ("Zeta saw", pytest.approx(0.5987, abs=1e-4))]
    write_combiner(tmp_path, {"bias": 0.4}, threshold=0.55, sources=("rules",))
    fused = fuse({"policy": "learned", "combiner": "combiner.json"}, context)
    assert [r.text for r in fused] == ["two", "Acme", "Zeta saw"]  # the model's 0.5 < 0.55
    # a combiner that distrusts everything but the rules, and whose record says silence is
    # damning: the unknown model's region is not judged by it (kept at its own 0.5), and the
    # unknown model's silence on the rules' "Zeta saw" is not held against it
    write_combiner(tmp_path, {"bias": -2.0, "src:rules": 3.0, "silent:rules": -5.0,
                              "silent:ner": -5.0}, sources=("rules",))
    annotator = FusionAnnotator("fused", {"after": ["rules", "ner"], "policy": "learned",
                                          "combiner": "combiner.json"}, context)
    upstream = {"rules": [Prediction("t", "rules", "r1", [RULES[1]])],
                "ner": [Prediction("t", "ner", "n1", [MODEL[0]])]}
    [alone] = annotator.annotate([Task("t", {"text": TEXT})], upstream)
    assert [(r.text, r.score) for r in alone.regions] == [
        ("Acme drill kits", 0.5), ("Zeta saw", pytest.approx(1 / (1 + math.exp(-1)), abs=1e-4))]
    # before any fit at all: each region its own score, agreeing ones as independent votes
    fused = fuse({"policy": "learned", "combiner": "none.json", "min_weight": 0.5}, context)
    assert [(r.text, r.score) for r in fused] == [
        ("two", 0.9), ("Acme", 0.8), ("Zeta saw", pytest.approx(1 - 0.2 * 0.5, abs=1e-4))]


def test_the_version_changes_when_the_combiner_is_refitted_not_when_a_harvest_grows(tmp_path):
    context = Context(base_dir=tmp_path)
    write_combiner(tmp_path, {"bias": 0.1})
    (tmp_path / "harvest").mkdir()
    (tmp_path / "harvest" / "metrics.json").write_text(json.dumps({"annotator_labels": {}}))

    def version():
        return FusionAnnotator("f", {"after": ["rules", "ner"], "policy": "learned",
                                     "combiner": "combiner.json"}, context).model_version

    first = version()
    (tmp_path / "harvest" / "metrics.json").write_text(json.dumps({"annotator_labels": {
        "rules": {"PRODUCT": {"predicted": 9, "accepted": 3}}}}))
    assert version() == first
    write_combiner(tmp_path, {"bias": 0.2})
    assert version() != first


def test_a_fusion_that_lost_passes_its_best_source_through(tmp_path, capsys):
    write_combiner(tmp_path, {"bias": 0.1}, use="ner")
    fused = fuse({"policy": "learned", "combiner": "combiner.json"}, Context(base_dir=tmp_path))
    assert summary(fused) == [("Acme drill kits", "PRODUCT", "ner"), ("Zeta saw", "PRODUCT", "ner")]
    assert "the fusion lost to 'ner'" in capsys.readouterr().err
    write_combiner(tmp_path, {"bias": 0.1}, use="yolo")
    with pytest.raises(ConfigError, match="use = 'yolo' is not in"):
        fuse({"policy": "learned", "combiner": "combiner.json"}, Context(base_dir=tmp_path))


def test_options_are_checked(tmp_path, capsys):
    FusionAnnotator("f", {"after": ["a"], "policy": "learned"}, Context(base_dir=tmp_path))
    assert "no combiner fitted yet" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ConfigError, match="not a fitted combiner"):
        FusionAnnotator("f", {"after": ["a"], "policy": "learned", "combiner": "bad.json"},
                        Context(base_dir=tmp_path))
    with pytest.raises(ConfigError, match="order names"):
        FusionAnnotator("f", {"after": ["a"], "order": ["b"]})
    with pytest.raises(ConfigError, match="policy 'vote'"):
        FusionAnnotator("f", {"after": ["a"], "policy": "vote"})
    with pytest.raises(ConfigError) as unknown:  # checked by the base class, from known_options
        FusionAnnotator("f", {"after": ["a"], "polcy": "learned", "labels": ["X"]})
    assert str(unknown.value) == (
        "annotator 'f' (fusion): unknown option 'polcy' (known: after, combiner, cpus, field, "
        "from_name, gpus, iou, labels, metrics, min_weight, model_version, order, policy, prior, "
        "prior_strength, silence, to_name)")
    FusionAnnotator("f", {"after": ["a"], "metrics": "harvest/metrics.json"})
    assert "metrics no longer used" in capsys.readouterr().err


def test_a_run_writes_the_fused_prediction_only(tmp_path):
    (tmp_path / "in.jsonl").write_text(json.dumps({"id": "d1", "text": "an apple and a pear"}) + "\n")
    config = RunConfig(base_dir=tmp_path, inputs=[tmp_path / "in.jsonl"],
                       output=tmp_path / "out.json", annotators=[
                           {"name": "fruit", "type": "keywords",
                            "words": {"apple": ["FRUIT", 0.9], "pear": ["FRUIT", 0.3]}},
                           {"name": "food", "type": "keywords",
                            "words": {"an apple": ["FOOD", 0.5]}},
                           {"name": "fused", "type": "fusion", "after": ["food", "fruit"]}])
    assert run(config, host=load_host((KeywordsPlugin(),))).failed == 0
    task = json.loads((tmp_path / "out.json").read_text())[0]
    assert len(task["predictions"]) == 1  # the upstreams speak through the fusion
    result = task["predictions"][0]["result"]
    assert [(r["value"]["text"], r["value"]["labels"][0], r["preannot"]["annotator"])
            for r in result] == [("an apple", "FOOD", "food"), ("pear", "FRUIT", "fruit")]


def test_harvest_credits_every_source_a_fused_region_speaks_for():
    from preannot.evaluation.metrics import Metrics

    def record(ran, classification):
        item = {"classification": classification, "annotator": "rules", "label": "PRODUCT",
                "score": 0.9, "preannot": {"annotator": "rules",
                                           "fused": {"sources": ["ner", "rules"], "ran": ran}}}
        human = [{"classification": "matched", "value": {"labels": ["PRODUCT"]}, "type": "labels"}]
        return {"status": "annotated", "model_version": "v", "human": human, "predicted": [item]}

    metrics = Metrics()
    metrics.add(record(["rules", "ner"], "accepted"))
    metrics.add(record(["rules"], "deleted"))  # before the model existed: not its miss
    counts = metrics.result()["annotator_labels"]
    assert counts["ner"]["PRODUCT"]["accepted"] == counts["rules"]["PRODUCT"]["accepted"] == 1
    assert counts["ner"]["PRODUCT"]["human"] == 1 and counts["rules"]["PRODUCT"]["human"] == 2
    assert counts["ner"]["PRODUCT"]["recall"] == 1.0 and counts["rules"]["PRODUCT"]["recall"] == 0.5
    assert metrics.result()["annotators"]["rules"]["predicted"] == 2  # the report is unchanged


def test_the_fused_prediction_keeps_the_score_of_the_source_it_repeats(tmp_path):
    """Where the fused regions are exactly one source's, the fused prediction carries that
    source's own score for the whole task (spacy-ner's: nothing wrong or missing), so the
    production calibrator still sees it; otherwise the weakest region's score."""
    annotator = FusionAnnotator("fused", {"after": ["rules", "ner"], "order": ["ner", "rules"]})
    task = Task("t", {"text": TEXT})
    zeta = [span("Zeta saw", "PRODUCT", "ner", 0.97)]

    def fused(rules, model, model_score):
        upstream = {"rules": [Prediction("t", "rules", "r1", rules)],
                    "ner": [Prediction("t", "ner", "n1", model, score=model_score)]}
        return annotator.annotate([task], upstream)[0]

    # the rules say the same: the model's whole-task score (0.93) stands
    same = fused([span("Zeta saw", "PRODUCT", "rules", 0.8)], zeta, 0.93)
    assert [r.text for r in same.regions] == ["Zeta saw"] and same.score == 0.93
    # nothing found by either: the model's score that nothing is there
    assert fused([], [], 0.999).score == 0.999
    # the rules add a region the model did not say: no source said exactly this
    more = fused([span("two", "QUANTITY", "rules", 0.9)], zeta, 0.93)
    assert [r.text for r in more.regions] == ["two", "Zeta saw"] and more.score == 0.9
    # the fusion dropped one of the model's regions: not what the model said either
    learned = FusionAnnotator("fused", {"after": ["rules", "ner"], "policy": "learned",
                                        "min_weight": 0.5}, Context(base_dir=tmp_path))
    model = zeta + [span("two", "QUANTITY", "ner", 0.3)]
    [less] = learned.annotate([task], {"rules": [Prediction("t", "rules", "r1", [])],
                                       "ner": [Prediction("t", "ner", "n1", model, score=0.25)]})
    assert [r.text for r in less.regions] == ["Zeta saw"] and less.score == pytest.approx(0.97)


def test_each_source_is_judged_on_its_own_candidates_whether_or_not_it_won():
    """metrics.json's one truth per source: the rules' "Acme" BRAND lost the fusion to the
    model's "Acme drill kits"; the human kept both readings apart on two tasks."""
    from preannot.evaluation.metrics import Metrics

    cands = [{"source": "rules", "label": "BRAND", "score": 0.8, "start": 9, "end": 13},
             {"source": "ner", "label": "PRODUCT", "score": 0.7, "start": 9, "end": 24}]

    def record(kind, human_spans):
        item = {"classification": kind, "annotator": "ner", "label": "PRODUCT", "score": 0.7,
                "value": {"start": 9, "end": 24, "labels": ["PRODUCT"]},
                "preannot": {"annotator": "ner", "fused": {
                    "sources": ["ner"], "ran": ["rules", "ner"], "candidates": cands}}}
        human = [{"classification": "matched" if (s, e) == (9, 24) else "added", "type": "labels",
                  "value": {"start": s, "end": e, "labels": [lb]}} for s, e, lb in human_spans]
        return {"status": "annotated", "model_version": "v", "human": human, "predicted": [item]}

    metrics = Metrics()
    metrics.add(record("accepted", [(9, 24, "PRODUCT")]))  # the model was right
    metrics.add(record("deleted", [(9, 13, "BRAND")]))  # the rules were right, and lost
    result = metrics.result()
    rules, ner = result["annotators"]["rules"], result["annotators"]["ner"]
    assert (rules["predicted"], rules["accepted"], rules["deleted"]) == (2, 1, 1)
    assert (ner["predicted"], ner["accepted"], ner["deleted"]) == (2, 1, 1)
    assert result["annotator_labels"]["rules"]["BRAND"]["accepted"] == 1
    assert result["annotator_labels"]["rules"]["BRAND"]["recall"] == 1.0  # 1 human BRAND
    # the winners-only view, named as such: only the model's regions reached the human
    assert result["winners"] == {"ner": {"predicted": 2, "accepted": 1, "modified": 0,
                                         "deleted": 1, "precision": 0.5}}


def test_a_precedence_fusion_runs_before_its_model_has_a_version(tmp_path):
    """`order = ["model", "rules"]` with no promoted model yet used to stop the run: the
    left-out model dropped out of `after` but not out of `order`."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "terms.csv").write_text("term,label\nZeta saw,PRODUCT\n")
    (tmp_path / "in.jsonl").write_text(json.dumps({"id": "d1", "text": TEXT}) + "\n")
    (tmp_path / "preannot.toml").write_text("""
[input]
paths = ["in.jsonl"]
[output]
path = "out.json"
[[annotators]]
name = "rules"
type = "rules"
rules = "rules"
[[annotators]]
name = "model"
type = "spacy-ner"
model = "registry:ner"
[[annotators]]
name = "fused"
type = "fusion"
after = ["rules", "model"]
policy = "precedence"
order = ["model", "rules"]
""")
    result = run_cli(["run", "-c", str(tmp_path / "preannot.toml"), "--no-progress"])
    assert result.returncode == 0, result.stderr
    assert "annotator 'model' left out: model 'ner' has no promoted version" in result.stderr
    task = json.loads((tmp_path / "out.json").read_text())[0]
    assert [(r["value"]["text"], r["preannot"]["annotator"])
            for p in task["predictions"] for r in p["result"]] == [("Zeta saw", "rules")]
