"""Drift in production review against a real Label Studio: does the monitor stay quiet when
nothing changes, catch a new product line quickly, and do its reactions keep the released
tasks as precise as the calibration promised?

A rules pipeline (a product dictionary, spaCy) reads order e-mails with gold spans. The
calibration: ``--calibration`` e-mails pushed to a labeling project, corrected to gold through
the API by a simulated reviewer, ``ls pull``, ``review calibrate`` (target 0.99, delta 0.05).
Then three production streams, each through ``review run`` in passes of ``--batch`` tasks in
its own copy of that folder (its own ledger and review project); after each pass the reviewer
corrects every routed and audited task (and every task the drift reaction sampled into the
labeling project) to gold, and ``review sync`` runs:

- **(a) same**: ``--stream`` e-mails from the calibration's distribution;
- **(b) shifted, reactions on**: from task ``--change`` on, 30% of the e-mails also order a
  product of a new line (in no dictionary, so the pipeline misses it while staying sure of the
  rest: the task looks as confident as ever and is wrong) and 30% are written in another style.
  When an alarm is up and ``--relearn`` post-alarm tasks are reviewed, the user applies what
  `preannot drift` lists (terms reviewers added that the reference never had, 3 times or more)
  to the dictionary, as `ls suggest-rules` proposes, and recalibrates (`ls pull`, `review
  calibrate`); the alarm clears once a recalibration passes on enough post-drift reviews;
- **(b) shifted, reactions off**: the same stream with ``[drift] suspend = "off"``, the normal
  audit rate and no sampling (the monitor still records its alarms; nobody acts on them).

Printed: false alarms on (a); the detection delay on (b) in tasks after the change; the
realised precision of auto-released tasks (against gold, exact 95% interval) over (b) and
after the change, reactions on and off; coverage; and the reviews it took to recover (routed and
audited tasks reviewed between the alarm and its clearing). Defaults follow the issue (10,000
tasks, change at 2,000); ``--stream 4000`` finishes in about ten minutes on two cores.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from flywheel_corpus import Doc
from production_review import interval, is_gold, write_tasks
from simulation.annotator import SimulatedAnnotator
from simulation.config import rules, write_config

from preannot.engine.config import load_config
from preannot.labelstudio.client import Client
from preannot.production import drift_monitor as drift, review_pass as production
from preannot.labelstudio import sync
from preannot.harvest.pull import pull as harvest_pull
from preannot.production import calibrate as review_ops

KNOWN = ["Acme widget", "Zeta bolt", "Omega drill", "Delta saw", "Sigma router", "Nimbus hub",
         "Atlas desk", "Vega chair", "Polar fan", "Titan jack", "Lumen bulb", "Cobalt vise"]
RARE = ["Bolt cutter XL", "Mira kettle"]  # in no dictionary, but in the calibration's world
NEW_LINE = ["Helix pump", "Orbit lathe", "Quasar lamp", "Krypton valve", "Nova grinder",
            "Pulsar drone"]
CITIES = ["Lyon", "Paris", "Lille", "Nantes", "Bordeaux", "Nice"]
FORMAL = ["Dear sales team, please send {items} to our {city} office. Order ref {n}.",
          "Hello, we would like to order {items}. Delivery to {city}, reference {n}.",
          "Good morning, kindly ship {items} to {city} before Friday. Regards, purchasing.",
          "Please confirm order {n}: {items}, delivered to the {city} warehouse."]
CASUAL = ["hey!! need {items} asap -> {city} thx", "yo, can u rush {items}?? cheers from {city}",
          "urgent pls: {items} for the {city} crew, ta"]


def write_drift_config(folder: Path, title: str, review: str, drift: dict[str, Any]) -> Path:
    """The rules pipeline under production review, its labeling project ``title``, its review
    project ``review`` and the ``[drift]`` settings ``drift``."""
    return write_config(folder, inputs=[], annotators=[rules()], training={"eval_fraction": 1.0},
                        labelstudio={"project": title},
                        review={"target_precision": 0.99, "delta": 0.05, "audit_rate": 0.02,
                                "project": review}, drift=drift)


def email(key: str, rng: random.Random, shifted: bool) -> Doc:
    """One e-mail with its gold PRODUCT spans."""
    products = [rng.choice(KNOWN) for _ in range(rng.choice((1, 1, 2)))]
    if len(products) == 1 and rng.random() < 0.08:  # missed, alone: an empty prediction
        products[0] = rng.choice(RARE)
    if shifted and rng.random() < 0.3 and products[0] not in RARE:
        products.append(rng.choice(NEW_LINE))
    template = rng.choice(CASUAL if shifted and rng.random() < 0.3 else FORMAL)
    head, tail = template.split("{items}")
    text = head.format(city=rng.choice(CITIES), n=rng.randint(1000, 9999))
    spans = []
    for i, product in enumerate(products):
        text += ("" if i == 0 else (" and " if i == len(products) - 1 else ", "))
        text += f"{rng.randint(1, 9)} "
        spans.append((len(text), len(text) + len(product), "PRODUCT"))
        text += product
    text += tail.format(city=rng.choice(CITIES), n=rng.randint(1000, 9999))
    return Doc(key, text, spans)


def stream(prefix: str, n: int, seed: int, change: int | None) -> list[Doc]:
    rng = random.Random(seed)
    return [email(f"{prefix}{i}", rng, change is not None and i >= change) for i in range(n)]


def released(folder: Path) -> list[dict[str, Any]]:
    path = folder / "review" / "released.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def precision(records: list[dict[str, Any]], gold: dict[str, Doc]) -> dict[str, Any]:
    right = sum(is_gold(r["regions"], gold[r["task"]]) for r in records)
    low, high = interval(right, len(records), 0.05)
    return {"released": len(records), "right": right,
            "precision": round(right / len(records), 4) if records else None,
            "interval": [round(low, 4), round(high, 4)]}


def calibrate(work: Path, client: Client, n: int, seed: int, title: str) -> Path:
    base = work / "base"
    (base / "rules").mkdir(parents=True)
    (base / "rules" / "products.csv").write_text(
        "term,label\n" + "".join(f"{p},PRODUCT\n" for p in KNOWN))
    write_drift_config(base, title, f"{title} review", {})
    docs = stream("cal", n, seed, None)
    write_tasks(base / "cal.jsonl", docs)
    config = load_config(base / "preannot.toml")
    config.inputs = [base / "cal.jsonl"]
    project = sync.push(config, client).project_id
    SimulatedAnnotator(client, {d.id: d for d in docs}).correct(project)
    harvest_pull(config, client)
    done = review_ops.calibrate(config)
    print(f"calibration: {n} reviewed e-mails: {done.verdict}", flush=True)
    if done.calibration.threshold is None:
        raise SystemExit("no threshold: raise --calibration")
    return base


def play(name: str, base: Path, work: Path, client: Client, docs: list[Doc], batch: int,
         drift_settings: dict[str, Any], relearn: int | None) -> dict[str, Any]:
    """One stream in passes; the reviewer after each; the user's relearning with ``relearn``."""
    folder = work / name
    shutil.copytree(base, folder)
    # the copy keeps the base's calibration and its labeling project (where drifted tasks are
    # sampled: the calibration's reviews stay in its pulls); its own ledger and review project
    title = load_config(base / "preannot.toml").labelstudio.project
    write_drift_config(folder, title, f"drift {name} {os.getpid()} review", drift_settings)
    config = load_config(folder / "preannot.toml")
    gold = {d.id: d for d in docs}
    human = SimulatedAnnotator(client, gold)
    t0 = time.perf_counter()
    labeling = sync.project_for(config, client, sync.annotators(config, sync.get_host()))
    relearned_at, reviews = None, 0
    for start in range(0, len(docs), batch):
        chunk = docs[start:start + batch]
        write_tasks(folder / f"pass{start}.jsonl", chunk)
        config = load_config(folder / "preannot.toml")
        config.inputs = [folder / f"pass{start}.jsonl"]
        production.run(config, client)
        review = production.review_project(config, client, [])
        reviews += len(human.correct(review).tasks)
        human.correct(labeling)
        production.sync_reviews(config, client)
        hold = drift.hold(config)
        if relearn and hold is not None:
            alarms = drift.store(config)
            try:
                since = alarms.window(10**9, after=hold.alarm.raised_seq)
            finally:
                alarms.close()
            reviewed = sum(p["right"] is not None for p in since)
            if reviewed >= relearn:
                checked = drift.check(config, review_ops.load(config), save=False)
                terms = [t for t, label, n in checked.terms if n >= 3]
                if terms:
                    with (folder / "rules" / "products.csv").open("a") as f:
                        f.write("".join(f"{t},PRODUCT\n" for t in terms))
                harvest_pull(config, client)
                cal = review_ops.calibrate(config)
                relearned_at = relearned_at or start + batch
                print(f"  [{name}] task {start + batch}: {reviewed} post-alarm reviews; added "
                      f"{terms} to the dictionary; recalibrated: {cal.verdict[:80]}", flush=True)
        print(f"  [{name}] {start + len(chunk)} tasks, {time.perf_counter() - t0:.0f} s: "
              f"{drift.summary(config)['headline'][:110]}", flush=True)
    # the last recalibration's clearing is seen by the next check: run one
    drift.check(load_config(folder / "preannot.toml"),
                review_ops.load(load_config(folder / "preannot.toml")))
    history = drift.history(config)
    alarms = history["alarms"]
    recovery = None
    if alarms and all(a["cleared_seq"] for a in alarms):  # reviews from the first alarm on
        import sqlite3  # the ledger: routed or audited tasks decided until the last clearing
        db = sqlite3.connect(config.workspace.ledger)
        recovery = db.execute(
            "SELECT COUNT(*) FROM drift_tasks t JOIN review_decisions d ON d.key = t.key WHERE "
            "t.seq > ? AND t.seq <= ? AND d.decision != 'auto'",
            (alarms[0]["raised_seq"] - config.drift.check_every, alarms[-1]["cleared_seq"])
        ).fetchone()[0]
        db.close()
    return {"folder": folder, "alarms": alarms, "released": released(folder),
            "reviews": reviews, "seconds": round(time.perf_counter() - t0), "gold": gold,
            "recovery_reviews": recovery}


