"""Test helpers: install a plugin distribution for real (pip, into a folder) and run the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def pip_install(source: Path, target: Path) -> Path:
    """Build and install a distribution into ``target`` (not the test environment itself)."""
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--target", str(target), str(source)],
                   check=True, capture_output=True)
    return target


def write_plugin(folder: Path, name: str, module_source: str) -> Path:
    """A minimal plugin distribution ``name`` whose module is ``module_source``."""
    module = name.replace("-", "_")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text(textwrap.dedent(f"""
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "{name}"
        version = "1.2.3"
        [project.entry-points.preannot]
        {module} = "{module}"
        [tool.setuptools]
        py-modules = ["{module}"]
    """))
    (folder / f"{module}.py").write_text(textwrap.dedent(module_source))
    return folder


def run_cli(args: list[str], *, pythonpath: list[Path] = (), env: dict[str, str] | None = None,
            cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``preannot`` in a fresh interpreter, with extra plugin folders on its path."""
    full_env = {**os.environ, **(env or {})}
    paths = [str(p) for p in pythonpath] + [full_env.get("PYTHONPATH", "")]
    full_env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    return subprocess.run([sys.executable, "-m", "preannot", *args], capture_output=True,
                          text=True, env=full_env, cwd=cwd, timeout=300)


def wait_for(check, what: str, timeout: float = 60.0):
    """Poll ``check()`` until it returns something truthy (no timing is asserted: a deadline
    only stops a broken test from hanging)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def start_server(config: Path, env: dict[str, str], pythonpath: list[Path] = ()) -> subprocess.Popen:
    """``preannot serve -c config`` in its own process, its output in ``serve.log`` beside the
    config."""
    full = {**os.environ, **env}
    full["PYTHONPATH"] = os.pathsep.join([*map(str, pythonpath), full.get("PYTHONPATH", "")])
    log = (config.parent / "serve.log").open("ab")
    process = subprocess.Popen([sys.executable, "-m", "preannot", "serve", "-c", str(config)],
                               env=full, stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL)
    return process


def wait_up(url: str, process: subprocess.Popen, log: Path, auth=None) -> None:
    """Wait until the server at ``url`` answers ``/health`` (its log shown if it died)."""
    import httpx

    def up():
        if process.poll() is not None:
            raise AssertionError(f"preannot serve exited: {log.read_text()}")
        try:
            return httpx.get(f"{url}/health", auth=auth, timeout=2).status_code == 200
        except httpx.TransportError:
            return False
    wait_for(up, "preannot serve to answer", 120)


# A real plugin whose annotator holds its first batch until a gate file exists (GATE names it):
# what a slow model looks like to a run, or to a server, while the test looks at them.
GATED = """
import os, time
from pathlib import Path
from preannot import Annotator, Span, hookimpl

class Gated(Annotator):
    '''Says it started, then holds its first batch until the gate file exists.'''
    type = "gated"

    def annotate(self, tasks, upstream):
        gate = Path(os.environ["GATE"])
        Path(str(gate) + ".started").touch()
        deadline = time.monotonic() + 120
        while not gate.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return [[Span(label="X", start=0, end=1, text=t.data["text"][0])] for t in tasks]

@hookimpl
def register_annotators(register):
    register(Gated)
"""
