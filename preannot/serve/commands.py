"""``preannot serve``: the configured pipeline as a Label Studio ML backend; ``ls connect`` and
``ls disconnect`` attach it to a project."""

from __future__ import annotations

import logging
from pathlib import Path

import click
from rich.console import Console

from ..annotator import ConfigError
from ..commandline import config_option, log_line, need
from ..engine.config import load_config
from ..engine.host import get_host, report_failures
from ..labelstudio import sync

err = Console(stderr=True)
logger = logging.getLogger("preannot.serve")


@click.command()
@click.option("-c", "--config", "config_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Config file (default: ./preannot.toml if present).")
@click.option("--host", help="Address to listen on (default: [serve] host, else 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535),
              help="Port (default: [serve] port, else 9090).")
@click.option("--no-learn", is_flag=True,
              help="Ignore annotation events and training requests (predict only).")
def serve(config_path: Path | None, host: str | None, port: int | None, no_learn: bool) -> None:
    """Serve the configured annotators to Label Studio (its ML-backend protocol).

    \b
    Label Studio then asks for predictions when a task opens or on "Retrieve predictions",
    and, with an interactive annotator (sam, rules), answers the editor's smart tools: a
    click or a box gives a SAM mask, a labeled span gives its other occurrences. Saved
    annotations are harvested in the background and [training] retrain_after retrains; a
    promoted model is served at once, without a restart.

    \b
    Connect it to the project:   preannot ls connect -c preannot.toml [--interactive]
    HTTP Basic auth: set BASIC_AUTH_USER and BASIC_AUTH_PASS (the same for `ls connect`).
    Listens on loopback unless told otherwise: put a TLS proxy in front for other hosts.
    """
    need("serve")
    from .app import credentials, serve as run_server
    from .backend import started

    logging.basicConfig(format="%(asctime)s %(message)s", level=logging.INFO)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per Label Studio request
    try:
        config = load_config(config_path)
        host = host or config.serve.host
        port = port or config.serve.port
        plugins = get_host()
        report_failures(plugins)
        backend = started(config, plugins, logger.info, learn=False if no_learn else None)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    auth = "HTTP Basic auth on" if credentials() else "no auth (set BASIC_AUTH_USER/PASS)"
    err.print(f"[green]preannot serve[/] on http://{host}:{port} ({auth}); connect it with "
              f"`preannot ls connect`. Ctrl-C stops.", highlight=False)
    run_server(backend, host, port)


@click.command()
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
    from . import connection as serving
    from .auth import credentials

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


@click.command()
@config_option
@click.option("--project", help="Project id or title (default: as for `ls push`).")
def disconnect(config_path: Path | None, project: str | None) -> None:
    """Remove `preannot serve` from the project (the predictions it made stay)."""
    from . import connection as serving

    try:
        config = load_config(config_path)
        removed = serving.disconnect_backend(config, sync.connect(config), project=project)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    err.print(f"removed {removed} ML backend entr{'y' if removed == 1 else 'ies'} for "
              f"{config.serve.backend_url}", markup=False, highlight=False)
