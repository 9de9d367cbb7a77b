"""Batch pre-annotation: stream records, annotate in batches (in worker processes if asked),
record each batch in the ledger, and write the Label Studio import file from the ledger.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Protocol

from ..annotator import (Annotator, ConfigError, Context, TaskFailed, batches, chain_order,
                         digest, notice)
from ..lsjson import task_to_ls
from ..model import Prediction, Task
from .config import RunConfig
from .host import Host, get_host
from .ledger import Ledger
from .lock import output_lock
from .orphans import die_with_parent
from .readers import BadRecord, count_records, read_inputs


class ModelSource(Protocol):
    """Where annotator options that name a trained model (``model = "registry:ner"``) are
    resolved: the model registry implements it; the runner only asks."""

    def resolve(self, specs: list[dict[str, Any]], combines: Callable[[dict[str, Any]], bool]
                ) -> tuple[list[dict[str, Any]], list[str]]:
        """The specs with model references pointed at files, and notices of what was left out
        (``combines(spec)``: whether the spec is a combiner, which runs with what is left)."""
        ...


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
    return [built[name] for name in chain_order({n: a.after for n, a in built.items()})]


def resolve_specs(specs: list[dict[str, Any]], host: Host, models: ModelSource | None
                  ) -> tuple[list[dict[str, Any]], list[str]]:
    """Annotator specs with model references resolved by ``models`` (none: as they are), and
    notices of what was left out."""
    if models is None:
        return specs, []
    return models.resolve(specs, lambda spec: host.annotator_class(spec["type"]).combines)


def configured_annotators(config: RunConfig, host: Host, models: ModelSource | None = None
                          ) -> tuple[list[dict[str, Any]], list[Annotator]]:
    """The config's annotators, built, with model references resolved by ``models`` (and their
    specs, for worker processes); what is left out is said on stderr."""
    specs, notices = resolve_specs(config.annotators, host, models)
    for message in notices:
        notice(message)
    return specs, build_annotators(specs, host, config.context())


def fingerprint(annotators: Sequence[Annotator]) -> str:
    return "+".join(f"{a.name}={a.fingerprint()}" for a in annotators)


def as_prediction(item: Any, task: Task, annotator: Annotator, version: str | None = None
                  ) -> Prediction | TaskFailed:
    """What an annotator returned for one task, as a :class:`Prediction` whose regions carry
    ids, control names and the annotator's name (or the task's failure). ``version``: the
    annotator's ``model_version`` when the caller has it (a batch asks for it once: it digests
    the model's metadata)."""
    if isinstance(item, TaskFailed):
        return TaskFailed(f"annotator {annotator.name!r} failed", str(item))
    if isinstance(item, Prediction):
        prediction = item
    elif isinstance(item, list):
        prediction = Prediction(task.id, annotator.name, version or annotator.model_version,
                                item)
    else:
        return TaskFailed(f"annotator {annotator.name!r} failed",
                          f"returned {type(item).__name__}, not a Prediction or a list of regions")
    for index, region in enumerate(prediction.regions):
        region.id = region.id or digest(task.id, annotator.name, index, size=5)
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
        version = annotator.model_version
        return [as_prediction(item, task, annotator, version) for item, task in zip(items, tasks)]
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


@dataclass
class Annotated:
    """One task after the annotators: its published predictions, or why it failed."""

    task: Task
    predictions: list[Prediction] = field(default_factory=list)
    failure: tuple[str, str] | None = None
    """(reason, detail) when the task failed."""


def annotate(annotators: Sequence[Annotator], tasks: list[Task]) -> list[Annotated]:
    """The published predictions of a batch of tasks (a combiner's upstreams speak through
    it), in order: what the ledger stores and what a push sends, as objects."""
    outputs, failed = predict(annotators, tasks)
    shown = published(annotators)
    return [Annotated(task, failure=failed[i]) if i in failed
            else Annotated(task, [outputs[a.name][i] for a in shown])
            for i, task in enumerate(tasks)]


