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
from pathlib import Path

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


def _listening(port: int) -> list[str]:
    """The addresses something listens on at ``port``, read from the kernel (not arguments)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(address)
                if len(raw) == 4:
                    found.append(".".join(str(b) for b in raw[::-1]))
                else:  # IPv6, four little-endian words
                    words = [raw[i:i + 4][::-1].hex() for i in range(0, 16, 4)]
                    found.append(":".join(w for w in words))
    return found


def _command_lines_holding(*secrets: str) -> list[str]:
    """Every process's command line (as ``ps -eo args`` shows it) that holds a secret."""
    holding = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone meanwhile
            continue
        if any(secret in args for secret in secrets):
            holding.append(args)
    return holding


def _files_holding(folder: Path, *secrets: str) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()
                  and any(s.encode() in p.read_bytes() for s in secrets))


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
        login = json.loads((tmp_path / ".preannot" / "labelstudio" /
                            "preannot-credentials.json").read_text())
        assert login["password"] not in first.stderr and login["api_key"] not in first.stderr
        assert ".preannot/labelstudio/preannot-credentials.json" in said  # where the password is
        pids.append(int(re.search(r"kill (\d+)", said).group(1)))
        project = int(re.search(rf"running at http://127\.0\.0\.1:{port}/projects/(\d+)",
                                said).group(1))
        assert "3 tasks created with their predictions, 0 tasks already there" in said and "log in as admin@preannot.local" in said
        creds_file = tmp_path / ".preannot" / "labelstudio" / "preannot-credentials.json"
        assert stat.S_IMODE(creds_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(creds_file.parent.stat().st_mode) == 0o700
        creds = json.loads(creds_file.read_text())
        secrets = (creds["api_key"], creds["password"])
        # only this machine can reach it, and no command line shows its login
        assert _listening(port) == ["127.0.0.1"]
        assert _command_lines_holding(*secrets) == []
        assert creds["url"] == f"http://127.0.0.1:{port}"
        client = Client(Connection(creds["url"], creds["api_key"]))
        tasks = client.export(project)
        assert sorted(t["data"]["text"] for t in tasks) == sorted(TEXTS)
        assert [t["total_predictions"] for t in tasks] == [1, 1, 1]

        # another command finds the server `ls up` started, with no URL or key configured
        again = run_cli(["ls", "push", "-c", config, "--no-progress"], env=_env(), cwd=ROOT)
        assert again.returncode == 0, again.stderr
        assert ("0 tasks created with their predictions, 0 tasks already there given "
                "predictions, 3 already up to date") in " ".join(again.stderr.split())
        pulled = run_cli(["ls", "pull", "-c", config, "-p", str(project), "--no-progress"],
                         env=_env(), cwd=ROOT)
        assert pulled.returncode == 0, pulled.stderr
        assert (tmp_path / "harvest" / "report.html").exists()
        # the secrets are in the credentials file only: not in what preannot wrote (ledger,
        # output, harvest, report, caches, the server's log) nor in any command's output
        label_studio_own = {"label_studio.sqlite3", "label_studio.sqlite3-wal",
                            "label_studio.sqlite3-shm"}
        assert [f for f in _files_holding(tmp_path, *secrets)
                if Path(f).name not in label_studio_own] == [
            ".preannot/labelstudio/preannot-credentials.json"]
        for result in (first, again, pulled):
            assert not any(s in result.stdout + result.stderr for s in secrets)

        _stop(pids[-1])
        second = run_cli(["ls", "up", "-c", config, "--detach", "--port", str(port),
                          "--no-progress"], env=_env(), cwd=ROOT)
        assert second.returncode == 0, second.stderr
        said = " ".join(second.stderr.split())
        pids.append(int(re.search(r"kill (\d+)", said).group(1)))
        assert f"/projects/{project}:" in said  # the same project, found by its title
        assert ("0 tasks created with their predictions, 0 tasks already there given "
                "predictions, 3 already up to date") in said
        assert json.loads(creds_file.read_text())["api_key"] == creds["api_key"]
        assert len(client.export(project)) == 3
    finally:
        for pid in pids:
            _stop(pid)
