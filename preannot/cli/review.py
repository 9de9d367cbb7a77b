"""`preannot review`: production review commands (calibrate, for now)."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from ..annotator import ConfigError
from ..engine.config import load_config
from .ls import config_option

err = Console(stderr=True)


@click.group()
def review() -> None:
    """Production review: release only what is provably right, send the rest to humans."""


@review.command()
@config_option
@click.option("--model-version", help="Calibrate this pipeline version (default: the version "
                                      "the configured annotators push).")
def calibrate(config_path: Path | None, model_version: str | None) -> None:
    """Fit the probability that a task is right, and the auto-accept threshold.

    Learns from reviewed tasks of the evaluation split (never trained on) whose predictions
    are of the pipeline's current version, as `ls pull` harvested them: half fit the
    calibrator, half test thresholds. The threshold guarantees precision >= [review]
    target_precision with confidence 1 - [review] delta (exact Clopper-Pearson bounds, tested
    in a fixed sequence); with too few reviews nothing is auto-accepted and the command says
    how many more it needs. Writes calibration.json and calibration.html in [review]
    output_dir (default review/ beside the config).
    """
    try:
        import scipy  # noqa: F401
        import sklearn  # noqa: F401
    except ImportError as exc:
        raise click.ClickException(f"review needs scikit-learn and scipy ({exc.name} is "
                                   "missing): pip install 'preannot[review]'") from None
    from ..loop import review as operations
    try:
        config = load_config(config_path)
        done = operations.calibrate(config, model_version=model_version)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    c = done.calibration
    err.print(f"[bold]{c.model_version}[/]: {c.fit_tasks + c.test_tasks} reviewed evaluation "
              f"tasks ({c.fit_tasks} fitted the calibrator, {c.test_tasks} tested thresholds)",
              highlight=False)
    err.print(done.verdict, style="green" if c.threshold is not None else "yellow",
              highlight=False)
    if done.other_versions:
        err.print(f"{done.other_versions} reviewed evaluation tasks hold predictions of other "
                  "versions and were left out: push this version's predictions "
                  "(`preannot ls push`) and pull again to use them", highlight=False)
    err.print(f"wrote {done.path} and {done.page}", highlight=False)
