"""Measure every pre-annotator against the humans, from harvested corrections records.

Definitions (regions, counted over annotated tasks; skipped and unannotated tasks are counted
apart and measure nothing):

- precision = accepted / predicted (accepted: same label, overlap within the threshold);
- recall = accepted / human regions of the labels in play (per label: that label; per
  annotator: the labels it predicted anywhere in the harvest; per rule: not defined);
- a source (annotator) is measured only on the tasks it predicted: those where a fusion says
  it ran, else those whose measured prediction has a model version it spoke in (a region of
  its own), so its recall does not count the tasks of an older round it never saw;
- F1 = harmonic mean of the two;
- edited = accepted regions whose geometry the human changed (a box moved within the IoU
  threshold, a mask eroded): accepted, but an edit cost the human time;
- acceptance rate = share of tasks whose predicted regions (of that annotator) were all
  accepted unedited and where the human added nothing with its labels ("accepted as is");
- edits per task = (modified + deleted + edited + added in its labels) / tasks;
- agreement = mean pairwise region F1 between annotators of the tasks annotated more than once;
- confusion = predicted label (rows) against the human-final label (columns) of each predicted
  region matched to a human one, "(nothing)" for a deleted prediction or an added human region;
- repeated corrections = the same rule (or model) corrected the same way (relabelled to the
  same label, re-drawn, or deleted) on at least ``REPEAT`` regions.

The accumulator is fed one record at a time, so memory does not grow with the task count.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

KINDS = ("accepted", "modified", "deleted")
BINS = 10
REPEAT = 3
NOTHING = "(nothing)"


def ratio(num: float, den: float) -> float | None:
    return round(num / den, 4) if den else None


def f1_score(p: float | None, r: float | None) -> float | None:
    if p is None or r is None:
        return None
    return round(2 * p * r / (p + r), 4) if p + r else 0.0


class Metrics:
    """Counts fed by :meth:`add`; :meth:`result` gives the JSON-ready figures."""

    def __init__(self) -> None:
        self.tasks: Counter[str] = Counter()
        self.cancelled = 0
        self.errors = 0
        self.by_annotator: dict[str, Counter[str]] = defaultdict(Counter)
        self.by_label: dict[str, Counter[str]] = defaultdict(Counter)
        self.by_annotator_label: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
        self.by_rule: dict[tuple[str, str, str], Counter[str]] = defaultdict(Counter)
        self.annotator_labels: dict[str, set[str]] = defaultdict(set)
        self.winners: dict[str, Counter[str]] = defaultdict(Counter)
        """The fused output's regions by the source that won them (the winners-only view)."""
        self.task_outcomes: Counter[tuple[str, bool, frozenset[str]]] = Counter()
        """(annotator, all its regions accepted, labels added) of the tasks it predicted on."""
        self.task_adds: Counter[tuple[str, frozenset[str]]] = Counter()
        """(scope, labels added) of every measured task (an annotator silent on a task
        it saw is judged too)."""
        self.scope_human: dict[str, Counter[str]] = defaultdict(Counter)
        """Human regions per label ("added:" + label for the added ones) per scope: the tasks of
        one model version, or where a fusion says the same sources ran."""
        self.scope_sources: dict[str, set[str]] = defaultdict(set)
        """The sources that saw the tasks of each scope (ran, or spoke in its version)."""
        self.agreements: list[float] = []
        self.hist: dict[str, list[int]] = {"accepted": [0] * BINS, "rejected": [0] * BINS}
        self.confusion: Counter[tuple[str, str]] = Counter()
        self.repeats: dict[tuple[str, str, str, str], list[int]] = defaultdict(list)
        """(annotator, rule, label, what the human made of it) -> the tasks it happened on."""

    def add(self, record: Mapping[str, Any]) -> None:
        self.tasks[record["status"]] += 1
        self.cancelled += record.get("cancelled", 0)
        self.errors += len(record.get("errors") or [])
        if record["status"] != "annotated" or record.get("model_version") is None:
            if record["status"] == "annotated":
                self.tasks["annotated without prediction"] += 1
            return
        if record.get("agreement") is not None:
            self.agreements.append(record["agreement"])
        ran = sorted({source for item in record["predicted"] for source in
                      ((item.get("preannot") or {}).get("fused") or {}).get("ran") or []})
        # who saw the task: the sources a fusion says ran, else whoever spoke in its version
        scope = f"ran:{','.join(ran)}" if ran else f"version:{record['model_version']}"
        speakers = self.scope_sources[scope] if not ran else set()  # ran: exactly those
        self.scope_sources[scope] |= set(ran)
        added = Counter()
        humans = [h for h in record["human"] if h.get("classification") != "deleted"]
        judged: set[tuple[Any, ...]] = set()  # a candidate is judged once per task
        for item in record["human"]:
            label = _label(item)
            self.by_label[label]["human"] += 1
            self.scope_human[scope][label] += 1
            if item["classification"] == "added":
                added[label] += 1
                self.scope_human[scope][f"added:{label}"] += 1
                self.by_label[label]["added"] += 1
                self.confusion[(NOTHING, label)] += 1
        ok: dict[str, bool] = {}
        for item in record["predicted"]:
            kind, annotator, label = item["classification"], item["annotator"], item["label"]
            edited = bool(item.get("edited"))
            ok[annotator] = ok.get(annotator, True) and kind == "accepted" and not edited
            self.annotator_labels[annotator].add(label)
            speakers.add(annotator)
            counters = [self.by_label[label]]
            if not ((item.get("preannot") or {}).get("fused") or {}).get("candidates"):
                counters.append(self.by_annotator[annotator])  # else: counted per candidate
            for counter in counters:
                counter["predicted"] += 1
                counter[kind] += 1
                counter["edited"] += edited
            prov = item.get("preannot") or {}
            human_label = (label if kind == "accepted" else
                           item.get("human_label") if kind == "modified" else None) or NOTHING
            self.confusion[(label, human_label)] += 1
            if kind != "accepted":
                rule_name = (f"{prov.get('rule_file', '')}:{prov.get('rule', '')}"
                             if prov.get("rule_file") or prov.get("rule") else "")
                what = ("deleted" if kind == "deleted" else
                        f"relabelled {human_label}" if human_label != label else "re-drawn")
                self.repeats[(annotator, rule_name, label, what)].append(record.get("task"))
            # one truth per source: each source's own candidates of a fused region, judged
            # against the human-final regions whether or not it won the fusion
            fused = prov.get("fused") or {}
            self.winners[annotator]["predicted"] += 1
            self.winners[annotator][kind] += 1
            for source, its_label, its_kind in _candidates(item, kind, fused, humans, judged):
                self.annotator_labels[source].add(its_label)
                speakers.add(source)
                self.by_annotator_label[(source, its_label)]["predicted"] += 1
                self.by_annotator_label[(source, its_label)][its_kind] += 1
                if fused.get("candidates"):
                    self.by_annotator[source]["predicted"] += 1
                    self.by_annotator[source][its_kind] += 1
            if prov.get("rule_file") or prov.get("rule"):
                rule = self.by_rule[(annotator, str(prov.get("rule_file", "")), str(prov.get("rule", "")))]
                rule["predicted"] += 1
                rule[kind] += 1
            if item.get("score") is not None:
                b = min(BINS - 1, max(0, int(float(item["score"]) * BINS)))
                self.hist["accepted" if kind == "accepted" else "rejected"][b] += 1
        self.tasks["measured"] += 1
        self.task_adds[(scope, frozenset(added))] += 1
        for annotator, all_ok in ok.items():
            self.task_outcomes[(annotator, all_ok, frozenset(added))] += 1

    def _confusion(self) -> dict[str, Any]:
        """Rows: the predicted label; columns: what the human made of it."""
        return _confusion_of(self.confusion)

    def _seen(self, name: str, keys: Iterable[str]) -> int:
        """Human regions (of ``keys``) on the tasks ``name`` predicted."""
        return sum(c[k] for scope, c in self.scope_human.items()
                   if name in self.scope_sources[scope] for k in keys)

    def result(self) -> dict[str, Any]:
        annotators = {}
        for name, c in sorted(self.by_annotator.items()):
            labels = self.annotator_labels[name]
            human = self._seen(name, labels)
            added = self._seen(name, [f"added:{lb}" for lb in labels])
            outcomes = [(ok, adds, n) for (a, ok, adds), n in self.task_outcomes.items() if a == name]
            silent: Counter[frozenset[str]] = Counter()  # tasks where it predicted nothing
            for (scope, adds), n in self.task_adds.items():
                silent[adds] += n if name in self.scope_sources[scope] else 0
            for _, adds, n in outcomes:
                silent[adds] -= n
            outcomes += [(True, adds, n) for adds, n in silent.items() if n > 0]
            tasks = sum(n for _, _, n in outcomes)
            as_is = sum(n for ok, adds, n in outcomes if ok and not adds & labels)
            p, r = ratio(c["accepted"], c["predicted"]), ratio(c["accepted"], human)
            annotators[name] = {
                **{k: c[k] for k in ("predicted", *KINDS, "edited")}, "added": added,
                "human": human,
                "tasks": tasks, "precision": p, "recall": r, "f1": f1_score(p, r),
                "acceptance_rate": ratio(as_is, tasks),
                "edits_per_task": ratio(c["modified"] + c["deleted"] + c["edited"] + added,
                                        tasks)}
        labels = {}
        for name, c in sorted(self.by_label.items()):
            p, r = ratio(c["accepted"], c["predicted"]), ratio(c["accepted"], c["human"])
            labels[name] = {**{k: c[k] for k in ("predicted", *KINDS, "edited", "added", "human")},
                            "precision": p, "recall": r, "f1": f1_score(p, r)}
        annotator_labels: dict[str, dict[str, Any]] = defaultdict(dict)
        for (name, label), c in sorted(self.by_annotator_label.items()):
            human = self._seen(name, [label])
            annotator_labels[name][label] = {**{k: c[k] for k in ("predicted", *KINDS)},
                                             "human": human,
                                             "precision": ratio(c["accepted"], c["predicted"]),
                                             "recall": ratio(c["accepted"], human)}
        rules = [{"annotator": a, "rule_file": f, "rule": r,
                  **{k: c[k] for k in ("predicted", *KINDS)},
                  "precision": ratio(c["accepted"], c["predicted"]),
                  "misfires": c["modified"] + c["deleted"]}
                 for (a, f, r), c in sorted(self.by_rule.items())]
        return {
            "tasks": dict(sorted(self.tasks.items())), "cancelled_annotations": self.cancelled,
            "errors": self.errors,
            "agreement": {"method": "mean pairwise region F1", "tasks": len(self.agreements),
                          "mean": ratio(sum(self.agreements), len(self.agreements))},
            "annotators": annotators, "labels": labels, "rules": rules,
            "annotator_labels": dict(annotator_labels),
            "winners": {name: {**{k: c[k] for k in ("predicted", *KINDS)},
                               "precision": ratio(c["accepted"], c["predicted"])}
                        for name, c in sorted(self.winners.items())},
            "confusion": self._confusion(),
            "repeated_corrections": [
                {"annotator": a, "rule": r, "label": lb, "correction": what, "count": len(tasks),
                 "tasks": sorted({t for t in tasks if t is not None})}
                for (a, r, lb, what), tasks in sorted(self.repeats.items(),
                                                      key=lambda kv: (-len(kv[1]), kv[0]))
                if len(tasks) >= REPEAT],
            "confidence_histogram": {"bins": [round(i / BINS, 2) for i in range(BINS + 1)],
                                     **self.hist}}


