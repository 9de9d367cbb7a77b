"""Interactive SAM (``SamAnnotator.interact``) on the tiny SAM checkpoint: the editor's clicks and
boxes give what segment-anything's own SamPredictor gives for them, and the image embedding is
computed once per image (memory LRU in front of the disk cache), shared with the batch path.
"""

from __future__ import annotations

import os
import random
import threading

import numpy as np
import pytest
from PIL import Image

from preannot import Box, ConfigError, Context, Mask, Point, Polygon, Prediction, Task, TaskFailed
from preannot.labelstudio.labeling_config import check, generate
from preannot.lsjson import region_to_result
from preannot_sam.annotator import SamAnnotator


@pytest.fixture(scope="module")
def images(shapes, tmp_path_factory):
    """Four 320x240 images of shapes, and the (x, y) centre of a shape in the first one."""
    folder = tmp_path_factory.mktemp("interactive")
    paths, truths = [], []
    for seed in range(4):
        image, truth = shapes.draw_image(random.Random(10 + seed), 320, 240, max_shapes=3)
        paths.append(folder / f"img{seed}.png")
        image.save(paths[-1])
        truths.append(truth)
    return paths, truths


@pytest.fixture(scope="module")
def predictor(sam_checkpoint, images):
    """segment-anything's own predictor on the first image: the reference answers."""
    from segment_anything import SamPredictor

    from preannot_sam.models import load_sam

    predictor = SamPredictor(load_sam("vit_tiny", sam_checkpoint, "cpu"))
    predictor.set_image(np.asarray(Image.open(images[0][0]).convert("RGB")))
    return predictor


def _sam(checkpoint, tmp_path, **options):
    context = Context(base_dir=tmp_path, cache_dir=tmp_path / "cache")
    return SamAnnotator("sam", {"checkpoint": str(checkpoint), "model_type": "vit_tiny",
                                "mode": "prompts", "labels": ["Circle", "Square"], "device": "cpu",
                                **options}, context)


def _encoder_calls(annotator) -> list[int]:
    calls = [0]
    annotator.sam.image_encoder.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def _click(x, y, positive=True, label="Circle", size=(320, 240)):
    return Point(x=x, y=y, image_width=size[0], image_height=size[1], positive=positive, label=label)


def _task(path, name="t"):
    return Task(name, {"image": str(path)})


def test_a_click_gives_the_predictors_best_of_three_mask_with_the_clicks_label(
        sam_checkpoint, tmp_path, images, predictor):
    sam = _sam(sam_checkpoint, tmp_path)
    [region] = sam.interact(_task(images[0][0]), [_click(100, 80, label="Square")])
    masks, scores, _ = predictor.predict(point_coords=np.array([[100.0, 80.0]]),
                                         point_labels=np.array([1]), multimask_output=True)
    assert len(set(scores.tolist())) == 3  # three different candidates: the choice matters
    best = int(np.argmax(scores))
    assert isinstance(region, Mask) and region.mask.shape == (240, 320)
    assert region.label == "Square"
    assert np.array_equal(region.mask, masks[best])
    assert region.score == float(scores[best])
    assert region.provenance["prompt"] == {"points": 1, "negative_points": 0, "box": False}
    item = region_to_result(region)
    assert item["type"] == "brushlabels" and item["value"]["brushlabels"] == ["Square"]


def test_a_negative_click_is_sams_label_zero_and_a_box_goes_along(sam_checkpoint, tmp_path, images,
                                                                   predictor):
    sam = _sam(sam_checkpoint, tmp_path)
    task = _task(images[0][0])
    coords = np.array([[100.0, 80.0], [200.0, 150.0]])
    [region] = sam.interact(task, [_click(100, 80), _click(200, 150, positive=False)])
    masks, scores, _ = predictor.predict(point_coords=coords, point_labels=np.array([1, 0]),
                                         multimask_output=False)
    both_positive, _, _ = predictor.predict(point_coords=coords, point_labels=np.array([1, 1]),
                                            multimask_output=False)
    assert not np.array_equal(masks[0], both_positive[0])  # the label changes the answer
    assert np.array_equal(region.mask, masks[0]) and region.score == float(scores[0])
    assert region.provenance["prompt"] == {"points": 1, "negative_points": 1, "box": False}

    box = Box(x=40, y=30, width=150, height=120, image_width=320, image_height=240, label="Square")
    [boxed] = sam.interact(task, [_click(100, 80), box])
    masks, scores, _ = predictor.predict(point_coords=coords[:1], point_labels=np.array([1]),
                                         box=np.array([40.0, 30.0, 190.0, 150.0]),
                                         multimask_output=False)
    assert np.array_equal(boxed.mask, masks[0]) and boxed.label == "Square"
    [box_only] = sam.interact(task, [box])
    masks, _, _ = predictor.predict(box=np.array([40.0, 30.0, 190.0, 150.0]), multimask_output=False)
    assert np.array_equal(box_only.mask, masks[0])
    assert sam.interact(task, []) == []