def ledger_rows(done: Sequence[Annotated]) -> list[dict[str, Any]]:
    """Ledger rows of annotated tasks: done with their Label Studio task JSON, or failed."""
    rows = []
    for item in done:
        task = item.task
        row = {"key": task.id, "source": task.source, "checksum": task.checksum}
        if item.failure is not None:  # the task kept without predictions, for a review
            row.update(status="failed", reason=item.failure[0], detail=item.failure[1],
                       result=json.dumps(task_to_ls(task, []), ensure_ascii=False))
        else:
            row.update(status="done", result=json.dumps(task_to_ls(task, item.predictions),
                                                        ensure_ascii=False))
        rows.append(row)
    return rows


def annotate_batch(annotators: Sequence[Annotator], tasks: list[Task]) -> list[dict[str, Any]]:
    """Ledger rows for a batch of tasks."""
    return ledger_rows(annotate(annotators, tasks))


# Worker processes build their own annotators once, from the same specs.
_worker_annotators: list[Annotator] = []


def _init_worker(specs: list[dict[str, Any]], context: Context, parent: int) -> None:
    global _worker_annotators
    die_with_parent(parent)
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
    failed_tasks: list[tuple[str, str]] = field(default_factory=list)
    """(reason, Label Studio task JSON without predictions) of the tasks an annotator failed
    on (bad records have no task): what a production review sends to humans."""

    @property
    def failed(self) -> int:
        return len(self.failures)

    def failure_reasons(self) -> Counter[str]:
        return Counter(reason for _, reason, _ in self.failures)


def _check_runnable(config: RunConfig) -> None:
    if not config.inputs:
        raise ConfigError("no input: give files or folders, or set [input] paths in preannot.toml")
    if config.output is None:
        raise ConfigError("no output: give -o/--output, or set [output] path in preannot.toml")
    if not config.annotators:
        raise ConfigError("no annotators: add [[annotators]] to preannot.toml or use --rules")
    if config.output.is_dir():
        raise ConfigError(f"output {config.output} is a folder: give a file (.json for Label "
                          "Studio import JSON, .jsonl for JSON lines)")


@dataclass
class _Batch:
    """One batch of input records sorted out against the ledger."""

    todo: list[Task] = field(default_factory=list)
    seen: list[tuple[str, int]] = field(default_factory=list)
    """(key, position) of tasks already done with the same input and annotators."""
    failed: list[dict[str, Any]] = field(default_factory=list)
    """Ledger rows of bad records and duplicate ids."""


class _Run:
    """The state of one run: ledger, positions of the tasks in flight, the summary."""

    def __init__(self, config: RunConfig, ledger: Ledger, run_fingerprint: str,
                 progress: Callable[[int, int | None], None] | None) -> None:
        self.config, self.ledger, self.fingerprint = config, ledger, run_fingerprint
        self.summary = Summary(output=config.output)  # type: ignore[arg-type]
        self.progress = progress or (lambda advance, total: None)
        self.total = count_records(config.inputs)
        self.positions: dict[str, int] = {}
        """Input position of each task read but not yet recorded (in flight)."""
        self.position = 0

    def sort(self, records: list[Any]) -> _Batch:
        """Which records to annotate, which are already done, which are bad or duplicates."""
        batch = _Batch()
        states = self.ledger.states([r.id for r in records if isinstance(r, Task)])
        tasks: list[Task] = []
        for record in records:
            self.position += 1
            self.summary.read += 1
            if isinstance(record, BadRecord):
                batch.failed.append({"key": record.source, "position": self.position,
                                     "source": record.source, "status": "failed",
                                     "reason": record.reason, "detail": record.detail})
            elif record.id in self.positions or (record.id in states
                                                 and states[record.id].run == self.ledger.run):
                batch.failed.append({"key": f"{record.source}#duplicate", "position": self.position,
                                     "source": record.source, "status": "failed",
                                     "reason": "duplicate task id", "detail": record.id})
            else:
                self.positions[record.id] = self.position
                tasks.append(record)
        for task in tasks:
            state = states.get(task.id)
            if state and state.status == "done" and (state.checksum, state.fingerprint) == (
                    task.checksum, self.fingerprint):
                batch.seen.append((task.id, self.positions.pop(task.id)))
            else:
                batch.todo.append(task)
        self.summary.skipped += len(batch.seen)
        self.ledger.record([], batch.seen)
        return batch

    def settle(self, rows: list[dict[str, Any]], failed: list[dict[str, Any]], count: int) -> None:
        """Record a finished batch in one transaction."""
        for row in rows:
            row["fingerprint"] = self.fingerprint
            row["position"] = self.positions.pop(row["key"])
        self.ledger.record(rows + failed)
        self.summary.annotated += sum(r["status"] == "done" for r in rows)
        self.progress(count, self.total)