def _confusion_of(counts: Mapping[tuple[str, str], int]) -> dict[str, Any]:
    labels = sorted({x for pair in counts for x in pair}, key=lambda x: (x == NOTHING, x))
    return {"labels": labels, "counts": [[counts.get((x, y), 0) for y in labels] for x in labels]}


def _candidates(item: Mapping[str, Any], kind: str, fused: Mapping[str, Any],
                humans: list[Mapping[str, Any]], seen: set[tuple[Any, ...]]
                ) -> list[tuple[str, str, str]]:
    """(source, its label, how the human judged it) of each source's own region behind a
    predicted one: the fusion's ``candidates`` (a candidate with the predicted label and extent
    shares its verdict; another span is accepted when a human-final span has its label and
    offsets, else deleted); without them, the winner and the sources that agreed with it."""
    label = item["label"]
    cands = fused.get("candidates")
    if not cands:
        return [(source, label, kind) for source in
                sorted({item["annotator"], *(fused.get("sources") or [])})]
    value = item.get("value") or {}
    out = []
    for c in cands:
        source, its = str(c.get("source")), str(c.get("label"))
        if (source, its, c.get("start"), c.get("end")) in seen:
            continue
        seen.add((source, its, c.get("start"), c.get("end")))
        if its == label and (c.get("start") is None or (c.get("start"), c.get("end")) == (
                value.get("start"), value.get("end"))):
            out.append((source, its, kind))
        elif c.get("start") is not None and any(
                _label(h) == its and (h.get("value") or {}).get("start") == c["start"]
                and (h.get("value") or {}).get("end") == c["end"] for h in humans):
            out.append((source, its, "accepted"))
        else:
            out.append((source, its, "deleted"))
    return out


def _label(item: Mapping[str, Any]) -> str:
    value = item.get("value") or {}
    labels = value.get(item.get("type", "")) or [""]
    return labels[0]


def compute(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Metrics of a whole harvest."""
    metrics = Metrics()
    for record in records:
        metrics.add(record)
    return metrics.result()
