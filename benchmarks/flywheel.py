"""The data flywheel against a real Label Studio: does correcting, retraining and fusing pay off?

What it measures. A seeded corpus of customer order e-mails (``flywheel_corpus.py``) where a
product dictionary is not enough: 30 of the 58 products and 5 of the 18 brands are not in it,
mentions come with typos, hyphens, missing spaces and plurals, and some words are both product
names and common words ("a dead pixel", "the surface is scratched", "apple juice"). A work folder
gets a
``preannot.toml`` with three annotators: ``rules`` (the partial dictionary), ``model``
(``spacy-ner`` running ``registry:ner``, left out until a version is promoted) and ``fused``
(``fusion`` over both, ``policy = "learned"`` from the harvest's ``metrics.json``), a
``[[trainers]]`` entry training ``ner`` and a ``[training]`` gate. Then:

- round 0: the pool is pushed to a new Label Studio project, pre-annotated by what is configured
  (the fused pipeline, which is the rules alone while there is no model);
- each round r = 1..R: the next K unlabeled tasks, by Label Studio task id (the pool is shuffled,
  so that is a random sample), are corrected to the gold labels by a simulated annotator through
  the API (``annotations.create``; regions the prediction had exactly right keep their id, as in
  the editor); then ``pull`` + ``write_outputs`` into ``harvest/``, ``flow.train`` (train,
  register, evaluate, gate, promote), and when promoted ``repredict`` for the unlabeled tasks.

What the figures mean.

- ``held-out F1 rules / model / fused``: micro F1 (exact span and label, ``gate.evaluate``) on
  a test set that is never pushed; each source alone, and the fused pipeline as configured
  after the round (current model version, learned weights from the latest harvest). ``-``: no
  model version yet. ``novel``: the same on the test tasks (about half) that hold a product or a
  phrasing that no pushed task has (11 products, e.g. the whole brand Anker, only exist there),
  i.e. what a model can only get by generalising. ``fused P / R``: its precision and recall.
- ``edits/task``: what the annotator had to do on the K tasks of the round, given the prediction
  Label Studio showed them: ``add`` (a gold region nothing predicted overlaps), ``delete`` (a
  predicted region that overlaps no gold region), ``change`` (a predicted region paired with an
  overlapping gold one whose span or label differs: one edit). Regions are paired one to one as
  the harvest does (``preannot.evaluation.match`` with span_iou 1.0); the harvest's own
  classification of the same tasks is checked against this count.
- ``trained`` / ``promoted``: the version ``flow.train`` registered and the gate's decision
  (its reasons follow, with the sizes of the train / dev / gate-evaluation splits).
- The summary compares rules-only (round 0) with after round 1 and after the last round, as
  ratios to the rules-only baseline measured in the same run (fused F1 / rules-only F1; edits
  per task / those of round 1, which were made on rules-only predictions).

Between rounds the dictionary grows from the corrections, as ``ls suggest-rules`` proposes and a
user applies (every span humans added, training side of the split only; ``--no-grow`` turns it
off), and with ``--rare`` (default) it also knows the products only the test set mentions (a
catalogue's rare terms no training example shows a model). Each round prints the fused
pipeline's gate (each source and the fusion on the evaluation split, and which one goes to Label
Studio) and fused - max(rules, model) on the held-out test, against the target +0.02.

``--corpus wnut17`` runs the same loop on the real WNUT-17 set (``--wnut-dir``, default
``../shared/data/wnut17``): the pool from its train split, the test from its test split, the
dictionary starting with every entity of the train sentences outside the pool.

How to run (about 2-3 minutes on 2 cores with the defaults, half a minute of it the Label Studio
start; WNUT-17 with ``--pool 800 --k 250 --rounds 3 --test 500 --epochs 12`` about 8):

    export PREANNOT_LABEL_STUDIO_BIN=.cache/labelstudio-venv/bin/label-studio   # if not on PATH
    python benchmarks/flywheel.py [--pool 800] [--k 100] [--rounds 3] [--test 300] [--seed 0]
                                  [--epochs 30] [--out results.json] [--workdir DIR]
                                  [--corpus products|wnut17] [--no-grow] [--no-rare] [--refit]
                                  [--no-silence]

With ``LABEL_STUDIO_URL`` and ``LABEL_STUDIO_API_KEY`` set, that server is used (a new project per
run); otherwise a local one is started in the work folder and stopped at the end. spaCy's
training output goes to ``flywheel.log`` in the work folder (a temporary folder, removed at the
end unless ``--workdir`` is given).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flywheel_corpus import CATALOGUE, Generator, read_conll, write_gazetteer, write_rules
from simulation.annotator import SimulatedAnnotator, gold_regions
from simulation.config import learned_pipeline, write_config

from preannot import Task
from preannot.annotator import Example
from preannot.engine.config import load_config
from preannot.evaluation.corrections import CORRECTIONS, read_corrections, write_outputs
from preannot.evaluation.split import training_side
from preannot.evaluation.suggest import suggest
from preannot.labelstudio.client import Client, Connection
from preannot.harvest.store import HarvestStore, pull
from preannot.labelstudio import sync
from preannot.engine.host import get_host
from preannot.training import flow
from preannot.training.gate import evaluate


def write_flywheel_config(folder: Path, *, epochs: int, seed: int, eval_fraction: float,
                          refit: bool, project: str, connection: dict[str, str],
                          fusion: dict[str, Any] | None = None,
                          **tables: dict[str, Any]) -> Path:
    """The flywheel's project: the rules, a spaCy model and their learned fusion (``fusion``:
    more of its options), one trainer, the harvest in ``harvest/``; ``tables``: more tables."""
    return write_config(
        folder, inputs=["pool.jsonl"],
        annotators=learned_pipeline(min_weight=0.5, **(fusion or {})),
        trainers=[{"name": "ner", "type": "spacy-ner", "annotator": "model", "epochs": epochs,
                   "seed": seed}],
        training={"eval_fraction": eval_fraction, "refit": refit},
        labelstudio={"project": project, **connection}, harvest={"output_dir": "harvest"},
        **tables)


SOURCES = ("rules", "model", "fused")


@contextmanager
def to_log(path: Path):
    """Send this process's stdout and stderr (spaCy's training table, warnings) to ``path``."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with path.open("ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


