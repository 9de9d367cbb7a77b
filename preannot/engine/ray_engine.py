"""The Ray engine: the batch run's annotating spread over a Ray cluster (``engine = "ray"``).

The driver (the ``preannot`` process) reads the inputs and sorts each batch against the ledger
as the local engine does, so resume, duplicates and bad records (file and line) behave the
same. Each batch still to do goes into a Ray Data pipeline: a source that streams the driver's
batches, then one ``map_batches`` stage over an actor pool (a callable class), each actor
building the annotators once and running the code the local worker processes run. Results
stream back and the driver commits them to the ledger batch by batch; workers never write it.
Ray schedules the actors (CPUs and GPUs per actor from the annotators), restarts one that dies
and retries its batch. Ray is imported only inside these functions: ``preannot[ray]``.
"""

from __future__ import annotations

import logging
import pickle
import queue
import socket
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from ..annotator import Annotator, ConfigError, Context
from ..extras import require
from ..model import Task

_END = object()
Builder = Callable[[list[dict[str, Any]], Any, Context], list[Annotator]]
Work = Callable[[Sequence[Annotator], list[Task]], list[Any]]


class RayFailed(ConfigError):
    """The Ray pipeline failed (an actor that cannot start, a cluster that went away): said in
    one line, as the command's error."""


def _ray() -> Any:
    require("ray", 'engine "ray"')
    import ray

    return ray


def connect(address: str | None) -> bool:
    """Join the cluster at ``address`` (``auto``, ``ray://host:10001``, ``host:6379``; none:
    Ray's rule: ``$RAY_ADDRESS``, the cluster ``ray start`` runs here, else a Ray started for
    the run); True when this call started or joined it (and so should leave it at the end)."""
    ray = _ray()
    if ray.is_initialized():
        return False
    _check_reachable(address)
    try:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=True,
                 configure_logging=True, include_dashboard=False if address is None else None)
    except ConnectionError as exc:
        raise ConfigError(f"cannot reach the Ray cluster at {address!r}: {exc} (start one with "
                          "`ray start --head`, or check --address)") from None
    return True


def _check_reachable(address: str | None) -> None:
    """A ``host:port`` nobody answers on is said at once (Ray itself retries for minutes)."""
    if not address or "://" in address or address in ("auto", "local"):
        return
    host, _, port = address.rpartition(":")
    if not port.isdigit():
        raise ConfigError(f"Ray address {address!r}: use host:port, ray://host:10001 or auto")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=5).close()
    except OSError as exc:
        raise ConfigError(f"cannot reach the Ray cluster at {address!r}: {exc} (start one with "
                          "`ray start --head`, or check --address)") from None


def resources(annotators: Sequence[Annotator]) -> dict[str, float]:
    """What one actor asks Ray for: the most any annotator of the chain wants (they run one
    after the other in the actor); GPUs only where the cluster has some."""
    ray = _ray()
    cpus = max((a.cpus for a in annotators), default=1.0)
    gpus = max((a.gpus for a in annotators), default=0.0)
    if gpus and not ray.cluster_resources().get("GPU"):
        gpus = 0.0
    return {"num_cpus": cpus, "num_gpus": gpus}


def _feed_class() -> Any:
    """The actor the driver hands batches to and the pipeline's source takes them from (a
    bounded queue: the driver blocks when the pipeline falls behind)."""
    ray = _ray()
    import asyncio

    @ray.remote(num_cpus=0)
    class Feed:
        def __init__(self) -> None:
            self.items: asyncio.Queue = asyncio.Queue()

        async def put(self, item: Any) -> None:
            await self.items.put(item)

        async def take(self) -> Any:
            return await self.items.get()

    return Feed


def _source(feed: Any) -> Any:
    """A Ray Data source of one read task that streams the batches the driver feeds, one block
    per batch (the actors then take them as they come)."""
    ray = _ray()
    import pyarrow as pa
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    def read() -> Iterator[Any]:
        while (item := ray.get(feed.take.remote())) is not None:
            key, payload = item
            yield pa.table({"key": pa.array([key], pa.int64()),
                            "data": pa.array([payload], pa.binary())})

    class FeedSource(Datasource):
        def estimate_inmemory_data_size(self) -> int | None:
            return None

        def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None,
                           data_context: Any = None) -> list[Any]:
            meta = BlockMetadata(num_rows=None, size_bytes=None, input_files=None,
                                 exec_stats=None)
            return [ReadTask(read, meta)]

        def supports_distributed_reads(self) -> bool:
            return False  # the feed lives beside the driver

    return FeedSource()


class AnnotateActor:
    """A Ray Data actor: builds the annotators once with ``build`` (the runner's
    ``build_annotators``), then runs ``work`` (the runner's ``annotate_batch``, whose ledger rows a
    run commits, or ``annotate``, whose annotated tasks a push sends) batch after batch: the
    code the local worker processes run. (Handed in, so this module never imports the runner
    that imports it.)"""

    def __init__(self, specs: list[dict[str, Any]], context: Context, build: Builder,
                 work: Work) -> None:
        from .host import get_host

        self.annotators = build(specs, get_host(), context)
        self.work = work

    def __call__(self, table: Any) -> Any:
        import pyarrow as pa

        out = []
        for payload in table.column("data").to_pylist():
            done = self.work(self.annotators, pickle.loads(payload))
            out.append(pickle.dumps(done, protocol=pickle.HIGHEST_PROTOCOL))
        return pa.table({"key": table.column("key"), "data": pa.array(out, pa.binary())})


