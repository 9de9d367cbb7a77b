"""Fixtures for the vision plugins' tests: demo models built once and cached, generated images,
and a real Label Studio server (started here unless one is given in the environment).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "detect-and-segment"
sys.path.insert(0, str(EXAMPLE))

os.environ.setdefault("YOLO_OFFLINE", "1")


@pytest.fixture(scope="session")
def demo_models() -> Path:
    """``.cache/demo-models/`` (or ``$PREANNOT_DEMO_MODELS``) with the trained YOLO and tiny SAM;
    built on first use (about four minutes of CPU training), reused afterwards.
    """
    import make_demo_models

    folder = Path(os.environ.get("PREANNOT_DEMO_MODELS", make_demo_models.DEFAULT_DIR))
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / make_demo_models.YOLO_FILE).exists():
        make_demo_models.make_yolo(folder)
    if not (folder / make_demo_models.SAM_FILE).exists():
        make_demo_models.make_sam(folder)
    return folder


@pytest.fixture(scope="session")
def yolo_weights(demo_models: Path) -> Path:
    return demo_models / "yolo-shapes.pt"


@pytest.fixture(scope="session")
def sam_checkpoint(demo_models: Path) -> Path:
    return demo_models / "sam-vit_tiny.pth"


@pytest.fixture(scope="session")
def shapes():
    """The shapes generator module of the example (images with known boxes)."""
    import shapes as module

    return module


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory):
    """``(url, token)`` of a real Label Studio: ``PREANNOT_TEST_LS_URL``/``_TOKEN`` if set, else
    one started here from ``PREANNOT_LABEL_STUDIO_BIN`` (or ``label-studio`` on the PATH).
    """
    if os.environ.get("PREANNOT_TEST_LS_URL") and os.environ.get("PREANNOT_TEST_LS_TOKEN"):
        yield os.environ["PREANNOT_TEST_LS_URL"], os.environ["PREANNOT_TEST_LS_TOKEN"]
        return
    binary = os.environ.get("PREANNOT_LABEL_STUDIO_BIN") or shutil.which("label-studio")
    if not binary:
        pytest.skip("no Label Studio: set PREANNOT_LABEL_STUDIO_BIN or PREANNOT_TEST_LS_URL/_TOKEN")
    import requests

    port, token = _free_port(), "visiontesttoken0123456789"
    data_dir = tmp_path_factory.mktemp("label-studio")
    env = {**os.environ, "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
           "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true"}
    log = (data_dir / "server.log").open("w")
    server = subprocess.Popen(
        [binary, "start", "--no-browser", "--host", "127.0.0.1", "--port", str(port),
         "--username", "vision@example.com", "--password", "vision12345", "--user-token", token,
         "--enable-legacy-api-token", "--data-dir", str(data_dir)],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if requests.get(f"{url}/health", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Label Studio did not start; see {data_dir / 'server.log'}")
            time.sleep(1)
        yield url, token
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
