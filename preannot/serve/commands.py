"""``preannot serve``: the configured pipeline as a Label Studio ML backend."""

from __future__ import annotations

import logging
from pathlib import Path

import click
from rich.console import Console

from ..annotator import ConfigError
from ..engine.config import load_config
from ..engine.host import get_host, report_failures

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
    from ..serve.app import credentials, serve as run_server
    from ..serve.backend import started

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
