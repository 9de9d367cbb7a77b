"""The ``fusion`` annotator: one prediction out of several annotators that speak about the same
data (a gazetteer and a trained model, say), each region keeping its provenance.

Regions that overlap (spans sharing a character, boxes or polygons over the IoU threshold,
on the same object) conflict; in each group one wins:

- ``policy = "precedence"``: the first source in ``order`` (default: the ``after`` order);
- ``policy = "learned"``: the highest weight, where a region's weight is its source's
  harvested precision for its label (``metrics.json`` of ``preannot ls pull``), smoothed by
  ``prior_strength`` pseudo-counts towards the region's own score (``prior`` when it has
  none): before any harvest a region weighs what its source said, and the more humans have
  judged a source, the more its record counts. Sources that agree with the winner (same
  label, same extent) raise its score: ``1 - prod(1 - weight)`` over them; once humans have
  judged the winner's source, a source that ran on the task and did not say it lowers it by
  its harvested recall for the label (the odds are multiplied by ``1 - recall``): a model that
  rarely misses a product vetoes the dictionary's "apple" in a sentence about fruit.

The fused prediction's own score (the task's): where its regions are exactly what one source
said, that source's own score for the whole task (spacy-ner: the beam's probability that
nothing is wrong or missing), so a calibrator still sees it behind the fusion; else the
lowest region score, as for any prediction.

Regions whose fused weight is under ``min_weight`` are dropped. The winner keeps its own
provenance (annotator, rule) so harvests still score each source; ``provenance["fused"]``
says which sources agreed, which ran on the task (a harvest measures each source's recall on
the tasks it ran on) and the weight.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from ..annotator import Annotator, ConfigError, digest, notice
from ..evaluation.match import DEFAULT_THRESHOLDS, iou, same
from ..model import Prediction, Region, Span, Task

POLICIES = ("precedence", "learned")


class FusionAnnotator(Annotator):
    type = "fusion"
    description = "Merges its upstreams' regions into one prediction (precedence or learned weights)"
    reads = ("text",)
    emits = ()
    combines = True
    known_options = frozenset({"policy", "order", "metrics", "prior", "prior_strength",
                               "min_weight", "iou"})

    def __init__(self, name: str, options: Mapping[str, Any] | None = None, context=None) -> None:
        super().__init__(name, options, context)
        opts = self.options
        self.policy = opts.get("policy", "precedence")
        if self.policy not in POLICIES:
            raise ConfigError(f"annotator {name!r} (fusion): policy {self.policy!r}: use "
                              f"{' or '.join(POLICIES)}")
        self.order: list[str] = list(opts.get("order", self.after))
        if missing := [n for n in self.order if n not in self.after]:
            raise ConfigError(f"annotator {name!r} (fusion): order names {missing}, which are "
                              "not in its 'after' list")
        self.prior = float(opts.get("prior", 0.5))
        self.strength = float(opts.get("prior_strength", 2.0))
        self.min_weight = float(opts.get("min_weight", 0.0))
        self.thresholds = {**DEFAULT_THRESHOLDS, "box_iou": float(opts.get("iou", 0.5)),
                           "polygon_iou": float(opts.get("iou", 0.5)),
                           "mask_iou": float(opts.get("iou", 0.5))}
        self.counts: dict[str, dict[str, Any]] = {}
        if self.policy == "learned":
            self.counts = self._load_counts(opts.get("metrics", "harvest/metrics.json"))

    def _load_counts(self, value: str) -> dict[str, dict[str, Any]]:
        path = self.context.path(value)
        try:
            metrics = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            notice(f"annotator {self.name!r} (fusion): no harvest metrics at {path} yet "
                   "(`preannot ls pull` writes them): each region weighs its own score")
            return {}
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from None
        return metrics.get("annotator_labels", {})

    def fingerprint(self) -> str:
        return digest(super().fingerprint(), self.counts)

    def weight(self, source: str, region: Region) -> float:
        """How much a source's region is trusted: smoothed harvested precision of the source
        for the label (precedence: by the source's rank)."""
        if self.policy == "precedence":
            if source not in self.order:
                return 0.0
            return 1.0 - self.order.index(source) / len(self.order)
        c = self.counts.get(source, {}).get(region.label, {})
        prior = self.prior if region.score is None else float(region.score)
        return ((c.get("accepted", 0) + prior * self.strength)
                / (c.get("predicted", 0) + self.strength))

    def _conflict(self, a: Region, b: Region) -> bool:
        if a.type != b.type or a.to_name != b.to_name:
            return False
        if isinstance(a, Span):
            return min(a.end, b.end) > max(a.start, b.start)  # type: ignore[attr-defined]
        key = {"rectanglelabels": "box_iou", "polygonlabels": "polygon_iou",
               "brushlabels": "mask_iou"}.get(a.type)
        return key is not None and iou(a, b) >= self.thresholds[key]

    def recall(self, source: str, label: str) -> float | None:
        """A source's harvested recall for a label, smoothed towards ``prior``; None unseen."""
        c = self.counts.get(source, {}).get(label, {})
        if not c.get("human"):
            return None
        return (c.get("accepted", 0) + self.prior * self.strength) / (c["human"] + self.strength)

    def fuse(self, sourced: Sequence[tuple[str, Region]], ran: Sequence[str] = ()) -> list[Region]:
        """The winners of each conflict group, with their fused weight as the score; ``ran``
        names the sources that ran on the task (their silence counts against a region)."""
        ranked = sorted(sourced, key=lambda sr: (
            -self.weight(*sr),
            -(sr[1].end - sr[1].start) if isinstance(sr[1], Span) else 0,  # type: ignore[attr-defined]
            -(sr[1].score or 0.0)))
        groups: list[list[tuple[str, Region]]] = []
        for source, region in ranked:
            for group in groups:
                if any(self._conflict(region, r) for _, r in group):
                    group.append((source, region))
                    break
            else:
                groups.append([(source, region)])
        fused = []
        for group in groups:
            source, winner = group[0]
            agreeing = {s: self.weight(s, r) for s, r in group
                        if same(r, winner, self.thresholds)}
            miss = 1.0
            for w in agreeing.values():
                miss *= 1.0 - w
            weight = 1.0 - miss
            if self.policy == "learned" and self.recall(source, winner.label) is not None:
                # only once humans have judged the winner's source too: an unjudged model is not
                # vetoed on a prior alone by a dictionary's silence
                odds = min(weight, 0.999) / (1.0 - min(weight, 0.999))
                for other in ran:
                    if other not in agreeing and (r := self.recall(other, winner.label)) is not None:
                        odds *= 1.0 - r
                weight = odds / (1.0 + odds)
            if weight < self.min_weight:
                continue
            score = weight if self.policy == "learned" else winner.score
            fused.append(replace(winner, score=score, provenance={
                **winner.provenance, "fused": {"policy": self.policy, "sources": sorted(agreeing),
                                               "ran": list(ran), "weight": round(weight, 4)}}))
        return sorted(fused, key=lambda r: getattr(r, "start", 0))

    def annotate(self, tasks: Sequence[Task], upstream: Mapping[str, Sequence[Prediction]]
                 ) -> list[Prediction]:
        out = []
        for i, task in enumerate(tasks):
            ran = [name for name in self.after if upstream[name][i] is not None]
            sourced = [(region.provenance.get("annotator", name), region)
                       for name in ran for region in upstream[name][i].regions]
            # the version names what it was made of: a new model upstream is a new prediction
            version = "+".join([upstream[name][i].model_version for name in ran]
                               + [self.model_version])
            fused = self.fuse(sourced, ran)
            out.append(Prediction(task.id, self.name, version, fused,
                                  score=self.whole(fused, [upstream[name][i] for name in ran])))
        return out

    def whole(self, fused: Sequence[Region], sources: Sequence[Prediction]) -> float | None:
        """The highest own score of the sources whose regions are exactly the fused ones (None:
        no such source has a score)."""
        return max((p.score for p in sources if p.score is not None
                    and len(p.regions) == len(fused)
                    and all(any(same(f, r, self.thresholds) for r in p.regions) for f in fused)),
                   default=None)
