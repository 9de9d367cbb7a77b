"""Selection through the hooks: its selectors and commands, the order of a push when
``[selection]`` names a selector, the run output embedded after `preannot run`, and the
near-duplicates counted in a harvest (the ``harvested`` side of `ls pull`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..annotator import ConfigError
from ..engine.host import get_host
from ..hookspecs import hookimpl
from ..labelstudio import sync
from . import operations
from .commands import duplicates, embed, embed_output, similar
from .selectors import BUILT_IN


@hookimpl
def register_selectors(register) -> None:
    for selector in BUILT_IN:
        register(selector)


@hookimpl
def register_commands(cli) -> None:
    for command in (similar, duplicates, embed):
        cli.add_command(command)


@hookimpl
def push_ranker(config, annotators, client, project_id, input_file, log):
    """The configured selector's choice put first in the queue (None: no selector)."""
    selector = get_host().selector(config.selection)
    if selector is None:
        return None
    if input_file is None:
        return operations.ranker_for_project(config, selector, annotators, client, project_id,
                                             log)
    return operations.ranker_for_file(config, selector, annotators, input_file, log)


@hookimpl
def pre_annotated(config, annotators, no_progress) -> int:
    """With ``[selection]``, the run output embedded and indexed, as `preannot embed` does."""
    if not config.selection.configured:
        return 0
    return len(embed_output(config, annotators, no_progress).failures)


@hookimpl
def harvest_duplicates(config, corrections: Path, warnings: list[str]) -> dict[str, Any] | None:
    """Near-duplicate groups (Label Studio task ids) among the annotated tasks of the
    corrections file: what was labeled twice. None without ``[selection]`` (or with
    ``duplicates`` above 1), and, with a warning, when the embedder cannot be built."""
    if not (config.selection.configured and config.selection.duplicates <= 1):
        return None
    done = operations.labeled(config, corrections)
    try:
        groups, failures = operations.duplicates_among(
            config, sync.annotators(config, get_host()), done.tasks)
    except ConfigError as exc:
        warnings.append(f"near-duplicates among annotated tasks not counted: {exc}")
        return None
    if failures:
        source, reason = failures[0]
        warnings.append(f"near-duplicates: {len(failures)} annotated tasks could not be "
                        f"embedded ({source}: {reason}{' ...' if len(failures) > 1 else ''})")
    return {"threshold": config.selection.duplicates,
            "groups": [[done.task_ids[i] for i in group] for group in groups]}
