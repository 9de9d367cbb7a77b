"""Region kinds live in a registry: a new kind is one module, and no other module tells kinds
apart by class."""

from __future__ import annotations

import ast
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pytest

from helpers import ROOT
from preannot import Annotator, ImageKind, Region, Task, register_kind
from preannot.evaluation.match import ACCEPTED, MODIFIED, match
from preannot.labelstudio.labeling_config import fit, generate
from preannot.lsjson import region_to_result, result_to_region
from preannot.regions import KINDS


# -- a kind preannot does not ship, defined here and nowhere else ---------------------------

@dataclass(kw_only=True)
class Ellipse(Region):
    """An axis-aligned ellipse in pixels: centre and radii."""

    type: ClassVar[str] = "ellipselabels"
    x: float
    y: float
    radius_x: float
    radius_y: float
    image_width: int
    image_height: int


def _inside(e: Ellipse, px: Any, py: Any) -> Any:
    return ((px - e.x) / e.radius_x) ** 2 + ((py - e.y) / e.radius_y) ** 2 <= 1


class EllipseKind(ImageKind):
    region = Ellipse
    control_tag = "EllipseLabels"
    threshold_key = "ellipse_iou"
    default_threshold = 0.5

    def value(self, region: Ellipse) -> dict[str, Any]:
        w, h = region.image_width, region.image_height
        return {"x": 100 * region.x / w, "y": 100 * region.y / h,
                "radiusX": 100 * region.radius_x / w, "radiusY": 100 * region.radius_y / h,
                "rotation": 0}

    def from_result(self, item, value, common) -> Region:
        w, h = item["original_width"], item["original_height"]
        return Ellipse(x=value["x"] * w / 100, y=value["y"] * h / 100,
                       radius_x=value["radiusX"] * w / 100, radius_y=value["radiusY"] * h / 100,
                       image_width=w, image_height=h, **common)

    def overlap(self, a: Ellipse, b: Ellipse) -> float:
        """Pixel-centre IoU over the image."""
        py, px = np.mgrid[0:a.image_height, 0:a.image_width] + 0.5
        ina, inb = _inside(a, px, py), _inside(b, px, py)
        union = np.logical_or(ina, inb).sum()
        return float(np.logical_and(ina, inb).sum() / union) if union else 0.0


class Ellipses(Annotator):
    type = "ellipses"
    reads = ("image",)
    emits = ("ellipselabels",)

    def annotate(self, tasks, upstream):
        return [[Ellipse(label="Cell", x=50, y=40, radius_x=10, radius_y=8, image_width=200,
                         image_height=100)] for _ in tasks]


@pytest.fixture
def ellipse_kind():
    kind = register_kind(EllipseKind())
    yield kind
    del KINDS[kind.result_type]


def ellipse(x: float = 50, **changes) -> Ellipse:
    return Ellipse(**{"label": "Cell", "x": x, "y": 40, "radius_x": 10, "radius_y": 8,
                      "image_width": 200, "image_height": 100, "from_name": "cells",
                      "to_name": "image", **changes})


def test_a_registered_kind_round_trips_through_label_studio_json(ellipse_kind):
    item = region_to_result(ellipse(score=0.75))
    assert item["type"] == "ellipselabels"
    assert item["value"] == {"x": 25.0, "y": 40.0, "radiusX": 5.0, "radiusY": 8.0, "rotation": 0,
                             "ellipselabels": ["Cell"]}
    assert (item["original_width"], item["original_height"]) == (200, 100)
    back = result_to_region(item)
    assert back == ellipse(score=0.75, id=item["id"])


def test_a_registered_kind_matches_by_its_own_overlap(ellipse_kind):
    human = [ellipse()]
    assert match([ellipse(x=51)], human).predicted[0][0] == ACCEPTED
    shifted = match([ellipse(x=58)], human).predicted[0]
    assert shifted[0] == MODIFIED and 0 < shifted[2] < 0.5
    assert match([ellipse(x=58)], human, {"ellipse_iou": 0.3}).predicted[0][0] == ACCEPTED
    assert match([ellipse(x=90)], human).predicted[0][0] == "deleted"


def test_a_registered_kind_appears_in_a_generated_labeling_config(ellipse_kind):
    annotators = [Ellipses("cells", {"labels": ["Cell", "Nucleus"], "from_name": "cells"})]
    config = generate(annotators)
    root = ET.fromstring(config)
    assert root.find("Image").attrib == {"name": "image", "value": "$image"}
    control = root.find("EllipseLabels")
    assert control.attrib == {"name": "cells", "toName": "image"}
    assert [el.get("value") for el in control] == ["Cell", "Nucleus"]
    assert fit(config, annotators).problems == []
    [regions] = annotators[0].annotate([Task("t", {"image": "a.png"})], {})
    assert result_to_region(region_to_result(regions[0])).label == "Cell"


def test_an_unregistered_kind_is_refused_by_name():
    with pytest.raises(ValueError, match="unsupported Label Studio result type 'ellipselabels'"):
        result_to_region({"type": "ellipselabels", "value": {"ellipselabels": ["Cell"]}})
    with pytest.raises(TypeError, match="cannot convert Ellipse"):
        region_to_result(ellipse())


# -- no module outside preannot/regions/ tells region kinds apart by class ------------------

REGION_CLASSES = {cls.__name__ for kind in KINDS.values() for cls in kind.region.__mro__
                  if issubclass(cls, Region)}


def class_checks(source: str) -> list[tuple[int, str]]:
    """(line, class) of every ``isinstance``/``issubclass`` call naming a region class."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in ("isinstance", "issubclass") and len(node.args) == 2):
            continue
        classes = node.args[1].elts if isinstance(node.args[1], ast.Tuple) else [node.args[1]]
        for cls in classes:
            name = cls.attr if isinstance(cls, ast.Attribute) else getattr(cls, "id", "")
            if name in REGION_CLASSES:
                found.append((node.lineno, name))
    return found


def test_no_module_outside_the_registry_tells_region_kinds_apart_by_class():
    offenders = [f"{path.relative_to(ROOT)}:{line} {name}"
                 for path in sorted((ROOT / "preannot").rglob("*.py"))
                 if "regions" not in path.relative_to(ROOT / "preannot").parts[:1]
                 for line, name in class_checks(path.read_text())]
    assert offenders == []


def test_the_class_check_scan_sees_names_attributes_and_tuples():
    source = ("if isinstance(r, Span): pass\n"
              "ok = isinstance(r, (model.Box, str))\n"
              "fine = isinstance(r, dict)\n")
    assert class_checks(source) == [(1, "Span"), (2, "Box")]
