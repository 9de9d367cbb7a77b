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
from ..evaluation.split import fraction, group_key, in_eval_split
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
    groups: dict[str, str] = field(default_factory=dict)
    """Task id -> the group key that decided its side (the task id itself without group_by)."""

    def sides(self) -> dict[str, dict[str, int]]:
        """Tasks and groups on each side of the split (the gate's report says them)."""
        out = {}
        for side, examples in (("train", self.train), ("dev", self.dev), ("eval", self.eval)):
            keys = {self.groups.get(e.task.id, e.task.id) for e in examples}
            out[side] = {"tasks": len(examples), "groups": len(keys)}
        return out

    @property
    def reviewed(self) -> int:
        return len(self.train) + len(self.dev) + len(self.eval)


def load_dataset(path: Path, *, learns: Sequence[str], field: str, eval_fraction: float = 0.2,
                 dev_fraction: float = 0.1, group_by: str | None = None) -> Dataset:
    """The examples of a corrections file: human-final regions of the types in ``learns``;
    with ``group_by`` (:func:`preannot.evaluation.split.group_key`) a group stays on one side
    of the evaluation split and of the dev slice."""
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
        group = group_key(key, task.data, group_by)
        data.groups[key] = group
        if in_eval_split(group, eval_fraction):
            data.eval.append(example)
        elif fraction(group, "preannot-dev") < dev_fraction:
            data.dev.append(example)
        else:
            data.train.append(example)
    return data
