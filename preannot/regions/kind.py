"""What one kind of region owns: its Label Studio result type and tags, its conversion to and
from Label Studio result JSON, its overlap with another region of its kind, and its part of a
labeling config. One subclass per kind, in the manner of label-studio-ml-backend's one class per
control tag; :mod:`preannot.regions` keeps the registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar
from xml.sax.saxutils import quoteattr

from ..model import Region


def pct(value: float, size: int) -> float:
    """Pixels as percent of the image size, Label Studio's unit."""
    return 100.0 * value / size


def same_control(a: Region, b: Region) -> bool:
    """Two regions that can be compared at all: one kind, one control."""
    return type(a) is type(b) and a.from_name == b.from_name


class RegionKind:
    """A text- or task-level kind; :class:`ImageKind` adds the image size Label Studio wants."""

    region: ClassVar[type[Region]]
    """The dataclass of this kind; its ``type`` is the Label Studio result type."""
    control_tag: ClassVar[str]
    """The labeling-config tag that draws this kind: ``RectangleLabels``."""
    object_tag: ClassVar[str] = "Text"
    """The tag of the data this kind annotates: ``Text`` or ``Image``."""
    option_tag: ClassVar[str] = "Label"
    """The tag of each label value inside the control."""
    default_to_name: ClassVar[str] = "image"
    """The object a region without ``to_name`` points to."""
    threshold_key: ClassVar[str | None] = None
    """The ``[harvest]`` setting of the overlap at which a match counts as the same region;
    None: one region per control, the label says the rest."""
    default_threshold: ClassVar[float] = 1.0
    prompt_suffix: ClassVar[str | None] = None
    """The name of a smart tool preannot adds for this kind: ``<from_name>_<suffix>``."""

    @property
    def result_type(self) -> str:
        return self.region.type

    def value(self, region: Any) -> dict[str, Any]:
        """The result's ``value`` without the labels (the caller adds ``{type: [label]}``)."""
        return {}

    def extra(self, region: Any) -> dict[str, Any]:
        """Keys of the result item beside ``value`` (image size, prompt polarity)."""
        return {}

    def from_result(self, item: dict[str, Any], value: dict[str, Any],
                    common: dict[str, Any]) -> Region:
        """The region a result item describes; ``common`` holds label, score, names, id."""
        return self.region(**common)

    def overlap(self, a: Any, b: Any) -> float:
        """How much two regions of this kind on one control overlap, 0..1."""
        return 1.0

    def conflicts(self, a: Any, b: Any, thresholds: Mapping[str, float]) -> bool:
        """Two regions that cannot both be right (fusion's conflict groups): their overlap
        reaches the kind's threshold; a kind without one never conflicts."""
        return (self.threshold_key is not None and same_control(a, b)
                and self.overlap(a, b) >= thresholds[self.threshold_key])

    def control(self, name: str, to_name: str, labels: list[str], smart: bool) -> list[str]:
        """The labeling-config lines of a control of this kind."""
        flag = ' smart="true"' if smart else ""
        return ([f"  <{self.control_tag} name={quoteattr(name)} toName={quoteattr(to_name)}{flag}>"]
                + [f"    <{self.option_tag} value={quoteattr(label)}/>" for label in labels]
                + [f"  </{self.control_tag}>"])


class ImageKind(RegionKind):
    """A kind drawn on an image: geometry in pixels here, in percent in Label Studio, with the
    original size beside it."""

    object_tag: ClassVar[str] = "Image"

    def extra(self, region: Any) -> dict[str, Any]:
        return {"original_width": region.image_width, "original_height": region.image_height,
                "image_rotation": 0}
