"""Rule suggestions: a reviewable patch that `git apply` takes, for every rules file kind."""

import subprocess

from preannot.evaluation.suggest import suggest


def added(text, label):
    return {"type": "labels", "classification": "added",
            "value": {"text": text, "labels": [label]}}


def rule(file, name, predicted, accepted):
    return {"annotator": "rules", "rule_file": file, "rule": name, "predicted": predicted,
            "accepted": accepted, "precision": accepted / predicted}


def test_patch_adds_terms_and_disables_rules(tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "products.csv").write_text("term,label,canonical,synonyms\nAcme,PRODUCT,Acme,\n"
                                        "Bolt,PRODUCT,Bolt,\nZeta,PRODUCT,Zeta,\n")
    (rules / "color.txt").write_text("red\nblue\n")
    (rules / "regex.toml").write_text('[[rules]]\nname = "order"\nlabel = "ORDER"\npattern = "x"\n\n'
                                      '[[rules]]\nname = "sku"\nlabel = "SKU"\npattern = "y"\n')
    (rules / "patterns.jsonl").write_text('{"label": "Q", "pattern": "dozen", "id": "q1"}\n'
                                          '{"label": "Q", "pattern": "pair"}\n')
    records = [{"human": [added("Omega Inc", "BRAND"), added("green", "COLOR")]},
               {"human": [added("omega  inc", "BRAND"), added("Acme", "PRODUCT")]},
               {"human": [added("green", "COLOR"), added("acme", "PRODUCT"),
                          {**added("Omega Inc", "BRAND"), "classification": "matched"}]}]
    metrics = [rule("products.csv", "3", 10, 2), rule("products.csv", "4", 10, 1),
               rule("products.csv", "2", 10, 9), rule("color.txt", "2", 6, 0),
               rule("regex.toml", "order", 5, 1), rule("patterns.jsonl", "q1", 5, 0),
               rule("patterns.jsonl", "2", 4, 0)]  # under min_support: kept
    out = suggest(records, metrics, rules, root=tmp_path, min_count=2, min_support=5)
    # "Acme" is already in the referential; Omega Inc (2x) and green (2x) are new
    assert [(t, lb, n, f) for t, lb, n, f in out.terms] == [
        ("Omega Inc", "BRAND", 2, "suggested.csv"), ("green", "COLOR", 2, "color.txt")]
    assert sorted((r["file"], r["rule"]) for r in out.flagged) == [
        ("color.txt", "2"), ("patterns.jsonl", "q1"), ("products.csv", "3"),
        ("products.csv", "4"), ("regex.toml", "order")]
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "fix.patch").write_text(out.patch)
    subprocess.run(["git", "apply", "fix.patch"], cwd=tmp_path, check=True)
    assert (rules / "products.csv").read_text() == "term,label,canonical,synonyms\nAcme,PRODUCT,Acme,\n"
    assert (rules / "color.txt").read_text() == "red\n# blue\ngreen\n"
    assert (rules / "suggested.csv").read_text() == ("term,label,canonical,synonyms\n"
                                                     "Omega Inc,BRAND,Omega Inc,\n")
    assert (rules / "patterns.jsonl").read_text() == '{"label": "Q", "pattern": "pair"}\n'
    toml = (rules / "regex.toml").read_text()
    assert toml.startswith('# [[rules]]\n# name = "order"\n# label = "ORDER"\n# pattern = "x"\n')
    assert '[[rules]]\nname = "sku"' in toml


def test_nothing_to_suggest_gives_an_empty_patch(tmp_path):
    (tmp_path / "a.txt").write_text("x\n")
    out = suggest([{"human": [added("y", "A")]}], [rule("a.txt", "1", 9, 9)], tmp_path, min_count=2)
    assert out.patch == "" and out.terms == [] and out.flagged == []
