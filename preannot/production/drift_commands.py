"""`preannot drift`: check production against the calibration's tasks, and the alarm history."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from ..annotator import ConfigError
from ..engine.config import load_config
from ..commandline import config_option, need


@click.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def drift(config_path: Path | None, as_json: bool) -> None:
    """Does production still look like what the calibration was fitted on?

    Compares the last [drift] window production tasks (`review run`) with the tasks of the
    current calibration, per signal: words never seen and the TF-IDF distance (text), image
    statistics (images), the calibrated confidence and the region scores per annotator and
    label (KS, with PSI), the predicted label mix (chi-square), empty predictions, and how
    often reviewers kept a task whole (Fisher exact). All signals together raise a false alarm
    on a check with chance at most [drift] alpha (Holm). An alarm suspends auto-accept and
    raises the audit rate until a recalibration on post-drift data passes; the check and any
    alarm are recorded (the dashboard, `review status`). Also lists terms reviewers added that
    the reference never had, for `preannot ls suggest-rules`.
    """
    need("review")
    from . import drift_monitor as monitor
    from .calibrate import load
    try:
        config = load_config(config_path)
        checked = monitor.check(config, load(config))
        past = monitor.history(config)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps({**checked.to_json(), "alarms": past["alarms"],
                               "events": past["events"]}, indent=2))
        return
    click.echo(checked.headline)
    if checked.cleared:
        click.echo(f"alarm cleared: {checked.cleared}")
    click.echo(f"window: {checked.window} recent tasks; reference: {checked.reference} tasks of "
               f"calibration {checked.calibration or '(none: run `preannot review calibrate`)'}")
    for s in checked.signals:
        stat = "" if s.p_value is None else f"{s.test}, statistic {s.statistic:.4g}" + (
            f", PSI {s.psi:.3f}" if s.psi is not None else "") + ": "
        click.echo(f"  [{s.kind}] {s.name}: {stat}{s.verdict}")
    if checked.terms:
        click.echo("terms reviewers added that the reference never had:")
        for term, label, n in checked.terms:
            click.echo(f"  {term!r} as {label}: {n} times")
        click.echo("  a rules patch for them: preannot ls suggest-rules -c CONFIG --rules "
                   f"RULES_DIR -i {config.review.output_dir / 'harvest'}")
    for a in past["alarms"]:
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(a["raised"]))
        state = f"cleared: {a['cleared_by']}" if a["cleared"] else "ACTIVE"
        click.echo(f"alarm {a['id']} at {when} (task {a['raised_seq']}): "
                   f"{', '.join(a['signals'])}; {state}")
