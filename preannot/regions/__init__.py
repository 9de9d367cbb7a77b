"""The registry of region kinds: each Label Studio result type preannot speaks, and the
:class:`RegionKind` that converts, compares and configures it. The Label Studio JSON converter,
the matching and the labeling-config generator ask here instead of telling kinds apart
themselves, so a new kind is one module that calls :func:`register_kind`.
"""

from __future__ import annotations

from ..model import Region
from .box import BoxKind
from .choice import ChoiceKind
from .keypoint import KeypointKind
from .kind import ImageKind, RegionKind
from .mask import MaskKind
from .polygon import PolygonKind
from .span import SpanKind

__all__ = ["BUILT_IN", "ImageKind", "KINDS", "RegionKind", "kind_for", "kind_of", "register_kind"]

KINDS: dict[str, RegionKind] = {}
"""Label Studio result type -> its kind, in the order they were registered."""


def register_kind(kind: RegionKind) -> RegionKind:
    """Make a kind known to the converter, the matching and the labeling configs."""
    KINDS[kind.result_type] = kind
    return kind


def kind_for(result_type: str) -> RegionKind:
    """The kind of a Label Studio result type; ValueError for one preannot does not speak."""
    try:
        return KINDS[result_type]
    except KeyError:
        raise ValueError(f"unsupported Label Studio result type {result_type!r}") from None


def kind_of(region: Region) -> RegionKind:
    """The kind of a region; TypeError for a region class no kind was registered for."""
    kind = KINDS.get(region.type)
    if kind is None or not issubclass(type(region), kind.region):
        raise TypeError(f"cannot convert {type(region).__name__}: no region kind is registered "
                        "for it")
    return kind


BUILT_IN = (SpanKind(), BoxKind(), MaskKind(), PolygonKind(), KeypointKind(), ChoiceKind())
"""The kinds preannot ships, listed in one place (the order error messages name them in)."""

for built_in in BUILT_IN:
    register_kind(built_in)
