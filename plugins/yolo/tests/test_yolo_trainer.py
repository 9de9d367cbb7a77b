"""The yolo trainer on generated shapes: human boxes in, a model the yolo annotator runs out.

Real ultralytics training on the CPU (about a minute in all). The fine-tuning parent is the
demo model of conftest.py (built once, about three minutes, when the cache is empty).
"""

from __future__ import annotations

import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.ops import box_iou

from preannot import Box, ConfigError, Context, Example, Task, hold_out
from preannot_yolo.annotator import YoloAnnotator
from preannot_yolo.dataset import write_dataset
from preannot_yolo.trainer import YoloTrainer

LABELS = ["Round", "Box", "Delta"]
"""The Label Studio labels of the shapes' circle, square and triangle: renamed, and sorted in an
order unlike the parent model's classes, so the fine-tuned model must learn them from the boxes."""
SIZES = ((160, 160), (200, 150), (150, 200))
RECALL_BAR, PRECISION_BAR = 0.70, 0.70
"""At IoU >= 0.5 with the right label, conf 0.25, on 40 fresh images; measured 0.845 and 0.845
after 12 epochs on 192 images (the parent's classes, read with these labels, would score 0)."""


def _examples(shapes, folder, count, seed, sizes=SIZES):
    """``count`` shapes images as tasks with their human boxes, and the truth as drawn."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for i in range(count):
        width, height = sizes[i % len(sizes)]
        image, truth = shapes.draw_image(rng, width, height)
        path = folder / f"{i:04d}.png"
        image.save(path)
        boxes = [Box(label=LABELS[c], x=x0, y=y0, width=x1 - x0, height=y1 - y0, image_width=width,
                     image_height=height) for c, x0, y0, x1, y1 in truth]
        made.append((Example(Task(f"{folder.name}-{i}", {"image": str(path)}, source=path.name),
                             boxes), truth))
    return made


@pytest.fixture(scope="module")
def finetuned(yolo_weights, shapes, tmp_path_factory):
    """The demo model fine-tuned on 192 human-labelled images, plus a corrupt and a missing one
    (about 40 s on 2 cores)."""
    root = tmp_path_factory.mktemp("yolo-trainer")
    examples = [e for e, _ in _examples(shapes, root / "images", 192, seed=11)]
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    broken = Task("broken", {"image": str(root / "broken.png")}, source="broken.png")
    examples[5:5] = [Example(broken, [Box(label="Round", x=1, y=1, width=9, height=9,
                                          image_width=160, image_height=160)]),
                     Example(Task("gone", {"image": str(root / "gone.png")}), [])]
    trainer = YoloTrainer("shapes", {"epochs": 12, "imgsz": 160, "batch": 16, "device": "cpu",
                                     "train_args": {"freeze": 10, "warmup_epochs": 0,
                                                    "close_mosaic": 3}})
    logs: list[str] = []
    best = trainer.train(examples, [], root / "work", parent=yolo_weights, log=logs.append)
    return SimpleNamespace(best=best, logs=logs, work=root / "work", trainer=trainer,
                           parent=yolo_weights, examples=examples)


def _match(regions, truth):
    """True positives at IoU >= 0.5 with the right label, greedy by score."""
    if not regions or not truth:
        return 0
    iou = box_iou(torch.tensor([list(r.xyxy) for r in regions]),
                  torch.tensor([list(t[1:]) for t in truth]))
    free, hits = set(range(len(truth))), 0
    for i in sorted(range(len(regions)), key=lambda k: -regions[k].score):
        candidates = [j for j in free
                      if iou[i, j] >= 0.5 and LABELS[truth[j][0]] == regions[i].label]
        if candidates:
            free.remove(max(candidates, key=lambda j: iou[i, j]))
            hits += 1
    return hits


def test_finetuned_model_finds_held_out_shapes_with_the_label_studio_labels(finetuned, shapes,
                                                                            tmp_path):
    assert finetuned.best == finetuned.work / "run" / "weights" / "best.pt"
    yolo = YoloAnnotator("det", {"model": str(finetuned.best), "conf": 0.25})
    assert sorted(yolo.model.names.values()) == sorted(LABELS) and yolo.labels == sorted(LABELS)

    held_out = _examples(shapes, tmp_path / "held-out", 40, seed=4242)
    results = yolo.annotate([e.task for e, _ in held_out], {})
    hits = sum(_match(regions, truth) for regions, (_, truth) in zip(results, held_out))
    predicted = sum(map(len, results))
    total = sum(len(truth) for _, truth in held_out)
    print(f"held-out: recall {hits}/{total} = {hits / total:.3f}, "
          f"precision {hits}/{predicted} = {hits / max(predicted, 1):.3f}")
    assert {r.label for regions in results for r in regions} <= set(LABELS)
    assert hits / total >= RECALL_BAR, f"recall {hits}/{total}"
    assert hits / predicted >= PRECISION_BAR, f"precision {hits}/{predicted}"


def test_unreadable_images_are_logged_by_task_and_skipped(finetuned):
    skipped = [line for line in finetuned.logs if "skipped" in line and "cannot read image" in line]
    assert len(skipped) == 2
    assert any("broken.png: cannot read image" in line for line in skipped)
    assert any("gone: cannot read image" in line and "gone.png" in line for line in skipped)
    [summary] = [line for line in finetuned.logs if "training from" in line]
    assert f"training from {finetuned.parent}:" in summary
    # 192 readable; a fifth of the 194 examples (38, by task id) held out, less the unreadable.
    assert "192 images" in summary and "3 labels (Box, Delta, Round)" in summary
    assert "2 skipped" in summary
    dataset = finetuned.work / "dataset"
    images = {split: len(list((dataset / "images" / split).iterdir()))
              for split in ("train", "val")}
    held = hold_out(finetuned.examples, 5)[1]  # the trainer's own split, by task id
    unreadable = {"broken", "gone"}
    assert len(held) == 38
    assert sum(images.values()) == 192
    assert images["val"] == len([e for e in held if e.task.id not in unreadable])


def test_a_finished_work_dir_returns_the_model_without_retraining(finetuned):
    before = finetuned.best.read_bytes()
    csv = (finetuned.work / "run" / "results.csv").read_text()
    logs: list[str] = []
    # No examples at all: rebuilding the data set would fail, training would change the files.
    again = finetuned.trainer.train([], [], finetuned.work, log=logs.append)
    assert again == finetuned.best and again.read_bytes() == before
    assert (finetuned.work / "run" / "results.csv").read_text() == csv
    assert any("already trained" in line for line in logs)


class Interrupted(Exception):
    """Stands for a Ctrl-C or a crash in the middle of a training."""


def test_an_interrupted_training_resumes_where_it_stopped(shapes, tmp_path, monkeypatch):
    from ultralytics.utils.callbacks import base

    examples = [e for e, _ in _examples(shapes, tmp_path / "images", 12, seed=5, sizes=((64, 64),))]
    trainer = YoloTrainer("scratch", {"epochs": 3, "imgsz": 64, "batch": 4, "device": "cpu"})
    work = tmp_path / "work"
    last = work / "run" / "weights" / "last.pt"

    def stop_after_first_epoch(ultralytics_trainer):
        raise Interrupted(f"stopped after epoch {ultralytics_trainer.epoch + 1}")

    with monkeypatch.context() as patch:  # ultralytics copies its default callbacks per model
        patch.setitem(base.default_callbacks, "on_model_save",
                      [*base.default_callbacks["on_model_save"], stop_after_first_epoch])
        with pytest.raises(Interrupted, match="after epoch 1"):
            trainer.train(examples, [], work, log=lambda _: None)
    assert last.exists() and not (work / "run" / "finished").exists()
    assert torch.load(last, map_location="cpu", weights_only=False)["epoch"] == 0

    epochs, logs = [], []
    monkeypatch.setitem(base.default_callbacks, "on_train_epoch_start",
                        [*base.default_callbacks["on_train_epoch_start"],
                         lambda t: epochs.append(t.epoch)])
    model = trainer.train(examples, [], work, log=logs.append)
    assert epochs == [1, 2], "the resumed run trains the epochs left, not all of them again"
    assert any("resuming the interrupted training" in line and "12 images" in line for line in logs)
    rows = (work / "run" / "results.csv").read_text().splitlines()[1:]
    assert [int(float(row.split(",")[0])) for row in rows] == [1, 2, 3]
    assert model == work / "run" / "weights" / "best.pt" and (work / "run" / "finished").exists()

    # Ended, but the marker lost (a crash right after): the weights are kept, nothing retrains.
    (work / "run" / "finished").unlink()
    model.unlink()
    stamp = last.stat().st_mtime_ns
    logs.clear()
    assert trainer.train(examples, [], work, log=logs.append) == last
    assert last.stat().st_mtime_ns == stamp and any("had ended" in line for line in logs)


def _exif_rotated_jpeg(displayed: Image.Image, path) -> None:
    """Store ``displayed`` turned on its side with EXIF orientation 6 ("rotate 90 CW to view")."""
    exif = Image.Exif()
    exif[0x0112] = 6
    displayed.transpose(Image.Transpose.ROTATE_90).save(path, quality=95, exif=exif)


def test_the_data_set_holds_the_images_as_label_studio_shows_them(shapes, tmp_path):
    displayed, _ = shapes.draw_image(random.Random(1), 200, 120)
    _exif_rotated_jpeg(displayed, tmp_path / "sideways.jpg")
    plain, _ = shapes.draw_image(random.Random(2), 100, 100)
    plain.save(tmp_path / "plain.png")

    def box(label, x, y, w, h, size=(200, 120), rotation=0.0):
        return Box(label=label, x=x, y=y, width=w, height=h, image_width=size[0],
                   image_height=size[1], rotation=rotation)

    train = [Example(Task("t1", {"image": str(tmp_path / "sideways.jpg")}), [
        box("Delta", 20, 30, 40, 60),
        box("Box", 150, 100, 100, 100),            # runs off the image: clipped to it
        box("Box", 300, 10, 10, 10),               # wholly outside: dropped
        box("Round", 100, 20, 40, 20, rotation=90)])]  # upright bounds: x 80..100, y 20..60
    dev = [Example(Task("d1", {"image": str(tmp_path / "plain.png")}),
                   [box("Zed", 10, 10, 50, 50, size=(100, 100))])]
    data, summary = write_dataset(train, dev, tmp_path / "ds", field="image",
                                  context=Context(base_dir=tmp_path), log=lambda _: None)
    assert summary.labels == ["Box", "Delta", "Round", "Zed"]  # a label seen only in dev counts
    assert (summary.train, summary.val, summary.boxes, summary.dropped_boxes) == (1, 1, 4, 1)
    assert '0: "Box"' in data.read_text() and '3: "Zed"' in data.read_text()

    saved = Image.open(tmp_path / "ds" / "images" / "train" / "000000.jpg")
    assert saved.size == (200, 120) and saved.getexif().get(0x0112) in (None, 1)
    diff = (np.asarray(saved.convert("L"), dtype=float)
            - np.asarray(displayed.convert("L"), dtype=float))
    assert np.abs(diff).mean() < 6  # the displayed pixels, JPEG noise aside
    lines = [[float(v) for v in line.split()] for line in
             (tmp_path / "ds" / "labels" / "train" / "000000.txt").read_text().splitlines()]
    expected = [[1, 40 / 200, 60 / 120, 40 / 200, 60 / 120],
                [0, 175 / 200, 110 / 120, 50 / 200, 20 / 120],
                [2, 90 / 200, 40 / 120, 20 / 200, 40 / 120]]
    assert torch.allclose(torch.tensor(lines), torch.tensor(expected), atol=1e-5)
    val = (tmp_path / "ds" / "labels" / "val" / "000000.txt").read_text()
    assert val == "3 0.350000 0.350000 0.500000 0.500000\n"


def test_options_and_registration():
    from preannot.engine.host import load_host

    trainer = YoloTrainer("t", {})
    assert trainer.field == "image" and trainer.learns == ("rectanglelabels",)
    assert trainer.annotator == "yolo" and YoloTrainer("t", {"field": "photo"}).field == "photo"
    with pytest.raises(ConfigError,
                       match=r"trainer 't' \(yolo\): unknown option 'epoch' \(known: .*\bepochs\b"):
        YoloTrainer("t", {"epoch": 3})
    with pytest.raises(ConfigError, match="train_args"):
        YoloTrainer("t", {"train_args": {"data": "x.yaml"}})
    assert load_host().trainer_types()["yolo"][1] is YoloTrainer


def test_no_boxes_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no human boxes"):
        YoloTrainer("t", {}).train([Example(Task("a", {"image": "a.png"}), [])], [], tmp_path)
    assert not (tmp_path / "run").exists()  # failed before any training


def test_when_no_dev_image_can_be_read_it_validates_on_train(shapes, tmp_path):
    [(example, _)] = _examples(shapes, tmp_path / "images", 1, seed=3)
    dev = [Example(Task("lost", {"image": str(tmp_path / "lost.png")}), [])]
    logs: list[str] = []
    data, summary = write_dataset([example], dev, tmp_path / "ds", field="image",
                                  context=Context(base_dir=tmp_path), log=logs.append)
    assert "val: images/train" in data.read_text() and summary.val == 0
    assert len(summary.skipped) == 1 and logs == [f"skipped {summary.skipped[0]}"]
    assert "lost: cannot read image" in logs[0] and "validating on train" in summary.line()
