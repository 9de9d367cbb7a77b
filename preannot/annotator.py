"""The base class a plugin subclasses to become a pre-annotator."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from itertools import islice
from typing import Any, ClassVar, TypeVar

from .model import Prediction, Region, Task


T = TypeVar("T")
_told: set[str] = set()


def digest(*parts: Any, size: int = 8) -> str:
    """A short hex digest of JSON-able parts (dict keys sorted; other objects by ``str``): the
    one way a fingerprint, a cache key or a stable split is made, so they never disagree."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.blake2b(blob.encode(), digest_size=size).hexdigest()


def file_digest(path: str | Path, size: int = 16) -> str:
    """A digest of a file's bytes (model weights, rule files), read in chunks."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, lambda: hashlib.blake2b(digest_size=size)).hexdigest()


def batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """``items`` in lists of ``size`` (the last one shorter), lazily: the one batching helper."""
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


def upstream_names(after: Any) -> list[str]:
    """An ``after`` option (one name or a list of names) as a list."""
    return [after] if isinstance(after, str) else list(after or [])


def chain_order(after: Mapping[str, Sequence[str]], wanted: Sequence[str] | None = None) -> list[str]:
    """Annotator names ordered so that each comes after the ones it is chained ``after``;
    with ``wanted``, only those and what they run after. The one chain order the runner, the
    registry and the trainers follow."""
    ordered: list[str] = []
    visiting: set[str] = set()

    def visit(name: str, wanted_by: str) -> None:
        if name not in after:
            raise ConfigError(f"annotator {wanted_by!r} runs after {name!r}, which is not configured")
        if name in ordered:
            return
        if name in visiting:
            raise ConfigError(f"annotators form a cycle through {name!r}")
        visiting.add(name)
        for upstream in after[name]:
            visit(upstream, name)
        ordered.append(name)

    for name in (after if wanted is None else wanted):
        visit(name, name)
    return ordered


def _check_options(kind: str, name: str, type_name: str, options: Mapping[str, Any],
                   known: frozenset[str] | None) -> None:
    if known is None:
        return
    if unknown := sorted(set(options) - known):
        raise ConfigError(f"{kind} {name!r} ({type_name}): unknown option"
                          f"{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
                          f"(known: {', '.join(sorted(known))})")


def notice(message: str) -> None:
    """Tell the user something about the run that is not an error, on stderr, once per process
    (annotators are built more than once by some commands)."""
    if message not in _told:
        _told.add(message)
        print(f"notice: {message}", file=sys.stderr)


class ConfigError(ValueError):
    """A configuration the user must fix; the message says what and where."""


class TaskFailed(Exception):
    """Return (not raise) one of these in place of a task's result to fail that task alone."""


def read_texts(tasks: Sequence[Task], key: str
               ) -> tuple[list[str], list[int], list[TaskFailed | None]]:
    """What a text model runs on: the texts under ``key`` in ``tasks``' data, the index of the task
    each came from, and per task its failure when the field holds no text (None where it
    does: the slot the caller fills)."""
    texts, slots, out = [], [], []
    for i, task in enumerate(tasks):
        text = task.data.get(key)
        if isinstance(text, str):
            texts.append(text)
            slots.append(i)
            out.append(None)
        else:
            out.append(TaskFailed(f"{key!r} holds a {type(text).__name__}, not text"))
    return texts, slots, out


@dataclass
class Context:
    """What the host tells an annotator about the run it is part of."""

    base_dir: Path = field(default_factory=Path.cwd)
    """Relative paths in the options are relative to this (the config file's folder)."""
    cache_dir: Path = field(default_factory=lambda: Path.cwd() / ".preannot" / "cache")
    """A folder an annotator may keep caches in (embeddings, compiled rules)."""

    def path(self, value: str | Path) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.base_dir / path


