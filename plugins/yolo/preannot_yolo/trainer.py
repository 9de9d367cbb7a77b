"""The ``yolo`` trainer: fine-tunes an ultralytics YOLO detector on human-final boxes, so the next
model the ``yolo`` annotator runs has learned from the Label Studio corrections.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from preannot import ConfigError, Context, Example, Trainer

from .dataset import read_summary, write_dataset

OWN_ARGS = {"data", "project", "name", "exist_ok", "resume", "model"}
"""ultralytics arguments the trainer sets itself: 'train_args' may not change them."""
RESUME_ARGS = ("device", "workers", "batch", "patience")
"""Options a resumed run may change (the machine it runs on); the rest come from the checkpoint."""
FINISHED = "finished"
"""Marker written in the run folder once training ended: a rerun returns the model as it is."""


class YoloTrainer(Trainer):
    type = "yolo"
    description = "Fine-tunes an ultralytics YOLO detector on human boxes (rectanglelabels)"
    annotator = "yolo"
    learns = ("rectanglelabels",)
    known_options = frozenset({"model", "epochs", "imgsz", "batch", "device", "workers", "seed",
                               "patience", "train_args"})

    def __init__(self, name: str, options: Mapping[str, Any] | None = None,
                 context: Context | None = None) -> None:
        super().__init__(name, {"field": "image", **(options or {})}, context)
        extra = self.options.get("train_args", {})
        if not isinstance(extra, Mapping) or OWN_ARGS & set(extra):
            raise ConfigError(f"trainer {name!r} (yolo): 'train_args' must be a table of "
                              f"ultralytics train arguments other than {sorted(OWN_ARGS)}")

    def train(self, train: Sequence[Example], dev: Sequence[Example], work_dir: Path, *,
              parent: Path | None = None, log: Callable[[str], None] = print) -> Path:
        from ultralytics import YOLO

        work_dir = Path(work_dir).resolve()
        run = work_dir / "run"
        weights = run / "weights"
        last = weights / "last.pt"
        if (run / FINISHED).exists():
            log(f"{self.name}: already trained in {run}; keeping it")
        elif last.exists() and self._resumable(last):
            summary = read_summary(work_dir / "dataset")
            log(f"{self.name}: resuming the interrupted training in {run}"
                + (f": {summary.line()}" if summary else ""))
            YOLO(str(last)).train(resume=True, **{k: self.options[k] for k in RESUME_ARGS
                                                  if k in self.options})
        elif last.exists():
            log(f"{self.name}: the training in {run} had ended; keeping it")
        else:
            data, summary = write_dataset(train, dev, work_dir / "dataset", field=self.field,
                                          context=self.context,
                                          log=lambda m: log(f"{self.name}: {m}"))
            source = str(parent) if parent else self._model_source()
            log(f"{self.name}: training from {source}: {summary.line()}")
            YOLO(source).train(**self._settings(data, work_dir))
        best = weights / "best.pt"
        model = best if best.exists() else last
        if not model.exists():
            raise RuntimeError(f"trainer {self.name!r} (yolo): no weights in {weights} after "
                               "training")
        (run / FINISHED).write_text("training ended: a rerun returns weights/best.pt as it is\n")
        log(f"{self.name}: model {model}")
        return model

    def _model_source(self) -> str:
        model = str(self.options.get("model", "yolov8n.yaml"))
        local = self.context.path(model)
        return str(local) if local.exists() else model  # else a name ultralytics knows (yolo11n.pt)

    def _settings(self, data: Path, work_dir: Path) -> dict[str, Any]:
        opts = self.options
        settings: dict[str, Any] = {
            "data": str(data), "epochs": int(opts.get("epochs", 30)),
            "imgsz": int(opts.get("imgsz", 640)),
            "workers": int(opts.get("workers", 0)), "project": str(work_dir), "name": "run",
            "exist_ok": True, "plots": False, "verbose": False}
        settings.update({k: opts[k] for k in ("batch", "device", "seed", "patience") if k in opts})
        settings.update(opts.get("train_args", {}))
        return settings

    @staticmethod
    def _resumable(last: Path) -> bool:
        """Whether ``last`` is a checkpoint of an unfinished run (ultralytics strips the epoch from
        the final one; a run stopped after saving its last epoch has nothing left to do either).
        """
        import torch

        ckpt = torch.load(last, map_location="cpu", weights_only=False)
        epochs = int((ckpt.get("train_args") or {}).get("epochs", 0))
        return 0 <= int(ckpt.get("epoch", -1)) < epochs - 1
