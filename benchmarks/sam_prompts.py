"""Cost of extra box prompts in the sam plugin: an image with 20 boxes vs the same image with 1.

The image is encoded once and all boxes go through one decoder call, so 20 boxes should cost
little more than 1 (target: ratio <= 1.2). Uses the real ViT-B architecture with random weights
(timing does not depend on the weights) and the embedding cache off, so every run encodes.

    python benchmarks/sam_prompts.py [--device cpu] [--model-type vit_b] [--repeat 2]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples" / "detect-and-segment"))


def main() -> None:
    from shapes import draw_image

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model-type", default="vit_b")
    parser.add_argument("--boxes", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()

    import torch

    from preannot import Box, Context, Prediction, Task
    from preannot_sam.annotator import SamAnnotator
    from preannot_sam.models import model_types

    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Path(tmp) / f"{args.model_type}-random.pth"
        torch.save(model_types()[args.model_type]().state_dict(), checkpoint)
        image = Path(tmp) / "image.png"
        draw_image(rng, 1024, 768)[0].save(image)
        boxes = []
        for i in range(args.boxes):
            x, y = rng.uniform(0, 900), rng.uniform(0, 650)
            boxes.append(Box(x=x, y=y, width=rng.uniform(30, 120), height=rng.uniform(30, 110),
                             image_width=1024, image_height=768, label=f"l{i}"))
        sam = SamAnnotator("sam", {"checkpoint": str(checkpoint), "model_type": args.model_type,
                                   "device": args.device, "after": "det", "cache": False},
                           Context(base_dir=Path(tmp), cache_dir=Path(tmp) / "cache"))
        task = [Task("t", {"image": str(image)})]

        def timed(prompts: list[Box]) -> float:
            start = time.perf_counter()
            [regions] = sam.annotate(task, {"det": [Prediction("t", "det", "v", prompts)]})
            if sam.sam.device.type == "cuda":
                torch.cuda.synchronize()
            assert len(regions) == len(prompts)
            return time.perf_counter() - start

        timed(boxes[:1])  # warm-up
        one = many = float("inf")
        for _ in range(args.repeat):
            one = min(one, timed(boxes[:1]))
            many = min(many, timed(boxes))
    print(f"SAM {args.model_type} on {args.device}, 1024x768 image, embedding cache off")
    print(f"1 box   : {one:7.2f} s")
    print(f"{args.boxes} boxes: {many:7.2f} s")
    print(f"ratio {args.boxes}/1 : {many / one:.2f} (target <= 1.20)")


if __name__ == "__main__":
    main()
