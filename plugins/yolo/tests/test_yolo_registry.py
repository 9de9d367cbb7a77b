"""The yolo trainer through `preannot train`'s flow: human boxes harvested from Label Studio
(corrections.jsonl) train a version, the gate measures it with box IoU through the real yolo
annotator running ``registry:`` models, and a second version is gated against the first.

The gate runs with its default settings (margin 0, label tolerance 0.05, labels gated from 5
regions) and a floor for a first version; each outcome is built to be known beforehand:

- the first version is fine-tuned from the demo model on labels that, sorted as the trainer
  sorts them, are the demo model's own classes, so it starts as good as the demo model, whose
  score on the evaluation split is checked first: it must be promoted;
- the second learns from a harvest whose training side has lost every Triangle box (the
  evaluation split keeps them): it has no Triangle class, so its Triangle F1 is 0 and the gate
  must refuse it, leaving the first version current.
"""

from __future__ import annotations

import json
import random
from collections import Counter

from preannot import Box
from preannot.engine.config import load_config
from preannot.engine.host import get_host
from preannot.lsjson import region_to_result
from preannot.training import flow
from preannot.evaluation.split import in_eval_split
from preannot.training.gate import evaluate
from preannot.training.registry import Registry
from preannot_yolo.annotator import YoloAnnotator

LABELS = ["Circle", "Square", "Triangle"]
"""The Label Studio labels of the shapes' circle, square and triangle: in the demo model's class
order once sorted, so the first version's classes already mean them (the trainer tests check
that renamed, reordered labels are learnt)."""
COUNT, EVAL_FRACTION, MIN_SCORE = 60, 0.3, 0.5
DEMO_BAR = 0.8
"""F1 the demo model must reach on the evaluation split for the first version's promotion to be
a foregone conclusion (it scores about 0.95)."""


def _corrections(shapes, folder, *, drop_from_training: str | None = None, seed=5):
    """``COUNT`` shapes images and their human boxes as a harvest; with ``drop_from_training``,
    the tasks outside the evaluation split lose the boxes of that label. Returns the truth per
    task id."""
    rng = random.Random(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "harvest").mkdir(exist_ok=True)
    lines, truths = [], {}
    for i in range(COUNT):
        image, truth = shapes.draw_image(rng, 160, 160)
        path = folder / "images" / f"{i:03d}.png"
        image.save(path)
        truths[f"img{i}"] = truth
        kept = [(k, c, box) for k, (c, *box) in enumerate(truth)
                if in_eval_split(f"img{i}", EVAL_FRACTION) or LABELS[c] != drop_from_training]
        human = [region_to_result(Box(label=LABELS[c], x=x0, y=y0, width=x1 - x0,
                                      height=y1 - y0, image_width=160, image_height=160,
                                      from_name="label", to_name="image", id=f"h{i}-{k}"))
                 for k, c, (x0, y0, x1, y1) in kept]
        lines.append(json.dumps({"task": i, "preannot_id": f"img{i}", "status": "annotated",
                                 "data": {"image": f"images/{i:03d}.png"}, "human": human}))
    (folder / "harvest" / "corrections.jsonl").write_text("\n".join(lines) + "\n")
    return truths


def test_yolo_versions_are_trained_gated_on_boxes_and_served_from_the_registry(
        yolo_weights, shapes, tmp_path):
    truths = _corrections(shapes, tmp_path)
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
epochs = 3
imgsz = 160
batch = 16
device = "cpu"
seed = 0
train_args = {{ freeze = 10, warmup_epochs = 0 }}

