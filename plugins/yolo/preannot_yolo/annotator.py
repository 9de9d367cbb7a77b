"""The ``yolo`` annotator: ultralytics YOLO detections as Label Studio boxes (or polygons for
segmentation models), in pixels of the image as Label Studio shows it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from preannot import (Annotator, Box, ConfigError, Polygon, Prediction, Region, Task, TaskFailed,
                      batches, digest, file_digest, notice, open_image)


class YoloAnnotator(Annotator):
    type = "yolo"
    description = "Object detection with an ultralytics YOLO model (boxes; polygons for -seg models)"
    reads = ("image",)
    emits = ("rectanglelabels", "polygonlabels")
    known_options = frozenset({"model", "device", "half", "batch", "conf", "iou", "imgsz",
                               "classes", "keep_unmapped", "polygons"})
    gpus = 1.0  # a Ray actor running it asks for a GPU where the cluster has one

    def __init__(self, name: str, options: Mapping[str, Any] | None = None, context=None) -> None:
        super().__init__(name, options, context)
        opts = self.options
        if str(opts.get("device", "")).lower() in {"cpu", "mps"} and "gpus" not in (options or {}):
            self.gpus = 0.0
        if "model" not in opts:
            raise ConfigError(f"annotator {name!r} (yolo): set 'model' (a .pt file, a model name "
                              "such as yolo11n.pt, or a .yaml)")
        batch = opts.get("batch")
        if batch is not None and (not isinstance(batch, int) or isinstance(batch, bool)
                                  or batch < 1):
            raise ConfigError(f"annotator {name!r} (yolo): 'batch' must be a whole number of "
                              f"images of 1 or more, not {batch!r}")
        self.mapping: dict[str, str] = dict(opts.get("classes", {}))
        self.keep_unmapped = bool(opts.get("keep_unmapped", False))
        self.polygons = bool(opts.get("polygons", False))
        self.emits = ("polygonlabels",) if self.polygons else ("rectanglelabels",)
        self.model = self._load(str(opts["model"]))
        names = self.model.names
        if unknown := set(self.mapping) - set(names.values()):
            raise ConfigError(f"annotator {name!r} (yolo): 'classes' maps {sorted(unknown)}, which "
                              f"the model does not have (it has {sorted(names.values())})")
        if self.polygons and self.model.task != "segment":
            raise ConfigError(f"annotator {name!r} (yolo): polygons = true needs a segmentation "
                              f"(-seg) model; {opts['model']} is a {self.model.task} model")
        self.class_ids = None if self.keep_unmapped or not self.mapping else sorted(
            i for i, n in names.items() if n in self.mapping)
        self.half = bool(opts.get("half", False))
        if self.half and not self._on_gpu():
            notice(f"{name!r}: half = true is for GPUs; running in full precision on the CPU")
            self.half = False

    def _load(self, model: str):
        import torch  # noqa: F401  (ultralytics needs it; imported here so errors name it)
        from ultralytics import YOLO

        local = self.context.path(model)
        source = str(local) if local.exists() else model
        try:
            loaded = YOLO(source)
        except Exception as exc:
            raise ConfigError(f"annotator {self.name!r} (yolo): cannot load model {model!r}: "
                              f"{type(exc).__name__}: {exc}") from exc
        weights = local if local.exists() else getattr(loaded, "ckpt_path", None)
        # a packaged architecture yaml (untrained): its definition is what there is
        self.weights_digest = (file_digest(weights, size=8) if weights
                               else digest(loaded.model.yaml))
        self.model_path = str(weights or source)
        return loaded

    def _on_gpu(self) -> bool:
        import torch

        device = str(self.options.get("device", "")).lower()
        return torch.cuda.is_available() and device not in {"cpu", "mps"}

    @property
    def labels(self) -> list[str]:
        names = list(self.model.names.values())
        if self.keep_unmapped or not self.mapping:
            return sorted({self.mapping.get(n, n) for n in names})
        return sorted(set(self.mapping.values()))

    def fingerprint(self) -> str:
        return digest(super().fingerprint(), self.weights_digest)

    def annotate(self, tasks: Sequence[Task], upstream: Mapping[str, Sequence[Prediction]]
                 ) -> list[list[Region] | TaskFailed]:
        results: list[list[Region] | TaskFailed | None] = [None] * len(tasks)
        images, slots = [], []
        for i, task in enumerate(tasks):
            image = open_image(task, self.field, self.context)
            if isinstance(image, TaskFailed):
                results[i] = image
            else:
                images.append(image)
                slots.append(i)
        if images:
            # In-memory images go to the model as one batch per predict call; 'batch' caps it
            # (GPU memory), the runner's batch_size still sets how many tasks come at once.
            opts = self.options
            settings = {k: opts[k] for k in ("device", "conf", "iou", "imgsz") if k in opts}
            if self.half:  # ultralytics 8.4 spells half=True as quantize=16
                from ultralytics.cfg import DEFAULT_CFG_DICT

                settings.update({"quantize": 16} if "quantize" in DEFAULT_CFG_DICT else {"half": True})
            for batch in batches(zip(slots, images), int(opts.get("batch", len(images)))):
                predicted = self.model.predict([image for _, image in batch],
                                               classes=self.class_ids, verbose=False, **settings)
                for (i, _), result in zip(batch, predicted):
                    results[i] = self._regions(result)
        return results

    def embed(self, tasks: Sequence[Task]) -> list[list[float] | TaskFailed]:
        """The model's pooled backbone features of each image (ultralytics' ``model.embed``:
        the last layer before the detection head, average-pooled)."""
        results: list[list[float] | TaskFailed] = []
        images, slots = [], []
        for i, task in enumerate(tasks):
            image = open_image(task, self.field, self.context)
            results.append(image if isinstance(image, TaskFailed) else [])
            if not isinstance(image, TaskFailed):
                images.append(image)
                slots.append(i)
        opts = self.options
        settings = {k: opts[k] for k in ("device", "imgsz") if k in opts}
        for batch in batches(list(zip(slots, images)), int(opts.get("batch", 16))):
            made = self.model.embed([image for _, image in batch], verbose=False, **settings)
            for (i, _), vector in zip(batch, made):
                results[i] = vector.detach().float().cpu().reshape(-1).tolist()
        return results

    def _regions(self, result) -> list[Region]:
        height, width = result.orig_shape
        boxes = result.boxes
        xyxy = boxes.xyxy.cpu().tolist()
        confs = boxes.conf.cpu().tolist()
        classes = boxes.cls.cpu().int().tolist()
        outlines = result.masks.xy if self.polygons and result.masks is not None else None
        regions: list[Region] = []
        for k, ((x0, y0, x1, y1), conf, cls) in enumerate(zip(xyxy, confs, classes)):
            name = result.names[cls]
            if name not in self.mapping and not self.keep_unmapped and self.mapping:
                continue  # not asked for: the 'classes' option lists the wanted ones
            common = dict(label=self.mapping.get(name, name), score=conf,
                          provenance={"class": name, "model": self.model_path})
            if outlines is not None:
                points = [(float(x), float(y)) for x, y in outlines[k]]
                if len(points) < 3:  # a sliver ultralytics could not outline: keep it as its box
                    points = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
                    common["provenance"]["outline"] = "rectangle"
                regions.append(Polygon(points=points, image_width=width, image_height=height,
                                       **common))
            else:
                regions.append(Box(x=x0, y=y0, width=x1 - x0, height=y1 - y0, image_width=width,
                                   image_height=height, **common))
        return regions
