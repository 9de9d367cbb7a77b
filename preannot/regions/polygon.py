"""Polygons: Label Studio's ``polygonlabels``, compared by rasterising both at pixel centres
(even-odd rule, numpy) inside their joint bounding box, which needs no shapely."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..model import Polygon, Region
from .kind import ImageKind, pct


def _rasterise(points: Sequence[tuple[float, float]], xs: Any, ys: Any) -> Any:
    """Pixel centres inside the polygon (even-odd rule), on the grid ``xs`` x ``ys``."""
    import numpy as np

    px, py = np.meshgrid(xs, ys)
    inside = np.zeros(px.shape, dtype=bool)
    n = len(points)
    for i in range(n):
        (x1, y1), (x2, y2) = points[i], points[(i + 1) % n]
        if y1 == y2:
            continue
        crosses = (y1 > py) != (y2 > py)
        x_at = x1 + (py - y1) * (x2 - x1) / (y2 - y1)
        inside ^= crosses & (px < x_at)
    return inside


def polygon_iou(a: Polygon, b: Polygon) -> float:
    import numpy as np

    if len(a.points) < 3 or len(b.points) < 3:
        return 0.0
    pts = a.points + b.points
    x0, x1 = int(min(p[0] for p in pts)), int(max(p[0] for p in pts)) + 1
    y0, y1 = int(min(p[1] for p in pts)), int(max(p[1] for p in pts)) + 1
    xs, ys = np.arange(x0, x1) + 0.5, np.arange(y0, y1) + 0.5
    ra, rb = _rasterise(a.points, xs, ys), _rasterise(b.points, xs, ys)
    union = np.logical_or(ra, rb).sum()
    return float(np.logical_and(ra, rb).sum() / union) if union else 0.0


class PolygonKind(ImageKind):
    region = Polygon
    control_tag = "PolygonLabels"
    threshold_key = "polygon_iou"
    default_threshold = 0.5

    def value(self, region: Polygon) -> dict[str, Any]:
        w, h = region.image_width, region.image_height
        return {"points": [[pct(x, w), pct(y, h)] for x, y in region.points], "closed": True}

    def from_result(self, item: dict[str, Any], value: dict[str, Any],
                    common: dict[str, Any]) -> Region:
        w, h = item.get("original_width"), item.get("original_height")
        return Polygon(points=[(x * w / 100, y * h / 100) for x, y in value["points"]],
                       image_width=w, image_height=h, **common)

    def overlap(self, a: Polygon, b: Polygon) -> float:
        return polygon_iou(a, b)
