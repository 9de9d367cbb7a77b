"""A local Label Studio for users (``preannot ls up``) and tests: loopback, SQLite, own data folder.

Label Studio lives in its own virtual environment (it pins many packages of its own), found
through ``PREANNOT_LABEL_STUDIO_BIN``, then ``PATH``, then ``.cache/labelstudio-venv`` (created
with ``pip install label-studio`` on first use).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import venv
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from .client import Connection, LabelStudioError

BIN_ENV = "PREANNOT_LABEL_STUDIO_BIN"
DEFAULT_VENV = Path(".cache") / "labelstudio-venv"
CREDENTIALS = "preannot-credentials.json"
LABEL_STUDIO_REQUIREMENTS = ("label-studio", "sentry-sdk<3")
"""What a local Label Studio is installed with: Label Studio 1.23 passes sentry-sdk options that
sentry-sdk 3.0 refuses at start-up (``Unknown option 'send_default_pii'``), and does not pin it."""


def find_binary(venv_dir: Path = DEFAULT_VENV, install: bool = True) -> Path:
    """The ``label-studio`` executable, installing it into ``venv_dir`` if none is found."""
    if os.environ.get(BIN_ENV):
        path = Path(os.environ[BIN_ENV])
        if not path.exists():
            raise LabelStudioError(f"{BIN_ENV}={path} does not exist")
        return path
    if found := shutil.which("label-studio"):
        return Path(found)
    scripts = venv_dir / ("Scripts" if sys.platform == "win32" else "bin")
    binary = scripts / "label-studio"
    if binary.exists():
        return binary
    if not install:
        raise LabelStudioError(f"label-studio not found: set {BIN_ENV} or install it")
    print(f"installing Label Studio into {venv_dir} (once; a few minutes)...", file=sys.stderr)
    venv.create(venv_dir, with_pip=True)
    subprocess.run([str(scripts / "python"), "-m", "pip", "install", "--quiet",
                    *LABEL_STUDIO_REQUIREMENTS], check=True)
    return binary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LocalServer:
    """A Label Studio process with its login; :meth:`stop` and :meth:`start` keep the data."""

    data_dir: Path
    binary: Path
    port: int
    username: str
    password: str = field(repr=False)
    api_key: str = field(repr=False)
    files_root: Path | None = None
    """Its ``LOCAL_FILES_DOCUMENT_ROOT`` (see :mod:`.local_files`); None: it serves no file of
    this machine."""
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 180.0) -> LocalServer:
        """Start (or restart) the process and wait until it serves the API with our token."""
        # the login goes in through the environment Label Studio reads: a command line is
        # visible to every local user (ps); --internal-host is the address it listens on
        # (--host only names it in URLs), so nothing off this machine can reach it
        env = {**os.environ, "LABEL_STUDIO_BASE_DATA_DIR": str(self.data_dir),
               "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
               "LABEL_STUDIO_USERNAME": self.username, "LABEL_STUDIO_PASSWORD": self.password,
               "LABEL_STUDIO_USER_TOKEN": self.api_key,
               # `preannot serve` runs beside it on this machine: its ML-backend connection
               # and its annotation webhooks go to a loopback address, which Label Studio
               # refuses by default (the server itself listens on loopback only)
               "ML_BLOCK_LOCAL_IP": "false", "SSRF_PROTECTION_ENABLED": "false"}
        env.pop("DJANGO_DB", None)
        # images on this machine are shown through Local Files storages (push makes one per
        # image folder); every user can add one on any folder under the root, so the root is
        # the least that shows the images (.local_files), and serving is off without them
        for prefix in ("", "LABEL_STUDIO_", "HEARTEX_"):  # what the user's shell says: not ours
            for name in ("LOCAL_FILES_DOCUMENT_ROOT", "LOCAL_FILES_SERVING_ENABLED"):
                env.pop(prefix + name, None)
        env["LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED"] = "true" if self.files_root else "false"
        if self.files_root:
            env["LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"] = str(self.files_root)
        log = (self.data_dir / "server.log").open("ab")
        self.process = subprocess.Popen(
            [str(self.binary), "start", "--no-browser", "--host", "127.0.0.1",
             "--internal-host", "127.0.0.1", "--port", str(self.port),
             "--data-dir", str(self.data_dir), "--enable-legacy-api-token"],
            env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise LabelStudioError(f"Label Studio exited with status {self.process.returncode}; "
                                       f"see {self.data_dir / 'server.log'}")
            if _answers(self.url, self.api_key):
                creds_file = self.data_dir / CREDENTIALS  # so later commands find it running
                creds = json.loads(creds_file.read_text())
                creds_file.write_text(json.dumps({
                    **creds, "url": self.url,
                    "local_files_root": str(self.files_root) if self.files_root else None}))
                return self
            time.sleep(0.5)
        self.stop()
        raise LabelStudioError(f"Label Studio did not come up within {timeout:.0f} s; "
                               f"see {self.data_dir / 'server.log'}")

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL after 20 s); the data folder stays."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def wait(self) -> int:
        return self.process.wait() if self.process else 0


def local_server(data_dir: Path, *, port: int | None = None, binary: Path | None = None,
                 files_root: Path | None = None) -> LocalServer:
    """A (not yet started) server over ``data_dir``, serving the files under ``files_root``
    (checked by the caller: :mod:`.local_files`); its login is made once and kept there
    (file mode 0600, in a folder of mode 0700), so the same user, password and token work on
    every start."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o700)  # its database holds the token; exports hold the data
    creds_file = data_dir / CREDENTIALS
    if creds_file.exists():  # the login it was made with (and the URL it last ran at)
        saved = json.loads(creds_file.read_text())
        creds = {k: saved[k] for k in ("username", "password", "api_key")}
    else:
        creds = {"username": "admin@preannot.local", "password": secrets.token_urlsafe(12),
                 "api_key": secrets.token_hex(20)}
        creds_file.touch(mode=0o600)
        creds_file.write_text(json.dumps(creds))
    return LocalServer(data_dir=data_dir, binary=binary or find_binary(), port=port or free_port(),
                       files_root=files_root, **creds)


def _answers(url: str, api_key: str) -> bool:
    try:
        reply = httpx.get(f"{url}/api/current-user/whoami", timeout=5,
                          headers={"Authorization": f"Token {api_key}"})
        return reply.status_code == 200
    except httpx.TransportError:
        return False


def running_local(data_dir: Path) -> tuple[Connection, str | None] | None:
    """The connection to the server `preannot ls up` started over ``data_dir``, if it still
    runs, and the folder it serves files from (None: none)."""
    creds_file = data_dir / CREDENTIALS
    if not creds_file.exists():
        return None
    creds = json.loads(creds_file.read_text())
    if creds.get("url") and _answers(creds["url"], creds["api_key"]):
        return Connection(creds["url"], creds["api_key"]), creds.get("local_files_root")
    return None
