"""Production review operations as plain functions: calibrate the current pipeline (routing,
release, sinks and audits build on it)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from ..annotator import ConfigError
from ..engine.config import RunConfig
from ..engine.host import Host, get_host
from ..evaluation.corrections import read_corrections
from ..evaluation.split import in_eval_split
from ..lsjson import task_key
from ..review import page
from ..review.calibration import Calibration, fit, in_fit_half, is_right
from . import sync

CALIBRATION, PAGE = "calibration.json", "calibration.html"


@dataclass
class Calibrated:
    calibration: Calibration
    verdict: str
    """One sentence: the threshold and its guarantee, or why nothing is auto-accepted."""
    more_reviews: int | None
    """Without a threshold: about how many more reviewed tasks the guarantee needs."""
    other_versions: int
    """Reviewed evaluation tasks whose predictions are of another pipeline version."""
    path: Path
    page: Path


def calibrate(config: RunConfig, *, model_version: str | None = None,
              host: Host | None = None) -> Calibrated:
    """Fit the calibration of the pipeline's current version on the reviewed evaluation tasks
    (never trained on), choose the threshold, and store both in ``[review] output_dir``."""
    version = model_version or sync.pipeline_version(
        config, sync.annotators(config, host or get_host()))
    if not version:
        raise ConfigError("which pipeline version? configure [[annotators]], or give "
                          "--model-version as the predictions in Label Studio name it")
    path = config.training.corrections
    if not path.exists():
        raise ConfigError(f"{path} not found: run `preannot ls pull` first to harvest reviews")
    errors: list[str] = []
    records, others = [], 0
    for record in read_corrections(path, errors):
        key = task_key(record.get("preannot_id"), record.get("task"))
        if record.get("status") != "annotated" or not in_eval_split(
                key, config.training.eval_fraction):
            continue
        if record.get("model_version") == version:
            records.append(record)
        else:
            others += 1
    settings = config.review
    calibration = fit(records, version, target=settings.target_precision, delta=settings.delta)
    more = None
    if calibration.threshold is None and calibration.needed is not None:
        more = math.ceil(max(0, calibration.needed - len(records)) / config.training.eval_fraction)
    verdict = _verdict(calibration, more, len(records))
    out = settings.output_dir / CALIBRATION
    stored = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {"versions": {}}
    stored["versions"][version] = calibration.to_json()
    stored["current"] = version
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(stored, indent=2), encoding="utf-8")
    tmp.replace(out)
    testing = [r for r in records if not in_fit_half(r)]
    probs = [calibration.probability(r.get("predicted") or []) for r in testing]
    shown = page.write(calibration, probs, [is_right(r) for r in testing],
                       settings.output_dir / PAGE, verdict)
    return Calibrated(calibration, verdict, more, others, out, shown)


def load(config: RunConfig, version: str) -> Calibration | None:
    """The stored calibration of ``version`` (None: never calibrated)."""
    path = config.review.output_dir / CALIBRATION
    if not path.exists():
        return None
    found = json.loads(path.read_text(encoding="utf-8"))["versions"].get(version)
    return Calibration.from_json(found) if found else None


def _verdict(c: Calibration, more: int | None, reviewed: int) -> str:
    target, confidence = c.target_precision, 1 - c.delta
    if (chosen := c.chosen) is not None:
        return (f"auto-accept tasks whose calibrated probability is at least "
                f"{chosen.threshold:.4f}: precision >= {target} with confidence {confidence:.2f} "
                f"({chosen.tasks} of {c.test_tasks} test tasks above it, {chosen.errors} wrong: "
                f"precision >= {1 - chosen.upper_error:.4f}; coverage "
                f"{chosen.tasks / c.test_tasks:.0%})")
    if more is None:
        return (f"nothing is auto-accepted: the most confident half of the test tasks is wrong "
                f"{c.top_error_rate:.1%} of the time, more than the {1 - target:.1%} a precision "
                f"of {target} allows; better models first")
    return (f"nothing is auto-accepted yet: the guarantee (precision >= {target} with "
            f"confidence {confidence:.2f}) needs about {more} more reviewed tasks ({reviewed} "
            f"reviewed evaluation tasks with this version's predictions now, an error rate of "
            f"{c.top_error_rate:.1%} among the most confident)")
