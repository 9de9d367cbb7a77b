"""Build the demo models locally (no weights can be downloaded): a YOLO detector trained for about
four minutes (2 CPU cores) on the generated shapes, and a tiny SAM checkpoint made of
segment-anything's own classes.

    python examples/detect-and-segment/make_demo_models.py [OUTPUT_DIR] [--force]

Writes ``OUTPUT_DIR/yolo-shapes.pt`` and ``OUTPUT_DIR/sam-vit_tiny.pth`` (default
``.cache/demo-models/`` at the repository root; a model already there is kept unless --force),
and the example's input images into ``data/images/`` beside this script.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_DIR = HERE.parent.parent / ".cache" / "demo-models"
YOLO_FILE = "yolo-shapes.pt"
SAM_FILE = "sam-vit_tiny.pth"
SAM_TYPE = "vit_tiny"

sys.path.insert(0, str(HERE))
from shapes import write_image_folder, write_yolo_dataset  # noqa: E402


def make_yolo(out: Path, *, epochs: int = 30, imgsz: int = 160, seed: int = 0) -> Path:
    """Train ``yolov8n.yaml`` from scratch on the shapes and keep its best weights."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics import YOLO

    with tempfile.TemporaryDirectory(prefix="preannot-shapes-") as tmp:
        data = write_yolo_dataset(Path(tmp) / "data", train=384, val=64, size=imgsz, seed=seed)
        model = YOLO("yolov8n.yaml")
        model.train(data=str(data), epochs=epochs, imgsz=imgsz, batch=32, device="cpu",
                    workers=0, seed=seed, deterministic=True, plots=False, val=True,
                    amp=False, project=str(Path(tmp) / "runs"), name="shapes", exist_ok=True,
                    mosaic=1.0, close_mosaic=5, warmup_epochs=1, lr0=0.01, verbose=False)
        best = Path(model.trainer.best)
        target = out / YOLO_FILE
        shutil.copyfile(best, target)
    return target


def make_sam(out: Path, *, seed: int = 0) -> Path:
    """A tiny SAM (ViT with embed_dim 64, depth 2) saved as a state dict, like the official files."""
    import torch
    from preannot_sam.models import build_sam_vit_tiny

    torch.manual_seed(seed)
    sam = build_sam_vit_tiny()
    target = out / SAM_FILE
    torch.save(sam.state_dict(), target)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("output", type=Path, nargs="?", default=DEFAULT_DIR)
    parser.add_argument("--force", action="store_true", help="rebuild models already there")
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    if args.force or not (args.output / YOLO_FILE).exists():
        print(f"training YOLO on generated shapes ({args.epochs} epochs, CPU)...", file=sys.stderr)
        make_yolo(args.output, epochs=args.epochs)
    if args.force or not (args.output / SAM_FILE).exists():
        make_sam(args.output)
    print(f"demo models in {args.output}: {YOLO_FILE}, {SAM_FILE} (model_type {SAM_TYPE!r})")
    images = HERE / "data" / "images"
    if not images.exists():
        write_image_folder(images, count=12, seed=7)
        print(f"demo images in {images}")


if __name__ == "__main__":
    main()
