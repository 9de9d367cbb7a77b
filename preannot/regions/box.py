"""Boxes: Label Studio's ``rectanglelabels``, compared by plain-Python IoU (rotation ignored)."""

from __future__ import annotations

from typing import Any

from ..model import Box, Region
from .kind import ImageKind, pct


def box_iou(a: Box, b: Box) -> float:
    ax1, ay1, ax2, ay2 = a.xyxy
    bx1, by1, bx2, by2 = b.xyxy
    inter = max(0.0, min(ax2, bx2) - max(ax1, bx1)) * max(0.0, min(ay2, by2) - max(ay1, by1))
    union = a.width * a.height + b.width * b.height - inter
    return inter / union if union > 0 else 0.0


class BoxKind(ImageKind):
    region = Box
    control_tag = "RectangleLabels"
    threshold_key = "box_iou"
    default_threshold = 0.5
    prompt_suffix = "box"

    def value(self, region: Box) -> dict[str, Any]:
        w, h = region.image_width, region.image_height
        return {"x": pct(region.x, w), "y": pct(region.y, h), "width": pct(region.width, w),
                "height": pct(region.height, h), "rotation": region.rotation}

    def from_result(self, item: dict[str, Any], value: dict[str, Any],
                    common: dict[str, Any]) -> Region:
        w, h = item.get("original_width"), item.get("original_height")
        return Box(x=value["x"] * w / 100, y=value["y"] * h / 100,
                   width=value["width"] * w / 100, height=value["height"] * h / 100,
                   rotation=value.get("rotation", 0.0), image_width=w, image_height=h, **common)

    def overlap(self, a: Box, b: Box) -> float:
        return box_iou(a, b)
