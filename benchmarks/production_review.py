"""Production review against a real Label Studio: is what is released automatically as right as
the calibration promises, and how much human review does it save?

Two corpora with gold labels, one Label Studio, each corpus in its own work folder and projects:

- **product e-mails** (``flywheel_corpus.py``): the flywheel's loop first (``flywheel.py``'s
  config and helpers): the pool is pushed, and for R rounds a simulated annotator corrects the
  next K tasks to gold through the API, then pull, train, gate, promote, re-predict. Then
  production is set up with the pipeline of the last round (the model and the fusion's combiner
  that the last ``preannot train`` fitted and gated), the annotator reviews C more pool tasks
  to gold (shown the promoted version's predictions), ``ls pull``, ``review calibrate`` (which
  predicts every reviewed task no part of the pipeline learned from, with the pipeline as
  configured now: the model's ``trained.txt`` and the combiner's fitted tasks are left out, so
  here the calibration reviews). The production stream is N further tasks from the same
  generator, never pushed before.
- **WNUT-17** (``../shared/data/wnut17/``, real user-generated text, emerging entities; CC-BY 4.0,
  see its README): a gazetteer of the training split's entities (``rules``) and a spaCy NER
  trained on the training split (the ``spacy-ner`` trainer, registered and promoted in the
  model registry), fused with ``policy = "learned"`` and no fitted combiner (``min_weight =
  0``: every region kept, weighing its own score: the NER's beam marginal, the rules' default
  confidence; where the fused regions are the model's, the task carries the model's own score).
  The dev split is pushed and reviewed to gold through the API (``[training] eval_fraction =
  1.0``: no model trained on a task of the project), pulled, calibrated; the test split is the
  production stream.

Production, the same on both: ``review run`` on the stream (release at or above the threshold,
audit ``audit_rate`` of those, route the rest to the review project); the simulated reviewer
corrects every routed and audited task of the review project to gold through the API;
``review sync`` releases the routed ones. Then, from ``review/released.jsonl`` against gold:

- ``coverage``: share of the stream released automatically (``auto`` + ``audit``);
- ``realised precision``: share of those whose released regions equal the gold spans exactly
  (span and label, as multisets), with the exact two-sided Clopper-Pearson interval at
  confidence ``1 - delta`` (``scipy.stats.beta``);
- ``reviews / 1,000 tasks``: routed plus audited tasks per 1,000 stream tasks;
- the same for the naive rule "release when every region score >= 0.9" on the same
  predictions (a task without regions passes it: every one of its none does; an unscored region
  fails it), side by side;
- the human releases are checked against gold too (the reviewer is gold: they must be right).

The guarantee, repeated: the calibration is refitted on the same reviewed evaluation records
with 20 other fit/test splits (``fit(..., salt=f"split-{i}")``), each applied to the stream as
``review run`` decides (``production.decide``, no audits), and the realised precision is
measured against gold: how many of 20 fall below the target (Learn-then-Test allows about
``delta`` x 20 for the true precision; a realised figure on a finite stream also wobbles around
it). The same is repeated at the targets of ``--sweep``, which needs no further review (the
stream's gold is known).

How to run (about 15-20 minutes on 2 shared cores with the defaults, a minute of it the Label
Studio start; the API calls of the simulated reviewers take about half):

    export PREANNOT_LABEL_STUDIO_BIN=.cache/labelstudio-venv/bin/label-studio   # if not on PATH
    python benchmarks/production_review.py [--k 100] [--rounds 3] [--calibrate 1400]
        [--stream 1000] [--target 0.99] [--delta 0.05] [--eval-fraction 0.2] [--refit]
        [--sweep 0.9,0.95,0.98] [--splits 20] [--wnut-epochs 10]
        [--wnut-dev N] [--wnut-test N] [--only product|wnut] [--workdir DIR] [--out F]

With ``LABEL_STUDIO_URL`` and ``LABEL_STUDIO_API_KEY`` set, that server is used (new projects per
run); otherwise a local one is started and stopped at the end. spaCy's training output and the
annotators' notices go to ``production_review.log`` in the work folder (a temporary folder,
removed at the end unless ``--workdir`` is given).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flywheel import captured, short, to_log, write_flywheel_config
from flywheel_corpus import Doc, Generator, read_conll, write_rules
from simulation.annotator import SimulatedAnnotator, gold_regions
from simulation.config import learned_pipeline, write_config

from preannot import Task
from preannot.annotator import Example
from preannot.engine.config import load_config
from preannot.engine.host import get_host
from preannot.evaluation.corrections import write_outputs
from preannot.labelstudio.client import Client, Connection
from preannot.harvest.store import HarvestStore, pull
from preannot.labelstudio.push import read_import_file
from preannot.production import review_pass as production
from preannot.labelstudio import sync
from preannot.harvest.pull import pull as harvest_pull
from preannot.production import calibrate as review_ops
from preannot.lsjson import task_key
from preannot.production.calibration import fewest_tasks, fit, label_of
from preannot.production.decisions import AUDIT, AUTO, ROUTE
from preannot.training import flow
from preannot.training.registry import Registry

HERE = Path(__file__).resolve().parent
WNUT_DIRS = (HERE / "data" / "wnut17", HERE.parent.parent / "shared" / "data" / "wnut17")


def review_table(args, target: float, title: str) -> dict[str, Any]:
    """``[review]``: the target, its delta, the audit rate and the review project."""
    return {"target_precision": target, "delta": args.delta, "audit_rate": args.audit_rate,
            "project": f"{title} review"}


# --- Label Studio: what the simulated humans see and do -----------------------------------------

def write_tasks(path: Path, docs: Iterable[Doc]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps({"data": {"text": d.text}, "meta": {"preannot_id": d.id}}) + "\n")


# --- judging against gold --------------------------------------------------------------------

def spans_of(result: Iterable[dict[str, Any]]) -> list[tuple[int, int, str]]:
    out = []
    for item in result:
        if item.get("type") != "labels":
            continue
        value = item.get("value") or {}
        out.append((int(value["start"]), int(value["end"]), label_of(item)))
    return sorted(out)


def is_gold(result: Iterable[dict[str, Any]], doc: Doc) -> bool:
    """Released regions equal the gold spans exactly: span and label, as multisets."""
    return spans_of(result) == sorted(doc.spans)


def interval(right: int, n: int, delta: float) -> tuple[float, float]:
    """The exact two-sided Clopper-Pearson interval (confidence 1 - delta) of right / n."""
    from scipy.stats import beta
    if n == 0:
        return 0.0, 1.0
    low = 0.0 if right == 0 else float(beta.ppf(delta / 2, right, n - right + 1))
    high = 1.0 if right == n else float(beta.ppf(1 - delta / 2, right + 1, n - right))
    return low, high


def naive_release(result: Sequence[dict[str, Any]], cut: float) -> bool:
    """The naive rule: every region's score at least ``cut`` (an unscored region fails it; a
    task without regions passes)."""
    return all(isinstance(r.get("score"), (int, float)) and r["score"] >= cut for r in result)


@dataclass
class Figures:
    released: int
    right: int
    stream: int
    reviews: int

    def coverage(self) -> float:
        return self.released / self.stream if self.stream else 0.0

    def precision(self) -> float | None:
        return self.right / self.released if self.released else None


# --- the production run ----------------------------------------------------------------------

def play_production(name: str, config_path: Path, client: Client, stream: list[Doc], gold:
                    dict[str, Doc], target: float, args, log_path: Path,
                    results: dict[str, Any]) -> None:
    """Calibrate, run the stream, review what was routed or audited, sync; print the table and
    the repeated splits."""
    delta = args.delta
    config = load_config(config_path)
    t0 = time.perf_counter()
    done: list = []
    captured(log_path, lambda: done.append(review_ops.calibrate(config)))
    calibrated = done[0]
    c = calibrated.calibration
    print(f"{name}: review calibrate: {c.model_version}: {c.fit_tasks + c.test_tasks} reviewed "
          f"evaluation tasks predicted by it ({c.fit_tasks} fit, {c.test_tasks} test; "
          f"{calibrated.failed} failed) in {time.perf_counter() - t0:.0f} s")
    print(f"  {calibrated.verdict}")
    least = fewest_tasks(target, delta)
    print(f"  (a guarantee of {target} at confidence {1 - delta:.2f} needs at least {least} "
          f"test tasks above the threshold, all right; the test half holds {c.test_tasks}, "
          f"{c.test_right} of them right: {c.test_right / max(1, c.test_tasks):.1%})")
    version = c.model_version
    # what it learnt from, for the repeated splits (before the stream's reviews join them)
    found: list = []
    captured(log_path, lambda: found.append(review_ops.evaluation_records(
        config, sync.annotators(config, get_host()), version)))
    records = found[0][0]
    again = fit(records, version, target=target, delta=delta)
    if (again.threshold, again.test_tasks) != (c.threshold, c.test_tasks):
        print(f"  WRONG: refitting the same records gives threshold {again.threshold} on "
              f"{again.test_tasks} test tasks, not {c.threshold} on {c.test_tasks}")

    stream_file = config.base_dir / "stream.jsonl"
    write_tasks(stream_file, stream)
    config = load_config(config_path)
    config.inputs = [stream_file]
    t0 = time.perf_counter()
    reports: list = []
    captured(log_path, lambda: reports.append(production.run(config, client)))
    report = reports[0]
    run_s = time.perf_counter() - t0
    d = report.decided
    print(f"{name}: review run: {sum(d.values())} tasks decided: {d[AUTO]} released "
          f"automatically, {d[AUDIT]} released and audited, {d[ROUTE]} sent to review ("
          + ", ".join(f"{reason} {n}" for reason, n in report.reasons.most_common())
          + f") in {run_s:.0f} s")
    for notice in report.notices:
        print(f"  {notice}")
    t0 = time.perf_counter()
    review_project = production.review_project(config, client, [])
    reviewed = len(SimulatedAnnotator(client, gold).correct(review_project,
                                                            threads=args.threads).tasks)
    review_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    synced_list: list = []
    captured(log_path, lambda: synced_list.append(production.sync_reviews(config, client)))
    synced = synced_list[0]
    print(f"{name}: the reviewer corrected {reviewed} review-project tasks to gold in "
          f"{review_s:.0f} s; review sync: {synced.released} reviewed tasks released, "
          f"{synced.audited} audits came back ({time.perf_counter() - t0:.0f} s)")
    status = production.status(config)

    released = [json.loads(line) for line in
                (config.review.output_dir / "released.jsonl").read_text().splitlines() if line]
    keys = [r["task"] for r in released]
    if len(keys) != len(set(keys)):
        print(f"  WRONG: {len(keys) - len(set(keys))} tasks released more than once")
    if set(keys) != {doc.id for doc in stream}:
        print(f"  WRONG: released {len(set(keys))} distinct tasks of a stream of {len(stream)}")
    auto = [r for r in released if r["decision"] in (AUTO, AUDIT)]
    humans = [r for r in released if r["decision"] == "human"]
    calibrated_fig = Figures(len(auto), sum(is_gold(r["regions"], gold[r["task"]]) for r in auto),
                             len(stream), d[ROUTE] + d[AUDIT])
    human_right = sum(is_gold(r["regions"], gold[r["task"]]) for r in humans)

    predicted = {}
    for _, task in read_import_file(config.output):
        if isinstance(task, dict):
            key = task_key((task.get("meta") or {}).get("preannot_id"), data=task.get("data"))
            predicted[key] = task
    results_of = {k: [r for p in t.get("predictions") or [] for r in p.get("result") or []]
                  for k, t in predicted.items()}
    naive = [k for k, res in results_of.items() if naive_release(res, args.naive)]
    naive_fig = Figures(len(naive), sum(is_gold(results_of[k], gold[k]) for k in naive),
                        len(stream), len(stream) - len(naive))
    all_right = sum(is_gold(res, gold[k]) for k, res in results_of.items())

    confidence = 1 - delta
    rows = [("", "calibrated (review run)", f"naive: every score >= {args.naive}")]

    def prec(f: Figures) -> str:
        p = f.precision()
        return "- (none released)" if p is None else f"{p:.4f} ({f.right} of {f.released})"

    def ci(f: Figures) -> str:
        if not f.released:
            return "-"
        lo, hi = interval(f.right, f.released, delta)
        return f"[{lo:.4f}, {hi:.4f}]"

    def holds(f: Figures) -> str:
        p = f.precision()
        if p is None:
            return "yes (nothing released)"
        lo, hi = interval(f.right, f.released, delta)
        verdict = "yes" if p >= target else "NO"
        if p < target and hi >= target:
            verdict += " (but the interval reaches it)"
        if p >= target and lo < target:
            verdict += " (interval reaches below)"
        return verdict

    per_1000 = (f"{calibrated_fig.reviews / len(stream) * 1000:.0f} ({d[ROUTE]} routed + "
                f"{d[AUDIT]} audits)")
    rows += [
        ("target precision", f"{target} (confidence {confidence:.2f})", "-"),
        ("threshold", "-" if c.threshold is None else f"{c.threshold:.4f} (probability)",
         f"every region score >= {args.naive}"),
        ("released automatically",
         f"{calibrated_fig.released} ({d[AUTO]} auto + {d[AUDIT]} audit)",
         f"{naive_fig.released}"),
        ("coverage", f"{calibrated_fig.coverage():.1%}", f"{naive_fig.coverage():.1%}"),
        ("realised precision (gold)", prec(calibrated_fig), prec(naive_fig)),
        (f"{confidence:.0%} interval (exact CP)", ci(calibrated_fig), ci(naive_fig)),
        ("precision >= target?", holds(calibrated_fig), holds(naive_fig)),
        ("reviews per 1,000 tasks", per_1000,
         f"{naive_fig.reviews / len(stream) * 1000:.0f}"),
    ]
    print()
    print(f"{name}: production stream of {len(stream)} tasks ({all_right} = "
          f"{all_right / len(stream):.1%} predicted exactly right: the coverage a perfect "
          f"calibrator could release at precision 1)")
    width = max(len(r[0]) for r in rows) + 2
    col = max(len(r[1]) for r in rows) + 3
    for label, mine, theirs in rows:
        print(f"  {label:<{width}}{mine:<{col}}{theirs}")
    print(f"  human releases: {len(humans)}, {human_right} equal to gold; review status: "
          f"{status['tasks']}"
          + (f", audits {status['realised_precision']}" if status["realised_precision"] else "")
          + (f"; {status['suspended']}" if status["suspended"] else ""))

    # the guarantee over 20 other calibration/test splits, and at other targets
    print()
    print(f"{name}: the calibration refitted on {args.splits} other fit/test splits of the same "
          f"{len(records)} reviewed evaluation records (salt split-0..{args.splits - 1}), each "
          "applied to the stream against gold")
    print(f"  {'target':>6} | {'thresholds':>15} | {'coverage: median [min, max]':>28} | "
          f"{'realised precision: median [min]':>33} | below target")
    sweep = [target] + [t for t in args.sweep if t != target]
    splits: dict[str, Any] = {}
    for goal in sweep:
        found = []
        for i in range(args.splits):
            cal = fit(records, version, target=goal, delta=delta, salt=f"split-{i}")
            released_keys = [k for k, t in predicted.items() if production.decide(
                k, t, None, cal, version, None, 0.0).decision == AUTO]
            right = sum(is_gold(results_of[k], gold[k]) for k in released_keys)
            found.append({"salt": f"split-{i}", "threshold": cal.threshold,
                          "released": len(released_keys), "right": right,
                          "precision": right / len(released_keys) if released_keys else None,
                          "coverage": len(released_keys) / len(stream)})
        splits[str(goal)] = found
        with_threshold = [f for f in found if f["threshold"] is not None]
        precisions = [f["precision"] for f in found if f["precision"] is not None]
        coverages = [f["coverage"] for f in found]
        below = sum(p < goal for p in precisions)
        thresholds = f"{len(with_threshold)} of {len(found)}"
        mid = (f"{statistics.median(precisions):.4f} [{min(precisions):.4f}]" if precisions
               else "- (nothing released)")
        print(f"  {goal:>6} | {thresholds + ' found':>15} | "
              f"{statistics.median(coverages):>8.1%} [{min(coverages):.1%}, "
              f"{max(coverages):.1%}]{'':>4} | {mid:>33} | {below} of {len(found)} "
              f"(delta allows about {delta * len(found):.0f})")
    results[name] = {
        "calibration": {"version": version, "threshold": c.threshold, "fit": c.fit_tasks,
                        "test": c.test_tasks, "verdict": calibrated.verdict,
                        "failed": calibrated.failed},
        "decided": dict(d), "reasons": dict(report.reasons), "stream": len(stream),
        "calibrated": vars(calibrated_fig), "naive": vars(naive_fig),
        "human": {"released": len(humans), "right": human_right}, "all_right": all_right,
        "status": status, "splits": splits, "review_s": round(review_s, 1),
        "run_s": round(run_s, 1)}


# --- the product e-mails: the flywheel, then production ---------------------------------------

def product(args, client: Client, connection: dict[str, str], work: Path, log_path: Path,
            results: dict[str, Any]) -> None:
    started = time.perf_counter()
    pool_n = args.k * args.rounds + args.calibrate
    pool = Generator(args.seed).docs("pool", pool_n)
    stream = Generator(args.seed + 20_000).docs("prod", args.stream)
    gold = {d.id: d for d in pool + stream}
    write_rules(work / "rules")
    write_tasks(work / "pool.jsonl", pool)
    title = f"prodreview mails {time.strftime('%Y%m%d-%H%M%S')}"
    config_path = write_flywheel_config(work, epochs=args.epochs, seed=args.seed,
                                        eval_fraction=args.eval_fraction, refit=args.refit,
                                        project=title, connection=connection,
                                        review=review_table(args, args.target, title))
    config = load_config(config_path)
    host = get_host()
    spec = flow.trainer_specs(config)[0]
    print(f"product e-mails: pool {len(pool)} tasks ({args.rounds} rounds x {args.k} + "
          f"{args.calibrate} reviewed for the calibration), production stream {len(stream)} "
          f"tasks (same generator, never pushed); [training] eval_fraction "
          f"{args.eval_fraction}")

    t0 = time.perf_counter()
    pushed: list = []
    captured(log_path, lambda: pushed.append(sync.push(config, client)))
    project_id = pushed[0].project_id
    print(f"  round 0: pushed {pushed[0].created} tasks with {pushed[0].model_version} "
          f"({time.perf_counter() - t0:.0f} s)")
    store = HarvestStore(config.workspace.ledger, f"{client.url}#{project_id}")
    human = SimulatedAnnotator(client, gold)
    reviewed = 0
    try:
        for r in range(1, args.rounds + 1):
            t0 = time.perf_counter()
            done = human.correct(project_id, limit=args.k, threads=args.threads)
            n, counts, versions = len(done.tasks), done.edits, done.versions
            reviewed += n
            pull(client, project_id, store)
            write_outputs(store.tasks(), config.harvest.output_dir,
                          thresholds=config.harvest.thresholds, title=f"preannot harvest: {title}")
            messages: list[str] = []
            with to_log(log_path):
                outcome = flow.train(config, host, spec, log=messages.append)
            note = "not promoted"
            if outcome.promoted and not outcome.reused:
                with to_log(log_path):
                    repushed = sync.repredict(config, log=messages.append)
                note = f"{repushed.predicted} unlabeled tasks re-predicted" if repushed else \
                    "; ".join(messages[-1:])
            total = sum(counts[k] for k in ("add", "delete", "change")) / max(1, n)
            shown = ", ".join(f"{short(v)} x{c}" for v, c in versions.most_common())
            print(f"  round {r}: {n} tasks corrected ({reviewed} in all), shown {shown}, "
                  f"{total:.2f} edits/task; {outcome.version.version} "
                  f"{'promoted' if outcome.promoted else 'NOT promoted'} "
                  f"({'; '.join(outcome.reasons)}); {note} ({time.perf_counter() - t0:.0f} s)")
        t0 = time.perf_counter()
        done = human.correct(project_id, limit=args.calibrate, threads=args.threads)
        n, counts, versions = len(done.tasks), done.edits, done.versions
        total = sum(counts[k] for k in ("add", "delete", "change")) / max(1, n)
        pulled = pull(client, project_id, store)
        write_outputs(store.tasks(), config.harvest.output_dir,
                      thresholds=config.harvest.thresholds, title=f"preannot harvest: {title}")
        print(f"  calibration reviews: {n} more pool tasks corrected to gold ({total:.2f} "
              f"edits/task, shown {', '.join(f'{short(v)} x{c}' for v, c in versions.items())});"
              f" pulled {pulled.fetched} tasks ({time.perf_counter() - t0:.0f} s)")
    finally:
        store.close()
    play_production("product e-mails", config_path, client, stream, gold, args.target, args,
                    log_path, results)
    results["product e-mails"]["seconds"] = round(time.perf_counter() - started, 1)


# --- WNUT-17 ---------------------------------------------------------------------------------


def write_gazetteer(folder: Path, docs: Iterable[Doc]) -> int:
    """Every entity of the training split as a term, with its most frequent label; matched
    case-sensitively, with the rules' default confidence."""
    labels: dict[str, Counter[str]] = {}
    for doc in docs:
        for start, end, label in doc.spans:
            labels.setdefault(doc.text[start:end], Counter())[label] += 1
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["term,label"]
    for term, counts in sorted(labels.items()):
        if "," in term or '"' in term:
            term = '"' + term.replace('"', '""') + '"'
        rows.append(f"{term},{counts.most_common(1)[0][0]}")
    (folder / "entities.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (folder / "rules.toml").write_text('[files."entities.csv"]\ncase = "sensitive"\n',
                                       encoding="utf-8")
    return len(labels)


