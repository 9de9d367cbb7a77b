"""`preannot ls up` end to end, as the README tells a newcomer to run it: a local Label Studio
starts with the data pre-annotated, its login kept in a 0600 file; other commands find it; it
is stopped and brought up again over the same data, with the same login and project."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import time

import pytest

from helpers import ROOT, run_cli
from preannot.labelstudio.client import Client, Connection
from preannot.labelstudio.server import free_port

pytestmark = [pytest.mark.labelstudio, pytest.mark.slow]

TEXTS = ["Please send a Zeta saw", "Two Acme drills and a Zeta saw", "Nothing to see"]


def _env() -> dict[str, str]:
    """No server configured: `ls up` must start its own."""
    return {k: v for k, v in os.environ.items()
            if k not in ("LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY")}


def _stop(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)  # the server runs in its own session
    except ProcessLookupError:
        return
    for _ in range(60):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.5)
    os.killpg(pid, signal.SIGKILL)


def test_ls_up_starts_finds_and_restarts_a_local_server(tmp_path):
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "products.csv").write_text("term,label\nZeta saw,PRODUCT\nAcme drill,PRODUCT\n")
    (tmp_path / "emails.jsonl").write_text(
        "".join(json.dumps({"id": f"m{i}", "text": t}) + "\n" for i, t in enumerate(TEXTS)))
    (tmp_path / "preannot.toml").write_text(
        '[input]\npaths = ["emails.jsonl"]\n[output]\npath = "out/predictions.json"\n'
        '[[annotators]]\nname = "products"\ntype = "rules"\nrules = "rules"\n'
        '[labelstudio]\ntitle = "ls up test"\n')
    config = str(tmp_path / "preannot.toml")
    port = free_port()
    pids: list[int] = []
    try:
        first = run_cli(["ls", "up", "-c", config, "--detach", "--port", str(port),
                         "--no-progress"], env=_env(), cwd=ROOT)
        assert first.returncode == 0, first.stderr
        said = " ".join(first.stderr.split())
        pids.append(int(re.search(r"kill (\d+)", said).group(1)))
        project = int(re.search(rf"running at http://127\.0\.0\.1:{port}/projects/(\d+)",
                                said).group(1))
        assert "3 tasks created" in said and "log in as admin@preannot.local" in said
        creds_file = tmp_path / ".preannot" / "labelstudio" / "preannot-credentials.json"
        assert stat.S_IMODE(creds_file.stat().st_mode) == 0o600
        creds = json.loads(creds_file.read_text())
        assert creds["url"] == f"http://127.0.0.1:{port}"
        client = Client(Connection(creds["url"], creds["api_key"]))
        tasks = client.export(project)
        assert sorted(t["data"]["text"] for t in tasks) == sorted(TEXTS)
        assert [t["total_predictions"] for t in tasks] == [1, 1, 1]

        # another command finds the server `ls up` started, with no URL or key configured
        again = run_cli(["ls", "push", "-c", config, "--no-progress"], env=_env(), cwd=ROOT)
        assert again.returncode == 0, again.stderr
        assert "0 tasks created, 0 given predictions, 3 already up to date" in " ".join(
            again.stderr.split())

        _stop(pids[-1])
        second = run_cli(["ls", "up", "-c", config, "--detach", "--port", str(port),
                          "--no-progress"], env=_env(), cwd=ROOT)
        assert second.returncode == 0, second.stderr
        said = " ".join(second.stderr.split())
        pids.append(int(re.search(r"kill (\d+)", said).group(1)))
        assert f"/projects/{project}:" in said  # the same project, found by its title
        assert "0 tasks created, 0 given predictions, 3 already up to date" in said
        assert json.loads(creds_file.read_text())["api_key"] == creds["api_key"]
        assert len(client.export(project)) == 3
    finally:
        for pid in pids:
            _stop(pid)
