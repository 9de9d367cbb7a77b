"""``preannot similar``, ``preannot duplicates`` and ``preannot embed``: "more like this",
near-duplicates and the embeddings behind them (and behind ``[selection]``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..annotator import ConfigError
from ..engine.config import load_config
from ..engine.host import get_host, report_failures
from . import operations as select
from ..labelstudio import sync
from ..commandline import config_option, progress_bar

err = Console(stderr=True)


def _annotators(config):
    host = get_host()
    report_failures(host)
    return sync.annotators(config, host)


def _failures(failures) -> None:
    for source, reason in failures[:20]:
        err.print("[red]left out[/] " + escape(f"{source}: {reason}"), highlight=False)
    if len(failures) > 20:
        err.print(f"... and {len(failures) - 20} more left out")


@click.command()
@config_option
@click.option("--task", "task_id", help="A task's id (meta.preannot_id): tasks like this one.")
@click.option("--text", help="A piece of text: tasks like it.")
@click.option("--image", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="An image file: tasks like it (needs an embedder that reads images).")
@click.option("--label", help="A label humans often add or correct (a weak class): tasks like "
                              "the ones where they did (needs `preannot ls pull` first).")
@click.option("-k", "k", type=click.IntRange(1), default=200, show_default=True,
              help="How many tasks.")
@click.option("--push", "push_", is_flag=True,
              help="Put them first in the Label Studio queue, in a Data Manager tab "
                   "\"similar to ...\" (in similarity order).")
@click.option("-p", "--project", help="With --push: project id or title (default: "
                                      "[labelstudio] project).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
def similar(config_path, task_id, text, image, label, k, push_, project, as_json, no_progress):
    """The unlabeled tasks most like a task, a text, an image or a weak label.

    Searches the tasks of the run output (what `preannot run` wrote; labeled ones from the
    last `preannot ls pull` are left out) by cosine similarity of their embeddings: the
    [selection] embedder (an annotator that can embed: spaCy, YOLO), else TF-IDF + SVD of the
    text. Embeddings are cached in .preannot/ and indexed, so a second query is quick.

    \b
    Examples:
      preannot similar --text "the footbridge over the river" -k 50
      preannot similar --label BRIDGE -k 200 --push
    """
    given = [x for x in (task_id, text, image, label) if x is not None]
    if len(given) != 1:
        raise click.UsageError("give one of --task, --text, --image or --label")
    try:
        config = load_config(config_path)
        built = _annotators(config)
        with progress_bar("embedding", no_progress) as bar:
            job = bar.add_task("embed", total=None)
            found = select.similar(config, built, select.Query(task_id, text, image, label), k,
                                   progress=lambda n: bar.update(job, advance=n))
        pushed = None
        if push_:
            client = sync.connect(config)
            project_id = sync.project_for(config, client, built, project)
            pushed = select.push_similar(client, project_id, found,
                                         log=lambda m: err.print(m, markup=False))
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps({"query": found.query, "tasks": found.tasks,
                               "failures": found.failures,
                               "tab": None if pushed is None else {
                                   "id": pushed[0], "tasks": pushed[2]}}, ensure_ascii=False))
    else:
        table = Table("#", "task", "similarity", "source", title=f"similar to {found.query}")
        for rank, t in enumerate(found.tasks, 1):
            table.add_row(str(rank), t["id"], f"{t['similarity']:.3f}", t["source"])
        Console().print(table)
        _failures(found.failures)
    if pushed is not None:
        err.print(f"[green]Data Manager tab[/] \"similar to {escape(found.query)}\": "
                  f"{pushed[1]} tasks, first in the queue", highlight=False)


@click.command()
@config_option
@click.option("--threshold", type=click.FloatRange(0, 1),
              help="Cosine from which two tasks are near-duplicates (default: [selection] "
                   "duplicates, 0.98).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
def duplicates(config_path, threshold, as_json, no_progress):
    """List near-duplicate groups among the run output's tasks.

    The first task of each group (in input order) is its representative: a push with
    [selection] queues only it, the others last.
    """
    try:
        config = load_config(config_path)
        built = _annotators(config)
        with progress_bar("embedding", no_progress) as bar:
            job = bar.add_task("embed", total=None)
            groups, failures = select.duplicates(config, built, threshold,
                                                 progress=lambda n: bar.update(job, advance=n))
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps({"groups": groups, "failures": failures}, ensure_ascii=False))
    else:
        table = Table("group", "representative", "copies (similarity)",
                      title=f"{len(groups)} near-duplicate groups, "
                            f"{sum(len(g) - 1 for g in groups)} copies")
        for n, group in enumerate(groups, 1):
            table.add_row(str(n), f"{group[0]['id']} ({group[0]['source']})",
                          "\n".join(f"{t['id']} ({t['similarity']})" for t in group[1:]))
        Console().print(table)
        _failures(failures)
    if failures:
        sys.exit(3)


@click.command()
@config_option
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
def embed(config_path, no_progress):
    """Embed the run output's tasks and index them (cached, resumable).

    `similar`, `duplicates` and a push with [selection] do this themselves; run it ahead to
    pay the time once, e.g. after `preannot run`. Interrupted, it resumes where it stopped.
    """
    try:
        config = load_config(config_path)
        embedded = embed_output(config, _annotators(config), no_progress)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        err.print("interrupted: finished batches are saved; run the same command again to resume")
        sys.exit(130)
    if embedded.failures:
        sys.exit(3)


def embed_output(config, annotators, no_progress: bool) -> select.Embedded:
    """Embed the run output with a progress bar and say what was done (``embed``, ``run``)."""
    with progress_bar("embedding", no_progress) as bar:
        job = bar.add_task("embed", total=None)
        embedded = select.embed_output(
            config, annotators, lambda n, total: bar.update(job, advance=n, total=total))
    err.print("[green]embedded[/] " + escape(f"{embedded.done} tasks with {embedded.version} "
                                           f"(index {embedded.index})"), highlight=False)
    _failures(embedded.failures)
    return embedded
