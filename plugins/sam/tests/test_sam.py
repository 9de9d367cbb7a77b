"""The sam annotator on the tiny SAM checkpoint (segment-anything's own classes, small ViT):
plumbing, batching, caching and Label Studio encoding, not mask quality (its weights are random).
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from PIL import Image

from preannot import Box, ConfigError, Context, Mask, Polygon, Prediction, Task, TaskFailed
from preannot.lsjson import region_to_result
from preannot_sam.annotator import SamAnnotator
from preannot_sam.geometry import mask_to_polygon


@pytest.fixture
def image_and_boxes(shapes, tmp_path):
    image, truth = shapes.draw_image(random.Random(4), 320, 240, max_shapes=4)
    path = tmp_path / "shapes.png"
    image.save(path)
    boxes = [Box(x=x0, y=y0, width=x1 - x0, height=y1 - y0, image_width=320, image_height=240,
                 label=shapes.CLASSES[c], score=0.9, id=f"b{i}")
             for i, (c, x0, y0, x1, y1) in enumerate(truth)]
    assert len(boxes) >= 2
    return path, boxes


def _sam(checkpoint, tmp_path, **options):
    context = Context(base_dir=tmp_path, cache_dir=tmp_path / "cache")
    return SamAnnotator("sam", {"checkpoint": str(checkpoint), "model_type": "vit_tiny",
                                "after": "yolo", **options}, context)


def _upstream(boxes):
    return {"yolo": [Prediction("t", "yolo", "v1", boxes)]}


def _count_encoder_calls(annotator) -> list[int]:
    calls = [0]
    annotator.sam.image_encoder.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def test_one_mask_per_box_with_its_label_matching_single_prompts(sam_checkpoint, tmp_path,
                                                                  image_and_boxes):
    from segment_anything import SamPredictor

    path, boxes = image_and_boxes
    sam = _sam(sam_checkpoint, tmp_path)
    calls = _count_encoder_calls(sam)
    [regions] = sam.annotate([Task("t", {"image": str(path)})], _upstream(boxes))
    assert calls[0] == 1  # one embedding for all the boxes
    assert [r.label for r in regions] == [b.label for b in boxes]
    assert [r.provenance["box"] for r in regions] == [b.id for b in boxes]
    assert all(isinstance(r, Mask) and r.mask.shape == (240, 320) for r in regions)
    # The batched decoder call gives what one prompt at a time gives.
    predictor = SamPredictor(sam.sam)
    predictor.set_image(np.asarray(Image.open(path).convert("RGB")))
    for region, box in zip(regions, boxes):
        masks, scores, _ = predictor.predict(box=np.array(box.xyxy), multimask_output=False)
        agree = (masks[0] == region.mask).mean()
        assert agree >= 0.999
        assert region.score == pytest.approx(float(scores[0]), abs=1e-3)
    assert any(0 < r.mask.mean() < 1 for r in regions)  # not a degenerate all/nothing mask


def test_rle_sent_to_label_studio_decodes_to_the_model_mask(sam_checkpoint, tmp_path,
                                                            image_and_boxes):
    from label_studio_sdk.converter.brush import decode_rle

    path, boxes = image_and_boxes
    [regions] = _sam(sam_checkpoint, tmp_path).annotate([Task("t", {"image": str(path)})],
                                                        _upstream(boxes))
    for region in regions:
        item = region_to_result(region)
        assert item["type"] == "brushlabels" and item["value"]["brushlabels"] == [region.label]
        w, h = item["original_width"], item["original_height"]
        assert (w, h) == (320, 240)
        decoded = decode_rle(item["value"]["rle"]).reshape(h, w, 4)[:, :, 3] > 0
        assert np.array_equal(decoded, region.mask)


def test_embedding_cache_is_hit_on_rerun_and_second_prompt(sam_checkpoint, tmp_path,
                                                           image_and_boxes):
    path, boxes = image_and_boxes
    task = [Task("t", {"image": str(path)})]
    first = _sam(sam_checkpoint, tmp_path)
    first_calls = _count_encoder_calls(first)
    before = first.annotate(task, _upstream(boxes))[0]
    assert first_calls[0] == 1 and first.cache.misses == 1
    rerun = _sam(sam_checkpoint, tmp_path)  # a fresh process would build a fresh annotator
    calls = _count_encoder_calls(rerun)
    after = rerun.annotate(task, _upstream(boxes))[0]
    single = rerun.annotate(task, _upstream(boxes[:1]))[0]  # a second prompt on the same image
    assert calls[0] == 0 and rerun.cache.hits == 1  # from disk once, then from memory
    assert rerun.embeddings.hits == 1
    assert all(np.array_equal(a.mask, b.mask) for a, b in zip(before, after))
    assert np.array_equal(single[0].mask, before[0].mask)
    uncached = _sam(sam_checkpoint, tmp_path, cache=False)
    uncached_calls = _count_encoder_calls(uncached)
    uncached.annotate(task, _upstream(boxes))
    assert uncached_calls[0] == 1


def test_automatic_mode_segments_without_prompts(sam_checkpoint, tmp_path, image_and_boxes):
    path, _ = image_and_boxes
    context = Context(base_dir=tmp_path, cache_dir=tmp_path / "cache")
    sam = SamAnnotator("everything", {"checkpoint": str(sam_checkpoint), "model_type": "vit_tiny",
                                      "points_per_side": 4, "pred_iou_thresh": 0.0,
                                      "stability_score_thresh": 0.0, "label": "thing"}, context)
    assert sam.mode == "auto" and sam.labels == ["thing"]
    [regions] = sam.annotate([Task("t", {"image": str(path)})], {})
    assert 0 < len(regions) <= 16 * 3  # at most three masks per grid point, after NMS
    assert all(r.label == "thing" and r.mask.shape == (240, 320) and r.mask.any() for r in regions)
    assert all("stability_score" in r.provenance for r in regions)


def test_polygon_output(sam_checkpoint, tmp_path, image_and_boxes):
    path, boxes = image_and_boxes
    sam = _sam(sam_checkpoint, tmp_path, output="polygon", polygon_tolerance=1.5)
    assert sam.emits == ("polygonlabels",)
    [regions] = sam.annotate([Task("t", {"image": str(path)})], _upstream(boxes))
    assert len(regions) == len(boxes)
    assert [r.label for r in regions] == [b.label for b in boxes]
    for region in regions:
        assert isinstance(region, Polygon) and len(region.points) >= 3
        assert all(0 <= x <= 320 and 0 <= y <= 240 for x, y in region.points)
        item = region_to_result(region)
        assert item["type"] == "polygonlabels" and item["original_width"] == 320


def test_mask_to_polygon_outlines_the_largest_part_within_tolerance():
    import cv2

    mask = np.zeros((120, 160), np.uint8)
    cv2.circle(mask, (70, 60), 40, 1, -1)
    cv2.rectangle(mask, (140, 5), (150, 15), 1, -1)  # a smaller second part
    points = mask_to_polygon(mask.astype(bool), tolerance=1.0)
    filled = np.zeros_like(mask)
    cv2.fillPoly(filled, [np.round(np.array(points)).astype(np.int32)], 1)
    circle = mask.copy()
    circle[:, 130:] = 0
    iou = (filled & circle).sum() / (filled | circle).sum()
    assert iou > 0.95
    assert 8 <= len(points) < len(mask_to_polygon(mask.astype(bool), tolerance=0))
    assert mask_to_polygon(np.zeros((10, 10), bool), 1.0) == []


def test_unreadable_image_fails_its_task_alone(sam_checkpoint, tmp_path, image_and_boxes):
    path, boxes = image_and_boxes
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    sam = _sam(sam_checkpoint, tmp_path)
    results = sam.annotate([Task("a", {"image": str(broken)}), Task("b", {"image": str(path)})],
                           {"yolo": [Prediction("a", "yolo", "v", boxes),
                                     Prediction("b", "yolo", "v", boxes)]})
    assert isinstance(results[0], TaskFailed) and str(broken) in str(results[0])
    assert len(results[1]) == len(boxes)


def test_configuration_errors_name_the_problem(sam_checkpoint, tmp_path):
    context = Context(base_dir=tmp_path)
    with pytest.raises(ConfigError, match="checkpoint"):
        SamAnnotator("s", {"model_type": "vit_tiny"}, context)
    with pytest.raises(ConfigError, match="not found"):
        SamAnnotator("s", {"checkpoint": "nope.pth"}, context)
    with pytest.raises(ConfigError, match="output"):
        SamAnnotator("s", {"checkpoint": str(sam_checkpoint), "output": "rle"}, context)
    with pytest.raises(ConfigError, match="after"):
        SamAnnotator("s", {"checkpoint": str(sam_checkpoint), "mode": "boxes"}, context)
    with pytest.raises(ValueError, match="vit_q"):
        SamAnnotator("s", {"checkpoint": str(sam_checkpoint), "model_type": "vit_q"}, context)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_autocast_matches_cpu(sam_checkpoint, tmp_path, image_and_boxes):
    path, boxes = image_and_boxes
    task = [Task("t", {"image": str(path)})]
    cpu = _sam(sam_checkpoint, tmp_path / "c", device="cpu", cache=False).annotate(task, _upstream(boxes))[0]
    gpu_sam = _sam(sam_checkpoint, tmp_path / "g", device="cuda", cache=False)
    assert gpu_sam.sam.device.type == "cuda"
    gpu = gpu_sam.annotate(task, _upstream(boxes))[0]
    assert [r.label for r in gpu] == [r.label for r in cpu]
    for a, b in zip(cpu, gpu):
        assert (a.mask == b.mask).mean() >= 0.98  # bf16/fp16 rounding flips only edge pixels


def test_embed_is_the_encoders_embedding_pooled_over_the_image(sam_checkpoint, tmp_path,
                                                               image_and_boxes):
    """``embed``: 256 numbers per image, the mean of the encoder's output over the 48 x 64
    cells that hold a 320 x 240 image (its 1024 x 768 resize; the padding rows left out), from
    the embedding cache a chained run filled; a copy embeds the same, a missing file fails alone."""
    from segment_anything import SamPredictor

    from preannot import can_embed

    path, boxes = image_and_boxes
    (tmp_path / "copy.png").write_bytes(path.read_bytes())
    tasks = [Task("t", {"image": str(path)}), Task("copy", {"image": str(tmp_path / "copy.png")}),
             Task("gone", {"image": str(tmp_path / "gone.png")})]
    sam = _sam(sam_checkpoint, tmp_path)
    sam.annotate(tasks[:1], _upstream(boxes))
    calls = _count_encoder_calls(sam)
    vectors = sam.embed(tasks)
    assert can_embed(sam) and calls[0] == 0  # the run's embedding, and the copy's from disk
    assert [len(v) for v in vectors[:2]] == [256, 256] and vectors[0] == vectors[1]
    assert isinstance(vectors[2], TaskFailed) and "gone.png" in str(vectors[2])
    predictor = SamPredictor(sam.sam)
    predictor.set_image(np.asarray(Image.open(path).convert("RGB")))
    assert tuple(predictor.input_size) == (768, 1024)
    own = predictor.features[0, :, :48, :64].mean(dim=(1, 2))
    assert np.allclose(vectors[0], own.numpy(), atol=1e-5)
    assert not np.allclose(vectors[0], predictor.features[0].mean(dim=(1, 2)).numpy(), atol=1e-5)
