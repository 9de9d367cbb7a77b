"""Labeling configs generated from annotators, and checks of a user's config against them."""

import xml.etree.ElementTree as ET

import pytest

from annotators import Keywords
from preannot import ConfigError
from preannot.labelstudio.labeling_config import check, fit, generate


def words(name, **options):
    return Keywords(name, {"words": {"apple": ["FRUIT", 0.9], "bolt": ["PART", 0.4]}, **options})


def test_generated_config_has_the_text_and_every_label():
    root = ET.fromstring(generate([words("kw")]))
    assert root.find("Text").attrib == {"name": "text", "value": "$text"}
    labels = root.find("Labels")
    assert labels.get("name") == "label" and labels.get("toName") == "text"
    assert [el.get("value") for el in labels] == ["FRUIT", "PART"]
    assert check(generate([words("kw")]), [words("kw")]) == []


def test_check_names_the_mismatched_from_name_to_name_and_label():
    config = ('<View><Text name="body" value="$text"/>'
              '<Labels name="label" toName="body"><Label value="FRUIT"/></Labels></View>')
    assert check(config, [words("kw")]) == [
        "no <Text name=\"text\"> for annotators to annotate (to_name 'text')",
        "from_name 'label' has toName='body', but kw write to_name 'text'"]
    assert check(config, [words("kw", from_name="ner", to_name="body")]) == [
        "no <Labels name=\"ner\"> (from_name of kw)"]


def test_a_config_with_some_of_the_labels_fits_and_leaves_the_others_out():
    """Label Studio ML backends predict the labels a project has: a subset fits, none does not."""
    some = ('<View><Text name="text" value="$text"/>'
            '<Labels name="label" toName="text"><Label value="FRUIT"/></Labels></View>')
    found = fit(some, [words("kw")])
    assert (found.problems, found.lacking) == ([], {"label": ["PART"]})
    assert found.note == ("the labeling config lacks label(s) 'PART' (from_name 'label'): "
                          "predictions of them are left out")
    task = {"data": {"text": "apple bolt"}, "predictions": [{"model_version": "v", "result": [
        {"from_name": "label", "type": "labels", "value": {"start": 0, "labels": ["FRUIT"]}},
        {"from_name": "label", "type": "labels", "value": {"start": 6, "labels": ["PART"]}}]}]}
    [kept] = found.task(task)["predictions"][0]["result"]
    assert kept["value"]["labels"] == ["FRUIT"]
    none = some.replace("FRUIT", "COLOUR")
    assert check(none, [words("kw")]) == [
        "it has none of the labels the annotators emit: it lacks label(s) 'FRUIT', 'PART' "
        "(from_name 'label')"]


def test_two_annotators_writing_one_from_name_differently_is_an_error():
    other = Keywords("img", {"words": {}, "field": "image"})
    other.emits = ("rectanglelabels",)
    with pytest.raises(ConfigError, match="both write from_name 'label'"):
        generate([words("kw"), other])
