"""Mask to polygon: the outline Label Studio's PolygonLabels can hold (one closed ring)."""

from __future__ import annotations


def mask_to_polygon(mask, tolerance: float) -> list[tuple[float, float]]:
    """The largest outer contour of ``mask``, simplified to within ``tolerance`` pixels (Douglas-
    Peucker); empty when the mask has no contour of 3 points or more.
    """
    import cv2
    import numpy as np

    contours, _ = cv2.findContours(np.ascontiguousarray(mask, dtype=np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return []
    contour = max(contours, key=cv2.contourArea)
    if tolerance > 0:
        contour = cv2.approxPolyDP(contour, tolerance, True)
    points = [(float(x), float(y)) for x, y in contour.reshape(-1, 2)]
    return points if len(points) >= 3 else []
