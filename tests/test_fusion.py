"""Fusion of a gazetteer's and a model's spans: precedence, learned weights, provenance."""

import json

import pytest

from preannot import ConfigError, Context, Prediction, Span, Task
from preannot.engine.config import RunConfig
from preannot.builtins.fusion import FusionAnnotator
from preannot.engine.host import load_host
from preannot.engine.runner import run
from test_ls_push import KeywordsPlugin

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


def write_metrics(tmp_path, rules_brand, ner_product):
    """A harvest's per-annotator, per-label counts (metrics.json's annotator_labels)."""
    counts = {"rules": {"BRAND": {"predicted": 100, "accepted": rules_brand},
                        "PRODUCT": {"predicted": 100, "accepted": 70},
                        "QUANTITY": {"predicted": 50, "accepted": 49}},
              "ner": {"PRODUCT": {"predicted": 100, "accepted": ner_product}}}
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"annotator_labels": counts}))
    return path


def test_learned_weights_follow_harvested_precision(tmp_path):
    context = Context(base_dir=tmp_path)
    write_metrics(tmp_path, rules_brand=20, ner_product=90)  # the brand rule misfires
    fused = fuse({"policy": "learned", "metrics": "metrics.json"}, context)
    assert summary(fused) == [("two", "QUANTITY", "rules"), ("Acme drill kits", "PRODUCT", "ner"),
                              ("Zeta saw", "PRODUCT", "ner")]
    zeta = fused[-1]
    # smoothed by 2 pseudo-counts towards the region's own score (0.5 when it has none)
    w_ner, w_rules = (90 + 2 * 0.5) / 102, (70 + 2 * 0.8) / 102
    assert zeta.score == pytest.approx(1 - (1 - w_ner) * (1 - w_rules), abs=1e-4)
    assert fused[1].score == pytest.approx(w_ner, abs=1e-4)  # alone: its own weight
    write_metrics(tmp_path, rules_brand=95, ner_product=30)  # now the model is the weak one
    fused = fuse({"policy": "learned", "metrics": "metrics.json"}, context)
    assert ("Acme", "BRAND", "rules") in summary(fused)
    assert fused[1].provenance["rule"] == "12"  # the winner keeps its provenance


def test_min_weight_drops_what_nobody_trusts(tmp_path):
    # the brand rule misfires (20 of 100) and the model is weak (30 of 100): the model's
    # "Acme drill kits" wins its conflict with 31/102 = 0.304; "Zeta saw", said by both,
    # weighs 1 - (1 - 71.6/102)(1 - 31/102) = 0.793
    write_metrics(tmp_path, rules_brand=20, ner_product=30)

    def kept(min_weight):
        return summary(fuse({"policy": "learned", "metrics": "metrics.json",
                             "min_weight": min_weight}, Context(base_dir=tmp_path)))

    assert kept(0.0) == [("two", "QUANTITY", "rules"), ("Acme drill kits", "PRODUCT", "ner"),
                         ("Zeta saw", "PRODUCT", "rules")]
    assert kept(0.6) == [("two", "QUANTITY", "rules"), ("Zeta saw", "PRODUCT", "rules")]
    assert kept(0.8) == [("two", "QUANTITY", "rules")]  # the group's loser is not promoted


def test_options_are_checked(tmp_path, capsys):
    before_any_harvest = FusionAnnotator("f", {"after": ["a"], "policy": "learned"},
                                         Context(base_dir=tmp_path))
    assert before_any_harvest.weight("a", span("Acme", "BRAND", "a", score=0.8)) == 0.8
    assert before_any_harvest.weight("a", span("Acme", "BRAND", "a")) == 0.5
    assert "no harvest metrics" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="order names"):
        FusionAnnotator("f", {"after": ["a"], "order": ["b"]})
    with pytest.raises(ConfigError, match="policy 'vote'"):
        FusionAnnotator("f", {"after": ["a"], "policy": "vote"})
    with pytest.raises(ConfigError) as unknown:  # checked by the base class, from known_options
        FusionAnnotator("f", {"after": ["a"], "polcy": "learned", "labels": ["X"]})
    assert str(unknown.value) == (
        "annotator 'f' (fusion): unknown option 'polcy' (known: after, cpus, field, from_name, "
        "gpus, iou, labels, metrics, min_weight, model_version, order, policy, prior, "
        "prior_strength, to_name)")


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


def test_a_source_that_ran_and_stayed_silent_counts_against_a_region(tmp_path):
    counts = {"rules": {"PRODUCT": {"predicted": 100, "accepted": 66, "human": 100}},
              "ner": {"PRODUCT": {"predicted": 100, "accepted": 95, "human": 100}}}
    (tmp_path / "metrics.json").write_text(json.dumps({"annotator_labels": counts}))
    annotator = FusionAnnotator("fused", {"after": ["rules", "ner"], "policy": "learned",
                                          "metrics": "metrics.json", "min_weight": 0.5},
                                Context(base_dir=tmp_path))
    task = Task("t", {"text": TEXT})
    zeta = [span("Zeta saw", "PRODUCT", "rules", 0.8)]
    silent_model = {"rules": [Prediction("t", "rules", "r", zeta)],
                    "ner": [Prediction("t", "ner", "n", [])]}
    [vetoed] = annotator.annotate([task], silent_model)
    assert vetoed.regions == []  # the model rarely misses a product: vetoed
    assert vetoed.model_version == f"r+n+{annotator.model_version}"
    no_model = {"rules": [Prediction("t", "rules", "r", zeta)], "ner": [None]}
    [[kept]] = [p.regions for p in annotator.annotate([task], no_model)]  # the model did not run
    assert kept.text == "Zeta saw" and kept.score == pytest.approx((66 + 1.6) / 102, abs=1e-4)


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
