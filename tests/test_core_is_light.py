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


# The kernel (the plugin API and data model, the engine, evaluation, the Label Studio side and
# the core commands) never imports a feature; a feature imports the kernel and only the features
# its ``__init__.py`` declares in ``REQUIRES`` (README, Development).
KERNEL = {"preannot", "preannot.engine", "preannot.evaluation", "preannot.labelstudio",
          "preannot.cli", "preannot.__main__", "preannot.plugins"}
FEATURES = ("harvest", "selection", "training", "production", "serve")


def _module(path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _unit(module: str) -> str:
    """``preannot.<feature>`` for a feature's module; else the kernel's unit it sits in."""
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in FEATURES:
        return ".".join(parts[:2])
    if len(parts) > 1 and ".".join(parts[:2]) in KERNEL:
        return ".".join(parts[:2])
    return "preannot"


def _requires(feature: str) -> set[str]:
    """The features ``preannot.<feature>`` declares it imports (``REQUIRES`` in its package)."""
    init = ROOT / "preannot" / feature / "__init__.py"
    for node in ast.parse(init.read_text()).body:
        target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
        if isinstance(target, ast.Name) and target.id == "REQUIRES":
            return {f"preannot.{name}" for name in ast.literal_eval(node.value)}
    return set()


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
                # ``from .. import training``: the names may be modules themselves
                found += [(node.lineno, f"{target}.{a.name}") for a in node.names]
            else:
                found.append((node.lineno, target))
    return found


def _graph() -> dict[str, list[tuple[int, str]]]:
    return {_module(p): _imports(p) for p in sorted((ROOT / "preannot").rglob("*.py"))}


def _offenders(graph: dict[str, list[tuple[int, str]]]) -> list[str]:
    """Each import of a feature the importer may not use: any, from the kernel; one not
    declared, from a feature."""
    offenders = []
    for module, imports in graph.items():
        unit = _unit(module)
        allowed = {unit} | (_requires(unit.split(".")[1]) if unit not in KERNEL else set())
        for line, target in imports:
            other = _unit(target)
            if other not in KERNEL and other not in allowed:
                offenders.append(f"{module}:{line} imports {target} ({unit} may not)")
    return offenders


def test_every_core_module_is_the_kernel_or_a_feature():
    units = {_unit(m) for m in _graph()}
    assert units <= KERNEL | {f"preannot.{f}" for f in FEATURES}
    assert {f"preannot.{f}" for f in FEATURES} <= units, "a feature listed here is gone"


def test_every_feature_is_a_default_plugin():
    """The host registers each feature's hooks: none is wired by hand."""
    from preannot.plugins import DEFAULT_PLUGINS

    assert {name.split(".")[1] for name in DEFAULT_PLUGINS} >= set(FEATURES)


def test_the_kernel_imports_no_feature_and_a_feature_only_those_it_requires():
    assert _offenders(_graph()) == []


def test_the_feature_check_sees_function_level_relative_and_undeclared_imports():
    """The check above can fail: the kernel reaching a feature inside a function, and a feature
    importing one it does not declare, are both seen."""
    source = ("from . import ledger\nfrom ..training import flow\n"
              "def f():\n    from ..selection import operations\n    import preannot.cli\n")
    found = _imports_in(source, "preannot.engine.runner", is_package=False)
    assert found == [(1, "preannot.engine.ledger"), (2, "preannot.training"),
                     (4, "preannot.selection"), (5, "preannot.cli")]
    assert _offenders({"preannot.engine.runner": found}) == [
        "preannot.engine.runner:2 imports preannot.training (preannot.engine may not)",
        "preannot.engine.runner:4 imports preannot.selection (preannot.engine may not)"]
    undeclared = _imports_in("from ..selection import operations\n",
                             "preannot.training.flow", is_package=False)
    assert _offenders({"preannot.training.flow": undeclared}) == [
        "preannot.training.flow:1 imports preannot.selection (preannot.training may not)"]


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
