"""``preannot ls``: the Label Studio commands (push, up, pull, suggest-rules)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ..annotator import ConfigError
from ..engine.config import load_config
from ..engine.host import get_host, report_failures
from ..evaluation.corrections import CORRECTIONS, METRICS, read_corrections
from ..evaluation.split import training_side
from ..evaluation.suggest import suggest
from ..labelstudio.client import URL_ENV, Client, Connection
from ..labelstudio.push import PushSummary
from ..labelstudio.server import local_server
from ..loop import sync
from .training import log_line, retrain_when_due

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


def progress_bar(label: str, no_progress: bool, *columns) -> Progress:
    return Progress(TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), *columns,
                    console=err, disable=no_progress)


def _push(config, client: Client, no_progress: bool, **options) -> PushSummary:
    report_failures(get_host())
    with progress_bar("pushing", no_progress, TimeRemainingColumn()) as bar:
        task = bar.add_task("push", total=None)
        return sync.push(config, client, progress=lambda n: bar.update(task, advance=n),
                         log=log_line, **options)


def _report(summary: PushSummary, url: str) -> None:
    err.print(summary.describe(url), style="green", markup=False, highlight=False)
    for message in summary.notices:
        err.print(f"notice: {message}", style="yellow", markup=False, highlight=False)
    for source, reason in summary.failures[:20]:
        err.print("[red]not pushed[/] " + escape(f"{source}: {reason}"))
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
        client = sync.connect(config)
        summary = _push(config, client, no_progress, project=project, input_file=input_file,
                        existing=existing, unlabeled=unlabeled)
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
        if os.environ.get(URL_ENV) or config.labelstudio.url:
            client = sync.connect(config)
        else:
            files_root = sync.local_files_root(config)
            err.print("starting a local Label Studio (about 30 s)...")
            server = local_server(config.workspace.labelstudio, port=port,
                                  files_root=files_root).start()
            connection = Connection(server.url, server.api_key)
            sync.serve_images_from(connection)
            client = Client(connection, local_files_root=str(files_root) if files_root else None)
        summary = _push(config, client, no_progress)
        _report(summary, client.url)
        if server is None:
            return
        # the password is never printed (terminals are logged and shared): it stays in the
        # credentials file, readable by its owner only
        err.print(f"\n[bold]Label Studio is running at {server.url}/projects/{summary.project_id}"
                  f"[/]\n  log in as {server.username}; the password is in "
                  f"{server.data_dir / 'preannot-credentials.json'} (readable by you only)",
                  soft_wrap=True)
        served = (f"the files under {server.files_root} to its users (its Local Files root)"
                  if server.files_root else "no file of this machine (no image input)")
        err.print(f"  it serves {served}", soft_wrap=True, markup=False, highlight=False)
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


def quality_lines(metrics: dict, tabs: dict) -> list[str]:
    """What `ls pull` says about the label spec, the human annotators and the tabs it filled."""
    lines = []
    spec = metrics.get("spec") or {}
    if spec.get("changed"):
        lines.append(f"[yellow]labeling config changed[/] ({spec['previous']} -> {spec['version']}):"
                     f" added {', '.join(spec['added']) or 'none'}; removed "
                     f"{', '.join(spec['removed']) or 'none'} (map them with "
                     r"\[labels] rename/merge)")
    outdated = len(metrics["reannotate"]["tasks"])
    if outdated:
        lines.append(f"[yellow]{outdated} tasks annotated with labels the config no longer has[/]:"
                     " left out of metrics and training until re-annotated")
    for name, q in metrics["quality"]["annotators"].items():
        said = [f"accuracy {q['accuracy']} ({q['accuracy_source']})"
                if q["accuracy"] is not None else "accuracy unknown (no ground truth, no overlap)"]
        if q["acceptance_rate"] is not None:
            said.append(f"kept {q['acceptance_rate']} of predictions as they were")
        if q["lead_time_mean"] is not None:
            said.append(f"lead time {q['lead_time_mean']} s")
        flag = " [red]careless?[/]" if q["careless"] else ""
        lines.append(f"  annotator {escape(name)}: {', '.join(said)}{flag}")
    for title, (_, count) in tabs.items():
        lines.append(f"  Data Manager tab [bold]{escape(title)}[/]: {count} tasks")
    groups = (metrics.get("duplicates") or {}).get("groups")
    if groups:
        lines.append(f"  near-duplicates among the annotated tasks: {len(groups)} groups, "
                     f"{sum(len(g) - 1 for g in groups)} labels paid twice (report.html lists "
                     "them; `preannot duplicates` finds the unlabeled ones)")
    return lines


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

    It also measures the human annotators (accuracy against ground-truth tasks, or estimated
    from tasks several people annotated; speed; predictions kept as they were), says when the
    labeling config changed ([labels] rename/merge map old labels forward), and fills the Data
    Manager tabs "needs adjudication" ([harvest] adjudication_threshold) and "needs
    re-annotation" (labels the config no longer has).
    """
    try:
        config = load_config(config_path)
        client = sync.connect(config)
        with progress_bar("pulling", no_progress) as bar:
            task = bar.add_task("pull", total=None)
            harvest = sync.pull(config, client, project=project, output_dir=output_dir,
                                model_version=model_version, full=full, duplicates=True,
                                progress=lambda n: bar.update(task, advance=n))
    except (ConfigError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        err.print("interrupted: run the same command again (nothing pulled is lost)")
        sys.exit(130)
    metrics, tasks = harvest.metrics, harvest.metrics["tasks"]
    removed = harvest.fetched.removed
    gone = f", {removed} deleted there left the harvest" if removed else ""
    err.print(f"[green]pulled {harvest.fetched.fetched} changed tasks[/] of project "
              f"{harvest.project_id}{gone}; {tasks.get('annotated', 0)} annotated, "
              f"{tasks.get('skipped', 0)} skipped, {metrics['cancelled_annotations']} cancelled "
              f"annotations, {metrics['errors']} unreadable result items; outputs in "
              f"{escape(str(harvest.output_dir))}")
    for name, m in metrics["annotators"].items():
        err.print(f"  {name}: precision {m['precision']}, recall {m['recall']}, "
                  f"acceptance {m['acceptance_rate']}, edits/task {m['edits_per_task']}")
    for line in quality_lines(metrics, harvest.tabs):
        err.print(line)
    for warning in harvest.warnings:
        err.print(f"[yellow]warning:[/] {escape(warning)}")
    retrain_when_due(config)


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

    Apply it with `git apply PATCH` or `patch -p1 < PATCH` from the current folder. Terms are
    learned from the training side only: tasks of the evaluation split ([training]
    eval_fraction, group_by) stay unseen, so the gate measures the rules honestly.
    """
    try:
        config = load_config(config_path)
        folder = input_dir or config.harvest.output_dir
        if not (folder / METRICS).exists():
            raise ConfigError(f"{folder / METRICS} not found: run `preannot ls pull` first")
        rules = json.loads((folder / METRICS).read_text(encoding="utf-8"))["rules"]
        errors: list[str] = []
        records = training_side(read_corrections(folder / CORRECTIONS, errors),
                                config.training.eval_fraction, config.training.group_by)
        result = suggest(records, rules, rules_dir,
                         min_count=min_count, min_precision=min_precision, min_support=min_support)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    for message in errors:
        err.print(f"[red]skipped[/] {escape(message)}")
    for term, label, n, target in result.terms:
        err.print(f"add {term!r} as {label} (added by humans {n} times) to {target}",
                  markup=False)
    for rule in result.flagged:
        err.print(f"disable {rule['file']} rule {rule['rule']}: precision {rule['precision']} "
                  f"over {rule['predicted']} predictions", markup=False)
    if output:
        output.write_text(result.patch, encoding="utf-8")
        err.print(f"patch written to {output}: review it, then `git apply {output}`",
                  markup=False)
    else:
        click.echo(result.patch, nl=False)


@ls.command()
@config_option
@click.option("--project", help="Project id or title (default: as for `ls push`).")
@click.option("--interactive", is_flag=True,
              help="Also answer the editor's smart tools (SAM clicks and boxes, labeled spans).")
def connect(config_path: Path | None, project: str | None, interactive: bool) -> None:
    """Connect a running `preannot serve` to the project as its ML backend.

    Label Studio then retrieves predictions automatically when a task opens (and on the Data
    Manager's "Retrieve predictions"), shows the served version's predictions, and sends
    saved annotations to the backend, which learns from them. The backend's address is
    [serve] url (default http://[serve] host:port); with BASIC_AUTH_USER and BASIC_AUTH_PASS
    set, Label Studio is given them to call it. `ls disconnect` undoes it.
    """
    from ..loop import serving
    from ..serve.auth import credentials

    try:
        config = load_config(config_path)
        client = sync.connect(config)
        done = serving.connect_backend(config, client, interactive=interactive,
                                       auth=credentials(), project=project, log=log_line)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    learning = "annotation events go to its /webhook" if done.webhook else "no learning"
    err.print(f"[green]connected[/] {config.serve.backend_url} to project {done.project_id} as "
              f"ML backend {done.backend_id} ({done.model_version}); predictions retrieved "
              f"automatically, {'interactive, ' if interactive else ''}{learning}: "
              f"{client.url}/projects/{done.project_id}/data", highlight=False)


@ls.command()
@config_option
@click.option("--project", help="Project id or title (default: as for `ls push`).")
def disconnect(config_path: Path | None, project: str | None) -> None:
    """Remove `preannot serve` from the project (the predictions it made stay)."""
    from ..loop import serving

    try:
        config = load_config(config_path)
        removed = serving.disconnect_backend(config, sync.connect(config), project=project)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    err.print(f"removed {removed} ML backend entr{'y' if removed == 1 else 'ies'} for "
              f"{config.serve.backend_url}", markup=False, highlight=False)
