"""The core never imports torch, ultralytics or segment-anything: a text-only user installs little;
and the built-in plugins use nothing of it but its public API."""

from __future__ import annotations

import ast
from pathlib import Path
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


# The core's layers, lowest first: a module may import its own unit and the units below it,
# never one above it nor a sibling in its own layer (README, Development). A unit is a
# sub-package, or the top-level modules together (the plugin API and the data model).
LAYERS = [
    ["preannot"],                                   # model, annotator, hookspecs, images, lsjson
    ["preannot.evaluation"],                        # matching, metrics, corrections, report
    ["preannot.builtins"],                          # fusion, rankers: plugins of the host itself
    ["preannot.engine"],                            # config, readers, ledger, host, runner
    ["preannot.training", "preannot.labelstudio",   # registry and gate; the Label Studio side;
     "preannot.review",                             # calibration for production review;
     "preannot.selection"],                         # embeddings, vector index, selection
    ["preannot.loop"],                              # the operations every command calls
    ["preannot.serve"],                             # the ML backend Label Studio calls
    ["preannot.cli"],                               # option parsing and printing
    ["preannot.__main__"],                          # python -m preannot
]
RANK = {unit: rank for rank, layer in enumerate(LAYERS) for unit in layer}


def _module(path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _unit(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 1 and ".".join(parts[:2]) in RANK:
        return ".".join(parts[:2])
    return "preannot"


def _imports(path) -> list[tuple[int, str]]:
    return _imports_in(path.read_text(), _module(path), path.name == "__init__.py")


def _imports_in(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, module) of every import of a preannot module in a source, function-level
    included, relative ones resolved."""
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "preannot"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "preannot":
                continue
            if node.module is None:
                # ``from .. import builtins``: the names may be modules themselves
                found += [(node.lineno, f"{target}.{a.name}") for a in node.names]
            else:
                found.append((node.lineno, target))
    return found


def _graph() -> dict[str, list[tuple[int, str]]]:
    return {_module(p): _imports(p) for p in sorted((ROOT / "preannot").rglob("*.py"))}


def test_every_core_module_sits_in_a_documented_layer():
    units = {_unit(m) for m in _graph()}
    assert units == set(RANK), "a new sub-package needs a place in LAYERS and the README"
    readme = (ROOT / "README.md").read_text()
    assert [u for u in RANK if f"`{u.replace('.', '/')}" not in readme
            and u not in ("preannot", "preannot.__main__")] == []


def test_no_module_imports_a_layer_above_it_or_a_sibling():
    offenders = []
    for module, imports in _graph().items():
        unit = _unit(module)
        for line, target in imports:
            other = _unit(target)
            if other != unit and RANK[other] >= RANK[unit]:
                offenders.append(f"{module}:{line} imports {target} ({other} is not below {unit})")
    assert offenders == []


def test_the_layer_check_sees_function_level_and_relative_imports():
    """The check above can fail: upward imports hidden in a function are seen and ranked."""
    source = ("from . import ledger\nfrom .. import builtins\n"
              "def f():\n    from ..loop import sync\n    import preannot.cli\n")
    found = _imports_in(source, "preannot.engine.runner", is_package=False)
    assert found == [(1, "preannot.engine.ledger"), (2, "preannot.builtins"),
                     (4, "preannot.loop"), (5, "preannot.cli")]
    assert [RANK[_unit(t)] > RANK["preannot.engine"] for _, t in found] == [False, False, True,
                                                                            True]


def test_no_import_circle_between_core_modules():
    graph = {m: {t for _, t in imports if t in _graph_modules()} for m, imports in _graph().items()}
    circles = []
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                circles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    # a package's __init__ re-exporting its own modules is not a circle of behaviour
    assert [c for c in circles if not _reexport(c)] == []


def _graph_modules() -> set[str]:
    return {_module(p) for p in (ROOT / "preannot").rglob("*.py")}


def _reexport(circle: str) -> bool:
    first, *rest = circle.split(" -> ")
    return all(m == first or m.startswith(first + ".") for m in rest) and \
        (ROOT / Path(*first.split(".")) / "__init__.py").exists()