def test_clicks_are_scaled_from_the_size_the_editor_saw(sam_checkpoint, tmp_path, images):
    sam = _sam(sam_checkpoint, tmp_path)
    task = _task(images[0][0])
    [native] = sam.interact(task, [_click(100, 80)])
    [scaled] = sam.interact(task, [_click(200, 160, size=(640, 480))])
    assert np.array_equal(native.mask, scaled.mask)


def test_the_encoder_runs_once_per_image_while_the_lru_holds_it(sam_checkpoint, tmp_path, images):
    paths, _ = images
    sam = _sam(sam_checkpoint, tmp_path, cache=False)  # memory only: every miss encodes
    calls = _encoder_calls(sam)
    for x in (60, 120, 180, 240):
        sam.interact(_task(paths[0]), [_click(x, 100)])
    assert calls[0] == 1
    for _ in range(3):  # alternating between four open tasks
        for path in paths:
            sam.interact(_task(path), [_click(150, 120)])
    assert calls[0] == 4 and sam.embeddings.hits == 3 + 9

    small = _sam(sam_checkpoint, tmp_path, cache=False, memory_cache=2)
    calls = _encoder_calls(small)
    for path in (paths[0], paths[1], paths[0], paths[2]):  # img0 is the most recent when img2 comes
        small.interact(_task(path), [_click(150, 120)])
    assert calls[0] == 3
    small.interact(_task(paths[1]), [_click(150, 120)])  # evicted by img2
    assert calls[0] == 4
    small.interact(_task(paths[2]), [_click(150, 120)])
    assert calls[0] == 4

    none = _sam(sam_checkpoint, tmp_path, cache=False, memory_cache=0)
    calls = _encoder_calls(none)
    for _ in range(2):
        none.interact(_task(paths[0]), [_click(150, 120)])
    assert calls[0] == 2


def test_an_evicted_image_comes_back_from_the_disk_cache(sam_checkpoint, tmp_path, images):
    paths, _ = images
    sam = _sam(sam_checkpoint, tmp_path, memory_cache=1)
    calls = _encoder_calls(sam)
    [first] = sam.interact(_task(paths[0]), [_click(100, 80)])
    sam.interact(_task(paths[1]), [_click(100, 80)])
    [again] = sam.interact(_task(paths[0]), [_click(100, 80)])
    assert calls[0] == 2 and sam.cache.hits == 1
    assert np.array_equal(first.mask, again.mask)


def test_an_image_changed_on_disk_is_encoded_again(sam_checkpoint, tmp_path, images, shapes):
    path = tmp_path / "edited.png"
    Image.open(images[0][0]).save(path)
    sam = _sam(sam_checkpoint, tmp_path, cache=False)
    calls = _encoder_calls(sam)
    [before] = sam.interact(_task(path), [_click(100, 80)])
    shapes.draw_image(random.Random(99), 320, 240)[0].save(path)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    [after] = sam.interact(_task(path), [_click(100, 80)])
    assert calls[0] == 2 and not np.array_equal(before.mask, after.mask)