def stream(chunks: Iterable[tuple[int, list[Task]]], specs: list[dict[str, Any]],
           annotators: Sequence[Annotator], context: Context, *, actors: int, build: Builder,
           work: Work, in_flight: int | None = None) -> Iterator[tuple[int, list[Any]]]:
    """Annotate ``(key, tasks)`` chunks on the Ray cluster this process is connected to;
    yields ``(key, work(annotators, tasks))`` as they finish, in no set order. At most
    ``in_flight`` chunks are out at once; the chunks iterator is advanced in this thread only,
    between results (so it may use the ledger)."""
    ray = _ray()
    from ray.data import ActorPoolStrategy, DataContext

    logging.getLogger("ray.data").setLevel(logging.ERROR)  # its notes are not the user's
    warnings.filterwarnings("ignore", message=".*minimum number of concurrent actors.*")
    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    ctx.target_max_block_size = 1  # every block goes on at once: one batch is one block
    limit = in_flight or max(8, 4 * actors)
    feed = _feed_class().remote()
    # the source takes no CPU (it waits on the feed), so it is not fused into the actors
    source = ray.data.read_datasource(_source(feed), override_num_blocks=1, num_cpus=0)

    class Annotate(AnnotateActor):  # its arguments travel with the class, not as references
        def __init__(self) -> None:
            super().__init__(specs, context, build, work)

    dataset = source.map_batches(
        Annotate, batch_size=None,
        batch_format="pyarrow", compute=ActorPoolStrategy(size=actors),
        **resources(annotators))
    results: queue.Queue = queue.Queue()

    def drain() -> None:
        try:
            for table in dataset.iter_batches(batch_size=None, batch_format="pyarrow",
                                              prefetch_batches=0):
                for key, data in zip(table.column("key").to_pylist(),
                                     table.column("data").to_pylist()):
                    results.put((key, pickle.loads(data)))
            results.put(_END)
        except BaseException as exc:  # handed to the driver's thread
            results.put(exc)

    thread = threading.Thread(target=drain, name="preannot-ray-results", daemon=True)
    thread.start()
    pending: set[int] = set()

    def take(block: bool) -> Iterator[tuple[int, list[Any]]]:
        while pending:
            try:
                item = results.get(block=block, timeout=None)
            except queue.Empty:
                return
            if item is _END:
                raise RuntimeError(f"the Ray pipeline ended with {len(pending)} batches "
                                   "unanswered: run the same command again to resume")
            if isinstance(item, BaseException):
                raise item
            pending.discard(item[0])
            yield item
            block = False

    try:
        for key, tasks in chunks:
            ray.get(feed.put.remote((key, pickle.dumps(tasks, protocol=pickle.HIGHEST_PROTOCOL))))
            pending.add(key)
            while len(pending) >= limit:
                yield from take(block=True)
            yield from take(block=False)
        ray.get(feed.put.remote(None))
        while pending:
            yield from take(block=True)
        thread.join()
    finally:
        if pending or thread.is_alive():
            ray.get(feed.put.remote(None))
        ray.kill(feed)


def run_on_ray(state: Any, records: Iterable[Any], annotators: Sequence[Annotator],
               specs: list[dict[str, Any]], build: Builder, work: Work) -> None:
    """The runner's batch loop on Ray: sorted on the driver (``state``: the runner's run),
    annotated by the actor pool (``build``, ``work``: see :class:`AnnotateActor`), settled on
    the driver as results come."""
    from ..annotator import batches

    config = state.config
    for annotator in annotators:
        annotator.prepare()
    started = connect(config.address)
    waiting: dict[int, tuple[list[dict[str, Any]], int]] = {}

    def chunks() -> Iterator[tuple[int, list[Task]]]:
        for key, chunk in enumerate(batches(records, config.batch_size)):
            batch = state.sort(chunk)
            if not batch.todo:
                state.settle([], batch.failed, len(chunk))
                continue
            waiting[key] = (batch.failed, len(chunk))
            yield key, batch.todo

    try:
        for key, rows in stream(chunks(), specs, annotators, config.context(),
                                actors=config.workers, build=build, work=work):
            state.settle(rows, *waiting.pop(key))
    except (ConfigError, KeyboardInterrupt):
        raise
    except Exception as exc:  # Ray's errors carry the remote traceback: its last line says it
        lines = [line for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
        hint = (" (the workers need the plugins and files this machine has: see the README, "
                "On a cluster)" if "ConfigError" in lines[-1] else "")
        raise RayFailed(f"the Ray run stopped: {lines[-1].strip()}{hint}; the batches finished "
                        "before are saved: run the same command again to resume") from exc
    finally:
        if started:
            _ray().shutdown()


Chunks = Iterable[tuple[int, list[Task]]]


def annotated_stream(config: Any, specs: list[dict[str, Any]], annotators: Sequence[Annotator],
                     build: Builder, work: Work
                     ) -> Callable[[Chunks], Iterator[tuple[int, list[Any]]]]:
    """For a push of an existing project: ``(key, tasks)`` chunks in, ``(key, work(...))`` out,
    annotated on the cluster of ``config.address`` (left when the iteration ends)."""
    def run(chunks: Chunks) -> Iterator[tuple[int, list[Any]]]:
        for annotator in annotators:
            annotator.prepare()
        started = connect(config.address)
        try:
            yield from stream(chunks, specs, annotators, config.context(),
                              actors=config.workers, build=build, work=work)
        finally:
            if started:
                _ray().shutdown()

    return run
