"""The ``fusion`` annotator: one prediction out of several annotators that speak about the same
data (a gazetteer and a trained model, say), each region keeping its provenance.

Regions that overlap (spans sharing a character, boxes or polygons over the IoU threshold,
on the same object) conflict. Each distinct region of a conflict group is a *candidate*:

- ``policy = "precedence"``: in each group, the candidate of the first source in ``order``
  (default: the ``after`` order) is kept, with its own score;
- ``policy = "learned"``: each candidate gets the probability that it is right from the
  combiner (:mod:`preannot.training.combiner`) that the training flow fitted on reviewed tasks
  and wrote to ``combiner`` (default ``.preannot/fusion/<name>.json``); the most probable
  candidates at or above its threshold are kept, never two that conflict, each scored by that
  probability. Before any fit (or for a source the fit did not know), a candidate weighs its
  own score (``prior`` when it has none), agreeing sources combined as independent votes, and
  the threshold is ``min_weight``. When the training flow measured the fusion losing to one of
  its sources, the combiner file says so and the fusion passes that source's regions through.

The winner keeps its own provenance (annotator, rule); ``provenance["fused"]`` adds:
``sources`` (who proposed exactly it), ``ran`` (who ran on the task), ``candidates`` (every
source's region of the conflict group, with that source's own label and score), ``dropped``
(candidates of the task not kept: below the threshold or beaten in a conflict; a sign the task
may be wrong) and ``weight`` (the fused score).

The model version digests the options and the combiner file's content: it changes when the
combiner is refitted, not when a harvest merely grows.

The fused prediction's own score (the task's): where its regions are exactly what one source
said, that source's own score for the whole task (spacy-ner: the beam's probability that
nothing is wrong or missing), so a calibrator still sees it behind the fusion; else the
lowest region score, as for any prediction.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from ..annotator import Annotator, ConfigError, digest, notice
from ..evaluation.match import DEFAULT_THRESHOLDS, same
from ..model import Prediction, Region, Span, Task
from . import combiner

POLICIES = ("precedence", "learned")


class FusionAnnotator(Annotator):
    type = "fusion"
    description = ("Merges its upstreams' regions into one prediction (precedence or a learned "
                   "combiner)")
    reads = ("text",)
    emits = ()
    combines = True
    known_options = frozenset({"policy", "order", "combiner", "prior", "min_weight", "iou",
                               "silence", "metrics", "prior_strength"})
    """``metrics`` and ``prior_strength`` (the harvest-weighted policy before the combiner) are
    accepted, with a notice that they no longer do anything."""

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
        self.silence = bool(opts.get("silence", True))
        """Whether the combiner may learn from a source's silence (``silence = false``: no veto)."""
        self.min_weight = float(opts.get("min_weight", 0.5))
        self.thresholds = {**DEFAULT_THRESHOLDS, "box_iou": float(opts.get("iou", 0.5)),
                           "polygon_iou": float(opts.get("iou", 0.5)),
                           "mask_iou": float(opts.get("iou", 0.5))}
        if old := sorted({"metrics", "prior_strength"} & set(opts)):
            notice(f"annotator {name!r} (fusion): {', '.join(old)} no longer used: the learned "
                   "policy reads the combiner `preannot train` fits (option 'combiner')")
        self.model: dict[str, Any] | None = None
        if self.policy == "learned":
            self.model = self._load(combiner_path(name, opts, self.context))

    def _load(self, path) -> dict[str, Any] | None:
        try:
            model = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            notice(f"annotator {self.name!r} (fusion): no combiner fitted yet ({path}; "
                   "`preannot train` fits it): each region weighs its own score")
            return None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from None
        if model.get("use") and model["use"] != self.name:
            if model["use"] not in self.after:
                raise ConfigError(f"{path}: use = {model['use']!r} is not in annotator "
                                  f"{self.name!r}'s 'after' list {self.after}")
            notice(f"annotator {self.name!r} (fusion): the fusion lost to {model['use']!r} on "
                   f"the evaluation split ({path}): passing {model['use']!r}'s regions through")
        elif not isinstance(model.get("weights"), dict) or "threshold" not in model:
            raise ConfigError(f"{path}: not a fitted combiner (no weights or threshold): "
                              "run `preannot train` again")
        return model

    @property
    def fallback(self) -> str | None:
        """The source passed through because the fusion lost to it (None: fusing)."""
        use = (self.model or {}).get("use")
        return use if use and use != self.name else None

    def fingerprint(self) -> str:
        return digest(super().fingerprint(), self.model)

    def _rank(self, c: combiner.Candidate) -> float:
        best = min((self.order.index(s) for s in c.scores if s in self.order),
                   default=len(self.order))
        return 1.0 - best / max(1, len(self.order))

    def fuse(self, sourced: Sequence[tuple[str, Region]], ran: Sequence[str] = ()) -> list[Region]:
        """The candidates kept, with their provenance; ``ran`` names the sources that ran on
        the task (their silence is a feature of the combiner)."""
        if self.fallback:
            return sorted((replace(r, provenance={**r.provenance, "fused": {
                "policy": "fallback", "sources": [s], "ran": list(ran), "dropped": 0,
                "candidates": [{"source": s, "label": r.label, "score": r.score}],
                "weight": r.score}}) for s, r in sourced if s == self.fallback),
                key=lambda r: getattr(r, "start", 0))
        cands, groups = combiner.candidates(sourced, self.thresholds)
        if self.policy == "precedence":
            probs = [self._rank(c) for c in cands]
            threshold = 0.0
        else:
            probs = [combiner.probability(c, groups[c.group], ran, self.model, self.prior)
                     for c in cands]
            threshold = self.model["threshold"] if self.model else self.min_weight
        kept = combiner.decode(cands, probs, threshold, self.thresholds)
        dropped = len(cands) - len(kept)
        fused = []
        for i in kept:
            c = cands[i]
            # the winner: the best-ranked agreeing source's region (its provenance, rule...)
            source, winner = min(c.members, key=lambda sr: (
                self.order.index(sr[0]) if sr[0] in self.order else len(self.order),
                -(sr[1].score or 0.0)))
            score = round(probs[i], 4) if self.policy == "learned" else winner.score
            fused.append(replace(winner, score=score, provenance={
                **winner.provenance, "fused": {
                    "policy": self.policy, "sources": sorted(c.scores), "ran": list(ran),
                    "weight": round(probs[i], 4), "dropped": dropped,
                    "candidates": [_candidate(s, r) for s, r in groups[c.group]]}}))
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


def _candidate(source: str, region: Region) -> dict[str, Any]:
    """A source's own region of a conflict group, as the harvest and the calibration read it."""
    out: dict[str, Any] = {"source": source, "label": region.label, "score": region.score}
    if region.type == Span.type:
        out.update(start=region.start, end=region.end)
    return out


def combiner_path(name: str, options: Mapping[str, Any], context):
    """Where the fusion named ``name`` reads its fitted combiner (and the training flow
    writes it): the ``combiner`` option, else ``.preannot/fusion/<name>.json``."""
    return context.path(options.get("combiner", f".preannot/fusion/{name}.json"))
