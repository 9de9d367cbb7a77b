"""The yolo annotator on the demo model trained on generated shapes (see conftest.py)."""

from __future__ import annotations

import random

import pytest
import torch
from PIL import Image
from torchvision.ops import box_iou

from preannot import Box, ConfigError, Context, Task, TaskFailed
from preannot.lsjson import region_to_result
from preannot_yolo.annotator import YoloAnnotator

MAP50_BAR = 0.85
"""mAP50 the demo model must reach on a fresh held-out draw (it reaches ~0.99 after training)."""


@pytest.fixture(scope="module")
def yolo(yolo_weights, tmp_path_factory):
    context = Context(base_dir=yolo_weights.parent, cache_dir=tmp_path_factory.mktemp("cache"))
    return YoloAnnotator("yolo", {"model": yolo_weights.name, "conf": 0.25}, context)


def _boxes(regions):
    return torch.tensor([list(r.xyxy) for r in regions]).reshape(-1, 4)


def _match(regions, truth, classes):
    """(true positives, predictions, truths) at IoU >= 0.5 with the right label, greedy by score."""
    truth_boxes = torch.tensor([list(t[1:]) for t in truth]).reshape(-1, 4)
    free = set(range(len(truth)))
    hits = 0
    iou = box_iou(_boxes(regions), truth_boxes) if regions and truth else None
    for i in sorted(range(len(regions)), key=lambda k: -regions[k].score):
        candidates = [j for j in free if iou[i, j] >= 0.5 and classes[truth[j][0]] == regions[i].label]
        if candidates:
            free.remove(max(candidates, key=lambda j: iou[i, j]))
            hits += 1
    return hits, len(regions), len(truth)


def test_detects_held_out_shapes_above_the_bar(yolo, yolo_weights, shapes, tmp_path):
    from ultralytics import YOLO

    data = shapes.write_yolo_dataset(tmp_path / "heldout", train=0, val=40, size=160, seed=424242)
    metrics = YOLO(str(yolo_weights)).val(data=str(data), imgsz=160, device="cpu", plots=False,
                                          verbose=False, batch=16, workers=0)
    assert metrics.box.map50 >= MAP50_BAR

    # And through the annotator: the regions it emits find the shapes, with the right labels.
    rng = random.Random(99)
    tasks, truths = [], []
    for i in range(16):
        image, truth = shapes.draw_image(rng, 160, 160)
        image.save(tmp_path / f"{i}.png")
        tasks.append(Task(str(i), {"image": str(tmp_path / f"{i}.png")}))
        truths.append(truth)
    results = yolo.annotate(tasks, {})
    hits = predicted = total = 0
    for regions, truth in zip(results, truths):
        assert all(isinstance(r, Box) and r.provenance["class"] == r.label for r in regions)
        h, p, t = _match(regions, truth, shapes.CLASSES)
        hits, predicted, total = hits + h, predicted + p, total + t
    assert hits / total >= 0.85, f"recall {hits}/{total}"
    assert hits / predicted >= 0.85, f"precision {hits}/{predicted}"


def _exif_rotated_jpeg(displayed: Image.Image, path) -> None:
    """Store ``displayed`` turned on its side with EXIF orientation 6 ("rotate 90 CW to view")."""
    stored = displayed.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(path, quality=95, exif=exif)


