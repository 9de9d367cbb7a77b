"""``preannot ls``: the Label Studio commands (push, up; harvest adds its own here)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ..annotator import ConfigError
from ..config import RunConfig, load_config
from ..plugins import get_host, report_failures
from ..ranking import load_ranker
from ..runner import configured_annotators, run as run_pipeline
from .client import URL_ENV, Client, Connection, connect
from .push import (PushSummary, annotate_project, ensure_project, model_version_of,
                   push_tasks, read_import_file)
from .server import local_server, running_local

err = Console(stderr=True)
config_option = click.option("-c", "--config", "config_path",
                             type=click.Path(path_type=Path, dir_okay=False),
                             help="Config file (default: ./preannot.toml if present).")


@click.group()
def ls() -> None:
    """Label Studio: push ranked pre-annotations, bring up a local server.

    The server comes from LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY, or the [labelstudio]
    table of preannot.toml (url, and api_key_env or api_key_file; never the token itself).
    """


def _connect(config: RunConfig) -> Client:
    """The configured server; with none configured, the local one `ls up` started for this
    config, while it runs."""
    settings = config.raw.get("labelstudio", {})
    if not (os.environ.get(URL_ENV) or settings.get("url")):
        if local := running_local(config.state_dir / "labelstudio"):
            return Client(local)  # running_local has just checked its token
    return connect(settings, config.base_dir)


def _push(config: RunConfig, client: Client, project: str | None, input_file: Path | None,
          existing: bool, no_progress: bool, unlabeled: bool = False) -> PushSummary:
    """Everything `ls push` and `ls up` share: project, annotators, ranking, the push itself."""
    settings = config.raw.get("labelstudio", {})
    host = get_host()
    report_failures(host)
    annotators = configured_annotators(config, host)[1] if config.annotators else []
    ranker = load_ranker(config.raw.get("ranking"), host)
    label_config = None
    if settings.get("label_config"):
        label_config = (config.base_dir / settings["label_config"]).read_text(encoding="utf-8")
    project = project or settings.get("project")
    title = settings.get("title") or f"preannot {config.base_dir.name}"
    project_id = ensure_project(client, project, title=title, annotators=annotators,
                                label_config=label_config)
    with Progress(TextColumn("[bold]pushing"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=err, disable=no_progress) as bar:
        bar_task = bar.add_task("push", total=None)

        def progress(n: int) -> None:
            bar.update(bar_task, advance=n)

        if existing:
            if not annotators:
                raise ConfigError("--existing needs [[annotators]] in the config to run")
            return annotate_project(client, project_id, annotators, ranker=ranker,
                                    batch_size=config.batch_size, unlabeled_only=unlabeled,
                                    progress=progress)
        if input_file is None:
            summary = run_pipeline(config, host=host)
            if summary.failed:
                err.print(f"[yellow]{summary.failed} records failed in the run[/] (see "
                          "`preannot run` for details); pushing the rest")
            input_file = config.output
        version = model_version_of(annotators) if annotators and settings.get("combine_versions", True) else None
        return push_tasks(client, project_id, read_import_file(input_file),
                          model_version=settings.get("model_version") or version,
                          ranker=ranker, progress=progress)


def repredict(config: RunConfig, no_progress: bool = False) -> None:
    """After a promotion or a rollback: fresh predictions, from the annotators as configured
    now, for the project's tasks no human has touched; the project's model version follows.
    Says what to run later when the server cannot be reached."""
    if not config.raw.get("labelstudio", {}).get("project"):
        return
    try:
        client = _connect(config)
        _report(_push(config, client, None, None, True, no_progress, unlabeled=True), client.url)
    except ConfigError as exc:
        err.print(f"[yellow]Label Studio not updated[/]: {exc}\n  once it is reachable, run "
                  "`preannot ls push --existing --unlabeled`")


def _report(summary: PushSummary, url: str) -> None:
    err.print(f"[green]project {summary.project_id}[/] {url}/projects/{summary.project_id}: "
              f"{summary.created} tasks created, {summary.predicted} given predictions, "
              f"{summary.unchanged} already up to date; model_version {summary.model_version}")
    for source, reason in summary.failures[:20]:
        err.print(f"[red]not pushed[/] {source}: {reason}")
    if len(summary.failures) > 20:
        err.print(f"... and {len(summary.failures) - 20} more not pushed")


@ls.command()
@click.argument("input_file", required=False, type=click.Path(path_type=Path, dir_okay=False))
@config_option
@click.option("-p", "--project", help="Project id or title (created with that title if absent).")
@click.option("--existing", is_flag=True,
              help="Pre-annotate the tasks already in the project instead of importing tasks.")
@click.option("--unlabeled", is_flag=True,
              help="With --existing: only tasks no human has annotated or skipped yet.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
def push(input_file: Path | None, config_path: Path | None, project: str | None, existing: bool,
         unlabeled: bool, no_progress: bool) -> None:
    """Push pre-annotations to Label Studio as predictions, ranked, in bulk.

    INPUT_FILE is a `preannot run` output (.json or .jsonl); without it, the configured
    annotators run first. A rerun adds nothing twice: tasks are matched by meta.preannot_id
    and a model version already present is not sent again. With [ranking] in the config,
    each prediction's score is 1 - priority, so Label Studio's Uncertainty sampling serves
    the top-ranked task first.
    """
    try:
        config = load_config(config_path)
        client = _connect(config)
        summary = _push(config, client, project, input_file, existing, no_progress, unlabeled)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        err.print("interrupted: run the same command again to push the rest")
        sys.exit(130)
    _report(summary, client.url)
    if summary.failures:
        sys.exit(3)


@ls.command()
@config_option
@click.option("--detach", is_flag=True, help="Leave the local server running and return.")
@click.option("--port", type=int, help="Port of the local server (default: a free one).")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
def up(config_path: Path | None, detach: bool, port: int | None, no_progress: bool) -> None:
    """Bring up Label Studio with this config's data pre-annotated and ranked.

    Without LABEL_STUDIO_URL, a local Label Studio starts (its own venv, SQLite, 127.0.0.1,
    data in .preannot/labelstudio beside the config); Ctrl-C stops it. With
    LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY set, that server is used instead.
    """
    server = None
    try:
        config = load_config(config_path)
        settings = config.raw.get("labelstudio", {})
        if os.environ.get(URL_ENV) or settings.get("url"):
            client = connect(settings, config.base_dir)
        else:
            err.print("starting a local Label Studio (about 30 s)...")
            server = local_server(config.state_dir / "labelstudio", port=port).start()
            client = Client(Connection(server.url, server.api_key))
        summary = _push(config, client, None, None, False, no_progress)
        _report(summary, client.url)
        if server is None:
            return
        err.print(f"\n[bold]Label Studio is running at {server.url}/projects/{summary.project_id}"
                  f"[/]\n  log in as {server.username} with password {server.password}"
                  f"\n  (kept in {server.data_dir / 'preannot-credentials.json'})")
        if detach:
            err.print(f"  detached: stop it with `kill {server.process.pid}`")
            server = None
            return
        err.print("  press Ctrl-C to stop it")
        server.wait()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        err.print("stopping Label Studio")
    finally:
        if server is not None:
            server.stop()


# --- harvest: ls pull, ls suggest-rules ---------------------------------------------------------

def _harvest_settings(config: RunConfig) -> tuple[dict, Path]:
    settings = dict(config.raw.get("harvest", {}))
    out_dir = config.base_dir / settings.pop("output_dir", "harvest")
    return settings, out_dir


@ls.command()
@config_option
@click.option("-p", "--project", help="Project id or title (default: [labelstudio] project).")
@click.option("-o", "--output-dir", type=click.Path(path_type=Path, file_okay=False),
              help="Where corrections.jsonl, metrics.json and report.html go "
                   "(default: [harvest] output_dir, else harvest/ beside the config).")
@click.option("--model-version", help="Measure predictions of this model version "
                                      "(default: each task's newest prediction).")
@click.option("--full", is_flag=True, help="Forget earlier pulls and fetch every task again.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
def pull(config_path: Path | None, project: str | None, output_dir: Path | None,
         model_version: str | None, full: bool, no_progress: bool) -> None:
    """Harvest human corrections and measure every pre-annotator.

    Fetches only the tasks changed since the last pull, then rewrites, from every task pulled
    so far: corrections.jsonl (one line per task: data, human-final regions, predicted regions
    classified accepted/modified/deleted, added ones), metrics.json and report.html.
    Overlap thresholds come from [harvest] span_iou, box_iou, mask_iou, polygon_iou.
    """
    from .harvest import HarvestStore, pull as pull_tasks, write_outputs

    try:
        config = load_config(config_path)
        settings, out_dir = _harvest_settings(config)
        client = _connect(config)
        project = project or config.raw.get("labelstudio", {}).get("project")
        if project is None:
            raise ConfigError("which project? pass --project or set [labelstudio] project")
        found = client.project(project)
        store = HarvestStore(config.state_dir / "ledger.sqlite", f"{client.url}#{found.id}")
        if full:
            store.forget()
        with Progress(TextColumn("[bold]pulling"), BarColumn(), MofNCompleteColumn(),
                      console=err, disable=no_progress) as bar:
            bar_task = bar.add_task("pull", total=None)
            summary = pull_tasks(client, found.id, store,
                                 progress=lambda n: bar.update(bar_task, advance=n))
        thresholds = {k: float(v) for k, v in settings.items() if k.endswith("_iou")}
        metrics = write_outputs(store, output_dir or out_dir, model_version=model_version,
                                thresholds=thresholds, title=f"preannot harvest: {found.title}")
        store.close()
    except (ConfigError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        err.print("interrupted: run the same command again (nothing pulled is lost)")
        sys.exit(130)
    tasks = metrics["tasks"]
    err.print(f"[green]pulled {summary.fetched} changed tasks[/] of project {found.id}; "
              f"{tasks.get('annotated', 0)} annotated, {tasks.get('skipped', 0)} skipped, "
              f"{metrics['cancelled_annotations']} cancelled annotations, {metrics['errors']} "
              f"unreadable result items; outputs in {output_dir or out_dir}")
    for name, m in metrics["annotators"].items():
        err.print(f"  {name}: precision {m['precision']}, recall {m['recall']}, "
                  f"acceptance {m['acceptance_rate']}, edits/task {m['edits_per_task']}")
    try:
        _retrain_if_due(config)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _retrain_if_due(config: RunConfig) -> None:
    """``[training] retrain_after = N``: retrain each model that has N newly reviewed tasks
    since its last version; the gate decides whether the result is used."""
    from ..training.cli import train_all
    from ..training.flow import due, settings, trainer_specs

    if int(settings(config).get("retrain_after", 0)) <= 0:
        return
    for spec in trainer_specs(config):
        is_due, now, then = due(config, spec)
        if is_due:
            err.print(f"{now - then} newly reviewed tasks since {spec['name']} was last "
                      "trained ([training] retrain_after): retraining", markup=False)
            train_all(config, [spec["name"]], promote=True, push=True)


@ls.command("suggest-rules")
@config_option
@click.option("--rules", "rules_dir", required=True,
              type=click.Path(path_type=Path, file_okay=False, exists=True),
              help="The rules folder the patch is for.")
@click.option("-i", "--input-dir", type=click.Path(path_type=Path, file_okay=False),
              help="The `ls pull` output folder (default as for `ls pull`).")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the patch here (default: standard output).")
@click.option("--min-count", type=click.IntRange(1), default=3, show_default=True,
              help="Propose a term humans added at least this many times.")
@click.option("--min-precision", type=float, default=0.5, show_default=True,
              help="Disable rules whose harvested precision is below this.")
@click.option("--min-support", type=click.IntRange(1), default=5, show_default=True,
              help="...when they made at least this many predictions.")
def suggest_rules(config_path: Path | None, rules_dir: Path, input_dir: Path | None,
                  output: Path | None, min_count: int, min_precision: float,
                  min_support: int) -> None:
    """Propose rules changes from the harvest as a patch to review (never applied here).

    Apply it with `git apply PATCH` or `patch -p1 < PATCH` from the current folder.
    """
    import json

    from ..rules_suggest import suggest
    from .harvest import CORRECTIONS, METRICS, read_corrections

    try:
        config = load_config(config_path)
        folder = input_dir or _harvest_settings(config)[1]
        if not (folder / METRICS).exists():
            raise ConfigError(f"{folder / METRICS} not found: run `preannot ls pull` first")
        rules = json.loads((folder / METRICS).read_text(encoding="utf-8"))["rules"]
        errors: list[str] = []
        result = suggest(read_corrections(folder / CORRECTIONS, errors), rules, rules_dir,
                         min_count=min_count, min_precision=min_precision, min_support=min_support)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    for message in errors:
        err.print(f"[red]skipped[/] {message}")
    for term, label, n, target in result.terms:
        err.print(f"add {term!r} as {label} (added by humans {n} times) to {target}")
    for rule in result.flagged:
        err.print(f"disable {rule['file']} rule {rule['rule']}: precision {rule['precision']} "
                  f"over {rule['predicted']} predictions")
    if output:
        output.write_text(result.patch, encoding="utf-8")
        err.print(f"patch written to {output}: review it, then `git apply {output}`")
    else:
        click.echo(result.patch, nl=False)
