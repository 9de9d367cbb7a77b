"""The ``spacy-ner`` annotator: a trained spaCy pipeline's entities as Label Studio spans.

Each entity's score is its marginal probability under a beam search of the pipeline's
transition-based ``ner`` component (see :meth:`SpacyNerAnnotator.beam_parses`), unless the
``score`` option fixes one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from preannot import (Annotator, ConfigError, Prediction, Span, Task, TaskFailed, digest,
                      file_digest, read_texts)

NER_FACTORIES = {"ner", "beam_ner"}


def folder_digest(folder: Path) -> str:
    """A digest of every file under ``folder`` (relative path and content), so retrained weights
    saved over the same folder still change the model version."""
    return digest([(path.relative_to(folder).as_posix(), file_digest(path))
                   for path in sorted(p for p in folder.rglob("*") if p.is_file())], size=16)


class SpacyNerAnnotator(Annotator):
    """The entities of the pipeline's normal (greedy) pass, ``doc.ents``, as spans.

    Scores: an entity that a transition-based NER component (spaCy's ``ner`` or ``beam_ner``)
    added is scored by its marginal probability in a beam search of that component with
    ``beam_width`` parses (:meth:`beam_parses`); the beam only scores, it never changes the
    regions. An entity of the greedy pass that no parse of the beam holds scores 0.0. An entity
    that another component set (an ``entity_ruler``, before or after the NER) has score None: no
    model scored it. The ``score`` option gives a fixed score instead of the beam confidence (and
    skips the beam).

    The prediction's own score (the task's) is the beam's probability that the whole entity set
    is right: the share of the beam's parses holding exactly the greedy pass's entities (of the
    kept labels), multiplied over the NER components. It falls when the beam also considers an
    entity the greedy pass left out, which no entity's score can show: what a calibrator needs
    to tell a task the model is sure of from one where it may have missed something.
    """

    type = "spacy-ner"
    description = "Named entities from a trained spaCy pipeline (a model folder or package)"
    reads = ("text",)
    emits = ("labels",)
    known_options = frozenset({"model", "score", "batch_size", "beam_width"})

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
        """A fixed score instead of the beam confidence (None: the beam confidence)."""
        beam_width = opts.get("beam_width", 8)
        if isinstance(beam_width, bool) or not isinstance(beam_width, int) or beam_width < 2:
            raise ConfigError(f"{where}: 'beam_width' must be a whole number >= 2 (the number of "
                              f"candidate parses the confidence beam keeps), not {beam_width!r}")
        self.beam_width = beam_width
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
        from spacy.pipeline import EntityRecognizer

        self._beamed = [] if self.score is not None else [
            pipe for pipe in ner if isinstance(pipe, EntityRecognizer)]
        """The transition-based NER components whose beam scores the entities they add."""

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
        if not self._beamed:  # fixed (or no) scores: the version these configs always had
            return digest(super().fingerprint(), self.weights_digest)
        return digest(super().fingerprint(), self.weights_digest, "beam-marginal",
                      self.beam_width)

    def beam_parses(self, ner, docs) -> list[list[tuple[float, frozenset]]]:
        """Per doc, the final parses of ``ner``'s beam search (``beam_width`` wide) on ``docs``
        (as the pipeline hands them to ``ner``): ``(probability, {(start token, end token,
        label)})``, the probabilities (``ner.moves.get_beam_parses``, a softmax of the parses'
        scores) divided by the beam's total; an empty doc or beam has none."""
        out: list[list[tuple[float, frozenset]]] = [[] for _ in docs]
        todo = [i for i, doc in enumerate(docs) if len(doc)]
        if not todo:
            return out
        beams = ner.beam_parse([docs[i] for i in todo], beam_width=self.beam_width)
        for i, beam in zip(todo, beams):
            parses = ner.moves.get_beam_parses(beam)
            total = sum(prob for prob, _ in parses)
            if total > 0:
                out[i] = [(prob / total, frozenset(ents)) for prob, ents in parses]
        return out

    def _parse(self, texts: list[str]) -> list[tuple[Any, dict[tuple[int, int, str], float], float]]:
        """The pipeline's normal (greedy) docs for ``texts``, each with the beam marginals of
        the entities a transition-based NER component added to it (the summed probabilities of
        the parses holding exactly that span and label; 0.0 in none), and the probability that
        the whole set is right. The components run one after the other on each batch of
        ``batch_size`` texts, as ``nlp.pipe`` runs them, so that the beam of each NER component
        sees the same input as its greedy pass (entities already set constrain the beam)."""
        kept = (lambda ents: frozenset(ents)) if self.keep is None else (
            lambda ents: frozenset(e for e in ents if e[2] in self.keep))
        out = []
        for first in range(0, len(texts), self.batch_size):
            docs = [self.nlp.make_doc(text) for text in texts[first:first + self.batch_size]]
            scores: list[dict[tuple[int, int, str], float]] = [{} for _ in docs]
            whole = [1.0] * len(docs)
            for _, proc in self.nlp.pipeline:
                beamed = any(proc is pipe for pipe in self._beamed)
                if beamed:
                    beams = self.beam_parses(proc, docs)
                    before = [{(e.start, e.end, e.label_) for e in doc.ents} for doc in docs]
                if hasattr(proc, "pipe"):
                    docs = list(proc.pipe(docs, batch_size=self.batch_size))
                else:
                    docs = [proc(doc) for doc in docs]
                if not beamed:
                    continue
                for j, (doc, had, parses) in enumerate(zip(docs, before, beams)):
                    added = {(e.start, e.end, e.label_) for e in doc.ents} - had
                    for key in added:
                        scores[j][key] = sum(prob for prob, ents in parses if key in ents)
                    if parses:
                        greedy = kept(added)
                        whole[j] *= sum(prob for prob, ents in parses
                                        if kept(ents - had) == greedy)
            out.extend(zip(docs, scores, whole))
        return out

    def annotate(self, tasks: Sequence[Task], upstream: Mapping[str, Sequence[Prediction]]):
        texts, slots, failed = read_texts(tasks, self.field)
        results: list[list[Span] | Prediction | TaskFailed | None] = list(failed)
        if self._beamed:
            parsed = self._parse(texts)
        else:
            parsed = [(doc, None, None) for doc in self.nlp.pipe(texts, batch_size=self.batch_size)]
        version = self.model_version if self._beamed else None
        for i, (doc, scores, whole) in zip(slots, parsed):
            spans = [
                Span(start=ent.start_char, end=ent.end_char, text=ent.text, label=ent.label_,
                     score=self.score if scores is None
                     else scores.get((ent.start, ent.end, ent.label_)),
                     provenance={"model": self.model_ref})
                for ent in doc.ents if self.keep is None or ent.label_ in self.keep]
            results[i] = spans if whole is None else Prediction(
                tasks[i].id, self.name, version, spans, score=whole)
        return results

    def embed(self, tasks: Sequence[Task]) -> list[list[float] | TaskFailed]:
        """The pipeline's own view of each text: its word vectors' mean (``doc.vector``) when
        it has word vectors, else the mean of its ``tok2vec`` output (``doc.tensor``), which a
        trained ``spacy-ner`` model has. An empty text is a zero vector."""
        texts, slots, failed = read_texts(tasks, self.field)
        out: list[Any] = list(failed)
        vectors = self.nlp.vocab.vectors
        use_vectors = bool(vectors.shape[0] and vectors.shape[1])
        width = None
        for i, doc in zip(slots, self.nlp.pipe(texts, batch_size=self.batch_size)):
            if use_vectors:
                out[i] = doc.vector.tolist()
            elif getattr(doc, "tensor", None) is not None and doc.tensor.ndim == 2 \
                    and doc.tensor.shape[1]:
                width = doc.tensor.shape[1]
                out[i] = (doc.tensor.mean(axis=0).tolist() if len(doc)
                          else [0.0] * doc.tensor.shape[1])
            else:
                out[i] = TaskFailed(f"model {self.model_ref!r} has neither word vectors nor a "
                                    "tok2vec component whose output could embed the text")
        if width:  # an empty doc may come without a tensor of the right width
            out = [[0.0] * width if isinstance(v, list) and not v else v for v in out]
        return out
