"""The Ray engine (``engine = "ray"``) on a real local Ray, started once for the module: the same
output as the local engine, resume after a killed run, failures with file and line, one model
load per actor, a dying actor restarted by Ray."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from helpers import ROOT, pip_install, run_cli, write_plugin
from preannot import ConfigError
from preannot.engine.config import load_config
from preannot.engine.host import load_host
from preannot.engine.runner import run
from preannot.labelstudio.push import ensure_project
from preannot.labelstudio import sync

ray = pytest.importorskip("ray")

COUNTING_PLUGIN = """
    import os, time
    from preannot import Annotator, Span, hookimpl

    class Counted(Annotator):
        '''Tags the first word; writes its pid to ``log`` when built (to count model loads),
        sleeps a second a batch while the file ``slow`` exists, raises on a text that says
        'boom', and with ``die`` kills its own process on the first batch any instance sees (a
        marker file says so).'''
        type = "counted"

        def __init__(self, name, options=None, context=None):
            super().__init__(name, options, context)
            with open(self.options["log"], "a") as f:
                f.write(f"{os.getpid()}\\n")

        def annotate(self, tasks, upstream):
            if self.options.get("die"):
                try:
                    os.close(os.open(self.options["die"], os.O_CREAT | os.O_EXCL))
                    os._exit(1)
                except FileExistsError:
                    pass
            if os.path.exists(self.options.get("slow", "")):
                time.sleep(1)
            out = []
            for task in tasks:
                text = task.data[self.field]
                if "boom" in text:
                    raise ValueError("boom on purpose")
                word = text.split()[0]
                out.append([Span(label="FIRST", start=0, end=len(word), text=word, score=0.5)])
            return out

    @hookimpl
    def register_annotators(register):
        register(Counted)
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A local Ray (2 CPUs, a 200 MB object store) whose workers load the counting plugin;
    yields its address for the ``preannot`` processes the tests start."""
    base = tmp_path_factory.mktemp("ray-plugin")
    site = pip_install(write_plugin(base / "src", "preannot-counted", COUNTING_PLUGIN),
                       base / "site")
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), str(ROOT), saved) if p)
    sys.path.insert(0, str(site))
    ray.init(address="local", num_cpus=2, include_dashboard=False,  # not a `ray start` one
             object_store_memory=200 * 1024 * 1024, logging_level="ERROR",
             _node_ip_address="127.0.0.1")  # loopback only, whatever this machine's address
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        sys.path.remove(str(site))
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


def _config(folder: Path, text: str):
    (folder / "preannot.toml").write_text(text)
    return load_config(folder / "preannot.toml")


def _counted_config(folder: Path, **options) -> str:
    opts = "".join(f"{k} = {json.dumps(v)}\n" for k, v in options.items())
    return ('[input]\npaths = ["in.jsonl"]\n[output]\npath = "out/local.json"\n'
            '[run]\nbatch_size = 10\n[[annotators]]\ntype = "counted"\n'
            f'log = "{folder}/built.log"\n' + opts)


def test_same_output_as_the_local_engine_on_the_product_example(cluster, tmp_path):
    """The bundled example (rules, a registry model left out, fusion) over 600 generated
    e-mails: the Ray engine's import JSON is the local engine's, byte for byte."""
    subprocess.run([sys.executable, str(ROOT / "examples/product-ner/generate.py"), "--count",
                    "600", "--out", str(tmp_path / "data/emails.jsonl")], check=True,
                   capture_output=True)
    text = (ROOT / "examples/product-ner/preannot.toml").read_text().replace(
        "../../rules/product-ner", str(ROOT / "rules/product-ner"))
    config = _config(tmp_path, text)
    config.batch_size = 32
    local = sync.pre_annotate(config)
    config.output, config.engine, config.workers = tmp_path / "out/ray.json", "ray", 2
    remote = sync.pre_annotate(config)
    assert (remote.read, remote.annotated, remote.failed) == (600, 600, 0)
    ray_bytes = (tmp_path / "out/ray.json").read_bytes()
    assert ray_bytes == (tmp_path / "out/predictions.json").read_bytes()
    assert local.annotated == 600


def test_same_output_as_the_local_engine_on_images_with_yolo(cluster, tmp_path):
    """An image folder through the demo YOLO: boxes and scores identical to the local run."""
    weights = Path(os.environ.get("PREANNOT_DEMO_MODELS", ROOT / ".cache/demo-models"))
    weights = weights / "yolo-shapes.pt"
    if not weights.exists():  # the vision plugins' demo model, built once for the whole suite
        sys.path.insert(0, str(ROOT / "examples/detect-and-segment"))
        import make_demo_models

        weights.parent.mkdir(parents=True, exist_ok=True)
        make_demo_models.make_yolo(weights.parent)
    sys.path.insert(0, str(ROOT / "examples/detect-and-segment"))
    import shapes

    shapes.write_image_folder(tmp_path / "images", count=12, seed=7)
    config = _config(tmp_path, '[input]\npaths = ["images"]\n[output]\npath = "out/local.json"\n'
                     '[run]\nbatch_size = 4\n[[annotators]]\nname = "shapes"\ntype = "yolo"\n'
                     f'model = "{weights}"\ndevice = "cpu"\nconf = 0.25\n')
    run(config, host=load_host())
    config.output, config.engine, config.workers = tmp_path / "out/ray.json", "ray", 2
    summary = run(config, host=load_host())
    assert (summary.read, summary.annotated, summary.failed) == (12, 12, 0)
    local = (tmp_path / "out/local.json").read_bytes()
    assert (tmp_path / "out/ray.json").read_bytes() == local
    assert local.count(b'"rectanglelabels"') >= 12  # the demo model finds shapes in them


def test_each_actor_builds_its_annotators_once(cluster, tmp_path):
    """Two actors over 30 batches: two constructions outside this (the driver's) process."""
    (tmp_path / "in.jsonl").write_text("".join(f'{{"text": "mail {i}"}}\n' for i in range(300)))
    config = _config(tmp_path, _counted_config(tmp_path))
    config.engine, config.workers = "ray", 2
    summary = run(config, host=load_host())
    assert (summary.annotated, summary.failed) == (300, 0)
    pids = (tmp_path / "built.log").read_text().split()
    workers = [p for p in pids if p != str(os.getpid())]
    assert len(workers) == 2 and len(set(workers)) == 2


def test_a_failing_task_is_reported_with_its_file_and_line(cluster, tmp_path):
    """A task the annotator raises on (in an actor) and a bad line (read on the driver): each
    named by file and line, the rest annotated, as with the local engine."""
    lines = [f'{{"text": "mail {i}"}}' for i in range(40)]
    lines[6] = '{"text": "this one goes boom"}'
    lines[20] = '{"text": oops'
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    config = _config(tmp_path, _counted_config(tmp_path))
    config.engine, config.workers = "ray", 2
    summary = run(config, host=load_host())
    assert summary.failures == [
        ("in.jsonl:7", "annotator 'counted' raised ValueError", "boom on purpose"),
        ("in.jsonl:21", "invalid JSON", "Expecting value")]
    assert (summary.read, summary.annotated) == (40, 38)
    assert [json.loads(task)["data"]["text"] for _, task in summary.failed_tasks] == [
        "this one goes boom"]


def test_a_dying_actor_is_restarted_by_ray_and_the_run_goes_on(cluster, tmp_path):
    """The first batch kills its actor's process: Ray restarts the actor, retries the batch,
    and every task is annotated."""
    (tmp_path / "in.jsonl").write_text("".join(f'{{"text": "mail {i}"}}\n' for i in range(100)))
    config = _config(tmp_path, _counted_config(tmp_path, die=str(tmp_path / "died")))
    config.engine, config.workers = "ray", 2
    summary = run(config, host=load_host())
    assert (tmp_path / "died").exists()
    assert (summary.read, summary.annotated, summary.failed) == (100, 100, 0)
    tasks = json.loads((tmp_path / "out/local.json").read_text())
    assert [t["data"]["text"] for t in tasks] == [f"mail {i}" for i in range(100)]
    workers = [p for p in (tmp_path / "built.log").read_text().split() if p != str(os.getpid())]
    assert len(workers) == 3  # two actors, one of them built again after its death


def test_a_killed_ray_run_resumes_with_nothing_lost_or_duplicated(cluster, tmp_path):
    """``preannot run --engine ray`` killed (SIGKILL) after some batches are committed, then
    run again: the second run skips exactly what the ledger holds, and the output is the
    local engine's."""
    (tmp_path / "in.jsonl").write_text("".join(f'{{"text": "mail {i}"}}\n' for i in range(400)))
    slow = tmp_path / "slow"
    run(_config(tmp_path, _counted_config(tmp_path, slow=str(slow))), host=load_host())
    slow.touch()
    cmd = [sys.executable, "-m", "preannot", "run", "-c", str(tmp_path / "preannot.toml"),
           "-o", str(tmp_path / "out/ray.json"), "--engine", "ray", "--address", cluster,
           "-w", "2", "--no-progress"]
    ledger = tmp_path / ".preannot/ledger.sqlite"

    def committed() -> int:
        if not ledger.exists():
            return 0
        with sqlite3.connect(ledger) as db:
            return db.execute("SELECT count(*) FROM items WHERE output LIKE '%ray.json' "
                              "AND status = 'done'").fetchone()[0]

    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while committed() < 50 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)
    first.wait()
    before = committed()
    assert 50 <= before < 400, first.stderr.read().decode()
    slow.unlink()
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    assert f"({400 - before} annotated now, {before} already done)" in " ".join(
        second.stderr.split())
    assert (tmp_path / "out/ray.json").read_bytes() == (tmp_path / "out/local.json").read_bytes()
    assert committed() == 400


