"""The rules annotator's features on small hand-written rule sets, and through the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from preannot import ConfigError, Context, Task, TaskFailed
from preannot_spacy.annotator import RulesAnnotator

ROOT = Path(__file__).resolve().parents[3]


def annotator(folder: Path, **files: str) -> RulesAnnotator:
    for name, content in files.items():
        (folder / name.replace("__", ".")).write_text(content, encoding="utf-8")
    return RulesAnnotator("r", {"rules": str(folder)}, Context(base_dir=folder))


def found(a: RulesAnnotator, text: str) -> list[tuple[str, str]]:
    return [(s.text, s.label) for s in a.spans(text)]


def test_synonyms_map_to_the_canonical_value_with_provenance(tmp_path):
    a = annotator(tmp_path, products__csv="term,label,canonical,synonyms\n"
                  "ThinkPad T14,LAPTOP,Lenovo ThinkPad T14,T14|TP T14\n")
    spans = a.spans("Need a TP T14 and one ThinkPad T14 (or a T14).")
    assert [(s.text, s.provenance["canonical"], s.provenance["rule"]) for s in spans] == [
        ("TP T14", "Lenovo ThinkPad T14", "2"), ("ThinkPad T14", "Lenovo ThinkPad T14", "2"),
        ("T14", "Lenovo ThinkPad T14", "2")]
    assert {s.provenance["rule_file"] for s in spans} == {"products.csv"}


def test_case_and_accent_folding_per_file(tmp_path):
    a = annotator(tmp_path, drinks__txt="café crème\n", strict__txt="Bic\n",
                  rules__toml='[files."drinks.txt"]\ncase = "insensitive"\naccents = "fold"\n'
                              'label = "DRINK"\n')
    assert found(a, "Two CAFE CREME, one Café Crème, a bic and a Bic.") == [
        ("CAFE CREME", "DRINK"), ("Café Crème", "DRINK"), ("Bic", "STRICT")]


def test_token_patterns_work_without_a_trained_model(tmp_path):
    a = annotator(tmp_path, patterns__jsonl="\n".join(json.dumps(p) for p in [
        {"label": "QTY", "pattern": [{"LIKE_NUM": True}, {"LOWER": {"IN": ["pcs", "boxes"]}}]},
        {"label": "SKU", "pattern": [{"SHAPE": "XX-dddd"}], "id": "sku"},
        {"label": "CODE", "pattern": [{"TEXT": {"REGEX": "^Z\\d+$"}}], "confidence": 0.3},
        {"label": "NUM", "pattern": [{"IS_DIGIT": True}]}]))
    spans = a.spans("Send ten boxes of AB-1234 and Z99, ref 42.")
    assert [(s.text, s.label) for s in spans] == [("ten boxes", "QTY"), ("AB-1234", "SKU"),
                                                  ("Z99", "CODE"), ("42", "NUM")]
    assert spans[1].provenance["rule"] == "sku" and spans[2].score == 0.3


def test_regex_rules_with_groups_flags_and_confidence(tmp_path):
    a = annotator(tmp_path, regex__toml=(
        '[[rules]]\nname = "order"\nlabel = "ORDER"\npattern = \'\\bord-(\\d{6})\\b\'\n'
        'flags = "i"\ngroup = 1\nconfidence = 0.99\n'
        '[[rules]]\nname = "amount"\nlabel = "AMOUNT"\npattern = \'€\\d+(?:\\.\\d{2})?\'\n'))
    spans = a.spans("Order ORD-123456 for €12.50")
    assert [(s.text, s.label, s.score) for s in spans] == [("123456", "ORDER", 0.99),
                                                           ("€12.50", "AMOUNT", 0.8)]
    assert spans[0].provenance == {"rule_file": "regex.toml", "rule": "order"}


def test_conflicts_longest_then_priority_then_leftmost(tmp_path):
    a = annotator(tmp_path, a__txt="New York\nYork\n", b__txt="York City\n",
                  c__toml='[[rules]]\nname = "city"\nlabel = "HIGH"\npattern = "York"\npriority = 9\n')
    # "New York" and "York City" are both 2 tokens: leftmost wins; alone, "York" goes to priority 9.
    assert found(a, "New York City") == [("New York", "A")]
    assert found(a, "in York today") == [("York", "HIGH")]


def test_malformed_rules_name_the_file_and_line(tmp_path):
    with pytest.raises(ConfigError, match=r"patterns\.jsonl:2: not a spaCy pattern line"):
        annotator(tmp_path, patterns__jsonl='{"label": "A", "pattern": "ok"}\n{"label": "B"}\n')
    (tmp_path / "patterns.jsonl").unlink()
    with pytest.raises(ConfigError, match=r"p\.csv:3: empty 'term' or 'label'"):
        annotator(tmp_path, p__csv="term,label\nok,A\n,B\n")
    (tmp_path / "p.csv").unlink()
    with pytest.raises(ConfigError, match=r"r\.toml: rule #1 \(bad\): invalid regex"):
        annotator(tmp_path, r__toml='[[rules]]\nname = "bad"\nlabel = "X"\npattern = "(unclosed"\n')


def test_a_task_whose_text_is_not_a_string_fails_alone(tmp_path):
    a = annotator(tmp_path, brands__txt="Bic\n")
    ok, bad = a.annotate([Task("1", {"text": "a Bic pen"}), Task("2", {"text": 42})], {})
    assert [(s.text, s.label) for s in ok] == [("Bic", "BRANDS")]
    assert isinstance(bad, TaskFailed) and "'text' holds a int" in str(bad)


def test_fingerprint_follows_the_rules_files(tmp_path):
    first = annotator(tmp_path, t__txt="alpha\n").fingerprint()
    assert annotator(tmp_path, t__txt="alpha\n").fingerprint() == first
    assert annotator(tmp_path, t__txt="alpha\nbeta\n").fingerprint() != first


def test_options_it_does_not_read_are_refused(tmp_path):
    (tmp_path / "t.txt").write_text("alpha\n")
    with pytest.raises(ConfigError, match=r"annotator 'r' \(rules\): unknown option 'langauge' "
                                          r"\(known: .*\blanguage\b.*\brules\b"):
        RulesAnnotator("r", {"rules": str(tmp_path), "langauge": "fr"})
    common = RulesAnnotator("r", {"rules": str(tmp_path), "language": "fr", "model_version": "v9",
                                  "after": "other", "field": "body", "to_name": "body"})
    assert common.model_version == "v9" and common.after == ["other"]
    assert common.nlp.lang == "fr" and common.field == "body"


def test_cli_writes_label_studio_spans_for_the_example(tmp_path):
    emails = tmp_path / "emails.jsonl"
    subprocess.run([sys.executable, str(ROOT / "examples/product-ner/generate.py"), "--count",
                    "200", "--out", str(emails)], check=True, capture_output=True)
    out = tmp_path / "out.json"
    result = subprocess.run([sys.executable, "-m", "preannot", "run", str(emails), "--rules",
                             str(ROOT / "rules/product-ner"), "-o", str(out), "--no-progress"],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    tasks = json.loads(out.read_text())
    assert len(tasks) == 200
    labels = set()
    for task in tasks:
        (prediction,) = task["predictions"]
        for item in prediction["result"]:
            value = item["value"]
            assert task["data"]["text"][value["start"]:value["end"]] == value["text"]
            assert item["preannot"]["rule_file"] in {"products.csv", "patterns.jsonl", "regex.toml"}
            labels.update(value["labels"])
    assert {"LAPTOP", "PRINTER", "ORDER_ID", "AMOUNT", "QUANTITY"} <= labels


def test_compiled_dictionaries_are_cached_for_workers_and_reruns(tmp_path, monkeypatch):
    from preannot_spacy.dictionary import Dictionary

    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "products.csv").write_text("term,label\nAcme drill,PRODUCT\nWi-Fi router,PRODUCT\n")
    context = Context(base_dir=tmp_path, cache_dir=tmp_path / "cache")
    compiled = []
    original = Dictionary._compile
    monkeypatch.setattr(Dictionary, "_compile", lambda self: compiled.append(1) or original(self))
    first = RulesAnnotator("r", {"rules": str(rules)}, context)
    first.prepare()  # what a run does before it starts worker processes
    assert len(compiled) == 1 and list((tmp_path / "cache" / "dictionaries").glob("*.pickle"))
    text = "an acme drill? no: the Wi - Fi router"
    worker = RulesAnnotator("r", {"rules": str(rules)}, context)
    assert found(worker, text) == found(first, text) == [("Wi - Fi router", "PRODUCT")]
    assert len(compiled) == 1  # loaded, not compiled again
    (rules / "products.csv").write_text("term,label\nacme drill,PRODUCT\n")
    assert found(RulesAnnotator("r", {"rules": str(rules)}, context), text) == [
        ("acme drill", "PRODUCT")]
    assert len(compiled) == 2  # other terms, another entry
