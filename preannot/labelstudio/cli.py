"""``preannot ls``: the Label Studio commands (push, up; harvest adds its own here)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ..annotator import ConfigError, Context
from ..config import RunConfig, load_config
from ..plugins import get_host, report_failures
from ..ranking import load_ranker
from ..runner import build_annotators, run as run_pipeline
from .client import URL_ENV, Client, Connection, connect
from .push import (PushSummary, annotate_project, ensure_project, model_version_of,
                   push_tasks, read_import_file)
from .server import local_server

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


def _push(config: RunConfig, client: Client, project: str | None, input_file: Path | None,
          existing: bool, no_progress: bool) -> PushSummary:
    """Everything `ls push` and `ls up` share: project, annotators, ranking, the push itself."""
    settings = config.raw.get("labelstudio", {})
    host = get_host()
    report_failures(host)
    annotators = build_annotators(config.annotators, host, Context(
        base_dir=config.base_dir, cache_dir=config.state_dir / "cache")) if config.annotators else []
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
                                    batch_size=config.batch_size, progress=progress)
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
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
def push(input_file: Path | None, config_path: Path | None, project: str | None, existing: bool,
         no_progress: bool) -> None:
    """Push pre-annotations to Label Studio as predictions, ranked, in bulk.

    INPUT_FILE is a `preannot run` output (.json or .jsonl); without it, the configured
    annotators run first. A rerun adds nothing twice: tasks are matched by meta.preannot_id
    and a model version already present is not sent again. With [ranking] in the config,
    each prediction's score is 1 - priority, so Label Studio's Uncertainty sampling serves
    the top-ranked task first.
    """
    try:
        config = load_config(config_path)
        client = connect(config.raw.get("labelstudio"), config.base_dir)
        summary = _push(config, client, project, input_file, existing, no_progress)
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
