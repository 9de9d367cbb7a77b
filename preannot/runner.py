"""Batch pre-annotation: stream records, annotate in batches (in worker processes if asked),
record each batch in the ledger, and write the Label Studio import file from the ledger.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from .annotator import Annotator, ConfigError, Context, TaskFailed, notice
from .config import RunConfig
from .ledger import Ledger
from .lsjson import task_to_ls
from .model import Prediction, Task
from .plugins import Host, get_host
from .readers import BadRecord, count_records, read_inputs
from .training.registry import Registry, resolve_models


def build_annotators(specs: list[dict[str, Any]], host: Host, context: Context) -> list[Annotator]:
    """Instantiate the configured annotators, ordered so that each comes after its upstreams."""
    built: dict[str, Annotator] = {}
    for spec in specs:
        options = {k: v for k, v in spec.items() if k not in {"name", "type"}}
        cls = host.annotator_class(spec["type"])
        try:
            built[spec["name"]] = cls(spec["name"], options, context)
        except ConfigError:
            raise
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError(f"annotator {spec['name']!r} ({spec['type']}): {exc}") from exc
    ordered: list[Annotator] = []
    visiting: set[str] = set()

    def visit(name: str, wanted_by: str) -> None:
        if name not in built:
            raise ConfigError(f"annotator {wanted_by!r} runs after {name!r}, which is not configured")
        if built[name] in ordered:
            return
        if name in visiting:
            raise ConfigError(f"annotators form a cycle through {name!r}")
        visiting.add(name)
        for upstream in built[name].after:
            visit(upstream, name)
        ordered.append(built[name])

    for name in built:
        visit(name, name)
    return ordered


def resolve_specs(specs: list[dict[str, Any]], config: RunConfig, host: Host
                  ) -> tuple[list[dict[str, Any]], list[str]]:
    """Annotator specs with ``registry:`` models resolved against the config's registry, and
    notices of what was left out (see :func:`preannot.training.registry.resolve_models`)."""
    return resolve_models(specs, Registry(config.registry_dir),
                          lambda spec: host.annotator_class(spec["type"]).combines)


def configured_annotators(config: RunConfig, host: Host) -> tuple[list[dict[str, Any]], list[Annotator]]:
    """The config's annotators, built, with ``registry:`` models resolved to their current
    version (and their specs, for worker processes); what is left out is said on stderr."""
    specs, notices = resolve_specs(config.annotators, config, host)
    for message in notices:
        notice(message)
    return specs, build_annotators(specs, host, config.context())


def fingerprint(annotators: Sequence[Annotator]) -> str:
    return "+".join(f"{a.name}={a.fingerprint()}" for a in annotators)


def _as_prediction(item: Any, task: Task, annotator: Annotator) -> Prediction | TaskFailed:
    if isinstance(item, TaskFailed):
        return TaskFailed(f"annotator {annotator.name!r} failed", str(item))
    if isinstance(item, Prediction):
        prediction = item
    elif isinstance(item, list):
        prediction = Prediction(task.id, annotator.name, annotator.model_version, item)
    else:
        return TaskFailed(f"annotator {annotator.name!r} failed",
                          f"returned {type(item).__name__}, not a Prediction or a list of regions")
    for index, region in enumerate(prediction.regions):
        region.id = region.id or hashlib.blake2b(
            f"{task.id}|{annotator.name}|{index}".encode(), digest_size=5).hexdigest()
        region.from_name = region.from_name or annotator.from_name
        region.to_name = region.to_name or annotator.to_name
        region.provenance.setdefault("annotator", annotator.name)
    return prediction


def _run_one(annotator: Annotator, tasks: list[Task],
             upstream: dict[str, list[Prediction]]) -> list[Prediction | TaskFailed]:
    """One annotator over a batch; if the batch raises, each task alone, so only culprits fail."""
    try:
        items = list(annotator.annotate(tasks, upstream))
        if len(items) != len(tasks):
            raise RuntimeError(f"returned {len(items)} results for {len(tasks)} tasks")
        return [_as_prediction(item, task, annotator) for item, task in zip(items, tasks)]
    except Exception as exc:
        if len(tasks) == 1:
            return [TaskFailed(f"annotator {annotator.name!r} raised {type(exc).__name__}",
                               str(exc))]
    results: list[Prediction | TaskFailed] = []
    for i, task in enumerate(tasks):
        results.extend(_run_one(annotator, [task], {k: [v[i]] for k, v in upstream.items()}))
    return results


def predict(annotators: Sequence[Annotator], tasks: list[Task]
            ) -> tuple[dict[str, list[Prediction | None]], dict[int, tuple[str, str]]]:
    """Run the annotators (in chain order) over a batch: each annotator's prediction per task
    (None where the task failed earlier), and the failed tasks' (reason, detail) by index."""
    failed: dict[int, tuple[str, str]] = {}
    outputs: dict[str, list[Any]] = {}
    for annotator in annotators:
        missing = [i for i, t in enumerate(tasks) if annotator.field not in t.data and i not in failed]
        for i in missing:
            failed[i] = (f"missing field {annotator.field!r}", f"read by {annotator.name!r}")
        live = [i for i in range(len(tasks)) if i not in failed]
        upstream = {name: [outputs[name][i] for i in live] for name in annotator.after}
        results = _run_one(annotator, [tasks[i] for i in live], upstream) if live else []
        column: list[Any] = [None] * len(tasks)
        for i, result in zip(live, results):
            if isinstance(result, TaskFailed):
                failed[i] = (result.args[0], result.args[1] if len(result.args) > 1 else "")
                result = None
            column[i] = result
        outputs[annotator.name] = column
    return outputs, failed


