"""Where `review sync` keeps the production reviews' corrections: training learns from them
(the ``training_corrections`` hook), the drift monitor reads the labels humans gave."""

from __future__ import annotations

from pathlib import Path

from ..engine.config import RunConfig

HARVEST = "harvest"
"""The folder, in ``[review] output_dir``, of the review project's harvest."""


def review_harvest_dir(config: RunConfig) -> Path:
    return config.review.output_dir / HARVEST


def reviewed_corrections(config: RunConfig) -> Path:
    return review_harvest_dir(config) / "corrections.jsonl"
