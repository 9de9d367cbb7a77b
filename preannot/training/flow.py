"""Train, register, evaluate, gate: one trained model version from the latest harvest.

```toml
[[trainers]]
name = "products-ner"     # the model's name in the registry: versions products-ner-v1, -v2...
type = "spacy-ner"        # a trainer type listed by `preannot plugins`
annotator = "ner"         # the [[annotators]] entry running it: model = "registry:products-ner"
epochs = 20               # the trainer's own options follow

[training]
eval_fraction = 0.2       # share of reviewed tasks held out for the gate, fixed by task id
metric = "f1"             # f1, precision or recall (micro, over the evaluation split)
margin = 0.0              # how much better a new version must be
label_tolerance = 0.05    # how much worse (F1) any one label may get
retrain_after = 0         # `ls pull` retrains after this many newly reviewed tasks (0: never)
group_by = "doc_id"       # a task data field (or "re:<regex>" over the task id): groups stay whole
refit = false             # after the gate, retrain the promoted configuration on train + dev
fusion_margin = 0.0       # a learned fusion is used only when it beats each source by this
```

A ``fusion`` chained after the trained model's annotator is measured against its sources with
it, and a learned one fitted and gated (:mod:`preannot.training.fusion_gate`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..annotator import Annotator, ConfigError, Example, Trainer, chain_order, upstream_names
from ..engine.config import RunConfig
from ..engine.host import Host, get_host
from ..engine.runner import build_annotators, resolve_specs
from ..evaluation.corrections import read_corrections
from ..evaluation.split import fraction
from ..lsjson import region_to_result, task_key
from . import gate_report as report
from .dataset import Dataset, load_dataset
from .gate import GatePolicy, decide, evaluate
from .fusion_gate import PipelineOutcome, fusions_after, gate_fusion
from .registry import REGISTRY_PREFIX, TRAINED, Registry, Version, registry_reference

Log = Callable[[str], None]


def trainer_specs(config: RunConfig) -> list[dict[str, Any]]:
    """The ``[[trainers]]`` tables, each with the annotator that runs its model."""
    specs = []
    for raw in config.trainers:
        spec = dict(raw)
        if "annotator" not in spec:
            users = [a["name"] for a in config.annotators
                     if registry_reference(a)[1] == spec["name"]]
            if len(users) != 1:
                raise ConfigError(f"trainer {spec['name']!r}: set annotator = \"...\", the "
                                  f"[[annotators]] entry with model = \"{REGISTRY_PREFIX}"
                                  f"{spec['name']}\" ({'none' if not users else 'several'} found)")
            spec["annotator"] = users[0]
        elif spec["annotator"] not in {a["name"] for a in config.annotators}:
            raise ConfigError(f"trainer {spec['name']!r}: annotator {spec['annotator']!r} is "
                              "not in [[annotators]]")
        specs.append(spec)
    return specs


def chosen_trainers(config: RunConfig, names: list[str] | None) -> list[dict[str, Any]]:
    """The ``[[trainers]]`` tables named (every one when ``names`` is None or empty)."""
    specs = trainer_specs(config)
    if not specs:
        raise ConfigError("no [[trainers]] in the config: add one (see `preannot train --help`)")
    if not names:
        return specs
    if unknown := [n for n in names if n not in {s["name"] for s in specs}]:
        raise ConfigError(f"no trainer named {unknown[0]!r} (configured: "
                          f"{', '.join(s['name'] for s in specs)})")
    return [s for name in names for s in specs if s["name"] == name]


def make_trainer(spec: Mapping[str, Any], host: Host, config: RunConfig) -> Trainer:
    types = host.trainer_types()
    if spec["type"] not in types:
        raise ConfigError(f"no trainer type {spec['type']!r} is installed (installed: "
                          f"{', '.join(sorted(types)) or 'none'}); check `preannot plugins`")
    options = {k: v for k, v in spec.items() if k not in {"name", "type", "annotator"}}
    return types[spec["type"]][1](spec["name"], options, config.context())


def pipeline_with(config: RunConfig, host: Host, annotator: str, model: Path,
                  version: str) -> list[Annotator]:
    """The annotator ``annotator`` (and what it is chained after) running ``model``."""
    by_name = {a["name"]: a for a in config.annotators}
    wanted = chain_order({n: upstream_names(a.get("after")) for n, a in by_name.items()},
                         [annotator])
    specs = [dict(by_name[n]) for n in wanted]
    specs[-1].update({registry_reference(specs[-1])[0]: str(model), "model_version": version})
    return build_annotators(resolve_specs(specs, host, Registry(config.registry_dir))[0], host,
                            config.context())


def more_corrections(config: RunConfig) -> list[Path]:
    """The corrections files other features give training (the production review's), through
    the ``training_corrections`` hook: training names no other feature's files."""
    return [Path(path) for paths in get_host().hook.training_corrections(config=config)
            for path in paths]


def corrections_files(config: RunConfig) -> list[Path]:
    """The corrections training learns from that exist: the labeling harvest's, and those
    other features give (the production review's)."""
    every = dict.fromkeys((config.training.corrections, *more_corrections(config)))
    return [path for path in every if path.exists()]


def load_examples(config: RunConfig, trainer: Trainer) -> Dataset:
    """The reviewed examples of what ``trainer`` learns, split for it and the gate: the
    harvest's, and those other features give (tasks humans reviewed in production review;
    auto-accepted tasks never are: the model would confirm itself)."""
    split = {"eval_fraction": config.training.eval_fraction, "group_by": config.training.group_by}
    data = load_dataset(config.training.corrections, learns=trainer.learns, field=trainer.field,
                        **split)
    for reviewed in more_corrections(config):
        if not reviewed.exists() or reviewed == config.training.corrections:
            continue
        more = load_dataset(reviewed, learns=trainer.learns, field=trainer.field, **split)
        seen = {e.task.id for e in data.train + data.dev + data.eval}
        for mine, theirs in ((data.train, more.train), (data.dev, more.dev),
                             (data.eval, more.eval)):
            mine.extend(e for e in theirs if e.task.id not in seen)
        data.errors += more.errors
        data.groups = {**more.groups, **data.groups}
    return data


def measure(config: RunConfig, host: Host, spec: Mapping[str, Any], trainer: Trainer,
            version: Version, examples: list[Example]) -> dict[str, Any]:
    """``version`` measured on ``examples`` through the annotator that will run it."""
    return evaluate(pipeline_with(config, host, spec["annotator"], version.artifact,
                                  version.version),
                    spec["annotator"], examples, learns=trainer.learns,
                    thresholds=config.harvest.thresholds)


def training_key(spec: Mapping[str, Any], data: Dataset) -> str:
    """Same training data and options, same key: a version is not trained twice on them."""
    digest = hashlib.blake2b(digest_size=12)
    digest.update(json.dumps(spec, sort_keys=True, default=str).encode())
    for example in [*data.train, *data.dev]:
        digest.update(json.dumps([example.task.id, example.task.checksum,
                                  [region_to_result(r) for r in example.regions]],
                                 sort_keys=True, default=str).encode())
    return digest.hexdigest()


@dataclass
class Outcome:
    version: Version
    promoted: bool
    reasons: list[str]
    baseline: Version | None
    report: Path
    reused: bool = False
    """The same data and options were trained on before: that version was gated again."""
    pipelines: list[PipelineOutcome] = field(default_factory=list)
    """The fusions over this model measured against their sources (learned ones fitted and
    gated too)."""
    refit: Version | None = None
    """With ``[training] refit``: the promoted configuration retrained on train + dev (current
    only when its own gate passed: its card's status says)."""


def _trained_version(config: RunConfig, spec: Mapping[str, Any], trainer: Trainer, data: Dataset,
                     current: Version | None, force: bool, log: Log) -> tuple[Version, bool]:
    """The version trained on ``data`` (an earlier one with the same data and options is reused
    unless ``force``), and whether it was reused."""
    registry = Registry(config.registry_dir)
    key = training_key(spec, data)
    previous = next((v for v in registry.versions(spec["name"])
                     if v.card.get("training_key") == key), None)
    if previous is not None and not force:
        log(f"{previous.version} was trained on exactly this data and these options: not "
            "training again (--force retrains)")
        return previous, True
    parent = current.version if current else "none"
    work_dir = config.workspace.training / spec["name"] / f"{key}-{parent}"
    work_dir.mkdir(parents=True, exist_ok=True)
    artifact = trainer.train(data.train, data.dev, work_dir,
                             parent=current.artifact if current else None, log=log)
    version = registry.add(spec["name"], artifact, {
        "trainer": spec["type"], "annotator": spec["annotator"], "training_key": key,
        "parent": current.version if current else None,
        "harvest": {"corrections": str(config.training.corrections), "reviewed": data.reviewed,
                    "train": len(data.train), "dev": len(data.dev), "eval": len(data.eval),
                    "skipped": len(data.errors)},
        "options": {k: v for k, v in spec.items() if k not in {"name", "type"}}})
    _keep_trained(version, data)
    shutil.rmtree(work_dir, ignore_errors=True)
    log(f"registered {version.version}")
    return version, False


def train(config: RunConfig, host: Host, spec: Mapping[str, Any], *, promote: bool = True,
          force: bool = False, log: Log = print) -> Outcome:
    """Train ``spec``'s model on the harvest, register it, evaluate it and the current version
    on the evaluation split, and promote it when the gate says so."""
    policy = GatePolicy.from_settings(config.training)
    trainer = make_trainer(spec, host, config)
    data = load_examples(config, trainer)
    for error in data.errors:
        log(f"skipped: {error}")
    if not data.train:
        raise ConfigError(f"{config.training.corrections}: no human-reviewed tasks to train on "
                          f"({data.reviewed} reviewed in all): correct some tasks in Label "
                          "Studio, then `ls pull`")
    registry = Registry(config.registry_dir)
    current = registry.current(spec["name"])
    log(f"{spec['name']}: {len(data.train)} training, {len(data.dev)} dev and {len(data.eval)} "
        f"evaluation tasks (of {data.reviewed} reviewed); current version: "
        f"{current.version if current else 'none'}")
    if config.training.group_by:
        sides = data.sides()
        log(f"split by group_by = {config.training.group_by!r}: " + ", ".join(
            f"{side} {n['tasks']} tasks in {n['groups']} groups" for side, n in sides.items()))
    version, reused = _trained_version(config, spec, trainer, data, current, force, log)
    if current is not None and current.version == version.version:
        return Outcome(version, True, ["it is already the current version"], None,
                       version.folder / "gate.html", reused)
    candidate = measure(config, host, spec, trainer, version, data.eval)
    baseline = measure(config, host, spec, trainer, current, data.eval) if current else None
    decision = decide(candidate, baseline, policy)
    registry.update(version, evaluation=candidate, gate={
        "promote": decision.promote, "reasons": decision.reasons, "policy": vars(policy),
        "baseline": current.version if current else None, "baseline_evaluation": baseline})
    chosen = version if decision.promote and promote else current
    pipelines = [] if chosen is None else [
        gate_fusion(config, host, fusion, data, learns=trainer.learns, policy=policy, log=log,
                    overrides={spec["annotator"]: (chosen.artifact, chosen.version)})
        for fusion in fusions_after(config, spec["annotator"])]
    if pipelines:
        registry.update(version, pipelines={
            p.fusion: {"use": p.use, "reasons": p.reasons, "evaluations": p.evaluations}
            for p in pipelines})
    page = report.write_gate(version, current, candidate, baseline, decision, policy,
                             pipelines=pipelines, split=data.sides())
    refit = None
    if decision.promote and promote:
        registry.promote(version)
        if config.training.refit:
            refit = _refit(config, host, spec, trainer, data, version, current, policy, log)
    elif not decision.promote:
        registry.update(version, status="rejected")
    return Outcome(version, decision.promote, decision.reasons, current, page, reused,
                   pipelines, refit)


def _keep_trained(version: Version, data: Dataset) -> None:
    """The ids of the tasks ``version`` learned from (train and the dev slice that chose its
    best epoch), so that production review never calibrates on them."""
    (version.folder / TRAINED).write_text(
        "".join(f"{e.task.id}\n" for e in data.train + data.dev), encoding="utf-8")


REFIT_STOP_SALT = "preannot-refit-stop"


def refit_split(data: Dataset) -> tuple[list[Example], list[Example]]:
    """The refit's training examples (train + dev, less a slice) and its early-stopping slice:
    about half of dev (whole groups), which it never trains on, so its best epoch is chosen on
    data it did not learn (dev inside its own training set scores 100 and stops on nothing)."""
    stop = [e for e in data.dev
            if fraction(data.groups.get(e.task.id, e.task.id), REFIT_STOP_SALT) < 0.5]
    held = {e.task.id for e in stop}
    return [*data.train, *(e for e in data.dev if e.task.id not in held)], stop


def _refit(config: RunConfig, host: Host, spec: Mapping[str, Any], trainer: Trainer,
           data: Dataset, gated: Version, parent: Version | None, policy: GatePolicy,
           log: Log) -> Version:
    """``[training] refit``: the configuration the gate promoted, trained again on train + most
    of dev (early-stopping on the rest; the evaluation split stays unseen), registered, and made
    current only when the gate (no margin: same configuration, more data) finds it at least as
    good as ``gated`` on the evaluation split."""
    registry = Registry(config.registry_dir)
    work_dir = config.workspace.training / spec["name"] / f"refit-{gated.version}"
    work_dir.mkdir(parents=True, exist_ok=True)
    train, stop = refit_split(data)
    log(f"refit: training {gated.version}'s configuration on {len(train)} tasks (train + dev), "
        f"early-stopping on {len(stop)} dev tasks it does not train on")
    artifact = trainer.train(train, stop, work_dir, parent=parent.artifact if parent else None,
                             log=log)
    version = registry.add(spec["name"], artifact, {
        **{k: v for k, v in gated.card.items() if k in {"trainer", "annotator", "options"}},
        "parent": gated.card.get("parent"), "refit_of": gated.version,
        "training_key": f"refit-{gated.card.get('training_key')}",
        "harvest": {**gated.card.get("harvest", {}), "train": len(train), "dev": len(stop)}})
    _keep_trained(version, data)
    shutil.rmtree(work_dir, ignore_errors=True)
    evaluation = measure(config, host, spec, trainer, version, data.eval)
    decision = decide(evaluation, gated.card.get("evaluation"), replace(policy, margin=0.0))
    registry.update(version, evaluation=evaluation, gate={
        "promote": decision.promote, "reasons": decision.reasons, "baseline": gated.version,
        "baseline_evaluation": gated.card.get("evaluation")})
    if decision.promote:
        registry.promote(version)
        log(f"registered and promoted {version.version} (refit of {gated.version})")
    else:
        registry.update(version, status="rejected")
        log(f"registered {version.version} (refit of {gated.version}), not promoted: "
            f"{'; '.join(decision.reasons)}; {gated.version} stays current")
    return version


def due(config: RunConfig, spec: Mapping[str, Any]) -> tuple[bool, int, int]:
    """Whether ``[training] retrain_after`` newly reviewed tasks have come in since the last
    version of ``spec``'s model was trained: (due, reviewed now, reviewed then)."""
    every = config.training.retrain_after
    if every <= 0:
        return False, 0, 0
    keys = set()  # counted as load_examples counts them: the harvest's and the review's
    for path in corrections_files(config):
        keys |= {task_key(r.get("preannot_id"), r.get("task"))
                 for r in read_corrections(path, []) if r.get("status") == "annotated"}
    reviewed = len(keys)
    versions = Registry(config.registry_dir).versions(spec["name"])
    then = max((v.card.get("harvest", {}).get("reviewed", 0) for v in versions), default=0)
    return reviewed - then >= every, reviewed, then
