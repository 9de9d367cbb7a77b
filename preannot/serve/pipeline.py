"""The pipeline a backend serves, loaded once and swapped whole when a model is promoted, and
what it answers to Label Studio: one prediction per task, and interactive answers to prompts.

Plain functions over plain data (no HTTP here): the HTTP app, a benchmark or a test calls them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..annotator import Annotator, Ranker, TaskFailed, digest
from ..engine.config import RunConfig
from ..engine.host import Host
from ..engine.runner import annotate, as_prediction, configured_annotators, resolve_specs
from ..evaluation.match import iou
from ..labelstudio.labeling_config import Fit, fit
from ..labelstudio.push import prepare
from ..labelstudio import sync
from ..lsjson import ls_to_task, prediction_to_ls, region_to_result
from ..model import Region, Span, Task
from .request import BadRequest

Log = Callable[[str], None]

@dataclass
class Pipeline:
    """The annotators built from the config, with their combined ``model_version``."""

    annotators: list[Annotator]
    version: str
    key: str
    """A digest of the resolved annotator specs: another key means another model version."""
    ranker: Ranker | None
    lock: threading.Lock = field(default_factory=threading.Lock)
    """One batch at a time through the annotators (not every model is safe to share)."""
    fitting: dict[str, Fit] = field(default_factory=dict)
    """Labeling config digest -> how it fits the annotators (checked once each)."""

    def fit(self, label_config: str | None, log: Log) -> Fit:
        """How a project's labeling config fits the annotators (no config: all of it); refused
        when it cannot show their predictions; the labels it lacks are logged once."""
        if not label_config:
            return Fit()
        key = digest(label_config)
        if key not in self.fitting:
            self.fitting[key] = fit(label_config, self.annotators)
            if self.fitting[key].note and not self.fitting[key].problems:
                log(self.fitting[key].note)
        found = self.fitting[key]
        if found.problems:
            raise BadRequest("the project's labeling config does not fit the served annotators: "
                             + "; ".join(found.problems))
        return found


def specs_key(config: RunConfig, host: Host) -> str:
    """What identifies the pipeline as configured now (``registry:`` models resolved to their
    current versions): cheap, so it can be asked every second."""
    specs, _ = resolve_specs(config.annotators, host, sync.models(config))
    return digest(specs)


def load(config: RunConfig, host: Host) -> Pipeline:
    """Build the configured annotators once (models loaded now, not per request)."""
    if not config.annotators:
        raise BadRequest("no annotators to serve: add [[annotators]] to preannot.toml")
    specs, built = configured_annotators(config, host, sync.models(config))
    return Pipeline(built, sync.pipeline_version(config, built) or "", digest(specs),
                    host.ranker(config.ranking))


def empty(version: str) -> dict[str, Any]:
    """The answer for a task that could not be annotated: Label Studio then keeps an empty
    prediction of this version and does not ask again for it."""
    return {"result": [], "score": 0.0, "model_version": version}


def predict(pipeline: Pipeline, items: Sequence[Any], fits: Fit, log: Log
            ) -> list[dict[str, Any]]:
    """One Label Studio prediction per task, in order (the batch runner's own annotation and
    the push's own prediction format), without the labels the project lacks (``fits``). A task
    that cannot be read or annotated gets an empty prediction and a logged reason; the others
    are not affected."""
    answers: list[dict[str, Any] | None] = [None] * len(items)
    tasks: list[tuple[int, Task]] = []
    for index, item in enumerate(items):
        try:
            tasks.append((index, ls_to_task(item, source=_name(item, index))))
        except (ValueError, AttributeError, TypeError) as exc:
            log(f"{_name(item, index)}: not predicted: {exc}")
            answers[index] = empty(pipeline.version)
    with pipeline.lock:
        done = annotate(pipeline.annotators, [task for _, task in tasks])
    for (index, task), item in zip(tasks, done):
        if item.failure is not None:
            log(f"{task.source}: not predicted: {' '.join(item.failure).strip()}")
            answers[index] = empty(pipeline.version)
            continue
        predictions = fits.predictions(item.predictions)
        ready = prepare(task, [prediction_to_ls(p) for p in predictions],
                        lambda predictions=predictions: predictions, pipeline.version,
                        pipeline.ranker)
        if isinstance(ready, str):
            log(f"{task.source}: not predicted: {ready}")
            answers[index] = empty(pipeline.version)
        else:
            answers[index] = ready.prediction
    return answers  # type: ignore[return-value]


def interact(pipeline: Pipeline, item: Any, prompts: list[Region], fits: Fit, log: Log
             ) -> dict[str, Any]:
    """The answer to what a user just drew in the editor (``prompts``): each interactive
    annotator answers the prompts of the types it takes (a click or a box: SAM's mask); for a
    labeled span, also the pipeline's own spans that overlap nothing the user labeled ("label
    one, get all"); none of a label the project lacks (``fits``)."""
    try:
        task = ls_to_task(item, source=_name(item, 0))
    except (ValueError, AttributeError, TypeError) as exc:
        raise BadRequest(f"the task is not a Label Studio task: {exc}") from None
    regions: list[Region] = []
    for annotator in pipeline.annotators:
        mine = [p for p in prompts if p.type in annotator.prompts
                and p.to_name in (None, annotator.to_name)]
        if not mine or annotator.field not in task.data:
            continue
        try:
            with pipeline.lock:
                answer = as_prediction(annotator.interact(task, mine), task, annotator)
        except Exception as exc:  # one annotator's bug fails its own answer only
            answer = TaskFailed(f"annotator {annotator.name!r} raised {type(exc).__name__}",
                                str(exc))
        if isinstance(answer, TaskFailed):
            log(f"{task.source}: {' '.join(map(str, answer.args))}")
            continue
        # two annotators may give the same answer (two rule sets matching the same text)
        regions.extend(r for r in answer.regions
                       if not any(iou(r, kept) == 1.0 and r.label == kept.label
                                  for kept in regions))
    spans = [p for p in prompts if p.type == Span.type]
    if spans:
        taken = spans + regions
        with pipeline.lock:
            [done] = annotate(pipeline.annotators, [task])
        regions.extend(r for p in done.predictions for r in p.regions
                       if not any(iou(r, t) > 0 for t in taken if t.type == Span.type))
    regions = [r for r in regions if fits.keeps(r.from_name, [r.label])]
    scores = [r.score for r in regions if r.score is not None]
    answer = {"result": [region_to_result(r) for r in regions], "model_version": pipeline.version}
    if scores:
        answer["score"] = min(scores)
    return answer


def _name(item: Any, index: int) -> str:
    task_id = item.get("id") if isinstance(item, dict) else None
    return f"task {task_id}" if task_id is not None else f"task #{index + 1} of the request"
