"""Points: Label Studio's ``keypointlabels``, mostly the editor's clicks sent as prompts (with
``is_positive``); one per control as far as matching goes."""

from __future__ import annotations

from typing import Any

from ..model import Point, Region
from .kind import ImageKind, pct


class KeypointKind(ImageKind):
    region = Point
    control_tag = "KeyPointLabels"
    prompt_suffix = "point"

    def value(self, region: Point) -> dict[str, Any]:
        return {"x": pct(region.x, region.image_width), "y": pct(region.y, region.image_height)}

    def extra(self, region: Point) -> dict[str, Any]:
        return {**super().extra(region), "is_positive": region.positive}

    def from_result(self, item: dict[str, Any], value: dict[str, Any],
                    common: dict[str, Any]) -> Region:
        w, h = item.get("original_width"), item.get("original_height")
        return Point(x=value["x"] * w / 100, y=value["y"] * h / 100, image_width=w,
                     image_height=h, positive=bool(item.get("is_positive", True)), **common)
