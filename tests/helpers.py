"""Test helpers: install a plugin distribution for real (pip, into a folder) and run the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
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
