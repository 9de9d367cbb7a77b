"""Annotator reliability without an answer key, through a real Label Studio.

What it measures. Four simulated annotators (users created through the API; each annotation
imported with ``completed_by``, their user id, and a ``lead_time``: Label Studio 1.23 keeps
both, on import as on ``POST /api/tasks/{id}/annotations`` with the admin's token) annotate the order e-mails of
``flywheel_corpus.py``, pre-annotated by a weak dictionary-like model (30% of its regions wrong:
relabelled or missing). Every task is annotated by three of them:

- ``careful-1``, ``careful-2``: correct the pre-annotation, 3% of their regions wrong;
- ``careless``: submits the pre-annotation as it is on 95% of tasks, else annotates with 30%
  of regions wrong;
- ``slow``: careful (3%), three times slower.

A region error is a wrong label (60%) or a region left out (40%). After ``preannot ls pull``'s
harvest, it prints each annotator's accuracy as the latent-truth model (Dawid-Skene over matched
regions) estimates it, beside the accuracy measured against the gold on the same locations
(target: within 5 points, and the careless one ranked last), and the F1 against the gold of the
truth built by majority vote and by reliability weighting (target: weighted >= majority).

Run: ``python benchmarks/annotator_quality.py --tasks 300`` (a local Label Studio is started
unless LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY name one).
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
import uuid
from pathlib import Path

from flywheel_corpus import BRAND, PRODUCT, Generator

from preannot import Prediction, Span, Task
from preannot.evaluation.corrections import CORRECTIONS, Options, write_outputs
from preannot.evaluation.quality import NOTHING, answers
from preannot.labelstudio.client import Client
from preannot.harvest.store import HarvestStore, pull
from preannot.lsjson import region_to_result, task_to_ls
from bench_labelstudio import label_studio

CONFIG = ('<View><Text name="text" value="$text"/><Labels name="label" toName="text">'
          f'<Label value="{BRAND}"/><Label value="{PRODUCT}"/></Labels></View>')
OTHER = {BRAND: PRODUCT, PRODUCT: BRAND}
# name: (share of tasks where the pre-annotation is submitted as is, region error, lead time)
ANNOTATORS = {"careful-1": (0.0, 0.03, 40.0), "careful-2": (0.0, 0.03, 45.0),
              "careless": (0.95, 0.30, 8.0), "slow": (0.0, 0.03, 130.0)}
MODEL_ERROR = 0.30


def spoil(spans, error, rng):
    """Each region wrong with probability ``error``: relabelled (60%) or left out (40%)."""
    out = []
    for start, end, label in spans:
        if rng.random() < error:
            if rng.random() < 0.6:
                out.append((start, end, OTHER[label]))
            continue
        out.append((start, end, label))
    return out


def span(text, start, end, label, rid=None, score=None):
    return Span(start=start, end=end, text=text[start:end], label=label, id=rid, score=score,
                from_name="label", to_name="text")


def result(text, spans):
    items = []
    for start, end, label in spans:
        item = region_to_result(span(text, start, end, label))
        for key in ("preannot", "score", "origin"):
            item.pop(key, None)
        items.append(item)
    return items


def f1_against_gold(records, gold):
    tp = fp = fn = 0
    for record in records:
        if record["status"] != "annotated":
            continue
        truth = {(h["value"]["start"], h["value"]["end"], h["value"]["labels"][0])
                 for h in record["human"]}
        expected = set(gold[record["task"]])
        tp += len(truth & expected)
        fp += len(truth - expected)
        fn += len(expected - truth)
    return 2 * tp / (2 * tp + fp + fn)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with label_studio() as connection:
        client = Client(connection)
        run = uuid.uuid4().hex[:6]
        users = {name: client.sdk.users.create(username=f"{name}-{run}",
                                               email=f"{name}-{run}@example.org").id
                 for name in ANNOTATORS}
        project = client.sdk.projects.create(title=f"bench annotators {run}",
                                             label_config=CONFIG).id
        docs = Generator(args.seed).docs("q", args.tasks)
        predicted = [spoil(d.spans, MODEL_ERROR, rng) for d in docs]
        made, payload = {}, []
        names = list(ANNOTATORS)
        for i, (doc, pred) in enumerate(zip(docs, predicted)):
            task = task_to_ls(Task(doc.id, {"text": doc.text}), [Prediction(
                doc.id, "model", "model-v1", [span(doc.text, s, e, lb, f"p{k}", 0.9)
                                              for k, (s, e, lb) in enumerate(pred)])])
            task["annotations"] = []
            for name in names[:i % 4] + names[i % 4 + 1:]:  # three of the four, in turn
                accept, error, lead = ANNOTATORS[name]
                spans = pred if rng.random() < accept else spoil(doc.spans, error, rng)
                made[(i, name)] = spans
                task["annotations"].append({
                    "result": result(doc.text, spans), "completed_by": users[name],
                    "ground_truth": False,  # Label Studio flags imported annotations otherwise
                    "lead_time": round(max(1.0, rng.gauss(lead, lead / 5)), 1)})
            payload.append(task)
        start = time.perf_counter()
        # one import request per 100 tasks, each annotation with its annotator's user id
        # (Label Studio keeps completed_by when the id is a member of the organization)
        ids = []
        for b in range(0, len(payload), 100):
            ids += client.sdk.projects.import_tasks(project, request=payload[b:b + 100],
                                                    return_task_ids=True).task_ids
        made = {(ids[i], name): spans for (i, name), spans in made.items()}
        saved = time.perf_counter() - start
        store = HarvestStore(Path(tempfile.mkdtemp()) / "ledger.sqlite", f"{client.url}#{project}")
        pulled = pull(client, project, store)
        emails = client.users()
        gold = {tid: doc.spans for tid, doc in zip(ids, docs)}
        out = {}
        took = {}
        for truth in ("majority", "weighted"):
            folder = Path(tempfile.mkdtemp())
            begin = time.perf_counter()
            metrics = write_outputs(store.tasks, folder, options=Options(truth=truth, names=emails))
            took[truth] = time.perf_counter() - begin
            records = [json.loads(line) for line in (folder / CORRECTIONS).open()]
            out[truth] = (metrics, f1_against_gold(records, gold))
        store.close()

        # the accuracy each annotator really had, on the locations the model sees (regions some
        # annotator drew), judged against the gold at that place
        right, seen = {n: 0 for n in names}, {n: 0 for n in names}
        for tid, doc in zip(ids, docs):
            who = [n for n in names if (tid, n) in made]
            spans = [[span(doc.text, s, e, lb) for s, e, lb in made[(tid, n)]] for n in who]
            gold_regions = [span(doc.text, s, e, lb) for s, e, lb in doc.spans]
            for row in answers([*spans, gold_regions]):
                if all(v == NOTHING for v in row[:-1]):
                    continue  # only the gold has a region here: no annotator's answer to judge
                for n, v in zip(who, row[:-1]):
                    seen[n] += 1
                    right[n] += v == row[-1]
        quality = out["majority"][0]["quality"]["annotators"]
        print(f"annotator quality: {args.tasks} tasks, 3 annotations each ({len(made)} imported "
              f"in {saved:.0f} s), pulled {pulled.fetched}; "
              f"{out['majority'][0]['quality']['locations']} locations")
        print(f"{'annotator':12} {'estimated':>9} {'true':>6} {'diff':>6} {'kept preds':>10} "
              f"{'lead s':>7} careless?")
        ranking = []
        for n in names:
            q = quality[emails[users[n]]]
            est, true = q["estimated"]["accuracy"], right[n] / seen[n]
            ranking.append((est, n))
            print(f"{n:12} {est:9.3f} {true:6.3f} {100 * (est - true):+5.1f}p "
                  f"{q['acceptance_rate']:10.2f} {q['lead_time_mean']:7.1f} "
                  f"{'yes' if q['careless'] else ''}")
        worst = min(ranking)[1]
        within = max(abs(quality[emails[users[n]]]["estimated"]["accuracy"] - right[n] / seen[n])
                     for n in names)
        print(f"largest error of the estimate {100 * within:.1f} points (target <= 5); ranked "
              f"last: {worst} (target: careless)")
        alpha = out["majority"][0]["quality"]["krippendorff_alpha"]
        print("Krippendorff's alpha: " + ", ".join(f"{k} {v}" for k, v in alpha.items()))
        majority, weighted = out["majority"][1], out["weighted"][1]
        print(f"truth against the gold: majority vote F1 {majority:.4f}, reliability-weighted "
              f"F1 {weighted:.4f}; ratio {weighted / majority:.4f} (target >= 1)")
        print(f"harvest outputs written in {took['majority']:.1f} s (majority) and "
              f"{took['weighted']:.1f} s (weighted: a second pass over the tasks)")


if __name__ == "__main__":
    main()
