"""`preannot review`: production review commands: calibrate, run, sync, status."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from ..annotator import ConfigError
from ..engine.config import load_config
from ..commandline import after_harvest, config_option, need, progress_bar

err = Console(stderr=True)


@click.group()
def review() -> None:
    """Production review: release only what is provably right, send the rest to humans."""


@review.command()
@config_option
def calibrate(config_path: Path | None) -> None:
    """Fit the probability that a task is right, and the auto-accept threshold.

    Learns from the reviewed tasks of the evaluation split (never trained on; from `ls pull`
    and `review sync`), predicted now by the pipeline as configured: half fit the calibrator,
    half test thresholds. The threshold guarantees precision >= [review] target_precision with
    confidence 1 - [review] delta (exact Clopper-Pearson bounds, tested in a fixed sequence);
    with too few reviews nothing is auto-accepted and the command says how many more it needs.
    Writes calibration.json (one calibration per pipeline version) and calibration.html in
    [review] output_dir (default review/ beside the config). A promotion recalibrates by itself.
    """
    need("review")
    from . import calibrate as operations
    try:
        config = load_config(config_path)
        done = operations.calibrate(config)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    c = done.calibration
    err.print(f"[bold]{escape(c.model_version)}[/]: {c.fit_tasks + c.test_tasks} reviewed "
              f"evaluation tasks ({c.fit_tasks} fitted the calibrator, {c.test_tasks} tested "
              "thresholds)", highlight=False)
    err.print(done.verdict, style="green" if c.threshold is not None else "yellow",
              markup=False, highlight=False)
    if done.failed:
        err.print(f"{done.failed} evaluation tasks failed in an annotator and were left out "
                  "(such tasks always go to review)", highlight=False)
    err.print(f"wrote {done.path} and {done.page}", markup=False, highlight=False)


def _print_run(report) -> None:
    if report.suspended:
        err.print(report.suspended, style="bold red", markup=False, highlight=False)
    d = report.decided
    err.print(f"[green]decided {sum(d.values())} new tasks[/]: {d['auto']} released "
              f"automatically, {d['audit']} released and audited, {d['route']} sent to review"
              + (f" (calibration {escape(report.calibration)})" if report.calibration else
                 " (no calibration: run `preannot review calibrate`)"), highlight=False)
    for reason, count in report.reasons.most_common():
        err.print(f"  to review, {reason}: {count}", markup=False, highlight=False)
    if report.changed:
        names = ", ".join(report.changed[:10]) + (
            f" and {len(report.changed) - 10} more" if len(report.changed) > 10 else "")
        err.print(f"{len(report.changed)} tasks decided before came back with other content and "
                  f"kept their first decision (a new id decides them again): {names}",
                  style="yellow", markup=False, highlight=False)
    err.print(f"{report.routed} tasks reached the review project"
              + (f", {report.waiting} wait for it" if report.waiting else ""), highlight=False)
    if report.failed_records:
        err.print(f"{report.failed_records} input records could not be read (see `preannot run`)",
                  style="yellow", highlight=False)
    for notice in report.notices:
        err.print(notice, style="yellow", markup=False, highlight=False)
    if report.delivery:
        _print_delivery(report.delivery)
    if report.synced:
        _print_sync(report.synced)
    if report.drift:
        err.print(report.drift.headline, style="bold red" if report.drift.alarm else None,
                  highlight=False, markup=False)


def _print_delivery(delivery) -> None:
    err.print(f"released {delivery.delivered} records to the sink"
              + (f"; {delivery.pending} wait for the next pass" if delivery.pending else ""),
              highlight=False)
    if delivery.down:
        err.print(f"sink down: {delivery.down}", style="yellow", markup=False, highlight=False)
    for key, message in delivery.failed[:10]:
        err.print(f"  not released {key}: {message}", style="red", markup=False,
                  highlight=False)


def _undelivered(delivery) -> bool:
    """Records stay in the outbox (refused, or the sink down): the command exits 3."""
    return bool(delivery and delivery.pending)


def _print_sync(synced) -> None:
    err.print(f"review project: {synced.fetched} changed tasks pulled, {synced.released} "
              f"reviewed tasks queued for release, {synced.audited} audits came back",
              highlight=False)
    if synced.unknown:
        err.print(f"  {synced.unknown} reviewed tasks there were not routed by `review run` "
                  "(left alone)", highlight=False)


@review.command("run")
@click.argument("inputs", nargs=-1, type=click.Path(path_type=Path))
@config_option
@click.option("--watch", "watch_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Keep watching this folder for new .txt files or images, a pass every "
                   "--interval seconds (Ctrl-C stops; a rerun goes on where it stopped).")
@click.option("--interval", type=click.FloatRange(0.1), default=10.0, show_default=True,
              help="Seconds between passes with --watch.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
def run_command(inputs: tuple[Path, ...], config_path: Path | None, watch_dir: Path | None,
                interval: float, no_progress: bool) -> None:
    """Pre-annotate INPUTS (default: [input] paths) and release, route or audit each task.

    A task whose calibrated probability reaches the threshold of `review calibrate` is
    released to the sink ([review] sink: a JSONL file, or an HTTP endpoint); a random
    [review] audit_rate share of those also goes to the review project, to measure the
    precision achieved. The rest goes to the review project in Label Studio, ranked: low
    probability, a label or input unlike the calibration, a task an annotator failed on, no
    calibration yet, or auto-accept suspended by failing audits. Then the reviews are synced
    (`review sync`). Each task is decided once and released at most once: a rerun, a crash or
    a server that is down loses nothing and releases nothing twice; a task that comes back
    under its id with other content keeps its first decision, and is named. Exit status 3
    when records stay undelivered (the sink refused them or is down).
    """
    need("review")
    from . import review_pass as production
    from ..labelstudio import sync
    try:
        config = load_config(config_path)
        if inputs or watch_dir:  # else [input] paths
            config.inputs = [p.resolve() for p in inputs]
        if watch_dir:
            watch_dir.mkdir(parents=True, exist_ok=True)
            config.inputs.append(watch_dir.resolve())
        client, down = sync.connect_later(config)
        if down:
            err.print(f"{down}: going on; what goes to humans waits for it", style="yellow",
                      markup=False, highlight=False)
        while True:
            with progress_bar("pre-annotating", no_progress) as bar:
                task = bar.add_task("run", total=None)
                report = production.run(config, client, progress=lambda n, total: bar.update(
                    task, advance=n, total=total))
            _print_run(report)
            if not watch_dir:
                break
            time.sleep(interval)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        err.print("stopped: decisions and releases so far are saved; run again to go on")
        sys.exit(130)
    if _undelivered(report.synced.delivery if report.synced else report.delivery):
        sys.exit(3)


@review.command("sync")
@config_option
def sync_command(config_path: Path | None) -> None:
    """Pull the review project, release every task a human finished, score the audits.

    Incremental (the harvest's watermark). Each reviewed task is released once, with who
    reviewed it and when; reviewed tasks become training data (review/harvest/corrections.jsonl),
    auto-accepted ones never do. With [training] retrain_after = N, the models are retrained
    once N more tasks were reviewed (the gate decides; a promotion recalibrates), as after
    `preannot ls pull`. Exit status 3 when records stay undelivered (the sink refused them or
    is down): they wait for the next sync.
    """
    need("review")
    from . import review_pass as production
    from ..labelstudio import sync
    try:
        config = load_config(config_path)
        synced = production.sync_reviews(config, sync.connect(config))
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    _print_sync(synced)
    if synced.delivery:
        _print_delivery(synced.delivery)
    after_harvest(config)
    if _undelivered(synced.delivery):
        sys.exit(3)


@review.command("status")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def status_command(config_path: Path | None, as_json: bool) -> None:
    """Tasks seen, released, routed, reviewed and waiting; the precision the audits show,
    with its exact interval; whether auto-accept is suspended. Writes review/status.html."""
    need("review")
    from . import review_pass as production
    try:
        config = load_config(config_path)
        figures = production.status(config)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    page = production.write_dashboard(config, figures)
    if as_json:
        click.echo(json.dumps(figures, indent=2))
        return
    t, p = figures["tasks"], figures["realised_precision"]
    click.echo(figures["headline"])
    click.echo(figures["drift"]["headline"])
    click.echo(f"tasks: {t['seen']} seen, {t['auto']} released automatically, {t['audit']} "
               f"released and audited, {t['routed']} routed, {t['reviewed']} reviewed, "
               f"{t['waiting']} waiting for a human")
    r = figures["released"]
    click.echo(f"released: {r['delivered']}, waiting for the sink: {r['pending']}")
    if p:
        click.echo(f"realised precision (audits): {p['value']} ({p['right']} of {p['audited']}), "
                   f"{p['confidence']:.0%} interval [{p['low']}, {p['high']}]; target "
                   f"{figures['target_precision']}")
    else:
        click.echo("realised precision: no audit reviewed yet")
    click.echo(f"dashboard: {page}")
