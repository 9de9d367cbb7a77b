"""A full pull of a 100,000-task project, against the export snapshot it replaced, in one run.

Builds a project of N tasks (default 100,000), each with a prediction and a third of them
annotated, in a local Label Studio. Then, while a simulated annotator saves an annotation every
0.2 s, runs ``preannot ls pull --full`` (the real CLI, in its own process) and prints its time,
its peak memory (max RSS), the annotators' saves that failed, and the export files left in the
server's data folder. The baseline is the route the pull used before: one export snapshot of
the whole project (``POST /api/projects/{id}/exports``, polled, downloaded, deleted), under the
client's 300 s timeout.

Usage: python benchmarks/ls_pull_100k.py [--tasks N] [--no-baseline]
(set PREANNOT_LABEL_STUDIO_BIN to the label-studio executable).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from preannot.labelstudio.client import Client, Connection, LabelStudioError
from preannot.labelstudio.server import local_server

CONFIG = ('<View><Text name="text" value="$text"/><Labels name="label" toName="text">'
          '<Label value="PRODUCT"/><Label value="BRAND"/></Labels></View>')
TIMEOUT = 300.0


def region(i: int, start: int, label: str = "PRODUCT") -> dict:
    return {"id": f"r{i}", "from_name": "label", "to_name": "text", "type": "labels",
            "value": {"start": start, "end": start + 11, "text": "Acme widget", "labels": [label]}}


def make_tasks(first: int, n: int, user: int) -> list[dict]:
    tasks = []
    for i in range(first, first + n):
        text = f"Order {i}: 3 x Acme widget model {i % 97} and a Zeta bolt, deliver asap."
        start = text.index("Acme")
        task = {"data": {"text": text}, "meta": {"preannot_id": f"bench-{i}"},
                "predictions": [{"model_version": "bench-v1", "score": (i % 100) / 100,
                                 "result": [region(i, start)]}]}
        if i % 3 == 0:
            task["annotations"] = [{"completed_by": user, "lead_time": 4.0, "result": [
                region(i, start, "PRODUCT" if i % 2 else "BRAND")]}]
        tasks.append(task)
    return tasks


def export_files(data_dir: Path) -> int:
    return sum(1 for p in (data_dir / "media" / "export").rglob("*") if p.is_file())


class Annotator(threading.Thread):
    """Saves an annotation every 0.2 s while a pull runs: what a person in the editor does."""

    def __init__(self, client: Client, task_ids: list[int]) -> None:
        super().__init__(daemon=True)
        self.client, self.task_ids = client, task_ids
        self.stop, self.latencies, self.failures = threading.Event(), [], []

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            task = self.task_ids[(i * 7919) % len(self.task_ids)]
            start = time.perf_counter()
            try:
                self.client.request("POST", f"api/tasks/{task}/annotations", what="saving",
                                    body={"result": [], "lead_time": 1.0}, retries=0)
                self.latencies.append(time.perf_counter() - start)
            except LabelStudioError as exc:
                self.failures.append(str(exc))
            i += 1
            self.stop.wait(0.2)


def with_annotator(client: Client, task_ids: list[int], fn):
    annotator = Annotator(client, task_ids)
    annotator.start()
    try:
        return fn()
    finally:
        annotator.stop.set()
        annotator.join()
        saves = len(annotator.latencies) + len(annotator.failures)
        slowest = max(annotator.latencies, default=0.0)
        median = statistics.median(annotator.latencies) if annotator.latencies else 0.0
        print(f"  annotator's saves meanwhile: {saves}, failed {len(annotator.failures)}, "
              f"median {median * 1000:.0f} ms, slowest {slowest:.1f} s")


def baseline(client: Client, project: int, data_dir: Path) -> None:
    """The former route: one snapshot of everything, polled to the timeout, then deleted."""
    before = export_files(data_dir)
    start = time.perf_counter()
    snapshot = client.request("POST", f"api/projects/{project}/exports", what="export",
                              body={"title": "baseline", "serialization_options": {
                                  "predictions": {"only_id": False}}})
    while snapshot["status"] not in ("completed", "failed"):
        if time.perf_counter() - start > TIMEOUT:
            break
        time.sleep(0.5)
        snapshot = client.request("GET", f"api/projects/{project}/exports/{snapshot['id']}")
    built = time.perf_counter() - start
    if snapshot["status"] == "completed":
        http = client.sdk._client_wrapper.httpx_client
        with http.stream(f"api/projects/{project}/exports/{snapshot['id']}/download",
                         method="GET", params={"exportType": "JSON"}) as response:
            size = sum(len(chunk) for chunk in response.iter_bytes(1 << 20))
        total = time.perf_counter() - start
        print(f"baseline (one export snapshot): built in {built:.0f} s, {size / 2**20:.0f} MiB "
              f"downloaded, {total:.0f} s in all")
    else:
        total = float("inf")
        print(f"baseline (one export snapshot): not built after {TIMEOUT:.0f} s (the client's "
              f"timeout): status {snapshot['status']!r}")
    client.request("DELETE", f"api/projects/{project}/exports/{snapshot['id']}")
    print(f"  export files the deleted snapshot left: {export_files(data_dir) - before}")
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    data_dir = Path(tempfile.mkdtemp(prefix="ls-pull-bench-"))
    server = local_server(data_dir).start()
    client = Client(Connection(server.url, server.api_key), timeout=TIMEOUT)
    try:
        user = client.check()["id"]
        project = client.sdk.projects.create(title="pull bench", label_config=CONFIG).id
        start = time.perf_counter()
        for first in range(0, args.tasks, 5000):
            client.sdk.projects.import_tasks(
                project, request=make_tasks(first, min(5000, args.tasks - first), user))
        ids = [t["id"] for t in client.tasks(project, include="id")]
        print(f"project: {len(ids)} tasks, a third annotated (built in "
              f"{time.perf_counter() - start:.0f} s)")
        work = Path(tempfile.mkdtemp(prefix="pull-bench-"))
        (work / "preannot.toml").write_text(f"[labelstudio]\nproject = {project}\n")
        env = {**os.environ, "LABEL_STUDIO_URL": server.url,
               "LABEL_STUDIO_API_KEY": server.api_key}
        files_before = export_files(data_dir)

        def cli_pull() -> float:
            start = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "preannot", "ls", "pull", "--full",
                                   "-c", str(work / "preannot.toml"), "--no-progress"],
                                  env=env, capture_output=True, text=True)
            if done.returncode != 0:
                sys.exit(f"ls pull failed: {done.stderr}")
            print("  " + done.stderr.strip().splitlines()[0])
            return time.perf_counter() - start

        print(f"preannot ls pull --full ({args.tasks:,} tasks, paged task list):")
        ours = with_annotator(client, ids, cli_pull)
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"  {ours:.0f} s in all ({args.tasks / ours:,.0f} tasks/s), peak memory (max RSS) "
              f"{peak:.0f} MiB, export files left on the server: "
              f"{export_files(data_dir) - files_before}")
        if not args.no_baseline:
            theirs = with_annotator(client, ids, lambda: baseline(client, project, data_dir))
            print(f"ratio: the paged pull took {ours / theirs:.2f}x the baseline's time"
                  if theirs != float("inf") else
                  f"ratio: the paged pull finished in {ours:.0f} s; the baseline not in "
                  f"{TIMEOUT:.0f} s")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