def test_ls_push_existing_annotates_on_ray_as_it_does_here(cluster, labelstudio, tmp_path):
    """``ls push --existing`` with ``[run] engine = "ray"``: a real Label Studio project's tasks
    get the same predictions as with the local engine; a task the annotator fails on is
    reported by its Label Studio id."""
    texts = [f"mail {i}" for i in range(40)] + ["this one goes boom"]
    config = _config(tmp_path, _counted_config(tmp_path, labels=["FIRST"]))
    config.batch_size, config.workers = 8, 2
    host, client = load_host(), labelstudio.client()
    built = sync.annotators(config, host)
    seen = {}
    for engine in ("local", "ray"):
        config.engine = engine
        project = ensure_project(client, None, title=f"ray push {engine} {uuid.uuid4().hex[:6]}",
                                 annotators=built)
        ids = client.sdk.projects.import_tasks(project, request=[{"text": t} for t in texts],
                                               return_task_ids=True).task_ids
        summary = sync.push(config, client, project=str(project), existing=True, host=host)
        assert summary.predicted == 40
        assert summary.failures == [(f"task {ids[-1]}",
                                     "annotator 'counted' raised ValueError boom on purpose")]
        seen[engine] = {t["data"]["text"]: [(r["value"]["start"], r["value"]["end"],
                                             r["value"]["labels"], p.model_version)
                                            for p in client.sdk.predictions.list(task=t["id"])
                                            for r in p.result]
                        for t in client.export(project)}
    assert seen["ray"] == seen["local"]
    assert seen["ray"]["mail 7"][0][:3] == (0, 4, ["FIRST"])
    workers = [p for p in (tmp_path / "built.log").read_text().split() if p != str(os.getpid())]
    assert len(workers) == 2  # the ray push ran in two actors


def test_the_engine_setting_is_checked_and_ray_stays_out_of_the_core(tmp_path):
    """A typo in ``[run] engine`` names the engines; importing every module of the engine and
    the CLI does not import Ray (only a run with engine = "ray" does); an address nobody
    answers on is said at once."""
    (tmp_path / "preannot.toml").write_text('[run]\nengine = "spark"\n')
    with pytest.raises(ConfigError, match=r"\[run\] engine = 'spark': use one of 'local', 'ray'"):
        load_config(tmp_path / "preannot.toml")
    code = ("import sys, preannot.engine.ray_engine, preannot.cli.main, "
            "preannot.labelstudio.sync\n"
            "print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "False", out.stderr
    (tmp_path / "in.jsonl").write_text('{"text": "hello"}\n')
    wrong = run_cli(["run", str(tmp_path / "in.jsonl"), "--rules", str(ROOT / "rules/product-ner"),
                     "-o", str(tmp_path / "o.json"), "--engine", "ray", "--address", "127.0.0.1:1"])
    assert wrong.returncode == 1
    assert "Error: cannot reach the Ray cluster at '127.0.0.1:1'" in wrong.stderr
