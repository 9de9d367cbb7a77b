"""Masks: Label Studio's ``brushlabels`` as brush RLE (:mod:`preannot.brush`), compared by pixel
IoU with numpy (imported when a mask is met, so text-only runs never load it)."""

from __future__ import annotations

from typing import Any

from ..model import Mask, Region
from .kind import ImageKind


def mask_iou(a: Mask, b: Mask) -> float:
    import numpy as np

    ma, mb = np.asarray(a.mask, dtype=bool), np.asarray(b.mask, dtype=bool)
    if ma.shape != mb.shape:
        return 0.0
    union = np.logical_or(ma, mb).sum()
    return float(np.logical_and(ma, mb).sum() / union) if union else 0.0


class MaskKind(ImageKind):
    region = Mask
    control_tag = "BrushLabels"
    threshold_key = "mask_iou"
    default_threshold = 0.5

    def value(self, region: Mask) -> dict[str, Any]:
        from ..brush import mask_to_rle

        return {"format": "rle", "rle": mask_to_rle(region.mask)}

    def from_result(self, item: dict[str, Any], value: dict[str, Any],
                    common: dict[str, Any]) -> Region:
        from ..brush import rle_to_mask

        w, h = item.get("original_width"), item.get("original_height")
        return Mask(mask=rle_to_mask(value["rle"], h, w), **common)

    def overlap(self, a: Mask, b: Mask) -> float:
        return mask_iou(a, b)