def published(annotators: Sequence[Annotator]) -> list[Annotator]:
    """The annotators whose predictions go out: a combiner's upstreams speak through it."""
    hidden = {name for a in annotators if a.combines for name in a.after}
    return [a for a in annotators if a.name not in hidden]


def annotate_batch(annotators: Sequence[Annotator], tasks: list[Task]) -> list[dict[str, Any]]:
    """Ledger rows for a batch of tasks: each task done with its predictions, or failed."""
    outputs, failed = predict(annotators, tasks)
    shown = published(annotators)
    rows = []
    for i, task in enumerate(tasks):
        row = {"key": task.id, "source": task.source, "checksum": task.checksum}
        if i in failed:
            row.update(status="failed", reason=failed[i][0], detail=failed[i][1])
        else:
            predictions = [outputs[a.name][i] for a in shown]
            row.update(status="done", result=json.dumps(task_to_ls(task, predictions),
                                                        ensure_ascii=False))
        rows.append(row)
    return rows


# Worker processes build their own annotators once, from the same specs.
_worker_annotators: list[Annotator] = []


def _init_worker(specs: list[dict[str, Any]], context: Context) -> None:
    global _worker_annotators
    _worker_annotators = build_annotators(specs, get_host(), context)


def _worker_batch(tasks: list[Task]) -> list[dict[str, Any]]:
    return annotate_batch(_worker_annotators, tasks)


@dataclass
class Summary:
    output: Path
    read: int = 0
    annotated: int = 0
    skipped: int = 0
    failures: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return len(self.failures)

    def failure_reasons(self) -> Counter[str]:
        return Counter(reason for _, reason, _ in self.failures)


def _batches(records: Iterable[Any], size: int) -> Iterator[list[Any]]:
    it = iter(records)
    while batch := list(islice(it, size)):
        yield batch


