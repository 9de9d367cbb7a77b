"""The run configuration: a ``preannot.toml`` kept with the data, overridden by command-line flags.

```toml
[input]
paths = ["data/emails.jsonl"]      # files or folders, relative to this file

[output]
path = "out/predictions.json"      # Label Studio import JSON (.json) or JSON lines (.jsonl)

[run]
batch_size = 256
workers = 1

[[annotators]]
name = "products"                  # becomes the model_version prefix
type = "rules"                     # an annotator type from `preannot plugins`
rules = "../../rules/product-ner"  # any further keys are the annotator's options
```
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .annotator import ConfigError, Context

DEFAULT_FILE = "preannot.toml"


@dataclass
class RunConfig:
    base_dir: Path
    inputs: list[Path] = field(default_factory=list)
    output: Path | None = None
    annotators: list[dict[str, Any]] = field(default_factory=list)
    batch_size: int = 256
    workers: int = 1
    raw: dict[str, Any] = field(default_factory=dict)
    """The whole file, for sections other commands read (Label Studio, ranking...)."""

    @property
    def state_dir(self) -> Path:
        """Where the ledger and caches live: ``.preannot/`` beside the config file."""
        return self.base_dir / ".preannot"

    @property
    def registry_dir(self) -> Path:
        """The model registry: ``[training] registry``, default ``.preannot/models``."""
        folder = self.raw.get("training", {}).get("registry")
        return _resolve(self.base_dir, folder) if folder else self.state_dir / "models"

    def context(self) -> Context:
        """What annotators and trainers are told about this run (paths, cache folder)."""
        return Context(base_dir=self.base_dir, cache_dir=self.state_dir / "cache")


def _resolve(base: Path, value: str | Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def load_config(path: Path | None) -> RunConfig:
    """Read a config file; with no path, ``./preannot.toml`` if present, else an empty config."""
    if path is None:
        default = Path.cwd() / DEFAULT_FILE
        if not default.exists():
            return RunConfig(base_dir=Path.cwd())
        path = default
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    base = path.resolve().parent
    config = RunConfig(base_dir=base, raw=raw)
    inputs = raw.get("input", {}).get("paths", [])
    config.inputs = [_resolve(base, p) for p in ([inputs] if isinstance(inputs, str) else inputs)]
    if out := raw.get("output", {}).get("path"):
        config.output = _resolve(base, out)
    run = raw.get("run", {})
    config.batch_size = int(run.get("batch_size", config.batch_size))
    config.workers = int(run.get("workers", config.workers))
    config.annotators = [dict(a) for a in raw.get("annotators", [])]
    for index, spec in enumerate(config.annotators):
        if "type" not in spec:
            raise ConfigError(f"{path}: annotator #{index + 1} has no 'type'")
        spec.setdefault("name", spec["type"])
    names = [a["name"] for a in config.annotators]
    if dupes := {n for n in names if names.count(n) > 1}:
        raise ConfigError(f"{path}: annotator names must be unique, repeated: {sorted(dupes)}")
    return config