class Annotator:
    """A pre-annotator: reads tasks, emits regions.

    Subclasses set ``type`` (the name used in config files), declare what they read and emit, and
    implement :meth:`annotate`. Options come from the annotator's table in ``preannot.toml``.
    """

    type: ClassVar[str] = ""
    description: ClassVar[str] = ""
    reads: ClassVar[tuple[str, ...]] = ("text",)
    """Keys of the task data this annotator reads (Label Studio's ``$text``, ``$image``...)."""
    emits: ClassVar[tuple[str, ...]] = ("labels",)
    """Label Studio result types: labels, rectanglelabels, brushlabels, polygonlabels, choices."""
    combines: ClassVar[bool] = False
    """A combiner (fusion) merges its upstreams' predictions into one: their own predictions are
    then left out of the output, and it runs with whichever of them are configured."""
    known_options: ClassVar[frozenset[str] | None] = None
    """The options this type takes, beside the common ones (:attr:`COMMON_OPTIONS`): the base
    class refuses any other, naming the known ones. None: options are not checked."""
    COMMON_OPTIONS: ClassVar[frozenset[str]] = frozenset(
        {"after", "field", "from_name", "to_name", "labels", "model_version", "cpus", "gpus"})
    cpus: float = 1.0
    """CPUs one instance keeps busy: what a Ray actor running it asks for (``engine = "ray"``);
    the ``cpus`` option overrides it."""
    gpus: float = 0.0
    """GPUs one instance wants (a fraction shares one), asked of Ray where the cluster has
    GPUs: a plugin that runs a model on CUDA sets 1; the ``gpus`` option overrides it."""

    def __init__(self, name: str, options: Mapping[str, Any] | None = None,
                 context: Context | None = None) -> None:
        self.name = name
        self.options = dict(options or {})
        self.context = context or Context()
        if self.known_options is not None:
            _check_options("annotator", name, self.type, self.options,
                           self.known_options | self.COMMON_OPTIONS)
        self.after: list[str] = upstream_names(self.options.pop("after", []))
        """Names of upstream annotators whose predictions :meth:`annotate` receives."""
        self.field: str = self.options.pop("field", self.reads[0] if self.reads else "text")
        """The key of the task data it reads; a task without it is reported, not annotated."""
        self.from_name: str = self.options.pop("from_name", "label")
        self.to_name: str = self.options.pop("to_name", self.field)
        self.cpus = float(self.options.pop("cpus", self.cpus))
        self.gpus = float(self.options.pop("gpus", self.gpus))

    @property
    def labels(self) -> list[str]:
        """The labels this instance can emit (shown by ``preannot plugins``, used for configs)."""
        return list(self.options.get("labels", []))

    def fingerprint(self) -> str:
        """Changes whenever the output could change; a resumed run redoes tasks on a change.

        The default digests the type and options; annotators that read files (rules, weights)
        extend it with those files' content: ``digest(super().fingerprint(), weights_digest)``.
        """
        return digest(self.type, self.options, self.after)

    @property
    def model_version(self) -> str:
        """What Label Studio shows and samples by: the name plus the fingerprint."""
        return self.options.get("model_version") or f"{self.name}-{self.fingerprint()}"

    def prepare(self) -> None:
        """Build, once, what is slow to build and can be shared through ``context.cache_dir``
        (compiled rules, converted weights): called in the main process before a run starts
        worker processes, so each of them loads the result instead of building it again."""

    def annotate(self, tasks: Sequence[Task],
                 upstream: Mapping[str, Sequence[Prediction]]) -> Sequence[Prediction | list[Region] | TaskFailed]:
        """Annotate a batch. Return one item per task, in order: a :class:`Prediction`, a list of
        regions (wrapped into a prediction for you), or a :class:`TaskFailed` for a task that
        could not be done. ``upstream`` maps each name in ``after`` to its predictions, aligned
        with ``tasks``.
        """
        raise NotImplementedError

    prompts: ClassVar[tuple[str, ...]] = ()
    """Label Studio result types this annotator answers as prompts in the editor (its "smart"
    tools: ``keypointlabels`` clicks, a drawn ``rectanglelabels`` box, a labeled span): what
    :meth:`interact` takes. Empty: not interactive."""

    def interact(self, task: Task, prompts: Sequence[Region]) -> list[Region] | TaskFailed:
        """Answer what a user just drew on one task in Label Studio's editor (interactive
        pre-annotation): ``prompts`` are regions of the types in :attr:`prompts`, in the
        task's units (pixels, characters), a :class:`Point` carrying ``positive``. Return the
        regions to show (e.g. the mask the clicks outline, every other occurrence of a labeled
        span), or a :class:`TaskFailed`. Called by ``preannot serve`` once per request, so keep
        what is slow to compute for one task (an image embedding) cached between calls."""
        raise NotImplementedError(f"annotator type {self.type!r} is not interactive")

    def embed(self, tasks: Sequence[Task]) -> Sequence[Sequence[float] | TaskFailed]:
        """One vector per task, in order (or a :class:`TaskFailed`): what the annotator's model
        sees in it (a spaCy pipeline's document vector, a detector's pooled backbone features),
        for selection, "more like this" and near-duplicates. Every vector of one
        ``model_version`` has the same length; preannot normalises and caches them by task
        content and ``model_version``. Not implemented: the annotator cannot embed."""
        raise NotImplementedError(f"annotator type {self.type!r} cannot embed tasks")