@pytest.mark.parametrize("size", [(320, 240), (200, 300), (640, 480), "exif"])
def test_boxes_land_on_the_shapes_in_label_studio_percent(yolo, shapes, tmp_path, size):
    from ultralytics import YOLO

    rng = random.Random(7)
    width, height = (360, 240) if size == "exif" else size
    image, truth = shapes.draw_image(rng, width, height, max_shapes=3)
    path = tmp_path / ("rotated.jpg" if size == "exif" else "image.png")
    if size == "exif":
        _exif_rotated_jpeg(image, path)
        assert Image.open(path).size == (height, width)  # stored sideways
    else:
        image.save(path)
    # The detections the demo model is sure of: trained on small images, it adds a 0.40 box
    # on the largest one's bottom edge (its quality, not the conversion's, which is the point)
    sure = YoloAnnotator("yolo", {"model": yolo.model_path, "conf": 0.5}, yolo.context)
    [regions] = sure.annotate([Task("t", {"image": str(path)})], {})
    assert len(regions) == len(truth)
    results = [region_to_result(r) for r in regions]
    assert {(r["original_width"], r["original_height"]) for r in results} == {(width, height)}
    # Percent coordinates, read back as Label Studio would, cover the drawn shapes.
    back = torch.tensor([[v["x"] * width / 100, v["y"] * height / 100,
                          (v["x"] + v["width"]) * width / 100, (v["y"] + v["height"]) * height / 100]
                         for v in (r["value"] for r in results)])
    truth_boxes = torch.tensor([list(t[1:]) for t in truth])
    assert box_iou(back, truth_boxes).max(dim=1).values.min() >= 0.5
    # And they are exactly ultralytics' own boxes for that file (cv2 also applies EXIF).
    raw = YOLO(str(yolo.model_path)).predict(str(path), conf=0.5, verbose=False)[0]
    assert raw.orig_shape == (height, width)
    assert torch.allclose(back, raw.boxes.xyxy.cpu().reshape(-1, 4)[: len(back)], atol=1e-3) or \
        torch.allclose(back.sort(dim=0).values, raw.boxes.xyxy.cpu().sort(dim=0).values, atol=0.5)


def test_corrupt_and_missing_images_fail_alone(yolo, shapes, tmp_path):
    good = tmp_path / "good.png"
    shapes.draw_image(random.Random(3), 160, 160)[0].save(good)
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    tasks = [Task("a", {"image": str(corrupt)}), Task("b", {"image": str(good)}),
             Task("c", {"image": str(tmp_path / "missing.png")}), Task("d", {"image": str(good)})]
    results = yolo.annotate(tasks, {})
    assert isinstance(results[0], TaskFailed) and str(corrupt) in str(results[0])
    assert str(results[0]).startswith("cannot read image")
    assert isinstance(results[2], TaskFailed) and "missing.png" in str(results[2])
    assert isinstance(results[1], list) and results[1]
    assert [r.xyxy for r in results[1]] == [r.xyxy for r in results[3]]


def test_class_mapping_drops_or_keeps_unmapped_classes(yolo_weights, shapes, tmp_path):
    context = Context(base_dir=tmp_path)
    rng = random.Random(5)
    tasks = []
    for i in range(6):
        shapes.draw_image(rng, 160, 160)[0].save(tmp_path / f"{i}.png")
        tasks.append(Task(str(i), {"image": str(tmp_path / f"{i}.png")}))
    every = YoloAnnotator("all", {"model": str(yolo_weights)}, context).annotate(tasks, {})
    mapped = YoloAnnotator("m", {"model": str(yolo_weights), "classes": {"circle": "Ball"}},
                           context)
    kept = YoloAnnotator("k", {"model": str(yolo_weights), "classes": {"circle": "Ball"},
                               "keep_unmapped": True}, context)
    assert mapped.labels == ["Ball"] and kept.labels == ["Ball", "square", "triangle"]
    circles = sum(r.provenance["class"] == "circle" for regions in every for r in regions)
    assert circles and circles < sum(map(len, every))
    only = mapped.annotate(tasks, {})
    assert sum(map(len, only)) == circles
    assert {(r.label, r.provenance["class"]) for regions in only for r in regions} == {("Ball", "circle")}
    relabelled = kept.annotate(tasks, {})
    assert [[(r.label if r.label != "Ball" else "circle") for r in rs] for rs in relabelled] == \
        [[r.label for r in rs] for rs in every]
    with pytest.raises(ConfigError, match="hexagon"):
        YoloAnnotator("x", {"model": str(yolo_weights), "classes": {"hexagon": "H"}}, context)


