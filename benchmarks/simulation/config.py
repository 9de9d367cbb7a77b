"""One builder for a project folder's ``preannot.toml``: the tests and the benchmarks describe
their project in a few keyword arguments instead of each writing the same TOML by hand."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def rules(folder: str = "rules") -> dict[str, Any]:
    """The dictionary annotator on the rules folder ``folder``."""
    return {"name": "rules", "type": "rules", "rules": folder}


def learned_pipeline(trainer: str = "ner", **fusion: Any) -> list[dict[str, Any]]:
    """The flywheel's pipeline: the rules, a spaCy NER model from the registry (trainer
    ``trainer``) and their learned fusion (``fusion``: more of its options)."""
    return [rules(), {"name": "model", "type": "spacy-ner", "model": f"registry:{trainer}"},
            {"name": "fused", "type": "fusion", "after": ["rules", "model"],
             "policy": "learned", **fusion}]


def write_config(folder: Path, *, inputs: Sequence[str], annotators: Sequence[Mapping[str, Any]],
                 trainers: Sequence[Mapping[str, Any]] = (), **tables: Mapping[str, Any]) -> Path:
    """Write ``folder/preannot.toml`` (predictions to ``out/predictions.json``) and return its
    path. ``tables``: the other tables (``training``, ``labelstudio``, ``harvest``, ``review``,
    ``drift``...), written last and in the order given, so a test can rewrite the last one."""
    parts = [table("input", {"paths": list(inputs)}),
             table("output", {"path": "out/predictions.json"})]
    parts += [table("[annotators]", a) for a in annotators]
    parts += [table("[trainers]", t) for t in trainers]
    parts += [table(name, settings) for name, settings in tables.items()]
    path = folder / "preannot.toml"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def table(name: str, settings: Mapping[str, Any]) -> str:
    return f"[{name}]\n" + "".join(f"{key} = {value(v)}\n" for key, v in settings.items())


def value(v: Any) -> str:
    """A TOML value: JSON writes strings, numbers, booleans and their arrays the way TOML reads
    them."""
    return json.dumps(v)
