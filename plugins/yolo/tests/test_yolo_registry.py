"""The yolo trainer through `preannot train`'s flow: human boxes harvested from Label Studio
(corrections.jsonl) train a version, the gate measures it with box IoU through the real yolo
annotator running ``registry:`` models, and a second version is gated against the first."""

from __future__ import annotations

import json
import random

from preannot import Box
from preannot.config import load_config
from preannot.lsjson import region_to_result
from preannot.plugins import get_host
from preannot.training import flow
from preannot.training.registry import Registry

LABELS = ["Round", "Box", "Delta"]


def _corrections(shapes, folder, count, seed=5):
    rng = random.Random(seed)
    (folder / "images").mkdir(parents=True)
    lines = []
    for i in range(count):
        image, truth = shapes.draw_image(rng, 160, 160)
        path = folder / "images" / f"{i:03d}.png"
        image.save(path)
        human = [region_to_result(Box(label=LABELS[c], x=x0, y=y0, width=x1 - x0,
                                      height=y1 - y0, image_width=160, image_height=160,
                                      from_name="label", to_name="image", id=f"h{i}-{k}"))
                 for k, (c, x0, y0, x1, y1) in enumerate(truth)]
        lines.append(json.dumps({"task": i, "preannot_id": f"img{i}", "status": "annotated",
                                 "data": {"image": f"images/{i:03d}.png"}, "human": human}))
    (folder / "harvest").mkdir()
    (folder / "harvest" / "corrections.jsonl").write_text("\n".join(lines) + "\n")


def test_yolo_versions_are_trained_gated_on_boxes_and_served_from_the_registry(
        yolo_weights, shapes, tmp_path):
    _corrections(shapes, tmp_path, 60)
    (tmp_path / "preannot.toml").write_text(f"""
[[annotators]]
name = "det"
type = "yolo"
model = "registry:shapes"
imgsz = 160
conf = 0.25

[[trainers]]
name = "shapes"
type = "yolo"
model = "{yolo_weights}"
epochs = 4
imgsz = 160
batch = 16
device = "cpu"

[training]
eval_fraction = 0.3
margin = -1.0
label_tolerance = 1.0
""")
    config = load_config(tmp_path / "preannot.toml")
    spec = flow.trainer_specs(config)[0]
    first = flow.train(config, get_host(), spec, log=lambda message: None)
    assert first.promoted and first.version.version == "shapes-v1"
    evaluation = first.version.card["evaluation"]
    assert evaluation["tasks"] == first.version.card["harvest"]["eval"] > 0
    assert set(evaluation["labels"]) <= set(LABELS)
    assert evaluation["overall"]["f1"] > 0  # boxes matched at IoU >= 0.5 through the annotator
    second = flow.train(config, get_host(), spec, force=True, log=lambda message: None)
    card = second.version.card
    assert card["parent"] == "shapes-v1"  # fine-tuned from the current version
    assert card["gate"]["baseline"] == "shapes-v1"
    assert card["gate"]["baseline_evaluation"]["overall"]["f1"] == evaluation["overall"]["f1"]
    assert second.promoted  # margin -1, tolerance 1: any version passes; both were measured
    assert Registry(config.registry_dir).current("shapes").version == "shapes-v2"
    assert (second.version.folder / "best.pt").exists()
