"""The converter between regions and Label Studio JSON, checked against the SDK's own RLE decoder."""

from __future__ import annotations

import json

import numpy as np
import pytest
from label_studio_sdk.converter.brush import decode_rle

from preannot import Box, Choice, Mask, Point, Polygon, Prediction, Span, Task
from preannot.lsjson import (ls_to_predictions, ls_to_task, region_to_result, result_to_region,
                             task_key, task_to_ls)


def test_span_result_is_label_studio_ner_format():
    item = region_to_result(Span(label="PRODUCT", start=4, end=10, text="iPhone", score=0.9,
                                 from_name="label", to_name="text", id="r1",
                                 provenance={"rule": "3"}))
    assert item == {"id": "r1", "from_name": "label", "to_name": "text", "type": "labels",
                    "origin": "prediction", "score": 0.9, "preannot": {"rule": "3"},
                    "value": {"start": 4, "end": 10, "text": "iPhone", "labels": ["PRODUCT"]}}
    assert result_to_region(item) == Span(label="PRODUCT", start=4, end=10, text="iPhone",
                                          score=0.9, from_name="label", to_name="text", id="r1",
                                          provenance={"rule": "3"})


@pytest.mark.parametrize("size", [(640, 480), (333, 1001), (1, 7)])
def test_box_goes_to_percent_of_original_size_and_back(size):
    w, h = size
    box = Box(label="car", x=w / 4, y=h / 5, width=w / 2, height=h / 3, image_width=w,
              image_height=h, from_name="label", to_name="image", id="b")
    item = region_to_result(box)
    assert item["original_width"] == w and item["original_height"] == h
    assert item["value"]["x"] == pytest.approx(25.0) and item["value"]["width"] == pytest.approx(50.0)
    assert item["value"]["y"] == pytest.approx(20.0)
    assert item["value"]["height"] == pytest.approx(100 / 3)
    back = result_to_region(item)
    assert back.xyxy == pytest.approx(box.xyxy)


def test_mask_rle_decodes_with_the_sdk_to_the_same_pixels():
    rng = np.random.default_rng(0)
    mask = rng.random((37, 53)) > 0.6
    item = region_to_result(Mask(label="cat", mask=mask, from_name="tag", to_name="image"))
    assert item["value"]["format"] == "rle" and item["value"]["brushlabels"] == ["cat"]
    assert (item["original_width"], item["original_height"]) == (53, 37)
    decoded = decode_rle(item["value"]["rle"]).reshape(37, 53, 4)[:, :, 3] > 0
    assert np.array_equal(decoded, mask)
    assert np.array_equal(result_to_region(item).mask, mask)


def test_polygon_and_choice():
    poly = Polygon(label="roof", points=[(0, 0), (50, 0), (50, 20)], image_width=100,
                   image_height=40, id="p")
    item = region_to_result(poly)
    assert item["value"]["points"] == [[0.0, 0.0], [50.0, 0.0], [50.0, 50.0]]
    assert item["value"]["closed"] is True
    assert result_to_region(item).points == [(0, 0), (50, 0), (50, 20)]
    choice = region_to_result(Choice(label="URGENT", from_name="urgency", to_name="text", id="c"))
    assert choice["value"] == {"choices": ["URGENT"]} and choice["type"] == "choices"


def test_a_keypoint_prompt_as_the_editor_sends_it_reads_as_a_point_in_pixels():
    # What Label Studio's editor posts in an interactive request's context for a click with
    # the keypoint tool (a negative click has is_positive false).
    item = {"original_width": 1080, "original_height": 540, "image_rotation": 0,
            "value": {"x": 50.0, "y": 25.0, "width": 0.6, "keypointlabels": ["Banana"]},
            "is_positive": False, "id": "k1", "from_name": "kp", "to_name": "image",
            "type": "keypointlabels", "origin": "manual"}
    point = result_to_region(item)
    assert point == Point(label="Banana", x=540.0, y=135.0, image_width=1080, image_height=540,
                          positive=False, from_name="kp", to_name="image", id="k1")
    back = region_to_result(point)
    assert back["value"] == {"x": 50.0, "y": 25.0, "keypointlabels": ["Banana"]}
    assert back["is_positive"] is False and back["type"] == "keypointlabels"


def test_task_carries_stable_id_and_one_prediction_per_annotator():
    task = Task("emails.jsonl:3", {"text": "hello"})
    predictions = [Prediction("emails.jsonl:3", "a", "a-1", [Span(label="X", start=0, end=1,
                                                                   text="h", score=0.4)]),
                   Prediction("emails.jsonl:3", "b", "b-1", [])]
    out = task_to_ls(task, predictions)
    assert out["meta"] == {"preannot_id": "emails.jsonl:3", "preannot_annotators": ["a", "b"]}
    assert out["data"] == {"text": "hello"}
    assert [p["model_version"] for p in out["predictions"]] == ["a-1", "b-1"]
    assert out["predictions"][0]["score"] == 0.4 and "score" not in out["predictions"][1]


def test_an_import_task_reads_back_as_the_task_and_predictions_that_made_it():
    task = Task("emails.jsonl:3", {"text": "hello"}, meta={"channel": "mail"})
    predictions = [Prediction("emails.jsonl:3", "rules", "rules-1",
                              [Span(label="X", start=0, end=1, text="h", score=0.4)]),
                   Prediction("emails.jsonl:3", "ner", "ner-v2", [])]
    item = json.loads(json.dumps(task_to_ls(task, predictions)))
    back = ls_to_task(item, "pred.json[0]")
    assert (back.id, back.data, back.source, back.meta) == (
        "emails.jsonl:3", {"text": "hello"}, "pred.json[0]", {"channel": "mail", "preannot_id":
                                                              "emails.jsonl:3"})
    parsed = ls_to_predictions(item, back.id)
    assert [(p.annotator, p.model_version, len(p.regions)) for p in parsed] == [
        ("rules", "rules-1", 1), ("ner", "ner-v2", 0)]
    assert parsed[0].regions[0].label == "X" and parsed[0].score == 0.4
    # a file written elsewhere: the configured annotators' versions name them
    del item["meta"]["preannot_annotators"]
    assert [p.annotator for p in ls_to_predictions(item, back.id, {"ner-v2": "ner"})] == [
        "rules-1", "ner"]
    with pytest.raises(ValueError, match="not a Label Studio task"):
        ls_to_task({"data": "text"})
    assert task_key(None, 17) == "ls:17" and task_key("a:1", 17) == "a:1"
    assert task_key(None, data={"text": "x"}) == f"sha:{Task('', {'text': 'x'}).checksum}"
