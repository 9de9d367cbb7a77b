"""Match human regions to predicted ones and say what the human did with each prediction.

Geometry decides; region ids (Label Studio keeps a prediction's ids when a human accepts it)
only break ties between equally good candidates. Overlap: spans by character offsets, boxes by
plain-Python IoU (rotation ignored), masks by numpy pixel IoU, polygons by rasterising both at
pixel centres (even-odd rule, numpy) inside their joint bounding box, which needs no shapely.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..model import Box, Mask, Polygon, Region, Span

ACCEPTED, MODIFIED, DELETED, ADDED = "accepted", "modified", "deleted", "added"
DEFAULT_THRESHOLDS = {"span_iou": 1.0, "box_iou": 0.5, "mask_iou": 0.5, "polygon_iou": 0.5}
_THRESHOLD_KEY = {"labels": "span_iou", "rectanglelabels": "box_iou", "brushlabels": "mask_iou",
                  "polygonlabels": "polygon_iou"}


def span_iou(a: Span, b: Span) -> float:
    inter = max(0, min(a.end, b.end) - max(a.start, b.start))
    union = max(a.end, b.end) - min(a.start, b.start)
    return inter / union if union > 0 else float(a.start == b.start)


def box_iou(a: Box, b: Box) -> float:
    ax1, ay1, ax2, ay2 = a.xyxy
    bx1, by1, bx2, by2 = b.xyxy
    inter = max(0.0, min(ax2, bx2) - max(ax1, bx1)) * max(0.0, min(ay2, by2) - max(ay1, by1))
    union = a.width * a.height + b.width * b.height - inter
    return inter / union if union > 0 else 0.0


def mask_iou(a: Mask, b: Mask) -> float:
    import numpy as np

    ma, mb = np.asarray(a.mask, dtype=bool), np.asarray(b.mask, dtype=bool)
    if ma.shape != mb.shape:
        return 0.0
    union = np.logical_or(ma, mb).sum()
    return float(np.logical_and(ma, mb).sum() / union) if union else 0.0


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


def iou(a: Region, b: Region) -> float:
    """Overlap of two regions of the same kind on the same control; 0 when they can't compare."""
    if type(a) is not type(b) or a.from_name != b.from_name:
        return 0.0
    if isinstance(a, Span):
        return span_iou(a, b)  # type: ignore[arg-type]
    if isinstance(a, Box):
        return box_iou(a, b)  # type: ignore[arg-type]
    if isinstance(a, Mask):
        return mask_iou(a, b)  # type: ignore[arg-type]
    if isinstance(a, Polygon):
        return polygon_iou(a, b)  # type: ignore[arg-type]
    return 1.0  # choices: one per control, the label says the rest


def threshold(region: Region, thresholds: Mapping[str, float]) -> float:
    key = _THRESHOLD_KEY.get(region.type)
    return float(thresholds.get(key, DEFAULT_THRESHOLDS[key])) if key else 1.0


def same(a: Region, b: Region, thresholds: Mapping[str, float]) -> bool:
    """The same region as far as a human is concerned: same label, overlap within threshold."""
    return a.label == b.label and iou(a, b) >= threshold(a, thresholds) - 1e-9


@dataclass
class Matching:
    """Per predicted region: (classification, index of the human region or None, IoU);
    and the indices of human regions no prediction matched."""

    predicted: list[tuple[str, int | None, float]] = field(default_factory=list)
    added: list[int] = field(default_factory=list)


def match(predicted: Sequence[Region], human: Sequence[Region],
          thresholds: Mapping[str, float] = DEFAULT_THRESHOLDS) -> Matching:
    """One-to-one matching of overlapping regions, best pairs first.

    A pair is a candidate when the regions overlap at all; candidates are taken by (same id,
    same label, IoU) descending. A matched prediction is accepted when label and geometry agree
    within the threshold, else modified; an unmatched prediction was deleted, an unmatched
    human region added.
    """
    candidates = []
    for i, p in enumerate(predicted):
        for j, h in enumerate(human):
            overlap = iou(p, h)
            if overlap > 0:
                candidates.append((p.id is not None and p.id == h.id, p.label == h.label,
                                   overlap, -i, -j))
    candidates.sort(reverse=True)
    pairs: dict[int, tuple[int, float]] = {}
    taken: set[int] = set()
    for _, _, overlap, neg_i, neg_j in candidates:
        i, j = -neg_i, -neg_j
        if i not in pairs and j not in taken:
            pairs[i] = (j, overlap)
            taken.add(j)
    out = Matching()
    for i, p in enumerate(predicted):
        if i not in pairs:
            out.predicted.append((DELETED, None, 0.0))
            continue
        j, overlap = pairs[i]
        ok = p.label == human[j].label and overlap >= threshold(p, thresholds) - 1e-9
        out.predicted.append((ACCEPTED if ok else MODIFIED, j, overlap))
    out.added = [j for j in range(len(human)) if j not in taken]
    return out


def pair_f1(a: Sequence[Region], b: Sequence[Region], thresholds: Mapping[str, float]) -> float:
    """Agreement of two annotators on one task: F1 of one's regions against the other's
    (a region agrees when :func:`same` holds for a one-to-one match); 1.0 when both are empty."""
    if not a and not b:
        return 1.0
    m = match(a, b, thresholds)
    agreed = sum(1 for kind, _, _ in m.predicted if kind == ACCEPTED)
    return 2 * agreed / (len(a) + len(b))


def consensus(annotations: Sequence[Sequence[Region]],
              thresholds: Mapping[str, float]) -> list[tuple[int, int]]:
    """The majority region set of several annotations of one task, as (annotation, region)
    indices: a region is kept when more than half of the annotations hold the same region
    (so with two annotators, only what both drew). The first annotation holding it speaks."""
    kept: list[tuple[int, int]] = []
    for a, regions in enumerate(annotations):
        for r, region in enumerate(regions):
            if any(same(annotations[ka][kr], region, thresholds) for ka, kr in kept):
                continue
            votes = sum(1 for other in annotations if any(same(region, o, thresholds) for o in other))
            if votes * 2 > len(annotations):
                kept.append((a, r))
    return kept
