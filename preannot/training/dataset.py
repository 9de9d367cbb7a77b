"""Harvested corrections as training examples, on their side of the fixed evaluation split
(:mod:`preannot.evaluation.split`): the gate's evaluation tasks are never trained on, however
many pulls come later. Only human-reviewed tasks count (status ``annotated``: skipped and
untouched tasks teach nothing).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..annotator import ConfigError, Example
from ..evaluation.corrections import read_corrections
from ..evaluation.split import fraction, in_eval_split
from ..lsjson import result_to_region, task_key
from ..model import Task


@dataclass
class Dataset:
    """The reviewed examples of one corrections file, split three ways."""

    train: list[Example] = field(default_factory=list)
    dev: list[Example] = field(default_factory=list)
    """A slice of the training side for the trainer's early stopping."""
    eval: list[Example] = field(default_factory=list)
    """The gate's split: never trained on."""
    errors: list[str] = field(default_factory=list)
    """Lines or regions that could not be read, with file:line or task."""

    @property
    def reviewed(self) -> int:
        return len(self.train) + len(self.dev) + len(self.eval)


def load_dataset(path: Path, *, learns: Sequence[str], field: str, eval_fraction: float = 0.2,
                 dev_fraction: float = 0.1) -> Dataset:
    """The examples of a corrections file: human-final regions of the types in ``learns``."""
    if not path.exists():
        raise ConfigError(f"{path} not found: run `preannot ls pull` first to harvest corrections")
    data = Dataset()
    for record in read_corrections(path, data.errors):
        if record.get("status") != "annotated":
            continue
        key = task_key(record.get("preannot_id"), record.get("task"))
        task = Task(key, record.get("data") or {}, f"task {record.get('task')}")
        if field not in task.data:
            data.errors.append(f"{path}: task {record.get('task')} has no {field!r} field")
            continue
        regions = []
        for item in record.get("human") or []:
            if item.get("type") not in learns:
                continue
            try:
                regions.append(result_to_region(item))
            except (KeyError, ValueError, TypeError) as exc:
                data.errors.append(f"{path}: task {record.get('task')} region {item.get('id')}: "
                                   f"{type(exc).__name__}: {exc}")
        example = Example(task, regions)
        if in_eval_split(key, eval_fraction):
            data.eval.append(example)
        elif fraction(key, "preannot-dev") < dev_fraction:
            data.dev.append(example)
        else:
            data.train.append(example)
    return data
