"""The harvest's commands, sub-commands of ``preannot ls``: ``pull`` and ``suggest-rules``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.markup import escape

from ..annotator import ConfigError
from ..commandline import after_harvest, config_option, err, progress_bar
from ..engine.config import load_config
from ..evaluation.corrections import CORRECTIONS, METRICS, read_corrections
from ..evaluation.split import training_side
from ..evaluation.suggest import suggest
from ..labelstudio import sync
from .pull import pull as pull_project


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


@click.command()
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
            harvest = pull_project(config, client, project=project, output_dir=output_dir,
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
    after_harvest(config)


@click.command("suggest-rules")
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
