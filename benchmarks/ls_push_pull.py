"""Push and pull throughput against a real Label Studio, compared with the raw SDK in the same run.

Push: 20,000 tasks with predictions through ``preannot.labelstudio.push.push_tasks`` versus the
same payload sent with ``projects.import_tasks`` (same batch size), each into a fresh project.
Pull: ``preannot.harvest.store.pull`` (the task list a page at a time, with full
predictions, stored in SQLite) versus the raw JSON export
(``/api/projects/{id}/export?exportType=JSON&download_all_tasks=true``, one request, prediction
ids only) of the same project. See ls_pull_100k.py for a large project.

Usage: python benchmarks/ls_push_pull.py [--tasks N]
Uses LABEL_STUDIO_URL / LABEL_STUDIO_API_KEY if set, else starts a local server (set
PREANNOT_LABEL_STUDIO_BIN to its label-studio executable).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import tracemalloc
from pathlib import Path

from preannot.labelstudio.client import Client
from preannot.evaluation.corrections import write_outputs
from preannot.harvest.store import HarvestStore, pull
from preannot.labelstudio.push import BATCH, push_tasks, read_import_file
from bench_labelstudio import label_studio


CONFIG = ('<View><Text name="text" value="$text"/><Labels name="label" toName="text">'
          '<Label value="PRODUCT"/><Label value="BRAND"/></Labels></View>')


def make_tasks(n: int) -> list[dict]:
    tasks = []
    for i in range(n):
        text = f"Order {i}: 3 x Acme widget model {i % 97} and a Zeta bolt, deliver asap."
        start = text.index("Acme")
        tasks.append({"data": {"text": text}, "meta": {"preannot_id": f"bench-{i}"},
                      "predictions": [{"model_version": "bench-v1", "score": (i % 100) / 100,
                                       "result": [{"id": f"r{i}", "from_name": "label",
                                                   "to_name": "text", "type": "labels",
                                                   "score": (i % 100) / 100,
                                                   "value": {"start": start, "end": start + 11,
                                                             "text": "Acme widget",
                                                             "labels": ["PRODUCT"]}}]}]})
    return tasks


def timed(fn):
    tracemalloc.start()
    start = time.perf_counter()
    result = fn()
    elapsed = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return result, elapsed, peak


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=20_000)
    args = parser.parse_args()
    with label_studio() as connection:
        client = Client(connection)
        tasks = make_tasks(args.tasks)
        path = Path(tempfile.mkdtemp()) / "predictions.json"
        path.write_text(json.dumps(tasks))

        def project(name: str) -> int:
            return client.sdk.projects.create(title=f"bench {name} {time.time_ns()}",
                                              label_config=CONFIG).id

        raw_project = project("raw")

        def raw_push():
            for i in range(0, len(tasks), BATCH):
                client.sdk.projects.import_tasks(raw_project, request=tasks[i:i + BATCH])

        _, raw_s, raw_mem = timed(raw_push)
        ours_project = project("preannot")
        summary, ours_s, ours_mem = timed(
            lambda: push_tasks(client, ours_project, read_import_file(path)))
        assert summary.created == len(tasks), summary
        raw_rate, ours_rate = len(tasks) / raw_s, len(tasks) / ours_s
        print(f"push {len(tasks)} tasks: raw SDK import_tasks {raw_rate:,.0f} tasks/s "
              f"(peak traced memory {raw_mem / 2**20:.1f} MiB), preannot push {ours_rate:,.0f} "
              f"tasks/s (peak {ours_mem / 2**20:.1f} MiB); ratio {ours_rate / raw_rate:.2f} "
              "(target >= 0.9)")
        exported, export_s, export_mem = timed(lambda: client.request(
            "GET", f"api/projects/{ours_project}/export",
            params={"exportType": "JSON", "download_all_tasks": "true"}))
        print(f"pull baseline: raw JSON export of {len(exported)} tasks "
              f"{len(exported) / export_s:,.0f} tasks/s (peak {export_mem / 2**20:.1f} MiB)")
        del exported
        store = HarvestStore(Path(tempfile.mkdtemp()) / "ledger.sqlite", f"bench#{ours_project}")
        pulled, pull_s, pull_mem = timed(lambda: pull(client, ours_project, store))
        assert pulled.fetched == len(tasks), pulled
        pull_rate = pulled.fetched / pull_s
        print(f"pull: preannot ls pull (paged task list with full predictions, stored) "
              f"{pull_rate:,.0f} tasks/s (peak {pull_mem / 2**20:.1f} MiB); ratio "
              f"{pull_rate / (len(tasks) / export_s):.2f} vs the raw export")
        _, again_s, _ = timed(lambda: pull(client, ours_project, store))
        print(f"pull again with nothing changed: {again_s:.2f} s")
        _, out_s, out_mem = timed(lambda: write_outputs(store.tasks(), Path(tempfile.mkdtemp())))
        print(f"classify + corrections/metrics/report of {len(tasks)} tasks: {out_s:.1f} s "
              f"(peak {out_mem / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