def run(config: RunConfig, *, host: Host | None = None, models: ModelSource | None = None,
        force: bool = False, progress: Callable[[int, int | None], None] | None = None,
        configured: tuple[list[dict[str, Any]], list[Annotator]] | None = None) -> Summary:
    """Pre-annotate every input of ``config`` and write ``config.output``; returns the summary.

    ``models`` resolves options that name trained models (the registry); ``progress`` is
    called as ``progress(advance, total)`` after each batch. ``configured``: the specs and
    annotators :func:`configured_annotators` gave, built already (not built again).
    """
    _check_runnable(config)
    host = host or get_host()
    specs, annotators = configured or configured_annotators(config, host, models)
    with output_lock(config.output):  # type: ignore[arg-type]
        ledger = Ledger(config.workspace.ledger, str(config.output.resolve()))
        try:
            return _run(config, ledger, specs, annotators, force, progress)
        finally:
            ledger.close()


def _run(config: RunConfig, ledger: Ledger, specs: list[dict[str, Any]],
         annotators: list[Annotator], force: bool,
         progress: Callable[[int, int | None], None] | None) -> Summary:
    if force:
        ledger.forget()
    state = _Run(config, ledger, fingerprint(annotators), progress)
    state.progress(0, state.total)
    records = read_inputs(config.inputs, None, config.base_dir, config.encoding)
    if config.engine == "ray":
        from .ray_engine import run_on_ray

        run_on_ray(state, records, annotators, specs, build_annotators, annotate_batch)
    elif config.workers > 1:
        _run_in_workers(state, records, annotators, specs)
    else:
        for chunk in batches(records, config.batch_size):
            batch = state.sort(chunk)
            state.settle(annotate_batch(annotators, batch.todo), batch.failed, len(chunk))
    state.summary.failures = ledger.failures()
    state.summary.failed_tasks = ledger.failed_tasks()
    write_output(ledger.results(), config.output)  # type: ignore[arg-type]
    return state.summary


class WorkerDied(ConfigError):
    """A worker process was killed: said in one line, as the command's error, like a config
    error (the traceback of the pool says nothing more)."""


def _run_in_workers(state: _Run, records: Iterable[Any], annotators: Sequence[Annotator],
                    specs: list[dict[str, Any]]) -> None:
    """Batches annotated in worker processes, at most two per worker in flight, recorded in
    input order, so a worker's death loses only the batches after the last one recorded."""
    config = state.config
    for annotator in annotators:
        annotator.prepare()
    pool = ProcessPoolExecutor(config.workers, mp_context=get_context("spawn"),
                               initializer=_init_worker,
                               initargs=(specs, config.context(), os.getpid()))
    in_flight: list[tuple[Future, list[dict[str, Any]], int]] = []
    try:
        for chunk in batches(records, config.batch_size):
            batch = state.sort(chunk)
            in_flight.append((pool.submit(_worker_batch, batch.todo), batch.failed, len(chunk)))
            while len(in_flight) > 2 * config.workers:
                future, failed, count = in_flight.pop(0)
                state.settle(future.result(), failed, count)
        while in_flight:
            future, failed, count = in_flight.pop(0)
            state.settle(future.result(), failed, count)
    except BrokenProcessPool:
        raise WorkerDied("a worker process died (killed, or out of memory?): the batches "
                         "finished before it are saved; run the same command again to "
                         "resume") from None
    finally:
        pool.shutdown(cancel_futures=True)


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