def test_the_batch_path_shares_the_cache(sam_checkpoint, tmp_path, images):
    paths, truths = images
    c, x0, y0, x1, y1 = truths[1][0]
    box = Box(x=x0, y=y0, width=x1 - x0, height=y1 - y0, image_width=320, image_height=240,
              label="Circle", id="b0")
    context = Context(base_dir=tmp_path, cache_dir=tmp_path / "cache")
    sam = SamAnnotator("sam", {"checkpoint": str(sam_checkpoint), "model_type": "vit_tiny",
                               "after": "yolo", "cache": False, "device": "cpu"}, context)
    calls = _encoder_calls(sam)
    [batch] = sam.annotate([_task(paths[1])], {"yolo": [Prediction("t", "yolo", "v", [box])]})
    [clicked] = sam.interact(_task(paths[1]), [box])
    assert calls[0] == 1
    assert np.array_equal(batch[0].mask, clicked.mask) and batch[0].score == clicked.score
    sam.interact(_task(paths[2]), [_click(100, 80)])
    sam.annotate([_task(paths[2])], {"yolo": [Prediction("t", "yolo", "v", [box])]})
    assert calls[0] == 2


def test_prompts_from_several_threads_encode_once(sam_checkpoint, tmp_path, images):
    sam = _sam(sam_checkpoint, tmp_path, cache=False)
    calls = _encoder_calls(sam)
    results = [None] * 6
    barrier = threading.Barrier(6)

    def prompt(i):
        barrier.wait()
        results[i] = sam.interact(_task(images[0][0]), [_click(100, 80)])

    threads = [threading.Thread(target=prompt, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls[0] == 1
    assert all(np.array_equal(r[0].mask, results[0][0].mask) for r in results)


def test_polygon_output_unreadable_image_and_prompts_mode(sam_checkpoint, tmp_path, images):
    sam = _sam(sam_checkpoint, tmp_path, output="polygon")
    [polygon] = sam.interact(_task(images[0][0]), [_click(100, 80)])
    assert isinstance(polygon, Polygon) and polygon.label == "Circle" and len(polygon.points) >= 3
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    failed = sam.interact(_task(broken), [_click(10, 10)])
    assert isinstance(failed, TaskFailed) and str(broken) in str(failed)
    missing = sam.interact(_task(tmp_path / "gone.png"), [_click(10, 10)])
    assert isinstance(missing, TaskFailed) and "gone.png" in str(missing)
    calls = _encoder_calls(sam)
    assert sam.annotate([_task(images[0][3])], {}) == [[]]  # prompts mode: nothing in batch
    assert calls[0] == 0
    auto = SamAnnotator("a", {"checkpoint": str(sam_checkpoint), "model_type": "vit_tiny",
                              "labels": ["Circle", "Square"], "label": "thing"},
                        Context(base_dir=tmp_path, cache_dir=tmp_path / "cache"))
    assert auto.labels == ["thing", "Circle", "Square"]  # automatic masks, and clicks
    with pytest.raises(ConfigError, match="memory_cache"):
        _sam(sam_checkpoint, tmp_path, memory_cache=-1)


def test_generated_config_has_the_smart_tools_and_label_studio_takes_it(
        sam_checkpoint, tmp_path, images, labelstudio):
    sam = _sam(sam_checkpoint, tmp_path, from_name="mask")
    config = generate([sam])
    assert config == (
        '<View>\n'
        '  <Image name="image" value="$image"/>\n'
        '  <BrushLabels name="mask" toName="image">\n'
        '    <Label value="Circle"/>\n    <Label value="Square"/>\n'
        '  </BrushLabels>\n'
        '  <KeyPointLabels name="mask_point" toName="image" smart="true">\n'
        '    <Label value="Circle"/>\n    <Label value="Square"/>\n'
        '  </KeyPointLabels>\n'
        '  <RectangleLabels name="mask_box" toName="image" smart="true">\n'
        '    <Label value="Circle"/>\n    <Label value="Square"/>\n'
        '  </RectangleLabels>\n'
        '</View>\n')
    # The prompt tools are no prediction outputs: a config without them still passes the check.
    assert check('<View><Image name="image" value="$image"/><BrushLabels name="mask" '
                 'toName="image"><Label value="Circle"/><Label value="Square"/></BrushLabels>'
                 '</View>', [sam]) == []
    client = labelstudio.client()
    project = labelstudio.project(config, "interactive sam")
    parsed = client.sdk.projects.get(project).parsed_label_config
    assert parsed["mask_point"]["type"] == "KeyPointLabels"
    assert parsed["mask_point"]["labels"] == ["Circle", "Square"]
    assert parsed["mask_box"]["type"] == "RectangleLabels"
    # What a click returns is a prediction Label Studio accepts in that project.
    [region] = sam.interact(_task(images[0][0]), [_click(100, 80)])
    item = {**region_to_result(region), "from_name": "mask", "to_name": "image"}
    task = client.sdk.tasks.create(project=project, data={"image": str(images[0][0])})
    client.sdk.predictions.create(task=task.id, result=[item], model_version="sam-test")
    [prediction] = client.sdk.predictions.list(task=task.id)
    assert prediction.result[0]["value"]["brushlabels"] == ["Circle"]


def test_a_detectors_box_tool_becomes_smart_rather_than_doubled(sam_checkpoint, yolo_weights,
                                                                tmp_path):
    import xml.etree.ElementTree as ET

    from preannot_yolo.annotator import YoloAnnotator

    context = Context(base_dir=tmp_path, cache_dir=tmp_path / "cache")
    yolo = YoloAnnotator("yolo", {"model": str(yolo_weights), "from_name": "box",
                                  "classes": {"circle": "Circle", "triangle": "Triangle"}}, context)
    sam = _sam(sam_checkpoint, tmp_path, from_name="mask", after="yolo", mode="boxes")
    root = ET.fromstring(generate([yolo, sam]))
    rectangles = root.findall("RectangleLabels")
    assert [(r.get("name"), r.get("smart")) for r in rectangles] == [("box", "true")]
    assert [el.get("value") for el in rectangles[0]] == ["Circle", "Triangle", "Square"]
    assert [(k.get("name"), k.get("smart")) for k in root.findall("KeyPointLabels")] == [
        ("mask_point", "true")]
    assert root.find("BrushLabels").get("smart") is None


@pytest.mark.gpu
@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_clicks_match_cpu(sam_checkpoint, tmp_path, images):
    """The encoder runs under autocast on a GPU; prompts are decoded in float32 from its output."""
    task, click = _task(images[0][0]), [_click(100, 80), _click(200, 150, positive=False)]
    [cpu] = _sam(sam_checkpoint, tmp_path / "c", cache=False).interact(task, click)
    gpu_sam = _sam(sam_checkpoint, tmp_path / "g", cache=False, device="cuda")
    [gpu] = gpu_sam.interact(task, click)
    [again] = gpu_sam.interact(task, click)  # from the memory cache
    assert gpu_sam.embeddings.hits == 1 and np.array_equal(gpu.mask, again.mask)
    assert (cpu.mask == gpu.mask).mean() >= 0.98  # bf16/fp16 rounding flips only edge pixels


def test_an_image_in_label_studio_is_fetched_and_encoded_once(sam_checkpoint, tmp_path, images,
                                                               labelstudio, monkeypatch):
    """A ``/data/upload/...`` image: downloaded once (with the token), then memory hits."""
    import requests

    headers = {"Authorization": f"Token {labelstudio.api_key}"}
    project = labelstudio.project('<View><Image name="image" value="$image"/><BrushLabels '
                                  'name="mask" toName="image"><Label value="Circle"/></BrushLabels>'
                                  '</View>', "interactive fetch")
    with images[0][1].open("rb") as f:
        requests.post(f"{labelstudio.url}/api/projects/{project}/import", headers=headers,
                      files={"file": ("prompted.png", f, "image/png")}, timeout=60).raise_for_status()
    [task] = requests.get(f"{labelstudio.url}/api/tasks", headers=headers, timeout=30,
                          params={"project": project}).json()["tasks"]
    assert task["data"]["image"].startswith("/data/upload/")
    monkeypatch.setenv("LABEL_STUDIO_URL", labelstudio.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", labelstudio.api_key)
    sam = _sam(sam_checkpoint, tmp_path, cache=False)
    calls = _encoder_calls(sam)
    remote = Task(str(task["id"]), {"image": task["data"]["image"]})
    [first] = sam.interact(remote, [_click(100, 80)])
    [second] = sam.interact(remote, [_click(100, 80)])
    [local] = sam.interact(_task(images[0][1]), [_click(100, 80)])
    assert calls[0] == 2 and sam.embeddings.hits == 1  # the local file is another reference
    assert np.array_equal(first.mask, second.mask) and np.array_equal(first.mask, local.mask)
