"""``preannot train`` and ``preannot models``: retrain from corrections, keep versions, gate."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table

from ..annotator import ConfigError
from ..engine.config import RunConfig, load_config
from ..commandline import log_line
from ..engine.host import get_host, report_failures
from . import retrain
from . import flow
from .registry import Registry
from .gate_report import COLUMNS, rows

err = Console(stderr=True)
config_option = click.option("-c", "--config", "config_path",
                             type=click.Path(path_type=Path, dir_okay=False),
                             help="Config file (default: ./preannot.toml if present).")
no_push_option = click.option("--no-push", is_flag=True,
                              help="Do not update the Label Studio project.")


def report_outcomes(trained: retrain.Trained, *, promote: bool) -> None:
    """Each trained version's verdict, the gate's reasons and where its report is."""
    for outcome in trained.outcomes:
        verdict = "[green]promoted[/]" if outcome.promoted else "[yellow]not promoted[/]"
        if outcome.promoted and not promote:
            verdict = "[green]passed the gate[/] (not promoted: --no-promote)"
        err.print(f"{escape(outcome.version.version)}: {verdict}")
        for reason in outcome.reasons:
            err.print(f"  {reason}", markup=False, highlight=False)
        for p in outcome.pipelines:
            used = "the fusion" if p.use == p.fusion else f"{p.use} alone"
            err.print(f"  pipeline {p.fusion}: {'; '.join(p.reasons)} ({used} goes to Label "
                      "Studio)", markup=False, highlight=False)
        if outcome.refit is not None:
            state = ("is current" if outcome.refit.status == "promoted" else
                     f"not promoted, {outcome.version.version} stays current")
            err.print(f"  refit on train + dev: {outcome.refit.version} {state}")
        err.print(f"  report: {outcome.report}")


@click.command()
@config_option
@click.option("-m", "--model", "names", multiple=True,
              help="Train only this [[trainers]] entry (repeatable; default: all).")
@click.option("--no-promote", is_flag=True, help="Register and evaluate, but leave the current "
                                                 "version in place.")
@no_push_option
@click.option("-f", "--force", is_flag=True, help="Train even if a version was trained on the "
                                                  "same data and options.")
def train(config_path: Path | None, names: tuple[str, ...], no_promote: bool, no_push: bool,
          force: bool) -> None:
    """Retrain from the harvested corrections and promote the result if it is better.

    \b
    Reads corrections.jsonl from `preannot ls pull`; only human-reviewed tasks count, and a
    fixed share of them (by task id: [training] eval_fraction) is never trained on: the gate
    evaluates the new version and the current one there, and promotes the new one only when
    it is better by [training] margin on [training] metric with no label losing more than
    [training] label_tolerance F1. A promotion gives the project's unlabeled tasks fresh
    predictions (bulk) and points the project's model version at them.

    Exit status: 0 promoted, 4 refused by the gate, 1 error. Ctrl-C and a rerun resume.
    """
    try:
        report_failures(get_host())
        trained = retrain.train_all(load_config(config_path), list(names) or None,
                                    promote=not no_promote, push=not no_push, force=force,
                                    log=log_line)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        err.print("interrupted: run the same command again to resume")
        sys.exit(130)
    report_outcomes(trained, promote=not no_promote)
    if not trained.all_promoted:
        sys.exit(4)


@click.group()
def models() -> None:
    """The model registry: list, compare, promote and roll back trained versions.

    Versions live in [training] registry (default .preannot/models beside the config), each
    with a card: trainer, parent version, the harvest it learned from, options, evaluation
    and the gate's decision. The version string is the model_version Label Studio shows.
    """


def _config_and_registry(config_path: Path | None) -> tuple[RunConfig, Registry]:
    config = load_config(config_path)
    return config, Registry(config.registry_dir)


@models.command("list")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_models(config_path: Path | None, as_json: bool) -> None:
    """Every version of every model, the current one marked."""
    _, registry = _config_and_registry(config_path)
    rows = []
    for name in registry.names():
        current = registry.current(name)
        for v in registry.versions(name):
            ev = v.card.get("evaluation", {}).get("overall", {})
            rows.append({"version": v.version, "current": current is not None
                         and current.version == v.version, "status": v.status,
                         "created_at": v.card.get("created_at"), "parent": v.card.get("parent"),
                         "trained_on": v.card.get("harvest", {}).get("train"),
                         "f1": ev.get("f1"), "precision": ev.get("precision"),
                         "recall": ev.get("recall")})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        err.print(f"no models in {registry.root}: run `preannot train`", markup=False)
        return
    # at any width the version and its status stay whole; the other columns wrap
    key = {"no_wrap": True, "overflow": "ignore"}
    widest = {k: max(len(r[k]) for r in rows) for k in ("version", "status")}
    table = Table(Column("", **key), Column("version", min_width=widest["version"], **key),
                  Column("status", min_width=widest["status"], **key),
                  Column("created", overflow="fold"), Column("parent", overflow="fold"),
                  "trained on", "precision", "recall", "F1", title=f"models in {registry.root}")
    for r in rows:
        table.add_row("*" if r["current"] else "", r["version"], r["status"], r["created_at"],
                      r["parent"] or "", str(r["trained_on"]),
                      *(f"{r[k]:.3f}" if r[k] is not None else "–"
                        for k in ("precision", "recall", "f1")))
    Console().print(table)


@models.command()
@config_option
@click.argument("version")
def show(config_path: Path | None, version: str) -> None:
    """A version's card (lineage, options, evaluation, gate) as JSON."""
    try:
        click.echo(json.dumps(_config_and_registry(config_path)[1].get(version).card, indent=2))
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@models.command()
@config_option
@click.argument("old")
@click.argument("new")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def compare(config_path: Path | None, old: str, new: str, as_json: bool) -> None:
    """Per-label precision, recall and F1 of two versions, both measured now on the current
    evaluation split (so the figures compare like with like)."""
    try:
        config, registry = _config_and_registry(config_path)
        a, b = registry.get(old), registry.get(new)
        host = get_host()
        spec = next((s for s in flow.trainer_specs(config) if s["name"] == a.name), None)
        if spec is None:
            raise ConfigError(f"no [[trainers]] entry named {a.name!r} in the config")
        trainer = flow.make_trainer(spec, host, config)
        data = flow.load_examples(config, trainer)
        figures = [flow.measure(config, host, spec, trainer, v, data.eval) for v in (a, b)]
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    compared = rows(figures[1], figures[0])
    if as_json:
        click.echo(json.dumps({"tasks": figures[1]["tasks"], "old": old, "new": new,
                               "labels": compared}, indent=2))
        return
    table = Table(*[c.replace("current", old).replace("candidate", new) for c in COLUMNS],
                  title=f"{old} vs {new} on {figures[1]['tasks']} evaluation tasks")
    for row in compared:
        table.add_row(*(f"{row[c]:.3f}" if isinstance(row[c], float) else str(row[c])
                        for c in COLUMNS))
    Console().print(table)


@models.command()
@config_option
@click.argument("version")
@no_push_option
def promote(config_path: Path | None, version: str, no_push: bool) -> None:
    """Make VERSION current by hand (the gate's verdict stays on its card)."""
    try:
        chosen, previous = retrain.promote(load_config(config_path), version, push=not no_push,
                                           log=log_line)
        was = previous.version if previous else "none"
        err.print(f"{chosen.version} is now current (was {was})", markup=False)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@models.command()
@config_option
@click.argument("name")
@no_push_option
def rollback(config_path: Path | None, name: str, no_push: bool) -> None:
    """Retire NAME's current version and restore the one promoted before it; the project's
    unlabeled tasks get that version's predictions back and its model version points at it."""
    try:
        old, restored = retrain.rollback(load_config(config_path), name, push=not no_push,
                                         log=log_line)
        err.print(f"rolled back {old.version}: {restored.version} is current again",
                  markup=False)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
