"""Interactive SAM end to end: a click in Label Studio's editor, as the editor sends it to Label
Studio's interactive-annotating endpoint, reaches a real `preannot serve` (tiny SAM), which
fetches the uploaded image from Label Studio with the token and answers one brush mask."""

from __future__ import annotations

import random

import numpy as np
import pytest
import requests

from helpers import run_cli, start_server, wait_up
from preannot import Context, Point, Task
from preannot.engine.config import load_config
from preannot.engine.host import get_host
from preannot.labelstudio.labeling_config import generate
from preannot.labelstudio.server import free_port
from preannot.labelstudio import sync
from preannot.lsjson import result_to_region
from preannot_sam.annotator import SamAnnotator

pytestmark = [pytest.mark.labelstudio, pytest.mark.slow]


def test_a_click_in_the_editor_gets_the_mask_sam_gives_for_it(sam_checkpoint, shapes, labelstudio,
                                                               tmp_path):
    image, _ = shapes.draw_image(random.Random(21), 320, 240, max_shapes=3)
    image.save(tmp_path / "shapes.png")
    port = free_port()
    sam_table = (f'[[annotators]]\nname = "sam"\ntype = "sam"\ncheckpoint = "{sam_checkpoint}"\n'
                 f'model_type = "vit_tiny"\nmode = "prompts"\ndevice = "cpu"\n'
                 f'labels = ["Circle", "Square"]\nfrom_name = "mask"\n')
    config = tmp_path / "preannot.toml"
    config.write_text(sam_table)
    label_config = generate(sync.annotators(load_config(config), get_host()))
    project = labelstudio.project(label_config, "interactive sam served")
    config.write_text(sam_table + f"[labelstudio]\nproject = {project}\n"
                      f"[serve]\nport = {port}\nlearn = false\n")
    with (tmp_path / "shapes.png").open("rb") as f:
        requests.post(f"{labelstudio.url}/api/projects/{project}/import", timeout=60,
                      headers={"Authorization": f"Token {labelstudio.api_key}"},
                      files={"file": ("shapes.png", f, "image/png")}).raise_for_status()
    client = labelstudio.client()
    [task] = list(client.tasks(project, include="id,data"))
    assert task["data"]["image"].startswith("/data/upload/")

    process = start_server(config, labelstudio.env())
    try:
        wait_up(f"http://127.0.0.1:{port}", process, tmp_path / "serve.log")
        connected = run_cli(["ls", "connect", "--interactive", "-c", str(config)],
                            env=labelstudio.env())
        assert connected.returncode == 0, connected.stderr
        [backend] = client.ml_backends(project)
        assert backend["is_interactive"] is True
        # a positive click at (50%, 50%), as the editor's smart keypoint tool sends it
        click = {"original_width": 320, "original_height": 240, "image_rotation": 0,
                 "value": {"x": 50.0, "y": 50.0, "width": 0.6, "keypointlabels": ["Square"]},
                 "is_positive": True, "id": "k1", "from_name": "mask_point", "to_name": "image",
                 "type": "keypointlabels", "origin": "manual"}
        answer = client.interactive_annotating(backend["id"], task["id"], {"result": [click]})
        assert "errors" not in answer, answer
        [item] = answer["data"]["result"]
        assert (item["type"], item["from_name"], item["to_name"]) == ("brushlabels", "mask",
                                                                      "image")
        assert item["value"]["brushlabels"] == ["Square"]
        assert (item["original_width"], item["original_height"]) == (320, 240)
        served = result_to_region(item)
    finally:
        process.terminate()
        process.wait(30)
    # the same click, answered by the annotator in this process on the local file
    local = SamAnnotator("sam", {"checkpoint": str(sam_checkpoint), "model_type": "vit_tiny",
                                 "mode": "prompts", "labels": ["Circle", "Square"],
                                 "device": "cpu", "cache": False},
                         Context(base_dir=tmp_path, cache_dir=tmp_path / "local-cache"))
    [expected] = local.interact(Task("local", {"image": str(tmp_path / "shapes.png")}),
                                [Point(x=160.0, y=120.0, image_width=320, image_height=240,
                                       label="Square")])
    assert np.array_equal(served.mask, expected.mask)
    assert served.score == pytest.approx(expected.score)
    assert "s3cret" not in (tmp_path / "serve.log").read_text()
