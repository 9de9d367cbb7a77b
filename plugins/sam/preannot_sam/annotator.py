"""The ``sam`` annotator: Segment Anything masks from box prompts (chained after a detector) or
from a point grid (automatic mode), as brush masks or polygons.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from preannot import (Annotator, Box, ConfigError, Mask, Polygon, Prediction, Region, Task, TaskFailed,
                      digest, file_digest, notice, open_image)

from .cache import EmbeddingCache, image_digest
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
    known_options = frozenset({"checkpoint", "model_type", "device", "output", "mode",
                               "polygon_tolerance", "cache", "label", *AUTO_OPTIONS})
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
        if self.mode not in {"boxes", "auto"}:
            raise ConfigError(f"annotator {name!r} (sam): mode must be 'boxes' or 'auto'")
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

    @property
    def labels(self) -> list[str]:
        if self.mode == "auto":
            return [self.options.get("label", "object")]
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
            image = open_image(task, self.field, self.context)
            if isinstance(image, TaskFailed):
                results.append(image)
                continue
            pixels = np.asarray(image)
            with torch.inference_mode(), self._autocast():
                if self.mode == "auto":
                    results.append(self._auto(pixels))
                else:
                    boxes = [r for name in self.after for r in upstream[name][index].regions
                             if isinstance(r, Box)]
                    results.append(self._from_boxes(pixels, boxes))
        return results

    def _predictor(self, pixels):
        """A predictor with this image's embedding set, from the cache when it holds it."""
        from segment_anything import SamPredictor

        predictor = SamPredictor(self.sam)
        key = image_digest(pixels) if self.cache else None
        cached = self.cache.get(key) if self.cache else None
        if cached is None:
            predictor.set_image(pixels)
            if self.cache:
                self.cache.put(key, predictor.features, predictor.input_size)
        else:
            features, input_size = cached
            predictor.features = features.to(self.sam.device)
            predictor.input_size = input_size
            predictor.original_size = pixels.shape[:2]
            predictor.is_image_set = True
        return predictor

    def _from_boxes(self, pixels, boxes: list[Box]) -> list[Region]:
        """One mask per box, all boxes through the decoder in one call; each keeps its box's label."""
        import torch

        if not boxes:
            return []
        predictor = self._predictor(pixels)
        xyxy = torch.tensor([b.xyxy for b in boxes], dtype=torch.float32, device=self.sam.device)
        prompts = predictor.transform.apply_boxes_torch(xyxy, pixels.shape[:2])
        masks, scores, _ = predictor.predict_torch(None, None, boxes=prompts, multimask_output=False)
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