def captured(log_path: Path, fn) -> str:
    """Run ``fn`` with stdout and stderr going to the log; return what it printed."""
    with tempfile.NamedTemporaryFile(suffix=".txt") as tmp:
        with to_log(Path(tmp.name)):
            fn()
        text = Path(tmp.name).read_text(encoding="utf-8", errors="replace")
    with log_path.open("a", encoding="utf-8") as log:
        log.write(text)
    return " ".join(text.split())


def held_out(config_path: Path, host, test: list[Example], novel: list[Example],
             log_path: Path) -> dict[str, dict[str, Any] | None]:
    """Each source alone and the fused pipeline, as configured now, on the held-out set and on
    its novel part (the notices of building the annotators go to the log)."""
    config = load_config(config_path)
    built: list = []
    captured(log_path, lambda: built.extend(sync.annotators(config, host)))
    annotators = {a.name: a for a in built}
    thresholds = config.harvest.thresholds
    out: dict[str, dict[str, Any] | None] = {}
    for name in SOURCES:
        if name not in annotators:
            out[name] = None
            continue
        chain = ([annotators[n] for n in annotators] if name == "fused" else [annotators[name]])
        result = evaluate(chain, name, test, learns=("labels",), thresholds=thresholds)
        if result["failed"]:
            print(f"  warning: {len(result['failed'])} held-out tasks failed for {name}: "
                  f"{result['failed'][:3]}")
        on_novel = evaluate(chain, name, novel, learns=("labels",), thresholds=thresholds)
        out[name] = {"overall": result["overall"], "labels": result["labels"],
                     "novel": on_novel["overall"]}
    return out


def short(version: str) -> str:
    """The model part of a combined version (``rules-..+ner-v2+fused-..``): ``ner-v2``."""
    parts = [p for p in version.split("+") if not p.startswith(("rules-", "fused-"))]
    return "+".join(parts) or "rules only"


