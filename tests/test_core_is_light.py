"""The core never imports torch, ultralytics or segment-anything: a text-only user installs little;
and the built-in plugins use nothing of it but its public API."""

from __future__ import annotations

import ast
import subprocess
import sys

from helpers import ROOT

HEAVY = {"torch", "torchvision", "ultralytics", "segment_anything", "spacy", "cv2"}


def test_no_heavy_import_statement_in_the_core():
    offenders = []
    for path in (ROOT / "preannot").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path.relative_to(ROOT)}:{node.lineno} {n}" for n in names
                          if n.split(".")[0] in HEAVY]
    assert offenders == []


def test_importing_every_core_module_loads_no_heavy_package():
    modules = sorted(p.relative_to(ROOT).with_suffix("").as_posix().replace("/", ".")
                     for p in (ROOT / "preannot").rglob("*.py") if p.stem != "__main__")
    code = ("import importlib, sys\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            f"print(sorted(set(m.split('.')[0] for m in sys.modules) & {HEAVY!r}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={"PREANNOT_PLUGINS": "", "PATH": ""}, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_built_in_plugins_use_only_the_public_api():
    """A built-in plugin that needs something private means the public API lacks it."""
    offenders = []
    for path in (ROOT / "plugins").glob("*/preannot_*/**/*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                    and node.module.startswith("preannot."):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.module}")
            elif isinstance(node, ast.Import):
                offenders += [f"{path.relative_to(ROOT)}:{node.lineno} {a.name}"
                              for a in node.names if a.name.startswith("preannot.")]
    assert offenders == []
