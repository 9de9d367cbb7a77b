"""Production review operations as plain functions: calibrate the current pipeline; run
production (each task released, routed to a Label Studio review project, or released and
audited); sync the reviews back (release what humans finished, score the audits); the status."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..annotator import Annotator, ConfigError, batches
from ..engine.config import RunConfig
from ..engine.host import Host, get_host
from ..engine.runner import annotate
from ..evaluation.corrections import classify, read_corrections
from ..evaluation.split import group_key, in_eval_split
from ..lsjson import prediction_to_ls, task_key
from ..model import Task
from . import page
from .calibration import FEATURES, Calibration, fit, in_fit_half, is_right, task_score
from ..training.flow import corrections_files
from ..training.fusion_gate import fitted_on
from ..training.registry import Registry, trained_on
from ..labelstudio import sync

CALIBRATION, PAGE = "calibration.json", "calibration.html"
Log = Callable[[str], None]


@dataclass
class Calibrated:
    calibration: Calibration
    verdict: str
    """One sentence: the threshold and its guarantee, or why nothing is auto-accepted."""
    more_reviews: int | None
    """Without a threshold: about how many more reviewed tasks the guarantee needs."""
    failed: int
    """Evaluation tasks an annotator failed on (always routed, so left out)."""
    path: Path
    page: Path


def evaluation_records(config: RunConfig, built: list[Annotator], version: str
                       ) -> tuple[list[dict[str, Any]], int]:
    """Corrections records of the reviewed tasks that no model of the pipeline learned from
    (the harvest's and the production review's: the evaluation split, and every task reviewed
    since the current models were trained, as their ``trained.txt`` says; never one a learned
    fusion's combiner was fitted on) with the pipeline's own predictions of them, made now,
    classified against the humans' final regions; and how many tasks failed."""
    records: dict[str, dict[str, Any]] = {}
    errors: list[str] = []
    trained = trained_on(config.annotators, Registry(config.registry_dir))
    fitted = fitted_on(config)
    for path in corrections_files(config):
        for record in read_corrections(path, errors):
            key = task_key(record.get("preannot_id"), record.get("task"))
            unseen = key not in fitted and (
                in_eval_split(group_key(key, record.get("data"), config.training.group_by),
                              config.training.eval_fraction)
                or (trained is not None and key not in trained))
            if record.get("status") == "annotated" and unseen:
                records.setdefault(key, record)
    if not records:
        raise ConfigError(f"no reviewed evaluation task in {config.training.corrections}: run "
                          "`preannot ls pull` first to harvest reviews")
    out, failed = [], 0
    for chunk in batches(list(records.items()), config.batch_size):
        tasks = [Task(key, dict(r.get("data") or {}), f"task {r.get('task')}") for key, r in chunk]
        for (key, record), done in zip(chunk, annotate(built, tasks)):
            if done.failure is not None:
                failed += 1
                continue
            shown = [prediction_to_ls(p) for p in done.predictions]
            result = [item for p in shown for item in p["result"]]
            human = [{k: v for k, v in h.items() if k not in ("classification", "matched")}
                     for h in record.get("human") or []]
            out.append(classify({"id": record.get("task"), "data": record.get("data"),
                                 "meta": {"preannot_id": key}, "annotations": [{"result": human}],
                                 "predictions": [{"model_version": version, "result": result,
                                                  "score": task_score(shown)}]},
                                thresholds=config.harvest.thresholds))
    return out, failed


def calibrate(config: RunConfig, *, host: Host | None = None,
              built: list[Annotator] | None = None) -> Calibrated:
    """Fit the calibration of the pipeline as configured now on the reviewed evaluation tasks,
    predicted by it (never trained on), choose the threshold, and store both in ``[review]
    output_dir`` under the pipeline's version."""
    if built is None:
        built = sync.annotators(config, host or get_host())
    version = sync.pipeline_version(config, built)
    if not built or not version:
        raise ConfigError("nothing to calibrate: configure [[annotators]] in preannot.toml")
    records, failed = evaluation_records(config, built, version)
    settings = config.review
    calibration = fit(records, version, target=settings.target_precision, delta=settings.delta)
    more = None
    if calibration.threshold is None and calibration.needed is not None:
        # every new review is unseen while the models say what they learned from; else only
        # the evaluation split's share of them counts (see evaluation_records)
        known = trained_on(config.annotators, Registry(config.registry_dir)) is not None
        share = 1.0 if known else config.training.eval_fraction
        more = math.ceil(max(0, calibration.needed - len(records)) / share)
    verdict = _verdict(calibration, more, len(records))
    out = settings.output_dir / CALIBRATION
    stored = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {"versions": {}}
    stored["versions"][version] = calibration.to_json()
    stored["current"] = version
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(stored, indent=2), encoding="utf-8")
    tmp.replace(out)
    from .drift_monitor import write_reference  # the drift monitor's reference: these tasks
    write_reference(config, calibration, records)
    testing = [r for r in records if not in_fit_half(r)]
    probs = [calibration.probability(r.get("predicted") or [], r.get("predicted_score"))
             for r in testing]
    shown = page.write(calibration, probs, [is_right(r) for r in testing],
                       settings.output_dir / PAGE, verdict)
    return Calibrated(calibration, verdict, more, failed, out, shown)


def recalibrate_if_used(config: RunConfig, log: Log, built: list[Annotator] | None = None
                        ) -> Calibrated | None:
    """After a promotion or a rollback, when production review is in use (a calibration
    exists): calibrate the new pipeline version at once, so that `review run` never applies a
    threshold fitted on another version."""
    if not (config.review.output_dir / CALIBRATION).exists():
        return None
    try:
        done = calibrate(config, built=built)
    except (ConfigError, ImportError) as exc:
        log(f"production review not recalibrated ({exc}): run `preannot review calibrate`; "
            "until then every task goes to review")
        return None
    log(f"production review recalibrated for {done.calibration.model_version}: {done.verdict}")
    return done


def recalibrate_if_stale(config: RunConfig, log: Log) -> Calibrated | None:
    """When production review is in use and the pipeline as configured now is a version with
    no calibration (its annotators changed without a promotion: a fusion that re-learned from
    a harvest, an edited config), calibrate it, as a promotion would."""
    if not (config.review.output_dir / CALIBRATION).exists():
        return None
    built = sync.annotators(config, get_host())
    version = sync.pipeline_version(config, built)
    if version is None or load(config, version) is not None:
        return None
    log(f"the pipeline is now {version}, which has no calibration yet")
    return recalibrate_if_used(config, log, built)


def load(config: RunConfig, version: str | None = None) -> Calibration | None:
    """The stored calibration of ``version`` (default: the latest one made); None: never, or
    made with other features by an earlier preannot (`review calibrate` makes it again)."""
    path = config.review.output_dir / CALIBRATION
    if not path.exists():
        return None
    stored = json.loads(path.read_text(encoding="utf-8"))
    found = stored["versions"].get(version or stored.get("current"))
    if not found or len(found.get("low") or FEATURES) != len(FEATURES):
        return None
    return Calibration.from_json(found)


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
            f"reviewed evaluation tasks now, an error rate of {c.top_error_rate:.1%} among the "
            "most confident)")