def can_embed(annotator: Annotator) -> bool:
    """Whether the annotator's class implements :meth:`Annotator.embed`."""
    return type(annotator).embed is not Annotator.embed


class Ranker:
    """Orders tasks for humans: a higher priority is looked at first."""

    type: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options = dict(options or {})

    def priority(self, task: Task, predictions: Sequence[Prediction]) -> float:
        """A number in [0, 1]; 1 means look at this first."""
        raise NotImplementedError


@dataclass
class Pool:
    """What a :class:`Selector` chooses from: the unlabeled tasks and what is labeled already.

    ``vectors`` are unit-length rows (numpy float32, one per id), so a dot product is the
    cosine. ``uncertainty`` (0..1, 1 = least sure; None: no predictions) and ``labels`` (the
    labels predicted in each task) are aligned with ``ids``; ``labeled`` holds the labeled
    tasks' vectors and ``labeled_counts`` how often each label was given by humans."""

    ids: list[str]
    vectors: Any
    labeled: Any = None
    uncertainty: Any = None
    labels: list[list[str]] = field(default_factory=list)
    labeled_counts: dict[str, int] = field(default_factory=dict)


class Selector:
    """Chooses a set of tasks for humans, seeing the whole pool at once (a :class:`Ranker`
    scores one task at a time): spread-out tasks, rare labels, uncertain and diverse."""

    type: ClassVar[str] = ""
    description: ClassVar[str] = ""
    known_options: ClassVar[frozenset[str] | None] = None
    """The options this type takes; None: not checked."""

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options = dict(options or {})
        if self.known_options is not None:
            _check_options("selector", self.type, self.type, self.options, self.known_options)

    def select(self, pool: Pool, k: int) -> list[int]:
        """Up to ``k`` indices into ``pool.ids``, the first to label first."""
        raise NotImplementedError


@dataclass
class Example:
    """One human-reviewed task and its human-final regions: what a trainer learns from."""

    task: Task
    regions: list[Region]


def hold_out(examples: Sequence[Example], every: int) -> tuple[list[Example], list[Example]]:
    """(kept, held): one example in ``every`` (at least one) held out for validation, chosen by
    a digest of the task id, so a rerun or a reordered export holds out the same ones. With a
    single example there is nothing to split: it is both."""
    if len(examples) < 2:
        return list(examples), list(examples)
    ranked = sorted(range(len(examples)), key=lambda i: hashlib.blake2b(
        str(examples[i].task.id).encode(), digest_size=8).digest())
    held = set(ranked[:max(1, len(examples) // every)])
    return ([e for i, e in enumerate(examples) if i not in held],
            [e for i, e in enumerate(examples) if i in held])


class Trainer:
    """Turns human-reviewed examples into a new model version.

    A trainer makes models that an annotator type runs: ``annotator`` names that type, whose
    ``model`` option takes the folder or file :meth:`train` returns. Options come from the
    trainer's table in ``preannot.toml``.
    """

    type: ClassVar[str] = ""
    description: ClassVar[str] = ""
    annotator: ClassVar[str] = ""
    """The annotator type that runs the models this trainer makes."""
    learns: ClassVar[tuple[str, ...]] = ("labels",)
    """Label Studio result types it learns from; other human regions are left out."""
    known_options: ClassVar[frozenset[str] | None] = None
    """The options this type takes beside ``field``; None: not checked."""

    def __init__(self, name: str, options: Mapping[str, Any] | None = None,
                 context: Context | None = None) -> None:
        self.name = name
        self.options = dict(options or {})
        self.context = context or Context()
        if self.known_options is not None:
            _check_options("trainer", name, self.type, self.options,
                           self.known_options | {"field"})
        self.field: str = self.options.pop("field", "text")
        """The key of the task data it learns from."""

    def train(self, train: Sequence[Example], dev: Sequence[Example], work_dir: Path, *,
              parent: Path | None = None, log: Callable[[str], None] = print) -> Path:
        """Train on ``train`` (``dev`` is for early stopping, never the gate's evaluation split)
        and return the new model's file or folder, inside ``work_dir``.

        ``parent`` is the current model (fine-tune from it, or ignore it). ``work_dir`` is the
        same for a rerun with the same data, options and parent, so a trainer that checkpoints
        there resumes an interrupted run. ``log`` reports progress to the user.
        """
        raise NotImplementedError