def report(name: str, run: dict[str, Any], change: int | None, n: int) -> dict[str, Any]:
    auto = [r for r in run["released"] if r["decision"] in ("auto", "audit")]
    seq = {d: i for i, d in enumerate(run["gold"])}
    out = {"stream": n, "alarms": len(run["alarms"]), "reviews": run["reviews"],
           "seconds": run["seconds"], "coverage": round(len(auto) / n, 4),
           "auto_precision": precision(auto, run["gold"])}
    if change is not None:
        after = [r for r in auto if seq[r["task"]] >= change]
        out["auto_precision_after_change"] = precision(after, run["gold"])
        first = next((a for a in run["alarms"] if a["raised_seq"] > change), None)
        out["detection_delay"] = None if first is None else first["raised_seq"] - change
        out["false_alarms_before_change"] = sum(a["raised_seq"] <= change for a in run["alarms"])
        last = run["alarms"][-1] if run["alarms"] else None
        if first and last["cleared_seq"]:  # every alarm cleared: coverage is back
            out["cleared_at"] = last["cleared_seq"]
            out["recovered_in_tasks"] = last["cleared_seq"] - first["raised_seq"]
            out["reviews_to_recover"] = run["recovery_reviews"]
            tail = [r for r in auto if seq[r["task"]] >= last["cleared_seq"]]
            out["coverage_after_recovery"] = (round(len(tail) / (n - last["cleared_seq"]), 4)
                                              if n > last["cleared_seq"] else None)
    p = out["auto_precision"]
    print(f"{name}: {out['alarms']} alarms; coverage {out['coverage']:.1%}; realised precision "
          f"of auto-released {p['precision']} ({p['right']}/{p['released']}, 95% "
          f"{p['interval']}); {out['reviews']} reviews; {out['seconds']} s", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stream", type=int, default=10000, help="tasks per stream")
    parser.add_argument("--change", type=int, default=2000, help="where (b) shifts")
    parser.add_argument("--calibration", type=int, default=800)
    parser.add_argument("--batch", type=int, default=500, help="tasks per `review run` pass")
    parser.add_argument("--relearn", type=int, default=150,
                        help="post-alarm reviews before the user applies the new terms")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=("a", "on", "off"), action="append")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--workdir", type=Path, help="work folder to use and keep")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="drift-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
    from bench_labelstudio import label_studio
    try:
        with label_studio(work / "labelstudio") as connection:
            os.environ["LABEL_STUDIO_URL"], os.environ["LABEL_STUDIO_API_KEY"] = \
                connection.url, connection.api_key
            client = Client(connection)
            base = calibrate(work, client, args.calibration, args.seed,
                             f"drift cal {os.getpid()}")
            plays = {"a": ("same distribution", None, {}),
                     "on": ("shifted, reactions on", args.change, {}),
                     "off": ("shifted, reactions off", args.change,
                             {"suspend": "off", "audit_rate": 0.02, "sample": 0})}
            for key, (name, change, settings) in plays.items():
                if args.only and key not in args.only:
                    continue
                docs = stream(f"{key}-", args.stream, args.seed + 1, change)
                run = play(key, base, work, client, docs, args.batch, settings,
                           args.relearn if key == "on" else None)
                results[key] = report(name, run, change, args.stream)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    a, on, off = (results.get(k) for k in ("a", "on", "off"))
    print("\nsummary (target precision 0.99, alpha 0.001 per check):")
    if a:
        print(f"  (a) false alarms on {a['stream']} same-distribution tasks: {a['alarms']}")
    for label, r in (("on", on), ("off", off)):
        if r:
            p, q = r["auto_precision"], r["auto_precision_after_change"]
            print(f"  (b) reactions {label}: alarm raised when {r['detection_delay']} shifted "
                  "tasks had come (checked before any of them was decided); "
                  f"realised precision {p['precision']} over the stream, {q['precision']} after "
                  f"the change ({q['right']}/{q['released']}); coverage {r['coverage']:.1%}; "
                  f"{r['reviews']} reviews" + (
                      f"; every alarm cleared {r['recovered_in_tasks']} tasks after the first, "
                      f"after {r['reviews_to_recover']} reviews of tasks decided in between; "
                      f"coverage after that {r['coverage_after_recovery']}"
                      if r.get("recovered_in_tasks") else ""))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    sys.exit(main())
