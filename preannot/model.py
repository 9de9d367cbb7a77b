"""The data model every plugin speaks: tasks in, regions and predictions out.

Geometry is kept in the units the producing model thinks in (character offsets, pixels); the
conversion to Label Studio's percent coordinates and RLE happens once, in `preannot.lsjson`,
through each kind's module in `preannot.regions`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar


@dataclass
class Task:
    """One unit of data, with a stable id and the data dict as Label Studio knows it."""

    id: str
    data: dict[str, Any]
    source: str = ""
    """Where it came from, for error messages: ``emails.jsonl:12``, ``scans/a.png``."""
    meta: dict[str, Any] = field(default_factory=dict)
    content: str = ""
    """A digest of what the data only points to (an image file's size, time and first bytes),
    so a file replaced under the same path is annotated again."""

    @cached_property
    def checksum(self) -> str:
        """A digest of the data, so a resumed run notices an input that changed in place
        (computed once: the reader checks it encodes, the ledger compares and stores it)."""
        blob = json.dumps(self.data, sort_keys=True, ensure_ascii=False, default=str)
        if self.content:
            blob += "|" + self.content
        return hashlib.blake2b(blob.encode(), digest_size=12).hexdigest()


@dataclass(kw_only=True)
class Region:
    """One predicted thing. Subclasses add the geometry; ``type`` is the Label Studio result type."""

    type: ClassVar[str] = ""
    label: str
    score: float | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    """Which annotator, rule file and rule produced it: harvests score each rule from this."""
    from_name: str | None = None
    to_name: str | None = None
    id: str | None = None


@dataclass(kw_only=True)
class Span(Region):
    """A text span, character offsets into the task's text (end exclusive)."""

    type: ClassVar[str] = "labels"
    start: int
    end: int
    text: str


@dataclass(kw_only=True)
class Box(Region):
    """An axis-aligned (optionally rotated) box in pixels of the original image."""

    type: ClassVar[str] = "rectanglelabels"
    x: float
    y: float
    width: float
    height: float
    image_width: int
    image_height: int
    rotation: float = 0.0

    @property
    def xyxy(self) -> tuple[float, float, float, float]:
        return (self.x, self.y, self.x + self.width, self.y + self.height)


@dataclass(kw_only=True)
class Mask(Region):
    """A binary mask at the original image size (a numpy array of shape (height, width))."""

    type: ClassVar[str] = "brushlabels"
    mask: Any

    @property
    def image_height(self) -> int:
        return int(self.mask.shape[0])

    @property
    def image_width(self) -> int:
        return int(self.mask.shape[1])


@dataclass(kw_only=True)
class Polygon(Region):
    """A closed polygon, vertices in pixels of the original image."""

    type: ClassVar[str] = "polygonlabels"
    points: list[tuple[float, float]]
    image_width: int
    image_height: int


@dataclass(kw_only=True)
class Point(Region):
    """A point in pixels of the original image: what the editor's keypoint tool sends as a
    prompt (``positive`` False for a "not this" click)."""

    type: ClassVar[str] = "keypointlabels"
    x: float
    y: float
    image_width: int
    image_height: int
    positive: bool = True


@dataclass(kw_only=True)
class Choice(Region):
    """A classification of the whole task; ``label`` is the chosen value."""

    type: ClassVar[str] = "choices"


@dataclass
class Prediction:
    """What one annotator said about one task."""

    task_id: str
    annotator: str
    model_version: str
    regions: list[Region] = field(default_factory=list)
    score: float | None = None

    def __post_init__(self) -> None:
        if self.score is None:
            scores = [r.score for r in self.regions if r.score is not None]
            if scores:
                self.score = min(scores)
