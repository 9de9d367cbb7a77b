"""Fixtures for the vision plugins' tests: demo models built once and cached, generated images.
The real Label Studio comes from the suite's one ``labelstudio`` fixture (../conftest.py).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "detect-and-segment"
sys.path.insert(0, str(EXAMPLE))
sys.path.insert(0, str(ROOT / "tests"))  # the suite's helpers: the CLI, a `preannot serve` process

os.environ.setdefault("YOLO_OFFLINE", "1")


@pytest.fixture(scope="session")
def demo_models() -> Path:
    """``.cache/demo-models/`` (or ``$PREANNOT_DEMO_MODELS``) with the trained YOLO and tiny SAM;
    built on first use (30 epochs of CPU training: 4 to 20 minutes by load), reused afterwards.
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
