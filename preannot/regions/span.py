"""Text spans: Label Studio's ``labels`` on a ``Text``, compared by character offsets."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..model import Region, Span
from .kind import RegionKind


def span_iou(a: Span, b: Span) -> float:
    inter = max(0, min(a.end, b.end) - max(a.start, b.start))
    union = max(a.end, b.end) - min(a.start, b.start)
    return inter / union if union > 0 else float(a.start == b.start)


class SpanKind(RegionKind):
    region = Span
    control_tag = "Labels"
    default_to_name = "text"
    threshold_key = "span_iou"

    def value(self, region: Span) -> dict[str, Any]:
        return {"start": region.start, "end": region.end, "text": region.text}

    def from_result(self, item: dict[str, Any], value: dict[str, Any],
                    common: dict[str, Any]) -> Region:
        return Span(start=value["start"], end=value["end"], text=value.get("text", ""), **common)

    def overlap(self, a: Span, b: Span) -> float:
        return span_iou(a, b)

    def conflicts(self, a: Span, b: Span, thresholds: Mapping[str, float]) -> bool:
        """Spans sharing a character cannot both be right, whatever the threshold."""
        return min(a.end, b.end) > max(a.start, b.start)
