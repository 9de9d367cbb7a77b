"""The ``spacy-ner`` annotator: a trained spaCy pipeline's entities as Label Studio spans."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from preannot import (Annotator, ConfigError, Prediction, Span, Task, TaskFailed, digest,
                      file_digest)

NER_FACTORIES = {"ner", "beam_ner"}


def folder_digest(folder: Path) -> str:
    """A digest of every file under ``folder`` (relative path and content), so retrained weights
    saved over the same folder still change the model version."""
    return digest([(path.relative_to(folder).as_posix(), file_digest(path))
                   for path in sorted(p for p in folder.rglob("*") if p.is_file())], size=16)


class SpacyNerAnnotator(Annotator):
    type = "spacy-ner"
    description = "Named entities from a trained spaCy pipeline (a model folder or package)"
    reads = ("text",)
    emits = ("labels",)
    known_options = frozenset({"model", "score", "batch_size"})

    def __init__(self, name: str, options: Mapping[str, Any] | None = None, context=None) -> None:
        super().__init__(name, options, context)
        opts = self.options
        where = f"annotator {name!r} (spacy-ner)"
        if "model" not in opts:
            raise ConfigError(f"{where}: set 'model' to a spaCy model folder (e.g. the "
                              "model-best folder a spacy-ner trainer made) or an installed "
                              "spaCy package name")
        score = opts.get("score")
        if score is not None and not (isinstance(score, (int, float)) and 0 <= score <= 1):
            raise ConfigError(f"{where}: 'score' must be a number in [0, 1], not {score!r}")
        self.score = None if score is None else float(score)
        self.batch_size = int(opts.get("batch_size", 64))
        self.nlp, self.model_ref, self.weights_digest = self._load(str(opts["model"]), where)
        ner = [pipe for pipe_name, pipe in self.nlp.pipeline
               if self.nlp.get_pipe_meta(pipe_name).factory in NER_FACTORIES]
        if not ner:
            raise ConfigError(f"{where}: model {opts['model']!r} has no 'ner' component "
                              f"(its pipeline: {self.nlp.pipe_names})")
        model_labels = sorted({label for pipe in ner for label in pipe.labels})
        wanted = opts.get("labels")
        if wanted is not None:
            if isinstance(wanted, str) or not all(isinstance(x, str) for x in wanted):
                raise ConfigError(f"{where}: 'labels' must be a list of label names")
            if missing := set(wanted) - set(model_labels):
                raise ConfigError(f"{where}: 'labels' lists {sorted(missing)}, which the model "
                                  f"does not predict (it has {model_labels})")
        self.keep = None if wanted is None else set(wanted)
        self._labels = [x for x in model_labels if self.keep is None or x in self.keep]

    def _load(self, model: str, where: str):
        """A folder (relative to the config file) wins over a package of the same name."""
        import spacy

        local = self.context.path(model)
        try:
            if local.is_dir():
                nlp = spacy.load(local)
                return nlp, str(local), folder_digest(local)
            nlp = spacy.load(model)
        except Exception as exc:  # spaCy raises OSError, ValueError, KeyError... on bad models
            hint = (f"no folder {local} and no installed spaCy package named {model!r}: point "
                    "'model' at a model folder (relative to the config file) or "
                    f"`pip install` the package" if not local.exists()
                    else "it is not a spaCy pipeline folder (it needs config.cfg and meta.json, "
                    "as `nlp.to_disk` or `spacy train` write them)")
            raise ConfigError(f"{where}: cannot load spaCy model {model!r}: {hint} "
                              f"({type(exc).__name__}: {exc})") from exc
        meta = nlp.meta
        try:
            package = metadata.version(model)
        except metadata.PackageNotFoundError:
            package = ""
        return nlp, model, digest(model, meta.get("name"), meta.get("version"), package, size=16)

    @property
    def labels(self) -> list[str]:
        return list(self._labels)

    def fingerprint(self) -> str:
        return digest(super().fingerprint(), self.weights_digest)

    def annotate(self, tasks: Sequence[Task], upstream: Mapping[str, Sequence[Prediction]]):
        results: list[list[Span] | TaskFailed | None] = [None] * len(tasks)
        texts, slots = [], []
        for i, task in enumerate(tasks):
            text = task.data.get(self.field)
            if isinstance(text, str):
                texts.append(text)
                slots.append(i)
            else:
                results[i] = TaskFailed(f"{self.field!r} holds a {type(text).__name__}, not text")
        for i, doc in zip(slots, self.nlp.pipe(texts, batch_size=self.batch_size)):
            results[i] = [
                Span(start=ent.start_char, end=ent.end_char, text=ent.text, label=ent.label_,
                     score=self.score, provenance={"model": self.model_ref})
                for ent in doc.ents if self.keep is None or ent.label_ in self.keep]
        return results
