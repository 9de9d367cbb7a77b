"""Human-final boxes as an ultralytics detection data set: what the ``yolo`` trainer trains on.

Images are re-encoded as their oriented pixels (EXIF applied, as Label Studio shows them), so the
boxes, which are in those pixels, match the file ultralytics reads whatever it does with EXIF.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from preannot import Box, Context, Example, TaskFailed, hold_out, open_image


@dataclass
class Summary:
    """What went into the data set, logged by the trainer and kept beside it."""

    train: int = 0
    val: int = 0
    boxes: int = 0
    labels: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """One line per image left out: the task and why."""
    dropped_boxes: int = 0
    """Boxes with no area inside the image (nothing to learn from)."""
    val_from: str = "from dev"

    def line(self) -> str:
        return (f"{self.train + self.val} images ({self.train} train, {self.val} val "
                f"{self.val_from}), {self.boxes} boxes, {len(self.labels)} labels "
                f"({', '.join(self.labels)}), {len(self.skipped)} skipped"
                + (f", {self.dropped_boxes} empty boxes dropped" if self.dropped_boxes else ""))


def yolo_line(box: Box, cls: int) -> str | None:
    """``class cx cy w h`` normalised; a rotated box becomes its upright bounding box (YOLO
    detection boxes are upright). None when nothing of the box lies inside the image.
    """
    w_img, h_img = float(box.image_width), float(box.image_height)
    theta = math.radians(box.rotation or 0.0)  # Label Studio: clockwise about the top-left corner
    cos, sin = math.cos(theta), math.sin(theta)
    corners = [(box.x + dx * cos - dy * sin, box.y + dx * sin + dy * cos)
               for dx, dy in ((0, 0), (box.width, 0), (box.width, box.height), (0, box.height))]
    x0 = min(max(min(x for x, _ in corners), 0.0), w_img)
    x1 = min(max(max(x for x, _ in corners), 0.0), w_img)
    y0 = min(max(min(y for _, y in corners), 0.0), h_img)
    y1 = min(max(max(y for _, y in corners), 0.0), h_img)
    if x1 - x0 <= 0 or y1 - y0 <= 0 or w_img <= 0 or h_img <= 0:
        return None
    return (f"{cls} {(x0 + x1) / 2 / w_img:.6f} {(y0 + y1) / 2 / h_img:.6f} "
            f"{(x1 - x0) / w_img:.6f} {(y1 - y0) / h_img:.6f}")


def write_dataset(train: Sequence[Example], dev: Sequence[Example], root: Path, *, field: str,
                  context: Context, log: Callable[[str], None] = print) -> tuple[Path, Summary]:
    """Write ``root``/images, labels and data.yaml (its ``names`` are the sorted human labels, so
    the model's classes are the Label Studio labels); return data.yaml and the summary.
    """
    from rich.console import Console
    from rich.progress import track

    summary = Summary()
    if not dev:
        train, dev = hold_out(train, 5)  # a fifth
        summary.val_from = "held out of train: no dev split"
    boxes = {id(e): [r for r in e.regions if isinstance(r, Box)] for e in (*train, *dev)}
    summary.labels = sorted({b.label for bs in boxes.values() for b in bs})
    if not summary.labels:
        raise ValueError("no human boxes to learn from (no rectanglelabels region in the examples)")
    index = {label: i for i, label in enumerate(summary.labels)}

    shutil.rmtree(root, ignore_errors=True)  # a fresh build: no stale images or label caches
    console = Console(stderr=True)
    for split, examples in (("train", train), ("val", dev)):
        images, labels = root / "images" / split, root / "labels" / split
        images.mkdir(parents=True)
        labels.mkdir(parents=True)
        for n, example in enumerate(track(examples, description=f"data set ({split})",
                                          console=console, transient=True)):
            image = open_image(example.task, field, context)
            if isinstance(image, TaskFailed):
                summary.skipped.append(f"{example.task.source or example.task.id}: {image}")
                log(f"skipped {summary.skipped[-1]}")
                continue
            lines = [yolo_line(b, index[b.label]) for b in boxes[id(example)]]
            summary.dropped_boxes += lines.count(None)
            kept = [line for line in lines if line]
            summary.boxes += len(kept)
            image.save(images / f"{n:06d}.jpg", quality=95)
            (labels / f"{n:06d}.txt").write_text("".join(line + "\n" for line in kept))
            setattr(summary, split, getattr(summary, split) + 1)
    if not summary.train:
        raise ValueError(f"no training image could be read ({len(summary.skipped)} skipped)")
    val = "images/val"
    if not summary.val:  # every held-out image failed: validate on the training images
        val, summary.val_from = "images/train", "readable: validating on train"
    names = "".join(f"  {i}: {json.dumps(label)}\n" for i, label in enumerate(summary.labels))
    data = root / "data.yaml"
    data.write_text(f"path: {json.dumps(str(root))}\ntrain: images/train\nval: {val}\n"
                    f"names:\n{names}")
    (root / "summary.json").write_text(json.dumps(asdict(summary), indent=1))
    return data, summary


def read_summary(root: Path) -> Summary | None:
    """The summary of a data set written earlier (a resumed training logs it again)."""
    try:
        return Summary(**json.loads((root / "summary.json").read_text()))
    except (OSError, ValueError, TypeError):
        return None
