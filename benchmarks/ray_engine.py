"""The Ray engine against the local engine on one machine, and the driver's ledger ceiling.

    python benchmarks/ray_engine.py [--count 300000] [--small 100000] [--workers 2]

Generates ``--count`` product e-mails (examples/product-ner/generate.py) and runs the product
rules over them: the local engine with ``--workers`` worker processes, then the Ray engine with
an actor pool of the same size on a local Ray (2 CPUs here), in the same run. Each run is a
fresh process; Ray is started before the clock starts (a cluster is up before a run), and its
start is printed apart. Prints both throughputs and their ratio (target >= 0.8: the engine's
overhead stays small), the driver's peak memory with Ray at ``--small`` and ``--count`` records
(flat: the driver holds only the batches in flight), and the driver's maximum commit rate: the
same records read, sorted against the ledger and committed with their results already made, no
annotating at all, which is the most any cluster can deliver through one driver.
"""

from __future__ import annotations

import argparse
import json
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _config(folder: Path, output: str, workers: int, engine: str):
    from preannot.engine.config import load_config

    (folder / "preannot.toml").write_text(
        f'[input]\npaths = ["emails.jsonl"]\n[output]\npath = "{output}"\n'
        f'[run]\nbatch_size = 256\nworkers = {workers}\nengine = "{engine}"\n'
        f'[[annotators]]\nname = "products"\ntype = "rules"\n'
        f'rules = "{ROOT / "rules/product-ner"}"\n')
    return load_config(folder / "preannot.toml")


def one(folder: Path, output: str, workers: int, engine: str) -> dict:
    """One run in this process (a child of the benchmark): its time and the peak memory."""
    from preannot.engine.runner import run

    config = _config(folder, output, workers, engine)
    start = time.perf_counter()
    if engine == "ray":
        import ray

        ray.init(address="local", num_cpus=workers, include_dashboard=False,
                 logging_level="ERROR", _node_ip_address="127.0.0.1")  # loopback only
    started = time.perf_counter() - start
    start = time.perf_counter()
    summary = run(config)
    seconds = time.perf_counter() - start
    assert summary.failed == 0 and summary.annotated == summary.read, summary
    return {"seconds": seconds, "ray_start": started, "records": summary.read,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def ceiling(folder: Path, done_output: str, output: str) -> dict:
    """The driver's loop with the annotating taken out: read, sort against the ledger, commit
    rows whose results were made before (those of ``done_output``)."""
    from preannot.annotator import batches
    from preannot.engine.ledger import Ledger
    from preannot.engine.readers import read_inputs
    from preannot.engine.runner import _Run

    config = _config(folder, output, 1, "local")
    ledger_path = config.workspace.ledger
    with sqlite3.connect(ledger_path) as db:
        made = dict(db.execute("SELECT key, result FROM items WHERE output = ? AND "
                               "status = 'done'", (str((folder / done_output).resolve()),)))
    ledger = Ledger(ledger_path, str(config.output.resolve()))
    state = _Run(config, ledger, "made-before", None)
    start = time.perf_counter()
    for chunk in batches(read_inputs(config.inputs, None, config.base_dir), config.batch_size):
        batch = state.sort(chunk)
        rows = [{"key": t.id, "source": t.source, "checksum": t.checksum, "status": "done",
                 "result": made[t.id]} for t in batch.todo]
        state.settle(rows, batch.failed, len(chunk))
    seconds = time.perf_counter() - start
    ledger.close()
    return {"seconds": seconds, "records": state.summary.annotated}


def child(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True,
                         text=True, cwd=ROOT)
    if out.returncode:
        sys.exit(f"child {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300_000)
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, folder, *rest = args.child
        result = (one(Path(folder), rest[0], int(rest[1]), rest[2]) if kind == "run"
                  else ceiling(Path(folder), rest[0], rest[1]))
        print(json.dumps(result))
        return
    gen = ROOT / "examples/product-ner/generate.py"
    with tempfile.TemporaryDirectory() as tmp:
        big, small = Path(tmp) / "big", Path(tmp) / "small"
        for folder, count in ((big, args.count), (small, args.small)):
            folder.mkdir()
            subprocess.run([sys.executable, str(gen), "--count", str(count), "--out",
                            str(folder / "emails.jsonl")], check=True, capture_output=True)
        w = str(args.workers)
        local = child("run", str(big), "local.json", w, "local")
        remote = child("run", str(big), "ray.json", w, "ray")
        remote_small = child("run", str(small), "ray.json", w, "ray")
        same = (big / "local.json").read_bytes() == (big / "ray.json").read_bytes()
        top = child("ceiling", str(big), "local.json", "ceiling.json")
    rate = {name: r["records"] / r["seconds"] for name, r in
            (("local", local), ("ray", remote), ("ceiling", top))}
    print(f"{args.count:,} product e-mails, product rules, batch 256, {args.workers} workers "
          f"(local) / {args.workers} actors on a local Ray with {args.workers} CPUs")
    print(f"local engine -w {args.workers}: {local['seconds']:7.1f} s  {rate['local']:8,.0f} rec/s"
          f"  driver peak {local['peak_mb']:,.0f} MB")
    print(f"Ray engine:          {remote['seconds']:7.1f} s  {rate['ray']:8,.0f} rec/s"
          f"  (Ray started in {remote['ray_start']:.1f} s, not counted)")
    print(f"ratio Ray / local: {rate['ray'] / rate['local']:.2f} (target >= 0.8); "
          f"outputs byte-identical: {same}")
    print(f"Ray driver peak memory: {remote_small['peak_mb']:,.0f} MB at {args.small:,} records, "
          f"{remote['peak_mb']:,.0f} MB at {args.count:,}")
    print(f"driver ledger ceiling (read + sort + commit, no annotating): "
          f"{rate['ceiling']:,.0f} rec/s")


if __name__ == "__main__":
    main()