def wnut(args, client: Client, connection: dict[str, str], work: Path, log_path: Path,
         results: dict[str, Any]) -> None:
    started = time.perf_counter()
    folder = next((d for d in ([args.wnut] if args.wnut else WNUT_DIRS)
                   if (d / "train.conll").exists()), None)
    if folder is None:
        print(f"WNUT-17: not found in {', '.join(map(str, WNUT_DIRS))} (--wnut DIR): skipped")
        return
    train = read_conll(folder / "train.conll", "train")
    dev = read_conll(folder / "dev.conll", "dev")
    test = read_conll(folder / "test.conll", "test")
    if args.wnut_dev:
        dev = dev[:args.wnut_dev]
    if args.wnut_test:
        test = test[:args.wnut_test]
    gold = {d.id: d for d in dev + test}
    terms = write_gazetteer(work / "rules", train)
    write_tasks(work / "dev.jsonl", dev)
    title = f"prodreview wnut17 {time.strftime('%Y%m%d-%H%M%S')}"
    target = args.wnut_target or args.target
    config_path = write_config(
        work, inputs=["dev.jsonl"], annotators=learned_pipeline("wnut-ner", min_weight=0.0),
        trainers=[{"name": "wnut-ner", "type": "spacy-ner", "annotator": "model",
                   "epochs": args.wnut_epochs, "seed": args.seed}],
        training={"eval_fraction": 1.0}, labelstudio={"project": title, **connection},
        harvest={"output_dir": "harvest"}, review=review_table(args, target, title))
    config = load_config(config_path)
    host = get_host()
    with_entities = Counter(bool(d.spans) for d in dev + test)
    print(f"WNUT-17 ({folder}): train {len(train)} sentences "
          f"({sum(len(d.spans) for d in train)} entities, {terms} distinct surface forms in the "
          f"gazetteer), dev {len(dev)} ({sum(len(d.spans) for d in dev)} entities; reviewed for "
          f"the calibration), test {len(test)} ({sum(len(d.spans) for d in test)} entities; the "
          f"production stream); {with_entities[False]} of {len(dev) + len(test)} dev and test "
          "sentences hold no entity")

    t0 = time.perf_counter()
    spec = flow.trainer_specs(config)[0]
    trainer = flow.make_trainer(spec, host, config)
    examples = [Example(Task(d.id, {"text": d.text}, d.id), gold_regions(d)) for d in train]
    messages: list[str] = []
    with to_log(log_path):
        artifact = trainer.train(examples, [], config.workspace.training / "wnut-ner",
                                 log=messages.append)
    registry = Registry(config.registry_dir)
    version = registry.add("wnut-ner", artifact, {"trainer": spec["type"], "annotator": "model",
                                                  "trained_on": "WNUT-17 train"})
    registry.promote(version)
    print(f"  trained {version.version} on the training split in "
          f"{time.perf_counter() - t0:.0f} s ({args.wnut_epochs} epochs; "
          f"{'; '.join(m for m in messages if m.startswith('wnut-ner:'))})")

    t0 = time.perf_counter()
    pushed: list = []
    captured(log_path, lambda: pushed.append(sync.push(config, client)))
    project_id = pushed[0].project_id
    print(f"  dev pushed: {pushed[0].created} tasks with {pushed[0].model_version} "
          f"({time.perf_counter() - t0:.0f} s)")
    t0 = time.perf_counter()
    done = SimulatedAnnotator(client, gold).correct(project_id, threads=args.threads)
    n, counts = len(done.tasks), done.edits
    harvest: list = []
    captured(log_path, lambda: harvest.append(harvest_pull(config, client)))
    total = sum(counts[k] for k in ("add", "delete", "change")) / max(1, n)
    print(f"  dev reviewed: {n} tasks corrected to gold ({total:.2f} edits/task: "
          f"{counts['add']} added, {counts['delete']} deleted, {counts['change']} changed, "
          f"{counts['kept']} kept), pulled {harvest[0].fetched.fetched} "
          f"({time.perf_counter() - t0:.0f} s)")
    play_production("WNUT-17", config_path, client, test, gold, target, args, log_path,
                    results)
    results["WNUT-17"]["seconds"] = round(time.perf_counter() - started, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=100, help="tasks corrected per flywheel round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calibrate", type=int, default=1400,
                        help="more pool tasks reviewed after the rounds (with the promoted "
                             "version's predictions): the calibration's evaluation tasks are "
                             "eval_fraction of these and of the rounds'")
    parser.add_argument("--stream", type=int, default=1000, help="product production tasks")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=30, help="spaCy epochs (product rounds)")
    parser.add_argument("--eval-fraction", type=float, default=0.2,
                        help="[training] eval_fraction of the product corpus")
    parser.add_argument("--refit", action="store_true",
                        help="[training] refit = true for the product corpus")
    parser.add_argument("--target", type=float, default=0.99, help="[review] target_precision")
    parser.add_argument("--delta", type=float, default=0.05, help="[review] delta")
    parser.add_argument("--audit-rate", type=float, default=0.02, help="[review] audit_rate")
    parser.add_argument("--naive", type=float, default=0.9,
                        help="the naive rule's cut: release when every region score >= it")
    parser.add_argument("--splits", type=int, default=20, help="repeated fit/test splits")
    parser.add_argument("--sweep", type=lambda s: [float(x) for x in s.split(",") if x],
                        default=[0.9, 0.95, 0.98], help="more targets for the repeated splits")
    parser.add_argument("--wnut", type=Path, help="the WNUT-17 folder (default: "
                        "benchmarks/data/wnut17, else ../shared/data/wnut17)")
    parser.add_argument("--wnut-epochs", type=int, default=10)
    parser.add_argument("--wnut-dev", type=int, help="only the first N dev sentences")
    parser.add_argument("--wnut-test", type=int, help="only the first N test sentences")
    parser.add_argument("--wnut-target", type=float, help="WNUT-17's target (default --target)")
    parser.add_argument("--only", choices=("product", "wnut"))
    parser.add_argument("--threads", type=int, default=4,
                        help="concurrent annotation requests of the simulated humans")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--workdir", type=Path, help="work folder to use and keep "
                        "(default: a temporary one, removed at the end)")
    args = parser.parse_args()
    started = time.perf_counter()
    work = args.workdir.resolve() if args.workdir else Path(tempfile.mkdtemp(prefix="review-"))
    work.mkdir(parents=True, exist_ok=True)
    log_path = work / "production_review.log"
    results: dict[str, Any] = {"args": {k: str(v) if isinstance(v, Path) else v
                                        for k, v in vars(args).items()}}
    server = None
    try:
        if os.environ.get("LABEL_STUDIO_URL"):
            client = Client(Connection.resolve())
            connection = {}
        else:
            from preannot.labelstudio.server import local_server

            t0 = time.perf_counter()
            server = local_server(work / "labelstudio").start()
            client = Client(Connection(server.url, server.api_key))
            connection = {"url": server.url, "api_key_file": "../ls-token"}
            token = work / "ls-token"
            token.touch(mode=0o600)
            token.write_text(server.api_key)
            print(f"local Label Studio up at {server.url} in {time.perf_counter() - t0:.0f} s")
        for corpus, play in (("product", product), ("wnut", wnut)):
            if args.only in (None, corpus):
                folder = work / corpus
                folder.mkdir(exist_ok=True)
                play(args, client, connection, folder, log_path, results)
                print()
    finally:
        if server is not None:
            server.stop()
    results["elapsed_s"] = round(time.perf_counter() - started, 1)
    summary = []
    for name, res in results.items():
        if not isinstance(res, dict) or "calibrated" not in res:
            continue
        f = res["calibrated"]
        p = f["right"] / f["released"] if f["released"] else None
        summary.append(f"{name}: coverage {f['released'] / f['stream']:.1%} at realised "
                       f"precision {'-' if p is None else f'{p:.4f}'}")
    print(f"total {results['elapsed_s']:.0f} s; " + "; ".join(summary)
          + f"; log: {log_path}" + ("" if args.workdir else " (removed)"))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
        print(f"results written to {args.out}")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
