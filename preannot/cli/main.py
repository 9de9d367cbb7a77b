"""``preannot``: the command group, ``run`` and ``plugins``."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn,
                           TimeRemainingColumn)
from rich.text import Text
from rich.table import Table

from ..annotator import ConfigError
from ..engine.config import check_encoding, load_config
from ..engine.host import ENV_VAR, get_host, report_failures
from ..labelstudio import sync

err = Console(stderr=True)


class RateColumn(ProgressColumn):
    def render(self, task) -> Text:
        return Text(f"{task.speed:,.0f} rec/s" if task.speed else "", style="cyan")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="preannot")
def cli() -> None:
    """Pre-annotate texts and images with pluggable annotators, for Label Studio.

    \b
    Quick start:
      preannot run data.jsonl --rules rules/product-ner -o out/predictions.json
      preannot run -c examples/product-ner/preannot.toml
      preannot plugins
      preannot ls up -c examples/product-ner/preannot.toml
      preannot ls pull && preannot train
    """


@cli.command()
@click.argument("inputs", nargs=-1, type=click.Path(path_type=Path))
@click.option("-c", "--config", "config_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Config file (default: ./preannot.toml if present).")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              help="Label Studio import file to write: .json (a task list) or .jsonl.")
@click.option("--rules", "rules_dir", type=click.Path(path_type=Path, file_okay=False, exists=True),
              help="Shorthand for one annotator of type 'rules' over this rules folder.")
@click.option("-w", "--workers", type=click.IntRange(1),
              help="Worker processes; actors with --engine ray (default 1).")
@click.option("-b", "--batch-size", type=click.IntRange(1), help="Records per batch (default 256).")
@click.option("--engine", type=click.Choice(["local", "ray"]),
              help="local: worker processes on this machine (default); ray: an actor pool of "
                   "-w actors on a Ray cluster (pip install \"preannot[ray]\").")
@click.option("--address", help="The Ray cluster for --engine ray: auto, ray://head:10001 "
                                "(default: [run] address, else $RAY_ADDRESS, the cluster "
                                "`ray start` runs here, or a Ray started for the run).")
@click.option("--encoding", help="Encoding of text inputs (default: [input] encoding, else "
                                 "utf-8), e.g. latin-1 or cp1252.")
@click.option("-f", "--force", is_flag=True, help="Redo every record, ignoring earlier runs.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
def run(inputs: tuple[Path, ...], config_path: Path | None, output: Path | None,
        rules_dir: Path | None, workers: int | None, batch_size: int | None,
        engine: str | None, address: str | None, encoding: str | None, force: bool,
        no_progress: bool) -> None:
    """Pre-annotate INPUTS (JSONL, Label Studio JSON, CSV/TSV, folders of .txt or images).

    Writes Label Studio import JSON: tasks with predictions (model_version, score, results).
    A rerun skips records already done with the same annotators and input; --force redoes
    them. Bad records are reported with file and line, and the rest goes on; the exit status
    is then 3 (the output holds every record that worked). Settings come from the config
    file; flags override it for one run. With a [selection] table the output's tasks are then
    embedded and indexed too (as `preannot embed` does), ready for selection and `similar`.
    """
    try:
        config = load_config(config_path)
        if inputs:
            config.inputs = [p.resolve() for p in inputs]
        if output:
            config.output = output.resolve()
        if rules_dir:
            config.annotators.append({"name": "rules", "type": "rules", "rules": str(rules_dir.resolve())})
        if workers:
            config.workers = workers
        if batch_size:
            config.batch_size = batch_size
        if engine:
            config.engine = engine
        if address:
            config.address = address
        if encoding:
            config.encoding = check_encoding(encoding, "--encoding")
        host = get_host()
        report_failures(host)
        with Progress(TextColumn("[bold]pre-annotating"), BarColumn(), MofNCompleteColumn(),
                      RateColumn(),
                      TimeRemainingColumn(), console=err, disable=no_progress,
                      transient=False) as bar:
            bar_task = bar.add_task("run", total=None)

            def progress(advance: int, total: int | None) -> None:
                bar.update(bar_task, advance=advance, total=total)

            # with [selection] the embedding after the run uses the run's annotators
            built = sync.configured(config, host) if config.selection.configured else None
            summary = sync.pre_annotate(config, host=host, force=force, progress=progress,
                                        built=built)
        _print_summary(summary)
        embed_failed = sum(host.hook.pre_annotated(config=config, annotators=built[1],
                                                    no_progress=no_progress)) if built else 0
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        err.print("interrupted: finished batches are saved; run the same command again to resume")
        sys.exit(130)
    if summary.failed or embed_failed:
        sys.exit(3)


def _print_summary(summary) -> None:
    done = summary.annotated + summary.skipped
    err.print(f"[green]wrote[/] {escape(str(summary.output))} : {done} tasks "
              f"({summary.annotated} annotated now, {summary.skipped} already done), "
              f"{summary.failed} failed of {summary.read} records read",
              soft_wrap=True)  # one line in a log or a pipe too, however long the path
    if summary.failed:
        table = Table("failure", "count", "first examples", title="failed records")
        examples: dict[str, list[str]] = {}
        for source, reason, detail in summary.failures:
            examples.setdefault(reason, [])
            if len(examples[reason]) < 3:
                examples[reason].append(escape(f"{source}" + (f" ({detail})" if detail else "")))
        for reason, count in summary.failure_reasons().most_common():
            table.add_row(escape(reason), str(count), "\n".join(examples[reason]))
        err.print(table)


@cli.command()
@click.option("-c", "--config", "config_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Also show the annotators this config builds, with their labels.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def plugins(config_path: Path | None, as_json: bool) -> None:
    """List the loaded plugins, their hooks, and the annotators they provide.

    Plugins are found through the 'preannot' entry-point group. Set PREANNOT_PLUGINS to a
    comma-separated list of plugin names to load only those, or to '' to load none.
    """
    host = get_host()
    listing = host.listing()
    failures = [vars(f) for f in host.failures]
    configured = []
    if config_path:
        try:
            built = sync.annotators(load_config(config_path), host)
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
        configured = [{"name": a.name, "type": a.type, "model_version": a.model_version,
                       "reads": a.field, "emits": list(a.emits), "labels": a.labels,
                       "after": a.after} for a in built]
    if as_json:
        click.echo(json.dumps({"plugins": listing, "failed": failures,
                               "annotators": configured}, indent=2))
        return
    out = Console()
    table = Table("plugin", "distribution", "version", "hooks", "annotator types", "trainer types",
                  title="plugins")
    for p in listing:
        types = "\n".join(f"{a['type']}: reads {', '.join(a['reads'])}; emits "
                          f"{', '.join(a['emits']) or 'what it combines'}" for a in p["annotators"])
        trains = "\n".join(f"{t['type']}: learns {', '.join(t['learns'])} for {t['annotator']}"
                           for t in p["trainers"])
        table.add_row(p["name"], p["distribution"], p["version"], ", ".join(p["hooks"]), types,
                      trains)
    out.print(table)
    if not listing:
        out.print(f"no plugins loaded ({ENV_VAR}={os.environ[ENV_VAR]!r})"
                  if ENV_VAR in os.environ else "no plugins installed")
    for f in failures:
        out.print("[red]failed to load[/] " + escape(
            f"{f['name']} (distribution {f['distribution']}): {f['error']}"))
    if configured:
        table = Table("annotator", "type", "model_version", "reads", "emits", "labels",
                      title=f"annotators in {config_path}")
        for a in configured:
            table.add_row(a["name"], a["type"], a["model_version"], a["reads"],
                          ", ".join(a["emits"]), ", ".join(a["labels"]))
        out.print(table)
