"""Match human regions to predicted ones and say what the human did with each prediction.

Geometry decides; region ids (Label Studio keeps a prediction's ids when a human accepts it)
only break ties between equally good candidates. Overlap is each kind's own (spans by character
offsets, boxes, masks and polygons by IoU: :mod:`preannot.regions`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..model import Region
from ..regions import BUILT_IN, kind_of
from ..regions.kind import same_control

ACCEPTED, MODIFIED, DELETED, ADDED = "accepted", "modified", "deleted", "added"
DEFAULT_THRESHOLDS = {kind.threshold_key: kind.default_threshold for kind in BUILT_IN
                      if kind.threshold_key}


def iou(a: Region, b: Region) -> float:
    """Overlap of two regions of the same kind on the same control; 0 when they can't compare."""
    return kind_of(a).overlap(a, b) if same_control(a, b) else 0.0


def threshold(region: Region, thresholds: Mapping[str, float]) -> float:
    kind = kind_of(region)
    key = kind.threshold_key
    return float(thresholds.get(key, kind.default_threshold)) if key else 1.0


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
