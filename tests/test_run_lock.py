"""Two runs on one output: the second refuses with one line and the first loses nothing; a
killed run leaves no lock behind. Real processes, a real installed plugin."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from helpers import GATED, pip_install, run_cli, write_plugin

def _setup(tmp_path: Path, count: int) -> tuple[Path, list[str]]:
    site = pip_install(write_plugin(tmp_path / "plugin", "gated-plugin", GATED), tmp_path / "site")
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"text": f"t{i}"}) + "\n"
                                               for i in range(count)))
    (tmp_path / "preannot.toml").write_text('[[annotators]]\ntype = "gated"\n')
    args = ["run", str(tmp_path / "in.jsonl"), "-c", str(tmp_path / "preannot.toml"),
            "-o", str(tmp_path / "out.json"), "-b", "10", "--no-progress"]
    return site, args


def _start(site: Path, args: list[str], gate: Path) -> subprocess.Popen:
    env = {**os.environ, "GATE": str(gate), "PYTHONPATH": str(site)}
    process = subprocess.Popen([sys.executable, "-m", "preannot", *args], env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    started = Path(f"{gate}.started")
    deadline = time.monotonic() + 120
    while not started.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the first run never reached its annotator"
        time.sleep(0.05)
    return process


def test_a_second_run_on_the_same_output_refuses_and_the_first_loses_nothing(tmp_path):
    site, args = _setup(tmp_path, 50)
    gate = tmp_path / "gate"
    first = _start(site, args, gate)
    second = run_cli(args, pythonpath=[site], env={"GATE": str(gate)})
    assert second.returncode == 1, second.stderr
    assert second.stderr.strip().splitlines() == [
        f"Error: another preannot run is writing {tmp_path / 'out.json'} (it holds "
        ".out.json.lock): wait for it to finish, or write elsewhere with -o"]
    gate.touch()
    _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert [t["data"]["text"] for t in json.loads((tmp_path / "out.json").read_text())] == [
        f"t{i}" for i in range(50)]
    # the lock went with the first run: the same command now runs (and finds all done)
    again = run_cli(args, pythonpath=[site], env={"GATE": str(gate)})
    assert again.returncode == 0 and "50 tasks (0 annotated now, 50 already done)" in again.stderr


def test_a_killed_run_leaves_no_lock_behind(tmp_path):
    site, args = _setup(tmp_path, 30)
    gate = tmp_path / "gate"
    first = _start(site, args, gate)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=60)
    gate.touch()
    after = run_cli(args, pythonpath=[site], env={"GATE": str(gate)})
    assert after.returncode == 0, after.stderr
    assert "30 tasks (30 annotated now, 0 already done)" in after.stderr
    assert len(json.loads((tmp_path / "out.json").read_text())) == 30
