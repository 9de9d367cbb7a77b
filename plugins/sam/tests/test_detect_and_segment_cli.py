"""End to end through the command line: ``preannot run <images> -c <yolo -> sam config>``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from PIL import Image


def test_cli_chains_yolo_into_sam_and_reports_a_broken_image(yolo_weights, sam_checkpoint, shapes,
                                                             tmp_path):
    from label_studio_sdk.converter.brush import decode_rle

    images = tmp_path / "images"
    written = shapes.write_image_folder(images, count=4, seed=21,
                                        sizes=((256, 192), (160, 160), (200, 260)))
    (images / "zz-broken.jpg").write_bytes(b"not an image at all")
    config = tmp_path / "preannot.toml"
    config.write_text(textwrap.dedent(f"""
        [run]
        batch_size = 3
        [[annotators]]
        name = "det"
        type = "yolo"
        model = "{yolo_weights}"
        from_name = "box"
        [annotators.classes]
        circle = "Circle"
        square = "Square"
        triangle = "Triangle"
        [[annotators]]
        name = "seg"
        type = "sam"
        after = "det"
        checkpoint = "{sam_checkpoint}"
        model_type = "vit_tiny"
        from_name = "mask"
    """))
    out = tmp_path / "out.json"
    result = subprocess.run([sys.executable, "-m", "preannot", "run", str(images), "-c", str(config),
                             "-o", str(out), "--no-progress"], capture_output=True, text=True,
                            env={**os.environ, "PREANNOT_PLUGINS": "yolo,sam"}, timeout=300)
    assert result.returncode == 3, result.stderr  # 3: done, with a failed record reported
    assert "zz-broken.jpg" in result.stderr and "cannot read image" in result.stderr
    tasks = json.loads(out.read_text())
    assert len(tasks) == len(written)
    total_boxes = 0
    for task, (path, truth) in zip(tasks, written):
        assert task["data"]["image"] == str(path.resolve())
        det, seg = task["predictions"]
        assert det["model_version"].startswith("det-") and seg["model_version"].startswith("seg-")
        assert all(r["type"] == "rectanglelabels" and r["from_name"] == "box" for r in det["result"])
        assert all(r["type"] == "brushlabels" and r["from_name"] == "mask" for r in seg["result"])
        # one mask per box, carrying the box's label and pointing back at it
        assert [r["value"]["brushlabels"] for r in seg["result"]] == \
            [r["value"]["rectanglelabels"] for r in det["result"]]
        assert [r["preannot"]["box"] for r in seg["result"]] == [r["id"] for r in det["result"]]
        size = Image.open(path).size
        for r in det["result"] + seg["result"]:
            assert (r["original_width"], r["original_height"]) == size
        for r in seg["result"]:
            assert decode_rle(r["value"]["rle"]).size == size[0] * size[1] * 4
        total_boxes += len(det["result"])
        assert len(det["result"]) >= len(truth) - 1  # the trained detector finds the shapes
    assert total_boxes > 0
