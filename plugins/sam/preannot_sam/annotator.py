"""The ``sam`` annotator: Segment Anything masks from box prompts (chained after a detector),
from a point grid (automatic mode), or from the clicks and boxes a user draws in Label Studio's
editor (interactive, :meth:`SamAnnotator.interact`), as brush masks or polygons.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from preannot import (Annotator, Box, ConfigError, Mask, Point, Polygon, Prediction, Region, Task,
                      TaskFailed, digest, file_digest, locate_image, notice, open_image)

from .cache import Embedding, EmbeddingCache, Embeddings, image_digest
from .geometry import mask_to_polygon
from .models import load_sam

AUTO_OPTIONS = ("points_per_side", "points_per_batch", "pred_iou_thresh", "stability_score_thresh",
                "stability_score_offset", "box_nms_thresh", "crop_n_layers", "crop_nms_thresh",
                "crop_overlap_ratio", "crop_n_points_downscale_factor", "min_mask_region_area")
"""SamAutomaticMaskGenerator's thresholds, passed through from the options as they are named."""


class SamAnnotator(Annotator):
    type = "sam"
    description = "Segment Anything: masks for upstream boxes (chained) or for everything (auto)"
    reads = ("image",)
    emits = ("brushlabels", "polygonlabels")
    prompts = ("keypointlabels", "rectanglelabels")
    known_options = frozenset({"checkpoint", "model_type", "device", "output", "mode",
                               "polygon_tolerance", "cache", "memory_cache", "label", *AUTO_OPTIONS})
    MODES = ("boxes", "auto", "prompts")
    gpus = 1.0  # a Ray actor running it asks for a GPU where the cluster has one

    def __init__(self, name: str, options: Mapping[str, Any] | None = None, context=None) -> None:
        super().__init__(name, options, context)
        import torch

        opts = self.options
        if str(opts.get("device", "auto")).lower() == "cpu" and "gpus" not in (options or {}):
            self.gpus = 0.0
        if "checkpoint" not in opts:
            raise ConfigError(f"annotator {name!r} (sam): set 'checkpoint' to a SAM checkpoint file")
        self.checkpoint = self.context.path(opts["checkpoint"])
        if not self.checkpoint.is_file():
            raise ConfigError(f"annotator {name!r} (sam): checkpoint {self.checkpoint} not found")
        self.model_type = opts.get("model_type", "vit_h")
        self.output = opts.get("output", "brush")
        if self.output not in {"brush", "polygon"}:
            raise ConfigError(f"annotator {name!r} (sam): output must be 'brush' or 'polygon'")
        self.emits = ("brushlabels",) if self.output == "brush" else ("polygonlabels",)
        self.mode = opts.get("mode", "boxes" if self.after else "auto")
        if self.mode not in self.MODES:
            raise ConfigError(f"annotator {name!r} (sam): mode must be 'boxes', 'auto' or "
                              "'prompts' (only the editor's clicks and boxes)")
        if self.mode == "boxes" and not self.after:
            raise ConfigError(f"annotator {name!r} (sam): mode 'boxes' needs after = \"<detector>\"")
        self.tolerance = float(opts.get("polygon_tolerance", 1.0))
        self.device = str(opts.get("device", "auto"))
        if self.device == "auto":
            self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.weights_digest = file_digest(self.checkpoint, size=8)
        self.sam = load_sam(self.model_type, self.checkpoint, self.device)
        if self.sam.device.type == "cpu":
            notice(f"{name!r} runs SAM on the CPU, which is slow (seconds to minutes per image); "
                   "set device = \"cuda\" on a GPU machine")
        self.cache = (EmbeddingCache(self.context.cache_dir / "sam",
                                     f"{self.model_type}-{self.weights_digest}")
                      if opts.get("cache", True) else None)
        memory = opts.get("memory_cache", 8)
        if not isinstance(memory, int) or isinstance(memory, bool) or memory < 0:
            raise ConfigError(f"annotator {name!r} (sam): memory_cache must be a whole number of "
                              f"images (0 turns it off), not {memory!r}")
        self.embeddings = Embeddings(memory)
        self.lock = threading.RLock()
        """Held while the model or the embedding caches are used: ``preannot serve`` calls
        :meth:`interact` from several threads, and one encoder run at a time is what the
        machine can do anyway (a second prompt on the image being encoded then hits the cache)."""

    @property
    def labels(self) -> list[str]:
        """``labels`` (what clicks may be labeled, and chained masks are), with the automatic
        mode's ``label`` first."""
        if self.mode == "auto":
            return list(dict.fromkeys([self.options.get("label", "object"), *super().labels]))
        return super().labels

    def fingerprint(self) -> str:
        return digest(super().fingerprint(), self.weights_digest)

    def _autocast(self):
        import contextlib

        import torch

        if self.sam.device.type != "cuda":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)

    def annotate(self, tasks: Sequence[Task], upstream: Mapping[str, Sequence[Prediction]]
                 ) -> list[list[Region] | TaskFailed]:
        import numpy as np
        import torch

        results: list[list[Region] | TaskFailed] = []
        for index, task in enumerate(tasks):
            if self.mode == "prompts":
                results.append([])  # answers the editor's prompts only (interact)
            elif self.mode == "auto":
                image = open_image(task, self.field, self.context)
                if isinstance(image, TaskFailed):
                    results.append(image)
                    continue
                with self.lock, torch.inference_mode(), self._autocast():
                    results.append(self._auto(np.asarray(image)))
            else:
                boxes = [r for name in self.after for r in upstream[name][index].regions
                         if isinstance(r, Box)]
                results.append(self._from_boxes(task, boxes))
        return results

    def interact(self, task: Task, prompts: Sequence[Region]) -> list[Region] | TaskFailed:
        """One mask for the clicks (:class:`Point`, positive or negative) and box a user drew on
        one image in the editor, with the prompt's label and SAM's score.

        All points and the box go to the decoder together (the last box if there are several:
        SAM takes one). A single click is ambiguous (a shirt or the person wearing it), so SAM
        is asked for its three masks and the highest-scoring one is kept, as SAM's authors
        advise; with more prompts SAM's single mask is better and is taken as it is.
        Coordinates are scaled from the size the editor saw to the image's own size.
        The label is the box's, else the first positive click's. Other region types are
        ignored; no point and no box gives no region. Thread-safe (see :attr:`lock`).
        """
        import numpy as np
        import torch

        points = [p for p in prompts if isinstance(p, Point)]
        boxes = [b for b in prompts if isinstance(b, Box)]
        if not points and not boxes:
            return []
        with self.lock:
            predictor = self._predictor(task)
            if isinstance(predictor, TaskFailed):
                return predictor
            height, width = predictor.original_size
            box = boxes[-1] if boxes else None
            kwargs: dict[str, Any] = {"multimask_output": len(points) == 1 and box is None}
            if points:
                kwargs["point_coords"] = np.array(
                    [[p.x * width / (p.image_width or width), p.y * height / (p.image_height or height)]
                     for p in points], dtype=np.float32)
                kwargs["point_labels"] = np.array([int(p.positive) for p in points])
            if box is not None:
                sx, sy = width / (box.image_width or width), height / (box.image_height or height)
                x0, y0, x1, y1 = box.xyxy
                kwargs["box"] = np.array([x0 * sx, y0 * sy, x1 * sx, y1 * sy], dtype=np.float32)
            with torch.inference_mode():  # full precision: the decoder is cheap, and
                masks, scores, _ = predictor.predict(**kwargs)  # numpy has no bfloat16
        best = int(np.argmax(scores))
        positive = [p for p in points if p.positive]
        label = box.label if box is not None else (positive or points)[0].label
        provenance = {"prompt": {"points": sum(p.positive for p in points),
                                 "negative_points": sum(not p.positive for p in points),
                                 "box": box is not None}}
        return [self._region(masks[best], label, float(scores[best]), provenance,
                             box or _extent(points, width, height))]

    def embed(self, tasks: Sequence[Task]) -> list[list[float] | TaskFailed]:
        """The image encoder's embedding of each image, average-pooled over the cells that hold
        the image (SAM pads it to a square; the padding is left out): 256 numbers. It comes
        from the caches prompts and chained masks use, so selecting images a run has segmented
        encodes nothing again."""
        import math

        out: list[list[float] | TaskFailed] = []
        for task in tasks:
            with self.lock:
                embedding = self._embedding(task)
            if isinstance(embedding, TaskFailed):
                out.append(embedding)
                continue
            features = embedding.features[0]  # channels x grid x grid
            scale = features.shape[-1] / self.sam.image_encoder.img_size
            height, width = (math.ceil(side * scale) for side in embedding.input_size)
            out.append(features[:, :height, :width].float().mean(dim=(1, 2)).cpu().tolist())
        return out

    def _embedding(self, task: Task) -> Any:
        """The task's image embedding: from memory, else from disk, else from the encoder.

        The memory cache is keyed by the image's reference and its local file's identity
        (path, size, modification time), so a hit neither decodes nor hashes the image (0.3 s
        for a 12-megapixel JPEG on a 2-core CPU, a fifth of a prompt's decoder call there); an
        image downloaded from Label Studio keeps its cached file, so it hits too. The disk cache
        stays keyed by the decoded pixels, so one picture under two names is encoded once.
        A :class:`TaskFailed` for an image that cannot be read.
        """
        import numpy as np

        value = task.data.get(self.field)
        try:
            path = locate_image(value, self.context, task)
            stat = path.stat()
            key = digest(value, str(path), stat.st_size, stat.st_mtime_ns, size=16)
        except Exception:
            key = None  # open_image says why, in its words
        if key is not None and (hit := self.embeddings.get(key)) is not None:
            return hit
        image = open_image(task, self.field, self.context)
        if isinstance(image, TaskFailed):
            return image
        pixels = np.asarray(image)
        embedding = self._encode(pixels)
        if key is not None:
            self.embeddings.put(key, embedding)
        return embedding

    def _encode(self, pixels) -> Any:
        """The embedding of ``pixels``, from the disk cache when it holds it."""
        import torch
        from segment_anything import SamPredictor

        disk_key = image_digest(pixels) if self.cache else None
        cached = self.cache.get(disk_key) if self.cache else None
        if cached is not None:
            features, input_size = cached
            return Embedding(features.to(self.sam.device), input_size, pixels.shape[:2])
        predictor = SamPredictor(self.sam)
        with torch.inference_mode(), self._autocast():
            predictor.set_image(pixels)
        if self.cache:
            self.cache.put(disk_key, predictor.features, predictor.input_size)
        # float32 whatever the encoder's autocast gave: the same on every path (disk, memory)
        return Embedding(predictor.features.float(), tuple(predictor.input_size), pixels.shape[:2])

    def _predictor(self, task: Task) -> Any:
        """A predictor with the task's image embedding set, ready for prompts (or the
        :class:`TaskFailed` of an image that cannot be read). Called under :attr:`lock`."""
        from segment_anything import SamPredictor

        embedding = self._embedding(task)
        if isinstance(embedding, TaskFailed):
            return embedding
        predictor = SamPredictor(self.sam)
        predictor.features = embedding.features
        predictor.input_size = embedding.input_size
        predictor.original_size = embedding.original_size
        predictor.is_image_set = True
        return predictor

    def _from_boxes(self, task: Task, boxes: list[Box]) -> list[Region] | TaskFailed:
        """One mask per box, all boxes through the decoder in one call; each keeps its box's
        label. The image is read only when there are boxes (the detector has read it)."""
        import torch

        if not boxes:
            return []
        with self.lock:
            predictor = self._predictor(task)
            if isinstance(predictor, TaskFailed):
                return predictor
            with torch.inference_mode(), self._autocast():
                xyxy = torch.tensor([b.xyxy for b in boxes], dtype=torch.float32,
                                    device=self.sam.device)
                prompts = predictor.transform.apply_boxes_torch(xyxy, predictor.original_size)
                masks, scores, _ = predictor.predict_torch(None, None, boxes=prompts,
                                                           multimask_output=False)
                masks = masks[:, 0].cpu().numpy()
                scores = scores[:, 0].float().cpu().tolist()
        return [self._region(mask, box.label, score, {"box": box.id, "box_score": box.score}, box)
                for mask, box, score in zip(masks, boxes, scores)]

    def _auto(self, pixels) -> list[Region]:
        from segment_anything import SamAutomaticMaskGenerator

        settings = {k: self.options[k] for k in AUTO_OPTIONS if k in self.options}
        generator = SamAutomaticMaskGenerator(self.sam, output_mode="binary_mask", **settings)
        label = self.options.get("label", "object")
        return [self._region(m["segmentation"], label, float(m["predicted_iou"]),
                             {"stability_score": float(m["stability_score"])})
                for m in generator.generate(pixels)]

    def _region(self, mask, label: str, score: float, provenance: dict[str, Any],
                box: Box | None = None) -> Region:
        import numpy as np

        provenance = {"model": f"sam-{self.model_type}-{self.weights_digest}", **provenance}
        if self.output == "brush":
            return Mask(mask=mask, label=label, score=score, provenance=provenance)
        height, width = mask.shape
        points = mask_to_polygon(mask, self.tolerance)
        if not points:
            # A mask too thin for a ring (or empty): keep the region as its bounding rectangle
            # (or the prompt box), flagged, rather than dropping it.
            ys, xs = np.nonzero(mask)
            x0, y0, x1, y1 = ((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) if xs.size
                              else box.xyxy)
            points = [(float(x0), float(y0)), (float(x1), float(y0)), (float(x1), float(y1)),
                      (float(x0), float(y1))]
            provenance["outline"] = "rectangle"
        return Polygon(points=points, image_width=width, image_height=height, label=label,
                       score=score, provenance=provenance)


def _extent(points: Sequence[Point], width: int, height: int) -> Box:
    """The rectangle around the clicks: the outline of a mask too thin to trace."""
    xs = [p.x * width / (p.image_width or width) for p in points]
    ys = [p.y * height / (p.image_height or height) for p in points]
    return Box(x=min(xs), y=min(ys), width=max(xs) - min(xs) + 1, height=max(ys) - min(ys) + 1,
               image_width=width, image_height=height, label="")