def f1(scores: dict[str, Any] | None, part: str = "overall") -> str:
    return "    -" if scores is None else f"{scores[part]['f1']:.3f}"


def per_label(scores: dict[str, Any] | None) -> str:
    if scores is None:
        return "-"
    return ", ".join(f"{label} {s['f1']:.2f}" for label, s in scores["labels"].items())


def grow_rules(config, work: Path) -> list[tuple[str, str, int, str]]:
    """The dictionary learns from the corrections, as `ls suggest-rules` proposes and a user
    applies: every span humans added (once is enough) on the training side of the split."""
    errors: list[str] = []
    records = training_side(read_corrections(config.harvest.output_dir / CORRECTIONS, errors),
                            config.training.eval_fraction, config.training.group_by)
    result = suggest(records, [], work / "rules", root=work, min_count=1)
    if result.patch:
        subprocess.run(["patch", "-p1", "-s", "-d", str(work)], input=result.patch.encode(),
                       check=True)
    return result.terms


def corpus_products(args, work: Path):
    pool_gen, test_gen = Generator(args.seed), Generator(args.seed + 10_000, held_out=True)
    pool = pool_gen.docs("pool", args.pool)
    test_docs = test_gen.docs("test", args.test)
    dictionary = write_rules(work / "rules", rare=args.rare)
    gold_count = Counter(label for d in pool for _, _, label in d.spans)
    print(f"corpus: pool {len(pool)} tasks ({gold_count['PRODUCT']} PRODUCT, "
          f"{gold_count['BRAND']} BRAND gold spans), held-out test {len(test_docs)} tasks "
          f"({sum(d.novel for d in test_docs)} novel: with a product or phrasing no pushed task "
          "has); product mentions by variant: "
          + ", ".join(f"{k} {v}" for k, v in sorted(pool_gen.variants.items(),
                                                     key=lambda kv: -kv[1])))
    print(f"dictionary: {dictionary['brands']} of {len(CATALOGUE)} brands, "
          f"{dictionary['products']} of {sum(map(len, CATALOGUE.values()))} "
          f"products{' (the rare ones only the test set has included)' if args.rare else ''}, "
          f"{dictionary['bare lines']} bare product lines (Pixel, Surface, Echo...), "
          "case-insensitive")
    return pool, test_docs, [d.novel for d in test_docs], dictionary, pool_gen.variants


