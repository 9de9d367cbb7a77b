"""Label one, get all: ``RulesAnnotator.interact`` returns every other occurrence of a span the user
labeled, matched as the rules' settings say (case, accents, whole tokens). Real spaCy tokenizer.
"""

from __future__ import annotations

from pathlib import Path

from preannot import Box, Context, Span, Task, TaskFailed
from preannot.lsjson import result_to_region
from preannot_spacy.annotator import RulesAnnotator


def annotator(folder: Path, **files: str) -> RulesAnnotator:
    for name, content in files.items():
        (folder / name.replace("__", ".")).write_text(content, encoding="utf-8")
    return RulesAnnotator("r", {"rules": str(folder)}, Context(base_dir=folder))


def prompt(text: str, phrase: str, label: str, nth: int = 0) -> Span:
    start = -1
    for _ in range(nth + 1):
        start = text.index(phrase, start + 1)
    return Span(label=label, start=start, end=start + len(phrase), text=phrase, id="p1")


def found(spans) -> list[tuple[int, str, str]]:
    return [(s.start, s.text, s.label) for s in spans]


TEXT = "Café Noir opened. The CAFE NOIR menu, cafe noir's terrace; Cafés Noirs, Café Noire. café noir"


def test_case_sensitive_finds_the_same_spelling_only(tmp_path):
    a = annotator(tmp_path, shops__txt="Bistro\n")  # the defaults: case sensitive, accents kept
    assert a.matching("SHOP") == ("sensitive", "keep")
    spans = a.interact(Task("t", {"text": TEXT}), [prompt(TEXT, "café noir", "SHOP", nth=0)])
    assert found(spans) == []  # only "café noir" (lower case) itself, at the end, is the prompt
    spans = a.interact(Task("t", {"text": TEXT}), [prompt(TEXT, "Café Noir", "SHOP")])
    assert found(spans) == []  # "Café Noire" is another word
    text = "Café Noir, then Café Noir again, and Café Noir's sign."
    spans = a.interact(Task("t", {"text": text}), [prompt(text, "Café Noir", "SHOP", nth=1)])
    assert found(spans) == [(0, "Café Noir", "SHOP"), (37, "Café Noir", "SHOP")]
    assert all(s.score == 1.0 and s.provenance == {"prompt": {"id": "p1", "start": 16, "end": 25}}
               for s in spans)


def test_the_labels_rules_fold_case_and_accents(tmp_path):
    a = annotator(tmp_path, shop__txt="Bistro\n",
                  rules__toml='[files."shop.txt"]\ncase = "insensitive"\naccents = "fold"\n')
    assert a.matching("SHOP") == ("insensitive", "fold")
    assert a.matching("OTHER") == ("sensitive", "keep")  # no terms of its own: the folder's
    spans = a.interact(Task("t", {"text": TEXT}), [prompt(TEXT, "Café Noir", "SHOP")])
    assert found(spans) == [(22, "CAFE NOIR", "SHOP"), (38, "cafe noir", "SHOP"),
                            (84, "café noir", "SHOP")]


def test_the_folders_defaults_apply_to_labels_without_terms(tmp_path):
    a = annotator(tmp_path, shop__txt="Bistro\n",
                  rules__toml='[defaults]\ncase = "insensitive"\n')
    assert a.matching("PLACE") == ("insensitive", "keep")
    spans = a.interact(Task("t", {"text": TEXT}), [prompt(TEXT, "Café Noir", "PLACE")])
    assert found(spans) == [(84, "café noir", "PLACE")]  # accents kept: not "CAFE NOIR"


def test_prompts_whitespace_overlaps_and_bad_spans(tmp_path):
    a = annotator(tmp_path, shop__txt="Bistro\n")
    text = "Acme and Acme Corp and Acme, not Acmes."
    selected = Span(label="ORG", start=0, end=5, text="Acme ")  # the editor took the space along
    corp = prompt(text, "Acme Corp", "ORG")
    spans = a.interact(Task("t", {"text": text}), [selected, corp])
    assert found(spans) == [(23, "Acme", "ORG")]  # not inside the other prompt, not in "Acmes"
    assert a.interact(Task("t", {"text": text}), [Box(x=0, y=0, width=1, height=1, image_width=2,
                                                      image_height=2, label="ORG")]) == []
    outside = a.interact(Task("t", {"text": "short"}), [Span(label="ORG", start=3, end=40, text="")])
    assert isinstance(outside, TaskFailed) and "3-40" in str(outside)
    assert isinstance(a.interact(Task("t", {"text": 7}), [selected]), TaskFailed)


def test_a_label_studio_span_prompt_round_trips(tmp_path):
    """The span as the editor sends it in ``context.result``, through preannot's converter."""
    a = annotator(tmp_path, shop__txt="Bistro\n")
    text = "Order 12 from Bolt Ltd; Bolt Ltd pays."
    item = {"id": "x1", "from_name": "label", "to_name": "text", "type": "labels",
            "origin": "manual", "value": {"start": 14, "end": 22, "text": "Bolt Ltd",
                                          "labels": ["ORG"]}}
    spans = a.interact(Task("t", {"text": text}), [result_to_region(item)])
    assert found(spans) == [(24, "Bolt Ltd", "ORG")]
    assert spans[0].provenance["prompt"]["id"] == "x1"


def test_the_generated_config_marks_the_span_tool_smart_and_label_studio_takes_it(tmp_path,
                                                                                 labelstudio):
    import xml.etree.ElementTree as ET

    from preannot.labelstudio.labeling_config import generate

    a = annotator(tmp_path, shop__txt="Bistro\n")
    config = generate([a])
    [labels] = ET.fromstring(config).findall("Labels")
    assert labels.attrib == {"name": "label", "toName": "text", "smart": "true"}
    assert [el.get("value") for el in labels] == ["SHOP"]
    project = labelstudio.project(config, "label one get all")
    parsed = labelstudio.client().sdk.projects.get(project).parsed_label_config
    assert parsed["label"]["type"] == "Labels" and parsed["label"]["labels"] == ["SHOP"]