def run(config: RunConfig, *, host: Host | None = None, force: bool = False,
        progress: Any = None) -> Summary:
    """Pre-annotate every input of ``config`` and write ``config.output``; returns the summary.

    ``progress`` is called as ``progress(advance, total)`` after each batch.
    """
    if not config.inputs:
        raise ConfigError("no input: give files or folders, or set [input] paths in preannot.toml")
    if config.output is None:
        raise ConfigError("no output: give -o/--output, or set [output] path in preannot.toml")
    if not config.annotators:
        raise ConfigError("no annotators: add [[annotators]] to preannot.toml or use --rules")
    host = host or get_host()
    specs, annotators = configured_annotators(config, host)
    run_fingerprint = fingerprint(annotators)
    ledger = Ledger(config.state_dir / "ledger.sqlite", str(config.output.resolve()))
    if force:
        ledger.forget()
    summary = Summary(output=config.output)
    total = count_records(config.inputs)
    if progress:
        progress(0, total)
    pool = None
    if config.workers > 1:
        for annotator in annotators:
            annotator.prepare()
        pool = ProcessPoolExecutor(config.workers, mp_context=get_context("spawn"),
                                   initializer=_init_worker, initargs=(specs, config.context()))
    in_flight: list[tuple[Future | list[dict[str, Any]], list[dict[str, Any]], int]] = []

    def settle(entry: tuple[Any, list[dict[str, Any]], int]) -> None:
        pending, extra, count = entry
        rows = pending.result() if isinstance(pending, Future) else pending
        for row in rows:
            row["fingerprint"] = run_fingerprint
            row["position"] = positions.pop(row["key"])
        ledger.record(rows + extra)
        summary.annotated += sum(r["status"] == "done" for r in rows)
        if progress:
            progress(count, total)

    positions: dict[str, int] = {}
    position = 0
    try:
        for batch in _batches(read_inputs(config.inputs, None, config.base_dir), config.batch_size):
            tasks: list[Task] = []
            extra: list[dict[str, Any]] = []
            states = ledger.states([r.id for r in batch if isinstance(r, Task)])
            batch_keys: set[str] = set()
            for record in batch:
                position += 1
                summary.read += 1
                if isinstance(record, BadRecord):
                    extra.append({"key": record.source, "position": position, "source": record.source,
                                  "status": "failed", "reason": record.reason, "detail": record.detail})
                elif record.id in batch_keys or (record.id in states
                                                 and states[record.id].run == ledger.run):
                    extra.append({"key": f"{record.source}#duplicate", "position": position,
                                  "source": record.source, "status": "failed",
                                  "reason": "duplicate task id", "detail": record.id})
                else:
                    batch_keys.add(record.id)
                    positions[record.id] = position
                    tasks.append(record)
            done = {t.id for t in tasks if (state := states.get(t.id)) and state.status == "done"
                    and (state.checksum, state.fingerprint) == (t.checksum, run_fingerprint)}
            seen = [(t.id, positions.pop(t.id)) for t in tasks if t.id in done]
            todo = [t for t in tasks if t.id not in done]
            summary.skipped += len(seen)
            ledger.record([], seen)
            if pool:
                in_flight.append((pool.submit(_worker_batch, todo), extra, len(batch)))
                while len(in_flight) > 2 * config.workers:
                    settle(in_flight.pop(0))
            else:
                settle((annotate_batch(annotators, todo), extra, len(batch)))
        while in_flight:
            settle(in_flight.pop(0))
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)
    summary.failures = ledger.failures()
    write_output(ledger.results(), config.output)
    ledger.close()
    return summary


def write_output(tasks: Iterable[str], path: Path) -> int:
    """Write tasks (JSON texts) as Label Studio import JSON (a list) or JSON lines, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    count = 0
    lines = path.suffix.lower() in {".jsonl", ".ndjson"}
    with tmp.open("w", encoding="utf-8") as f:
        if not lines:
            f.write("[")
        for task in tasks:
            if lines:
                f.write(task + "\n")
            else:
                f.write(("\n" if count == 0 else ",\n") + task)
            count += 1
        if not lines:
            f.write("\n]\n")
    os.replace(tmp, path)
    return count