def test_fingerprint_follows_weights_and_options(yolo_weights, tmp_path):
    context = Context(base_dir=tmp_path)
    base = YoloAnnotator("y", {"model": str(yolo_weights)}, context)
    assert base.fingerprint() == YoloAnnotator("y", {"model": str(yolo_weights)}, context).fingerprint()
    assert base.fingerprint() != YoloAnnotator("y", {"model": str(yolo_weights), "conf": 0.5},
                                               context).fingerprint()
    retrained = tmp_path / "best.pt"
    checkpoint = torch.load(yolo_weights, map_location="cpu", weights_only=False)
    checkpoint["model"].model[-1].bias_init()  # other weights, same architecture
    torch.save(checkpoint, retrained)
    assert base.fingerprint() != YoloAnnotator("y", {"model": str(retrained)}, context).fingerprint()


def test_polygons_need_a_segmentation_model(yolo_weights, tmp_path):
    with pytest.raises(ConfigError, match="segmentation"):
        YoloAnnotator("y", {"model": str(yolo_weights), "polygons": True}, Context(base_dir=tmp_path))


def test_polygons_from_a_segmentation_model(shapes, tmp_path):
    """An untrained yolov8n-seg (built from its yaml) at conf 0: outlines, not their quality."""
    from preannot import Polygon

    shapes.draw_image(random.Random(2), 224, 160)[0].save(tmp_path / "a.png")
    seg = YoloAnnotator("seg", {"model": "yolov8n-seg.yaml", "polygons": True, "conf": 0.0,
                                "imgsz": 160}, Context(base_dir=tmp_path))
    assert seg.emits == ("polygonlabels",)
    [regions] = seg.annotate([Task("a", {"image": str(tmp_path / "a.png")})], {})
    assert regions and all(isinstance(r, Polygon) for r in regions)
    for region in regions:
        assert (region.image_width, region.image_height) == (224, 160)
        assert len(region.points) >= 3
        assert all(-1 <= x <= 225 and -1 <= y <= 161 for x, y in region.points)
    result = region_to_result(regions[0])
    assert result["type"] == "polygonlabels" and result["value"]["closed"] is True


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_half_precision_finds_the_same_boxes(yolo_weights, shapes, tmp_path):
    shapes.draw_image(random.Random(11), 320, 240)[0].save(tmp_path / "a.png")
    task = [Task("a", {"image": str(tmp_path / "a.png")})]
    context = Context(base_dir=tmp_path)
    cpu = YoloAnnotator("c", {"model": str(yolo_weights), "device": "cpu"}, context).annotate(task, {})
    gpu = YoloAnnotator("g", {"model": str(yolo_weights), "device": "0", "half": True},
                        context).annotate(task, {})
    assert len(cpu[0]) == len(gpu[0]) > 0
    assert box_iou(_boxes(cpu[0]), _boxes(gpu[0])).max(dim=1).values.min() >= 0.95


def test_embed_is_the_models_pooled_backbone_features(yolo, shapes, tmp_path):
    """``embed`` answers ultralytics' own ``model.embed`` per image (256 pooled features for
    the demo model); a copy of an image embeds the same, and an unreadable file fails alone."""
    import numpy as np

    from preannot import can_embed, open_image

    rng = random.Random(5)
    for i in range(3):
        shapes.draw_image(rng, 160, 160)[0].save(tmp_path / f"{i}.png")
    (tmp_path / "copy.png").write_bytes((tmp_path / "1.png").read_bytes())
    tasks = [Task(n, {"image": str(tmp_path / f"{n}.png")}) for n in ("0", "1", "2", "copy")]
    tasks.append(Task("gone", {"image": str(tmp_path / "gone.png")}))
    vectors = yolo.embed(tasks)
    assert can_embed(yolo)
    assert [len(v) for v in vectors[:4]] == [256] * 4
    assert isinstance(vectors[4], TaskFailed) and "gone.png" in str(vectors[4])
    own = yolo.model.embed([open_image(tasks[2], "image", yolo.context)], verbose=False)[0]
    assert np.allclose(vectors[2], own.cpu().numpy().reshape(-1), atol=1e-5)
    assert vectors[1] == vectors[3] and vectors[0] != vectors[1]
