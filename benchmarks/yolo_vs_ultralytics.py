"""Throughput of preannot's batch pre-annotation with the yolo plugin vs ultralytics' own predict.

Both read the same image files and run the same model; preannot also builds Label Studio JSON and
keeps its resume ledger (the full runner, as `preannot run` does). Prints images/s for each and
their ratio (target: preannot >= 0.9 of raw ultralytics).

    python benchmarks/yolo_vs_ultralytics.py [--images 256] [--size 640x480] [--imgsz 640] [--device cpu]

Uses the demo model (built by examples/detect-and-segment/make_demo_models.py) unless --model.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples" / "detect-and-segment"))
os.environ.setdefault("YOLO_OFFLINE", "1")


def main() -> None:
    import make_demo_models
    from shapes import write_image_folder

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--imgsz", type=int, default=640,
                        help="inference size for both sides (the demo model was trained at 160)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", type=Path, default=make_demo_models.DEFAULT_DIR / make_demo_models.YOLO_FILE)
    parser.add_argument("--repeat", type=int, default=2, help="best of N timings for each side")
    args = parser.parse_args()
    if not args.model.exists():
        make_demo_models.make_yolo(args.model.parent)
    width, height = map(int, args.size.split("x"))

    from ultralytics import YOLO

    from preannot.engine.config import RunConfig
    from preannot.engine.runner import run

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        paths = [p for p, _ in write_image_folder(folder, count=args.images, seed=1,
                                                  sizes=((width, height),))]
        model = YOLO(str(args.model))
        model.predict([str(p) for p in paths[: args.batch]], device=args.device, imgsz=args.imgsz,
                      verbose=False)

        def raw() -> None:
            for start in range(0, len(paths), args.batch):
                for result in model.predict([str(p) for p in paths[start:start + args.batch]],
                                            device=args.device, imgsz=args.imgsz, verbose=False):
                    result.boxes.xyxy.tolist()

        def preannot(attempt: int) -> None:
            config = RunConfig(base_dir=Path(tmp) / f"run{attempt}", inputs=[folder],
                               output=Path(tmp) / f"run{attempt}" / "out.json", batch_size=args.batch,
                               annotators=[{"name": "yolo", "type": "yolo", "model": str(args.model),
                                            "device": args.device, "imgsz": args.imgsz}])
            summary = run(config)
            assert summary.annotated == len(paths), summary

        raw_best = pre_best = float("inf")
        for attempt in range(args.repeat):  # interleaved, so load drifts hit both sides alike
            start = time.perf_counter()
            raw()
            raw_best = min(raw_best, time.perf_counter() - start)
            start = time.perf_counter()
            preannot(attempt)
            pre_best = min(pre_best, time.perf_counter() - start)
    n = len(paths)
    print(f"images: {n} of {width}x{height}, imgsz {args.imgsz}, batch {args.batch}, "
          f"device {args.device}")
    print(f"ultralytics predict : {n / raw_best:8.1f} images/s")
    print(f"preannot run (yolo) : {n / pre_best:8.1f} images/s (incl. model load, JSON, ledger)")
    print(f"ratio preannot/raw  : {raw_best / pre_best:.2f} (target >= 0.90)")


if __name__ == "__main__":
    main()
