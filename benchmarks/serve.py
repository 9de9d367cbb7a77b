"""`preannot serve` latency: one task per request against one 100-task request, called
directly and through Label Studio's own "Retrieve predictions" action.

Two pipelines, each served by a real `preannot serve` process on loopback: ``rules`` (the
product dictionary of ``flywheel_corpus.py``) and ``rules+ner`` (the same rules and a spaCy NER
model trained here with the ``spacy-ner`` trainer on that corpus, served from the registry, beam
confidence on). For each it prints p50/p95 of

- ``direct 1``: ``POST /predict`` with one task, ``--requests`` times;
- ``direct 100``: ``POST /predict`` with ``--batch`` tasks, ``--repeats`` times;
- ``LS 1`` and ``LS 100``: Label Studio's Data Manager action "Retrieve predictions" on one task
  and on ``--batch`` tasks without predictions (Label Studio asks the backend, stores the
  predictions, answers), on a project `ls connect` connected;

and the per-task speed-up of one ``--batch``-task request over ``--batch`` one-task requests,
measured in the same run (target: at least 20x for text).

    python benchmarks/serve.py [--batch 100] [--requests 100] [--repeats 10] [--train 300]
        [--epochs 4] [--workdir DIR]

With ``LABEL_STUDIO_URL`` and ``LABEL_STUDIO_API_KEY`` set, that server is used (it must accept a
loopback ML backend: ``ML_BLOCK_LOCAL_IP=false``); otherwise a local one is started. Interactive
SAM's figures come from ``benchmarks/sam_interactive.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from flywheel_corpus import Generator, write_rules

from preannot import Context, Example, Span, Task
from preannot.labelstudio.client import Client
from preannot.labelstudio.server import free_port
from preannot.training.registry import Registry
from bench_labelstudio import label_studio

ROOT = Path(__file__).resolve().parent.parent


def percentiles(seconds: list[float]) -> tuple[float, float]:
    ordered = sorted(seconds)
    return (statistics.median(ordered) * 1000,
            ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))] * 1000)


def train_model(work: Path, n: int, epochs: int) -> None:
    """A spaCy NER trained on the corpus, promoted in ``work/models`` as ``ner``."""
    from preannot_spacy.trainer import SpacyNerTrainer

    docs = Generator(7).docs("train", n)
    examples = [Example(Task(d.id, {"text": d.text}),
                        [Span(start=s, end=e, text=d.text[s:e], label=lab)
                         for s, e, lab in d.spans]) for d in docs]
    trainer = SpacyNerTrainer("ner", {"epochs": epochs}, Context(base_dir=work))
    with contextlib.redirect_stdout(io.StringIO()):
        folder = trainer.train(examples[: n * 4 // 5], examples[n * 4 // 5:], work / "train",
                               log=lambda _: None)
    registry = Registry(work / "models")
    registry.promote(registry.add("ner", folder, {}))


def write_config(folder: Path, rules: Path, port: int, project: int, ner: bool) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    body = (f'[[annotators]]\nname = "products"\ntype = "rules"\nrules = "{rules}"\n'
            f'[labelstudio]\nproject = {project}\n'
            f'[serve]\nport = {port}\nlearn = false\n'
            f'[training]\nregistry = "{folder.parent / "models"}"\n')
    if ner:
        body += '[[annotators]]\nname = "model"\ntype = "spacy-ner"\nmodel = "registry:ner"\n'
    (folder / "preannot.toml").write_text(body)
    return folder / "preannot.toml"


def serve(config: Path, env: dict[str, str]) -> subprocess.Popen:
    log = (config.parent / "serve.log").open("ab")
    process = subprocess.Popen([sys.executable, "-m", "preannot", "serve", "-c", str(config)],
                               env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
    return process


def wait_up(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"preannot serve exited (status {process.returncode})")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        time.sleep(0.3)
    raise SystemExit("preannot serve did not come up")


def measure(name: str, client: Client, url: str, project: int, texts: list[str], args) -> dict:
    tasks = [{"id": i, "data": {"text": t}} for i, t in enumerate(texts)]
    # one connection kept alive, as Label Studio keeps one session per worker process
    http = httpx.Client(timeout=600)
    post = lambda batch: http.post(f"{url}/predict", json={"tasks": batch})  # noqa: E731
    post(tasks[:args.batch])  # warm-up (first calls load lazily what the models defer)
    one = []
    for task in tasks[:args.requests]:
        begin = time.perf_counter()
        post([task]).raise_for_status()
        one.append(time.perf_counter() - begin)
    hundred = []
    for _ in range(args.repeats):
        begin = time.perf_counter()
        reply = post(tasks[:args.batch])
        reply.raise_for_status()
        hundred.append(time.perf_counter() - begin)
    assert len(reply.json()["results"]) == args.batch
    ls_one, ls_hundred = [], []
    fresh = iter(range(10 ** 9))

    def import_tasks(n: int) -> list[int]:
        return sorted(client.sdk.projects.import_tasks(
            project, request=[{"text": texts[next(fresh) % len(texts)]} for _ in range(n)],
            return_task_ids=True).task_ids)

    for _ in range(args.ls_requests):
        [task_id] = import_tasks(1)
        begin = time.perf_counter()
        client.retrieve_predictions(project, [task_id])
        ls_one.append(time.perf_counter() - begin)
    served = lambda: http.get(f"{url}/metrics").json()["seconds"].get("predict", 0.0)  # noqa: E731
    inside = served()
    for _ in range(args.ls_repeats):
        ids = import_tasks(args.batch)
        begin = time.perf_counter()
        client.retrieve_predictions(project, ids)
        ls_hundred.append(time.perf_counter() - begin)
    inside = (served() - inside) / args.ls_repeats
    per_task_one = statistics.median(one)
    per_task_batch = statistics.median(hundred) / args.batch
    return {"name": name, "direct 1": percentiles(one), "direct N": percentiles(hundred),
            "LS 1": percentiles(ls_one), "LS N": percentiles(ls_hundred),
            "speedup": per_task_one / per_task_batch, "backend share": inside,
            "ls speedup": statistics.median(ls_one) / (statistics.median(ls_hundred) / args.batch)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--requests", type=int, default=100, help="one-task requests")
    parser.add_argument("--repeats", type=int, default=10, help="batch requests")
    parser.add_argument("--ls-requests", type=int, default=20)
    parser.add_argument("--ls-repeats", type=int, default=5)
    parser.add_argument("--train", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()

    work = args.workdir or Path(tempfile.mkdtemp(prefix="serve-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    rules = work / "rules"
    write_rules(rules)
    texts = [d.text for d in Generator(11, held_out=True).docs("bench", 1000)]
    print(f"training the spaCy model ({args.train} texts, {args.epochs} epochs)...", flush=True)
    train_model(work, args.train, args.epochs)

    rows = []
    with label_studio(work / "labelstudio") as connection:
        client = Client(connection)
        env = {"LABEL_STUDIO_URL": connection.url, "LABEL_STUDIO_API_KEY": connection.api_key}
        for name, ner in (("rules", False), ("rules+ner", True)):
            port = free_port()
            label_config = ('<View><Text name="text" value="$text"/><Labels name="label" '
                            'toName="text"><Label value="BRAND"/><Label value="PRODUCT"/>'
                            '</Labels></View>')
            project = client.sdk.projects.create(title=f"serve bench {name}",
                                                 label_config=label_config).id
            config = write_config(work / name, rules, port, project, ner)
            process = serve(config, env)
            url = f"http://127.0.0.1:{port}"
            try:
                wait_up(url, process)
                done = subprocess.run([sys.executable, "-m", "preannot", "ls", "connect", "-c",
                                       str(config)], env={**os.environ, **env},
                                      capture_output=True, text=True)
                if done.returncode:
                    raise SystemExit(done.stderr)
                rows.append(measure(name, client, url, project, texts, args))
            finally:
                process.terminate()
                process.wait(30)
    n = args.batch
    print(f"\n/predict latency, ms (p50 / p95); {args.requests} one-task and {args.repeats} "
          f"{n}-task requests direct, {args.ls_requests} and {args.ls_repeats} through Label "
          "Studio's Retrieve predictions")
    print(f"{'pipeline':<11} {'direct 1':>15} {'direct ' + str(n):>17} {'LS 1':>15} "
          f"{'LS ' + str(n):>17} {'batch speed-up/task':>20} {'via LS':>8} "
          f"{'backend in LS ' + str(n):>16}")
    for r in rows:
        cells = [f"{r[k][0]:7.1f} /{r[k][1]:7.1f}" for k in ("direct 1", "direct N", "LS 1", "LS N")]
        print(f"{r['name']:<11} {cells[0]:>15} {cells[1]:>17} {cells[2]:>15} {cells[3]:>17} "
              f"{r['speedup']:19.1f}x {r['ls speedup']:7.1f}x "
              f"{r['backend share'] * 1000:13.1f} ms")
    print(f"\ntarget: one {n}-task request at least 20x faster per task than {n} one-task "
          "requests (text)")


if __name__ == "__main__":
    main()
