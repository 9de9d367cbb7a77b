"""``preannot ls``: the kernel's Label Studio commands (push, up); features add theirs to the
group (`ls pull`, `ls connect`...) through ``register_commands``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from rich.markup import escape
from rich.progress import TimeRemainingColumn

from ..annotator import ConfigError
from ..commandline import config_option, err, log_line, progress_bar
from ..engine.config import load_config
from ..engine.host import get_host, report_failures
from ..labelstudio.client import URL_ENV, Client, Connection
from ..labelstudio.push import PushSummary
from ..labelstudio.server import local_server
from ..labelstudio import sync

@click.group()
def ls() -> None:
    """Label Studio: push ranked pre-annotations, bring up a local server.

    The server comes from LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY, or the [labelstudio]
    table of preannot.toml (url, and api_key_env or api_key_file; never the token itself).
    """


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
