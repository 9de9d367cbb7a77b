"""Region matching edge cases: every geometry kind, ids as tie-breakers, consensus, agreement."""

import numpy as np
import pytest

from preannot import Box, Choice, Mask, Polygon, Span
from preannot.evaluation.match import ACCEPTED, DELETED, MODIFIED, consensus, iou, match, pair_f1
from preannot.regions.polygon import polygon_iou
from preannot.lsjson import region_to_result, result_to_region

T = {"span_iou": 1.0, "box_iou": 0.5, "mask_iou": 0.5, "polygon_iou": 0.5}


def s(start, end, label="A", rid=None):
    return Span(start=start, end=end, text="x" * (end - start), label=label, id=rid)


def test_span_exact_overlap_and_disjoint():
    m = match([s(0, 5), s(10, 14), s(20, 25)], [s(0, 5), s(10, 16)], T)
    assert m.predicted == [(ACCEPTED, 0, 1.0), (MODIFIED, 1, 4 / 6), (DELETED, None, 0.0)]
    assert m.added == []
    assert match([], [s(1, 2)], T).added == [0]


def test_span_iou_threshold_below_one_accepts_close_offsets():
    assert match([s(10, 14)], [s(10, 15)], {**T, "span_iou": 0.8}).predicted[0][0] == ACCEPTED
    assert match([s(10, 14)], [s(10, 15)], T).predicted[0][0] == MODIFIED


def test_label_change_is_a_modification_and_ids_break_ties():
    # two identical predicted spans: the human region keeps the second one's id
    m = match([s(0, 4, rid="a"), s(0, 4, rid="b")], [s(0, 4, "B", rid="b")], T)
    assert m.predicted == [(DELETED, None, 0.0), (MODIFIED, 0, 1.0)]


def box(x, y, w, h, label="car"):
    return Box(x=x, y=y, width=w, height=h, image_width=100, image_height=100, label=label)


def test_box_iou_by_hand():
    assert iou(box(0, 0, 10, 10), box(5, 0, 10, 10)) == pytest.approx(50 / 150)
    m = match([box(0, 0, 10, 10), box(50, 50, 10, 10)], [box(1, 0, 10, 10), box(55, 50, 10, 10)], T)
    assert [k for k, _, _ in m.predicted] == [ACCEPTED, MODIFIED]  # IoU 90/110, then 50/150


def test_mask_iou_through_label_studio_rle():
    a = np.zeros((20, 30), bool)
    a[0:10, 0:10] = True
    b = np.zeros((20, 30), bool)
    b[0:10, 5:15] = True
    ra, rb = (result_to_region(region_to_result(Mask(mask=m, label="cat"))) for m in (a, b))
    assert iou(ra, rb) == pytest.approx(50 / 150)
    assert iou(ra, Mask(mask=np.zeros((5, 5), bool), label="cat")) == 0.0  # other image size


def test_polygon_iou_rasterised():
    square = Polygon(points=[(0, 0), (10, 0), (10, 10), (0, 10)], image_width=50, image_height=50,
                     label="p")
    shifted = Polygon(points=[(5, 0), (15, 0), (15, 10), (5, 10)], image_width=50, image_height=50,
                      label="p")
    triangle = Polygon(points=[(0, 0), (10, 0), (0, 10)], image_width=50, image_height=50, label="p")
    assert polygon_iou(square, square) == 1.0
    assert polygon_iou(square, shifted) == pytest.approx(50 / 150)
    assert polygon_iou(square, triangle) == pytest.approx(0.5, abs=0.06)  # pixel-centre sampling


def test_kinds_and_controls_do_not_mix():
    assert iou(s(0, 4), box(0, 0, 4, 4)) == 0.0
    other = Span(start=0, end=4, text="xxxx", label="A", from_name="other")
    assert iou(s(0, 4), other) == 0.0
    m = match([Choice(label="spam")], [Choice(label="ham")], T)
    assert m.predicted[0][0] == MODIFIED


def test_consensus_and_pairwise_agreement():
    a, b, c = [s(0, 4), s(10, 12, "B")], [s(0, 4)], [s(0, 4), s(10, 12, "B")]
    assert consensus([a, b], T) == [(0, 0)]  # two annotators: what both drew
    assert consensus([a, b, c], T) == [(0, 0), (0, 1)]  # majority of three
    assert pair_f1(a, b, T) == pytest.approx(2 / 3)
    assert pair_f1([], [], T) == 1.0 and pair_f1(a, [], T) == 0.0
