"""A `preannot run -w 2` killed with SIGKILL leaves no process behind: its workers (and the
resource tracker whose pipe they hold) end with it instead of living on under init."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT, wait_for

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")


def children(pid: int) -> set[int]:
    """The live processes whose parent is ``pid``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # ended meanwhile
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def alive(pids: set[int]) -> set[int]:
    """Those of ``pids`` still running (a zombie has ended)."""
    left = set()
    for pid in pids:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                left.add(pid)
        except OSError:
            pass
    return left


def batches_recorded(ledger: Path) -> int:
    if not ledger.exists():
        return 0
    try:
        with sqlite3.connect(ledger, timeout=1) as db:
            return db.execute("SELECT COUNT(*) FROM items").fetchone()[0]
    except sqlite3.OperationalError:  # the table is not there yet
        return 0


def test_a_killed_run_leaves_no_worker_behind(tmp_path):
    (tmp_path / "in.jsonl").write_text("".join(
        f'{{"text": "order {i}: three Acme widget to Lyon"}}\n' for i in range(200_000)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get(
        "PYTHONPATH", "")])}
    run = subprocess.Popen([sys.executable, "-m", "preannot", "run", "in.jsonl", "--rules",
                            str(ROOT / "rules" / "product-ner"), "-o", "out.json", "-w", "2",
                            "-b", "50", "--no-progress"], cwd=tmp_path, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    spawned: set[int] = set()
    try:
        # busy: both workers and the resource tracker started, and batches being recorded
        wait_for(lambda: len(children(run.pid)) == 3
                 and batches_recorded(tmp_path / ".preannot" / "ledger.sqlite") > 0,
                 "two workers at work", timeout=120)
        spawned = children(run.pid)
        assert run.poll() is None, "the run ended before it could be killed: give it more input"
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=30)
        try:  # a deadline only: the survivors are counted after it
            wait_for(lambda: not alive(spawned), "the workers to end", timeout=30)
        except AssertionError:
            pass
        assert alive(spawned) == set()
    finally:
        run.kill()
        for pid in alive(spawned):
            os.kill(pid, signal.SIGKILL)
