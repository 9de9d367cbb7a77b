"""A seeded synthetic data set of coloured circles, squares and triangles on varied backgrounds.

It stands in for real photos (no data or weights can be downloaded here): the YOLO demo model is
trained on it and the tests measure detection quality on a fresh held-out draw.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

CLASSES = ["circle", "square", "triangle"]


def _background(rng: random.Random, width: int, height: int) -> Image.Image:
    """Plain, two-tone gradient or noisy stripes, so the model cannot key on one colour."""
    base = tuple(rng.randint(0, 255) for _ in range(3))
    image = Image.new("RGB", (width, height), base)
    draw = ImageDraw.Draw(image)
    style = rng.choice(["plain", "gradient", "stripes"])
    if style == "gradient":
        other = [rng.randint(0, 255) for _ in range(3)]
        for y in range(height):
            t = y / max(height - 1, 1)
            draw.line([(0, y), (width, y)],
                      fill=tuple(int(b * (1 - t) + o * t) for b, o in zip(base, other)))
    elif style == "stripes":
        for x in range(0, width, rng.randint(8, 24)):
            shade = tuple(max(0, min(255, c + rng.randint(-40, 40))) for c in base)
            draw.rectangle([x, 0, x + 4, height], fill=shade)
    return image


def _colour_far_from(rng: random.Random, other: tuple[int, ...]) -> tuple[int, int, int]:
    while True:
        colour = tuple(rng.randint(0, 255) for _ in range(3))
        if sum(abs(a - b) for a, b in zip(colour, other)) > 200:
            return colour


def draw_image(rng: random.Random, width: int, height: int, max_shapes: int = 4
               ) -> tuple[Image.Image, list[tuple[int, float, float, float, float]]]:
    """An image and its shapes as (class index, x0, y0, x1, y1) in pixels."""
    image = _background(rng, width, height)
    draw = ImageDraw.Draw(image)
    shapes: list[tuple[int, float, float, float, float]] = []
    for _ in range(rng.randint(1, max_shapes)):
        size = rng.uniform(0.15, 0.35) * min(width, height)
        for _attempt in range(20):
            x0, y0 = rng.uniform(0, width - size), rng.uniform(0, height - size)
            box = (x0, y0, x0 + size, y0 + size)
            if all(box[2] < s[1] or box[0] > s[3] or box[3] < s[2] or box[1] > s[4] for s in shapes):
                break
        else:
            continue
        cls = rng.randrange(len(CLASSES))
        colour = _colour_far_from(rng, image.getpixel((int(x0 + size / 2), int(y0 + size / 2))))
        if cls == 0:
            draw.ellipse(box, fill=colour)
        elif cls == 1:
            draw.rectangle(box, fill=colour)
        else:
            draw.polygon([(x0 + size / 2, y0), (x0, y0 + size), (x0 + size, y0 + size)], fill=colour)
        shapes.append((cls, *box))
    if rng.random() < 0.3:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0)))
    return image, shapes


def write_yolo_dataset(root: Path, *, train: int, val: int, size: int, seed: int) -> Path:
    """A YOLO-format data set under ``root``; returns its ``data.yaml``."""
    rng = random.Random(seed)
    for split, count in (("train", train), ("val", val)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            image, shapes = draw_image(rng, size, size)
            image.save(root / "images" / split / f"{i:05d}.jpg", quality=92)
            lines = [f"{c} {(x0 + x1) / 2 / size:.6f} {(y0 + y1) / 2 / size:.6f} "
                     f"{(x1 - x0) / size:.6f} {(y1 - y0) / size:.6f}" for c, x0, y0, x1, y1 in shapes]
            (root / "labels" / split / f"{i:05d}.txt").write_text("\n".join(lines) + "\n")
    data = root / "data.yaml"
    names = "".join(f"  {i}: {name}\n" for i, name in enumerate(CLASSES))
    data.write_text(f"path: {root.resolve()}\ntrain: images/train\nval: images/val\nnames:\n{names}")
    return data


def write_image_folder(folder: Path, *, count: int, seed: int,
                       sizes: tuple[tuple[int, int], ...] = ((320, 240), (256, 256), (200, 300))
                       ) -> list[tuple[Path, list[tuple[int, float, float, float, float]]]]:
    """A folder of images of several sizes (the example's input); returns each with its shapes."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for i in range(count):
        width, height = sizes[i % len(sizes)]
        image, shapes = draw_image(rng, width, height)
        path = folder / f"shapes-{i:03d}.png"
        image.save(path)
        written.append((path, shapes))
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder", type=Path, nargs="?",
                        default=Path(__file__).resolve().parent / "data" / "images")
    parser.add_argument("--count", type=int, default=12)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    write_image_folder(args.folder, count=args.count, seed=args.seed)
    print(f"wrote {args.count} images to {args.folder}")


if __name__ == "__main__":
    main()
