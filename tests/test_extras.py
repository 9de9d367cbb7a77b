"""A command that needs an optional extra which is not installed says in one line which extra
to install, and exits 1.

Fault injection: every extra is installed in the test environment, so a ``sitecustomize`` on
the CLI's PYTHONPATH puts a meta-path finder first that refuses the modules named in
PREANNOT_BLOCK, as an interpreter without them would."""

from __future__ import annotations

import json
import textwrap

import pytest

from helpers import ROOT, run_cli

BLOCKER = textwrap.dedent('''
    """Fault injection for tests/test_extras.py: refuse the modules in PREANNOT_BLOCK."""
    import os
    import sys

    BLOCKED = tuple(filter(None, os.environ.get("PREANNOT_BLOCK", "").split(",")))


    class Refuse:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None


    sys.meta_path.insert(0, Refuse())
''')


@pytest.fixture
def blocked(tmp_path):
    """run_cli with ``modules`` refused, in a folder holding a run output of five texts."""
    hook = tmp_path / "block"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(BLOCKER)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "pred.json").write_text(json.dumps([
        {"data": {"text": f"order {i} of red shoes"}, "meta": {"preannot_id": f"t{i}"},
         "predictions": [{"model_version": "kw-1", "score": 0.9, "result": []}]}
        for i in range(5)]))
    (tmp_path / "data.jsonl").write_text('{"text": "two red shoes"}\n')
    (tmp_path / "preannot.toml").write_text('[output]\npath = "out/pred.json"\n')

    def run(args, modules):
        return run_cli(args, pythonpath=[hook], cwd=tmp_path,
                       env={"PREANNOT_BLOCK": ",".join(modules)})
    return run


def hint(what: str, extra: str, module: str) -> str:
    return (f'Error: {what} needs the "{extra}" extra ({module} is not installed): '
            f'pip install "preannot[{extra}]"\n')


@pytest.mark.parametrize("args, modules, what, extra, module", [
    (["serve"], ["starlette"], "preannot serve", "serve", "starlette"),
    (["serve"], ["uvicorn"], "preannot serve", "serve", "uvicorn"),
    (["review", "status"], ["sklearn"], "preannot review status", "review", "sklearn"),
    (["review", "run"], ["scipy"], "preannot review run", "review", "scipy"),
    (["drift"], ["sklearn"], "preannot drift", "review", "sklearn"),
    (["similar", "--text", "red shoes", "--no-progress"], ["sklearn"],
     "the default text embedder", "select", "sklearn"),
    (["run", "data.jsonl", "--rules", str(ROOT / "rules" / "product-ner"), "--engine", "ray",
      "--no-progress"], ["ray"], 'engine "ray"', "ray", "ray"),
])
def test_a_missing_extra_is_named_in_one_line(blocked, args, modules, what, extra, module):
    result = blocked(args, modules)
    assert (result.returncode, result.stderr) == (1, hint(what, extra, module))
