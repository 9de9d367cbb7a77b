"""Label-spec changes: map old annotations forward, and tell which ones cannot be.

A project's label set changes (``[labels] rename = {OLD = "NEW"}``, ``merge = {NEW = ["A",
"B"]}``): annotations made under the old spec are read with their labels mapped forward. A label
an earlier labeling config had, that the current one lacks and neither map names (it was split
into several, or dropped), cannot be mapped: an annotation holding it is *incompatible*, and is
not used for metrics, training, the gate or calibration until someone re-annotates the task.
Labels no config ever listed (dynamic labels) are never judged.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

LABEL_KEYS = ("labels", "rectanglelabels", "brushlabels", "polygonlabels", "choices",
              "keypointlabels", "ellipselabels", "taxonomy")


@dataclass(frozen=True)
class LabelMap:
    """``forward``: old label -> current label; ``removed``: labels of earlier labeling configs
    that the current one lacks and ``forward`` does not map."""

    forward: Mapping[str, str] = field(default_factory=dict)
    removed: frozenset[str] = frozenset()

    @classmethod
    def of(cls, rename: Mapping[str, str] | None = None,
           merge: Mapping[str, list[str]] | None = None,
           current: frozenset[str] | None = None, earlier: frozenset[str] = frozenset()
           ) -> LabelMap:
        """From the ``[labels]`` settings and the labels of the config now and of earlier ones."""
        forward = dict(rename or {})
        for new, olds in (merge or {}).items():
            for old in olds:
                forward[old] = new
        removed = frozenset(earlier - current - set(forward)) if current is not None else frozenset()
        return cls(forward, removed)

    def __bool__(self) -> bool:
        return bool(self.forward) or bool(self.removed)

    def map_result(self, result: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The result items with their labels mapped forward (copies; the input is untouched)."""
        if not self.forward:
            return result
        out = []
        for item in result:
            value = item.get("value") if isinstance(item, dict) else None
            key = item.get("type") if isinstance(item, dict) else None
            if isinstance(value, dict) and isinstance(value.get(key), list):
                item = copy.deepcopy(item)
                item["value"][key] = [self.forward.get(v, v) for v in item["value"][key]]
            out.append(item)
        return out

    def map_task(self, task: Mapping[str, Any]) -> dict[str, Any]:
        """The task with every annotation's and prediction's labels mapped forward."""
        task = dict(task)
        if not self.forward:
            return task
        for key in ("annotations", "predictions"):
            task[key] = [{**a, "result": self.map_result(a.get("result") or [])}
                         if isinstance(a, dict) else a for a in task.get(key) or []]
        return task

    def unknown(self, annotation: Mapping[str, Any]) -> set[str]:
        """Labels of a (mapped) annotation that the current spec no longer has."""
        if not self.removed:
            return set()
        found = set()
        for item in annotation.get("result") or []:
            value = item.get("value") if isinstance(item, dict) else None
            key = item.get("type") if isinstance(item, dict) else None
            if key in LABEL_KEYS and isinstance(value, dict):
                found.update(str(v) for v in value.get(key) or [] if isinstance(v, str))
        return found & self.removed

    def compatible(self, annotation: Mapping[str, Any]) -> bool:
        return not self.unknown(annotation)