[training]
eval_fraction = {EVAL_FRACTION}
min_score = {MIN_SCORE}
""")
    config = load_config(tmp_path / "preannot.toml")
    host = get_host()
    spec = flow.trainer_specs(config)[0]
    registry = Registry(config.registry_dir)
    evaluated = [k for k in truths if in_eval_split(k, EVAL_FRACTION)]
    support = Counter(LABELS[c] for k in evaluated for c, *_ in truths[k])
    assert len(evaluated) == 27 and support == {"Circle": 24, "Square": 28, "Triangle": 19}

    # The precondition: the demo model (its classes read as the labels) is good on this split.
    data = flow.load_examples(config, flow.make_trainer(spec, host, config))
    assert sorted(e.task.id for e in data.eval) == sorted(evaluated)
    demo = YoloAnnotator("det", {"model": str(yolo_weights), "imgsz": 160, "conf": 0.25,
                                 "classes": {"circle": "Circle", "square": "Square",
                                             "triangle": "Triangle"}}, config.context())
    quality = evaluate([demo], "det", data.eval, learns=("rectanglelabels",))
    assert not quality["failed"] and quality["overall"]["support"] == sum(support.values())
    overall, triangles = quality["overall"]["f1"], quality["labels"]["Triangle"]["f1"]
    assert overall >= DEMO_BAR and triangles >= DEMO_BAR, (
        f"the demo model {yolo_weights} is too weak for this test: F1 {overall:.3f}, Triangle "
        f"{triangles:.3f} on the evaluation split (needs {DEMO_BAR}); rebuild it: python "
        f"examples/detect-and-segment/make_demo_models.py {yolo_weights.parent} --force")

    # A first version, over nothing: at least MIN_SCORE, so promoted.
    first = flow.train(config, host, spec, log=lambda message: None)
    card = first.version.card
    assert first.version.version == "shapes-v1" and first.baseline is None
    assert card["parent"] is None and card["gate"]["baseline"] is None
    assert card["harvest"]["eval"] == len(evaluated) == card["evaluation"]["tasks"]
    assert card["harvest"]["train"] + card["harvest"]["dev"] == COUNT - len(evaluated)
    evaluation = card["evaluation"]
    assert set(evaluation["labels"]) == set(LABELS) and not evaluation["failed"]
    assert {label: s["support"] for label, s in evaluation["labels"].items()} == support
    assert first.reasons[0].startswith("no current version: f1 ")
    assert first.promoted, (f"v1 scored {evaluation['overall']} from a demo model scoring "
                            f"{quality['overall']}: {first.reasons}")
    assert card["status"] == "promoted" and registry.current("shapes").version == "shapes-v1"
    assert (first.version.folder / "best.pt").exists()

    # A second version, from a harvest that lost its Triangles on the training side: refused.
    _corrections(shapes, tmp_path, drop_from_training="Triangle")
    second = flow.train(config, host, spec, log=lambda message: None)
    card = second.version.card
    assert second.version.version == "shapes-v2" and not second.reused
    assert card["parent"] == "shapes-v1" and second.baseline.version == "shapes-v1"
    assert card["gate"]["baseline"] == "shapes-v1"
    assert card["gate"]["baseline_evaluation"]["overall"] == evaluation["overall"]  # same model
    assert set(YoloAnnotator("m", {"model": str(second.version.artifact)}).labels) == {
        "Circle", "Square"}  # learnt from the training side only: no Triangle class
    triangle = card["evaluation"]["labels"]["Triangle"]
    assert triangle["tp"] == 0 and triangle["f1"] == 0.0 and triangle["support"] == 19
    # Without its 19 Triangles it can at best find the other 52 regions: F1 <= 104 / 123
    # (metrics are rounded to 4 places).
    found, missed = sum(support.values()) - support["Triangle"], support["Triangle"]
    assert card["evaluation"]["overall"]["f1"] <= 2 * found / (2 * found + missed) + 1e-3
    assert not second.promoted
    before, after = evaluation["overall"]["f1"], card["evaluation"]["overall"]["f1"]
    assert second.reasons[0].startswith(f"f1 {before:.3f} -> {after:.3f} (needs at least "
                                        f"{before:.3f}): ")
    before = evaluation["labels"]["Triangle"]["f1"]
    assert (f"label Triangle: F1 {before:.3f} -> 0.000 drops more than the tolerance 0.05"
            in second.reasons), second.reasons
    assert card["status"] == "rejected" and card["gate"]["promote"] is False
    assert registry.current("shapes").version == "shapes-v1"  # still served
    assert [v.version for v in registry.versions("shapes")] == ["shapes-v1", "shapes-v2"]
