"""The fused pipeline is gated too: fit the fusion's combiner, measure it and each of its sources
on the evaluation split, and use the fusion only when it beats every source.

The combiner learns from the reviewed tasks no model weight learned from (the dev slice and the
evaluation split), in folds that keep a ``group_by`` group whole; what the gate reads for the
fusion on an evaluation task is the combiner fitted *without* that task's fold (out-of-fold),
so fitting on the split does not flatter the fusion. The sources are run as configured, with
the model version the flow just chose. A fusion that does not beat each source by
``[training] fusion_margin`` on ``metric`` falls back: its combiner file names the best source
(``use``), whose regions the fusion passes through, and a notice says so. A precedence fusion
has nothing to fit: it and its sources are measured on the split, and the report says when a
source alone does better.

Rules grown from the harvest (``ls suggest-rules``) should learn from the training side only
(``ls suggest-rules`` skips the evaluation split): a dictionary that learned the evaluation
tasks' entities scores there what it will never score on new data.
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..annotator import Annotator, Example, batches, chain_order, upstream_names
from . import combiner
from .fusion import FusionAnnotator, combiner_path
from ..engine.config import RunConfig
from ..engine.host import Host
from ..engine.runner import build_annotators, predict, resolve_specs
from .dataset import Dataset
from .gate import GatePolicy, scores, tally
from .registry import Registry, registry_reference

Log = Callable[[str], None]


def tasks_file(path: Path) -> Path:
    """Beside a combiner file: the ids of the tasks it was fitted on, one per line."""
    return path.with_name(f"{path.stem}.tasks.txt")


def fitted_on(config: RunConfig) -> set[str]:
    """The tasks any learned fusion's combiner of the config was fitted on: part of what the
    pipeline learned from, so never the data its production calibration is measured on."""
    out: set[str] = set()
    for spec in config.annotators:
        if spec.get("type") == "fusion" and spec.get("policy") == "learned":
            path = tasks_file(combiner_path(spec["name"], spec, config.context()))
            if path.exists():
                out |= set(path.read_text(encoding="utf-8").split())
    return out


def fusions_after(config: RunConfig, annotator: str) -> list[dict[str, Any]]:
    """The fusions (learned or precedence) chained directly after ``annotator``."""
    return [a for a in config.annotators if a.get("type") == "fusion"
            and annotator in upstream_names(a.get("after"))]


def chain(config: RunConfig, host: Host, target: str,
          overrides: Mapping[str, tuple[Path, str]] = {}) -> list[Annotator]:
    """The annotators ``target`` needs, built, with the named ones running the given model
    (path, version); other ``registry:`` models are their current versions."""
    by_name = {a["name"]: a for a in config.annotators}
    wanted = chain_order({n: upstream_names(a.get("after")) for n, a in by_name.items()},
                         [target])
    specs = []
    for name in wanted:
        spec = dict(by_name[name])
        if name in overrides:
            path, version = overrides[name]
            spec.update({registry_reference(spec)[0]: str(path), "model_version": version})
        specs.append(spec)
    resolved, _ = resolve_specs(specs, host, Registry(config.registry_dir))
    return build_annotators(resolved, host, config.context())


@dataclass
class PipelineOutcome:
    fusion: str
    use: str
    """The fusion's name when it is used, else the source it falls back to."""
    evaluations: dict[str, dict[str, Any]]
    """Each source alone and the fusion (out-of-fold), on the evaluation split."""
    reasons: list[str] = field(default_factory=list)
    combiner: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def _truth(example: Example, learns: Sequence[str] | None) -> list[Any]:
    return [r for r in example.regions if learns is None or r.type in learns]