def corpus_wnut17(args, work: Path):
    """WNUT-17: the pool from its train split, the test from its test split; the dictionary
    starts with every entity of train sentences that are not in the pool (rare terms the model
    never sees) and grows from the corrections."""
    import random

    folder = Path(args.wnut_dir)
    train = read_conll(folder / "train.conll", "wnut-train")
    random.Random(args.seed).shuffle(train)
    pool, outside = train[:args.pool], train[args.pool:]
    test_docs = read_conll(folder / "test.conll", "wnut-test")
    test_docs = random.Random(args.seed + 1).sample(test_docs, min(args.test, len(test_docs)))
    terms = write_gazetteer(work / "rules", outside)
    seen = {d.text[s:e].casefold() for d in pool for s, e, _ in d.spans}
    novel = [any(d.text[s:e].casefold() not in seen for s, e, _ in d.spans) for d in test_docs]
    counts = Counter(label for d in pool for _, _, label in d.spans)
    print(f"corpus: WNUT-17 ({folder}), pool {len(pool)} train sentences ("
          + ", ".join(f"{k} {v}" for k, v in counts.most_common())
          + f"), held-out test {len(test_docs)} test sentences ({sum(novel)} with an entity no "
          "pool sentence has)")
    print(f"dictionary: {terms} entities of the {len(outside)} train sentences outside the pool, "
          "case-insensitive")
    return pool, test_docs, novel, {"terms": terms}, {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=int, default=800, help="tasks pushed to Label Studio")
    parser.add_argument("--k", type=int, default=100, help="tasks corrected per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--test", type=int, default=300, help="held-out tasks (never pushed)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=30, help="spaCy training epochs")
    parser.add_argument("--eval-fraction", type=float, default=0.25,
                        help="[training] eval_fraction: reviewed tasks kept for the gate")
    parser.add_argument("--corpus", choices=("products", "wnut17"), default="products",
                        help="the seeded order e-mails, or the real WNUT-17 set (--wnut-dir)")
    parser.add_argument("--wnut-dir", default=os.environ.get("WNUT17_DIR",
                                                             "../shared/data/wnut17"),
                        help="folder of WNUT-17's train.conll and test.conll")
    parser.add_argument("--no-grow", action="store_true",
                        help="do not grow the dictionary from the corrections between rounds")
    parser.add_argument("--no-rare", dest="rare", action="store_false",
                        help="products: the dictionary does not know the test-only products")
    parser.add_argument("--refit", action="store_true", help="[training] refit = true")
    parser.add_argument("--no-silence", dest="silence", action="store_false",
                        help="the fusion's silence = false: a source's silence is no veto")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--workdir", type=Path, help="work folder to use and keep "
                        "(default: a temporary one, removed at the end)")
    args = parser.parse_args()
    if args.k * args.rounds > args.pool:
        parser.error(f"--k {args.k} x --rounds {args.rounds} is more than --pool {args.pool}")
    started = time.perf_counter()
    work = args.workdir.resolve() if args.workdir else Path(tempfile.mkdtemp(prefix="flywheel-"))
    work.mkdir(parents=True, exist_ok=True)
    log_path = work / "flywheel.log"

    if args.corpus == "wnut17":
        pool, test_docs, novelty, dictionary, variants = corpus_wnut17(args, work)
    else:
        pool, test_docs, novelty, dictionary, variants = corpus_products(args, work)
    by_key = {d.id: d for d in pool}
    test = [Example(Task(d.id, {"text": d.text}, d.id), gold_regions(d)) for d in test_docs]
    novel = [e for e, n in zip(test, novelty) if n]
    with (work / "pool.jsonl").open("w", encoding="utf-8") as f:
        for d in pool:
            f.write(json.dumps({"data": {"text": d.text}, "meta": {"preannot_id": d.id}}) + "\n")

    server = None
    if os.environ.get("LABEL_STUDIO_URL"):
        client = Client(Connection.resolve())
        connection = {}
    else:
        from preannot.labelstudio.server import local_server

        t0 = time.perf_counter()
        server = local_server(work / "labelstudio").start()
        client = Client(Connection(server.url, server.api_key))
        token = work / "ls-token"
        token.touch(mode=0o600)
        token.write_text(server.api_key)
        connection = {"url": server.url, "api_key_file": "ls-token"}
        print(f"local Label Studio up at {server.url} in {time.perf_counter() - t0:.0f} s")
    human = SimulatedAnnotator(client, by_key)
    results: dict[str, Any] = {"args": {k: str(v) if isinstance(v, Path) else v
                                        for k, v in vars(args).items()},
                               "dictionary": dictionary, "variants": variants,
                               "rounds": []}
    try:
        title = f"preannot flywheel {time.strftime('%Y%m%d-%H%M%S')}"
        config_path = write_flywheel_config(work, epochs=args.epochs, seed=args.seed,
                                            eval_fraction=args.eval_fraction, refit=args.refit,
                                            project=title, connection=connection,
                                            fusion={"silence": args.silence})
        config = load_config(config_path)
        host = get_host()
        spec = flow.trainer_specs(config)[0]

        t0 = time.perf_counter()
        pushed: list = []
        captured(log_path, lambda: pushed.append(sync.push(config, client)))
        summary = pushed[0]
        project_id = summary.project_id
        print(f"round 0: pushed {summary.created} tasks to project {project_id} with "
              f"{summary.model_version} in {time.perf_counter() - t0:.1f} s"
              + (f"; {len(summary.failures)} NOT pushed: {summary.failures[:3]}"
                 if summary.failures else ""))
        scores = held_out(config_path, host, test, novel, log_path)
        print(f"round 0: held-out F1 rules {f1(scores['rules'])}, model {f1(scores['model'])}, "
              f"fused {f1(scores['fused'])} (per label, rules: {per_label(scores['rules'])})")
        results["rounds"].append({"round": 0, "reviewed": 0, "heldout": scores})
        store = HarvestStore(config.workspace.ledger, f"{client.url}#{project_id}")
        reviewed = 0
        print()
        print("round | K tasks corrected: shown        edits/task (add+delete+change) | trained "
              "promoted | held-out F1: rules model fused (novel: model fused) |    s")
        for r in range(1, args.rounds + 1):
            t0 = time.perf_counter()
            done = human.correct(project_id, limit=args.k, threads=1)
            counts, versions, ids = done.edits, done.versions, done.tasks
            reviewed += len(ids)
            pulled = pull(client, project_id, store)
            write_outputs(store.tasks(), config.harvest.output_dir,
                          thresholds=config.harvest.thresholds,
                          title=f"preannot harvest: {title}")
            # the harvest's own classification of the same tasks, as a check on the count
            harvested: Counter[str] = Counter()
            with (config.base_dir / "harvest" / CORRECTIONS).open(encoding="utf-8") as f:
                for line in f:
                    rec = json.loads(line)
                    if rec["task"] in ids:
                        kinds = Counter(p["classification"] for p in rec["predicted"])
                        harvested += Counter(add=sum(h["classification"] == "added"
                                                     for h in rec["human"]),
                                             delete=kinds["deleted"], change=kinds["modified"])
            mine = Counter({k: counts[k] for k in ("add", "delete", "change")})
            if +harvested != +mine:
                print(f"  warning: the harvest classifies these tasks as {dict(harvested)}, "
                      f"the benchmark counted {dict(mine)}")
            grown = [] if args.no_grow else grow_rules(config, work)
            messages: list[str] = []
            t_train = time.perf_counter()
            with to_log(log_path):
                outcome = flow.train(config, host, spec, log=messages.append)
            train_s = time.perf_counter() - t_train
            t_push = time.perf_counter()
            pushed = "not promoted: predictions unchanged"
            if outcome.promoted and not outcome.reused:
                repushed = sync.repredict(config, log=messages.append)
                pushed = (f"{repushed.predicted} unlabeled tasks re-predicted" if repushed
                          else "; ".join(messages[-1:]))
            push_s = time.perf_counter() - t_push
            scores = held_out(config_path, host, test, novel, log_path)
            n = max(1, len(ids))
            per_task = {k: counts[k] / n for k in ("add", "delete", "change")}
            total = sum(per_task.values())
            shown_v = ", ".join(f"{short(v)} x{c}" for v, c in versions.most_common())
            elapsed = time.perf_counter() - t0
            print(f"{r:>5} | {len(ids):>3} ({reviewed:>4} in all): {shown_v:<16} "
                  f"{total:4.2f} ({per_task['add']:.2f}+{per_task['delete']:.2f}+"
                  f"{per_task['change']:.2f}) | {outcome.version.version:>7} "
                  f"{'yes' if outcome.promoted else 'no':>8} |              {f1(scores['rules'])} "
                  f"{f1(scores['model'])} {f1(scores['fused'])}         "
                  f"{f1(scores['model'], 'novel')} {f1(scores['fused'], 'novel')}  | "
                  f"{elapsed:4.0f}")
            for m in messages:
                if m.startswith(("ner:", "registered", "skipped")):
                    print(f"         {m}")
            print(f"         gate: {'; '.join(outcome.reasons)}")
            if not args.no_grow:
                print(f"         dictionary grown by {len(grown)} terms from the training "
                      "side's corrections")
            for p in outcome.pipelines:
                print(f"         pipeline: {'; '.join(p.reasons)}")
            best = max(s_["overall"]["f1"] for s_ in (scores["rules"], scores["model"]) if s_)
            fused_f1 = scores["fused"]["overall"]["f1"]
            print(f"         held-out: fused {fused_f1:.3f} - max(rules, model) {best:.3f} = "
                  f"{fused_f1 - best:+.3f} (target +0.020: "
                  f"{'met' if fused_f1 >= best + 0.02 - 1e-9 else 'MISSED'})")
            print(f"         {pushed}; train {train_s:.0f} s, re-predict {push_s:.0f} s; "
                  f"held-out F1 per label: model {per_label(scores['model'])}; fused "
                  f"{per_label(scores['fused'])}")
            results["rounds"].append({
                "round": r, "reviewed": reviewed, "corrected": len(ids),
                "pulled": pulled.fetched, "shown_versions": dict(versions),
                "edits": {k: counts[k] for k in ("add", "delete", "change", "kept")},
                "edits_per_task": {**per_task, "total": total},
                "promoted": outcome.promoted, "version": outcome.version.version,
                "gate_reasons": outcome.reasons, "train_s": round(train_s, 1),
                "grown_terms": len(grown),
                "pipelines": {p.fusion: {"use": p.use, "reasons": p.reasons,
                                         "evaluations": {n: e["overall"] for n, e in
                                                         p.evaluations.items()}}
                              for p in outcome.pipelines},
                "heldout": scores, "seconds": round(elapsed, 1)})
        store.close()
    finally:
        if server is not None:
            server.stop()

    rounds = results["rounds"]
    base = rounds[0]["heldout"]["rules"]["overall"]["f1"]
    picks = [("rules only (round 0)", rounds[0])] + [(f"after round {rnd['round']}", rnd)
                                                      for rnd in rounds[1:]]
    print()
    print(f"held-out F1 (exact span and label) on all {len(test)} test tasks, and on the "
          f"{len(novel)} novel ones (a product or phrasing that no pushed task has)")
    print(f"{'':<22}{'rules':>7}{'model':>7}{'fused':>7}  |{'novel:':>7}{'rules':>6}{'model':>7}"
          f"{'fused':>7}  | fused P / R    | fused / rules-only")
    for name, rnd in picks:
        h = rnd["heldout"]
        fused = h["fused"]["overall"]
        print(f"{name:<22}{f1(h['rules']):>7}{f1(h['model']):>7}{f1(h['fused']):>7}  |{'':>7}"
              f"{f1(h['rules'], 'novel'):>6}{f1(h['model'], 'novel'):>7}"
              f"{f1(h['fused'], 'novel'):>7}  | {fused['precision']:.3f} / {fused['recall']:.3f}"
              f" | {fused['f1'] / base if base else float('nan'):.2f}")
    print()
    print("target: fused >= max(rules, model) + 0.02 in every round (held-out test split)")
    met = True
    for rnd in rounds[1:]:
        h = rnd["heldout"]
        best = max(h[n]["overall"]["f1"] for n in ("rules", "model") if h[n])
        margin = h["fused"]["overall"]["f1"] - best
        met &= margin >= 0.02 - 1e-9
        use = ", ".join(p["use"] for p in rnd.get("pipelines", {}).values()) or "-"
        print(f"  round {rnd['round']}: rules {f1(h['rules'])} model {f1(h['model'])} fused "
              f"{f1(h['fused'])}: fused - max = {margin:+.3f} "
              f"({'met' if margin >= 0.02 - 1e-9 else 'missed'}; "
              f"{'never below either' if margin >= -1e-9 else 'BELOW a source'}); the gate "
              f"chose: {use}")
    print(f"target {'met in every round' if met else 'NOT met in every round'}")
    results["target_met"] = met
    print()
    print("edits per task of the K tasks corrected in each round (given what they were shown)")
    print(f"{'round':>5}  {'shown':<22}{'add':>6}{'delete':>8}{'change':>8}{'total':>7}"
          "   vs round 1 (rules only)")
    first = rounds[1]["edits_per_task"]["total"] if len(rounds) > 1 else None
    for rnd in rounds[1:]:
        e = rnd["edits_per_task"]
        shown = ", ".join(f"{short(v)} x{c}" for v, c in rnd["shown_versions"].items())
        print(f"{rnd['round']:>5}  {shown:<22}{e['add']:>6.2f}{e['delete']:>8.2f}"
              f"{e['change']:>8.2f}{e['total']:>7.2f}   "
              f"{e['total'] / first if first else float('nan'):.2f}")
    results["elapsed_s"] = round(time.perf_counter() - started, 1)
    print(f"\ntotal {results['elapsed_s']:.0f} s; spaCy training log: {log_path}"
          + ("" if args.workdir else " (removed)"))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
        print(f"results written to {args.out}")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
