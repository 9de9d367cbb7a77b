"""Interactive SAM: the first prompt on an image (pays the encoder) vs the following ones (the cached
embedding), and prompts alternating over 4 open images: preannot's memory LRU beside a one-image
cache (the design of Label Studio's SAM ML-backend example: only the last image's embedding kept),
in the same run, through ``SamAnnotator.interact``.

Targets: a follow-up prompt costs <= 5% of the first; alternating over 4 images keeps that ratio
with the LRU (and the one-image cache does not). The real ViT-B architecture with random weights
(timing does not depend on the weights; the masks are meaningless). The one-image cache runs
without the disk cache, as the example has none; a third column shows preannot with a one-image
memory cache in front of its disk cache. Also printed: decoding + hashing an image, what a memory
hit avoids (its key is the image reference and file identity).

    python benchmarks/sam_interactive.py [--device cpu] [--model-type vit_b] [--follow-ups 2] [--images 4]
"""

from __future__ import annotations

import argparse
import random
import statistics
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
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--follow-ups", type=int, default=2, help="prompts after the first, per image")
    args = parser.parse_args()

    import numpy as np
    import torch

    from preannot import Context, Point, Task, open_image
    from preannot_sam.annotator import SamAnnotator
    from preannot_sam.cache import image_digest
    from preannot_sam.models import model_types

    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        checkpoint = folder / f"{args.model_type}-random.pth"
        torch.manual_seed(0)
        torch.save(model_types()[args.model_type]().state_dict(), checkpoint)
        tasks = []
        for i in range(args.images):
            path = folder / f"image{i}.png"
            draw_image(rng, 1024, 768)[0].save(path)
            tasks.append(Task(f"t{i}", {"image": str(path)}))
        context = Context(base_dir=folder, cache_dir=folder / "cache")

        def annotator(**options) -> SamAnnotator:
            return SamAnnotator("sam", {"checkpoint": str(checkpoint), "model_type": args.model_type,
                                        "device": args.device, "mode": "prompts",
                                        "labels": ["object"], **options}, context)

        def prompt(sam: SamAnnotator, task: Task) -> float:
            click = Point(x=rng.uniform(100, 900), y=rng.uniform(100, 650), image_width=1024,
                          image_height=768, label="object")
            start = time.perf_counter()
            [region] = sam.interact(task, [click])
            if sam.sam.device.type == "cuda":
                torch.cuda.synchronize()
            assert region.mask.shape == (768, 1024)
            return time.perf_counter() - start

        # Each image's first prompt (the encoder), then follow-ups on it; then one round of
        # prompts hopping over the images, the three caches taking turns on each image so that
        # the machine's load weighs on them alike.
        lru = annotator(memory_cache=8)  # the default; the disk cache (empty here) behind it
        one = annotator(memory_cache=1, cache=False)  # the example's design
        one_disk = annotator(memory_cache=1)  # preannot, one image in memory, the rest on disk
        first, follow = [], []
        for task in tasks:
            first.append(prompt(lru, task))
            follow += [prompt(lru, task) for _ in range(args.follow_ups)]
        alternating, one_alternating, one_disk_alternating = [], [], []
        for task in tasks:
            alternating.append(prompt(lru, task))
            one_alternating.append(prompt(one, task))
            one_disk_alternating.append(prompt(one_disk, task))

        jpeg = folder / "photo.jpg"
        noise = np.random.default_rng(0).integers(0, 255, (3000, 4000, 3), dtype=np.uint8)
        from PIL import Image

        Image.fromarray(noise).save(jpeg, quality=90)
        decode = {}
        for name, task in (("1024x768 PNG", tasks[0]), ("4000x3000 JPEG", Task("p", {"image": str(jpeg)}))):
            times = []
            for _ in range(5):
                start = time.perf_counter()
                image_digest(np.asarray(open_image(task, "image", context)))
                times.append(time.perf_counter() - start)
            decode[name] = statistics.median(times)

    first_s = statistics.median(first)
    rows = [("first prompt on an image (median of %d)" % len(first), first_s),
            ("follow-up prompt, same image (median of %d)" % len(follow), statistics.median(follow)),
            ("alternating %d images, memory LRU of 8 (median of %d)" % (len(tasks), len(alternating)),
             statistics.median(alternating)),
            ("alternating %d images, one-image cache (median of %d)" % (len(tasks), len(one_alternating)),
             statistics.median(one_alternating)),
            ("alternating %d images, one in memory + disk cache (median of %d)"
             % (len(tasks), len(one_disk_alternating)), statistics.median(one_disk_alternating))]
    print(f"SAM {args.model_type} (random weights) on {args.device}, 1024x768 images, "
          f"{torch.get_num_threads()} torch threads")
    for label, seconds in rows:
        print(f"{label:<64} {seconds * 1000:9.1f} ms  {seconds / first_s:7.1%} of the first")
    for name, seconds in decode.items():
        print(f"decode + hash a {name} (what a memory hit skips): {seconds * 1000:.1f} ms")
    follow_ratio = statistics.median(follow) / first_s
    lru_ratio = statistics.median(alternating) / first_s
    one_ratio = statistics.median(one_alternating) / first_s
    print(f"follow-up / first: {follow_ratio:.3f} (target <= 0.05)")
    print(f"alternating with the LRU / first: {lru_ratio:.3f} (target <= 0.05)")
    print(f"alternating with a one-image cache / first: {one_ratio:.3f}; "
          f"LRU speed-up over it: {one_ratio / lru_ratio:.0f}x")


if __name__ == "__main__":
    main()