def gate_fusion(config: RunConfig, host: Host, spec: Mapping[str, Any], data: Dataset, *,
                learns: Sequence[str] | None, overrides: Mapping[str, tuple[Path, str]],
                policy: GatePolicy, log: Log = print) -> PipelineOutcome:
    """Fit the fusion ``spec``'s combiner, gate it against its sources, write its file (a
    precedence fusion, which has nothing to fit, is measured against its sources)."""
    name = spec["name"]
    annotators = chain(config, host, name, overrides)
    fusion = next(a for a in annotators if a.name == name)
    assert isinstance(fusion, FusionAnnotator)
    sources = [s for s in fusion.after if any(a.name == s for a in annotators)]
    if fusion.policy == "precedence":
        return _measure_precedence(annotators, fusion, sources, data, learns=learns,
                                   thresholds=config.harvest.thresholds, metric=policy.metric,
                                   log=log)
    thresholds = config.harvest.thresholds
    fit_examples = [*data.dev, *data.eval]
    in_eval = {e.task.id for e in data.eval}
    tasks: list[combiner.TaskCandidates] = []
    sourced_of: list[tuple[list[tuple[str, Any]], list[str]]] = []
    for batch in batches(fit_examples, 64):
        outputs, failures = predict([a for a in annotators if a is not fusion],
                                    [e.task for e in batch])
        for i, example in enumerate(batch):
            ran = [s for s in sources if i not in failures and outputs[s][i] is not None]
            sourced = [(r.provenance.get("annotator", s), r) for s in ran
                       for r in outputs[s][i].regions if learns is None or r.type in learns]
            sourced_of.append((sourced, ran))
            tasks.append(combiner.task_candidates(
                sourced, ran, _truth(example, learns), thresholds,
                group=data.groups.get(example.task.id, example.task.id)))
    model, oof = combiner.fit(tasks, sources, thresholds=thresholds, prior=fusion.prior,
                              silence=fusion.silence)
    counts: dict[str, dict[str, Counter[str]]] = {n: defaultdict(Counter) for n in [*sources, name]}
    for example, t, probs, (sourced, _) in zip(fit_examples, tasks, oof, sourced_of):
        if example.task.id not in in_eval:
            continue
        human = _truth(example, learns)
        for s in sources:
            tally(counts[s], [r for src, r in sourced if src == s], human, thresholds)
        kept = combiner.decode(t.cands, probs, model["threshold"], thresholds)
        tally(counts[name], [t.cands[i].region for i in kept], human, thresholds)
    evaluations = {n: scores(c, len(data.eval)) for n, c in counts.items()}
    metric = policy.metric
    fused = evaluations[name]["overall"][metric]
    best = max(sources, key=lambda s: evaluations[s]["overall"][metric], default=None)
    margin = config.training.fusion_margin
    reasons = [f"{n} {metric} {evaluations[n]['overall'][metric]:.3f}" for n in [*sources, name]]
    to_beat = evaluations[best]["overall"][metric] + margin if best else 0.0
    if best is None or (fused > 0 and fused >= to_beat - 1e-12):
        use = name
        reasons.append(f"the fusion beats each source by at least {margin}: it is used")
    else:
        use = best
        reasons.append(f"the fusion does not beat {best} by {margin}: {name!r} passes "
                       f"{best!r}'s regions through until a refit wins")
    model.update({"fusion": name, "use": None if use == name else use,
                  "evaluation": {n: e["overall"] for n, e in evaluations.items()},
                  "split": data.sides(), "fitted_on": "dev + evaluation split, out-of-fold"})
    path = combiner_path(name, spec, config.context())
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(model, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)
    fitted = tasks_file(path)
    fitted.write_text("".join(f"{e.task.id}\n" for e in fit_examples), encoding="utf-8")
    log(f"{name}: " + "; ".join(reasons))
    return PipelineOutcome(name, use, evaluations, reasons, model, path)


def _measure_precedence(annotators: Sequence[Annotator], fusion: FusionAnnotator,
                        sources: Sequence[str], data: Dataset, *, learns: Sequence[str] | None,
                        thresholds: Mapping[str, float], metric: str,
                        log: Log) -> PipelineOutcome:
    """A precedence fusion and each of its sources on the evaluation split: the order is the
    user's rule, so nothing falls back, but the report says when a source alone does better."""
    counts: dict[str, dict[str, Counter[str]]] = {
        n: defaultdict(Counter) for n in [*sources, fusion.name]}
    for batch in batches(data.eval, 64):
        outputs, failures = predict(annotators, [e.task for e in batch])
        for i, example in enumerate(batch):
            for n in counts:
                ran = i not in failures and outputs[n][i] is not None
                predicted = [r for r in outputs[n][i].regions
                             if learns is None or r.type in learns] if ran else []
                tally(counts[n], predicted, _truth(example, learns), thresholds)
    evaluations = {n: scores(c, len(data.eval)) for n, c in counts.items()}
    reasons = [f"{n} {metric} {evaluations[n]['overall'][metric]:.3f}" for n in counts]
    fused = evaluations[fusion.name]["overall"][metric]
    if better := [s for s in sources if evaluations[s]["overall"][metric] > fused + 1e-12]:
        reasons.append(f"precedence (order {fusion.order}): {', '.join(better)} alone does "
                       "better; reorder, or use policy = \"learned\"")
    else:
        reasons.append(f"precedence (order {fusion.order}): no source alone does better")
    log(f"{fusion.name}: " + "; ".join(reasons))
    return PipelineOutcome(fusion.name, fusion.name, evaluations, reasons)
