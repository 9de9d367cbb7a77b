"""The ``rules`` annotator: dictionaries, spaCy token patterns and regexes, one span per place."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property, lru_cache
from typing import Any

from preannot import Annotator, ConfigError, Prediction, Region, Span, Task, TaskFailed, digest

from .dictionary import Dictionary
from .rules import RuleSet, load_rules


class RulesAnnotator(Annotator):
    type = "rules"
    description = "Dictionary and business-rule NER: referentials, spaCy patterns, regexes"
    reads = ("text",)
    emits = ("labels",)
    prompts = ("labels",)
    known_options = frozenset({"rules", "language"})

    def __init__(self, name: str, options: Mapping[str, Any] | None = None, context=None) -> None:
        super().__init__(name, options, context)
        if "rules" not in self.options:
            raise ConfigError(f"annotator {name!r} (rules): set 'rules' to a rules folder")
        import spacy

        self.rules: RuleSet = load_rules(self.context.path(self.options["rules"]))
        self.nlp = spacy.blank(self.options.get("language", "en"))
        self.matcher = None
        if self.rules.token_patterns:
            from spacy.matcher import Matcher

            self.matcher = Matcher(self.nlp.vocab)
            for index, rule in enumerate(self.rules.token_patterns):
                try:
                    self.matcher.add(str(index), [rule.pattern])
                except (ValueError, KeyError) as exc:
                    where = f"{rule.provenance['rule_file']} rule {rule.provenance['rule']}"
                    raise ConfigError(f"{where}: invalid spaCy token pattern: {exc}") from None
        self.phrase = lru_cache(maxsize=256)(self._phrase)
        """The one-term dictionary of a phrase a user labeled (~0.1 s to build), kept for the
        next prompt on the same phrase."""

    @cached_property
    def dictionaries(self) -> list[Dictionary]:
        """The compiled dictionaries (seconds for a large referential): on first use, from the
        cache folder when another process or an earlier run compiled the same terms."""
        groups: dict[tuple[str, str], list[tuple[int, str]]] = {}
        for index, term in enumerate(self.rules.terms):
            groups.setdefault((term.case, term.accents), []).append((index, term.text))
        cache = self.context.cache_dir / "dictionaries"
        return [Dictionary(self.nlp, terms, case, accents, cache)
                for (case, accents), terms in sorted(groups.items())]

    def prepare(self) -> None:
        """Compile the dictionaries once, into the cache folder the workers load them from."""
        self.dictionaries  # noqa: B018 (the cached property compiles and stores them)

    @property
    def labels(self) -> list[str]:
        return self.rules.labels

    def fingerprint(self) -> str:
        return digest(super().fingerprint(), self.rules.digest, self.nlp.meta["lang"])

    def candidates(self, text: str) -> list[tuple[int, int, int, int, str, float, dict]]:
        """Every rule hit: (start, end, token count, priority, label, confidence, provenance)."""
        found = []
        for dictionary in self.dictionaries:
            for start, end, index, ntok in dictionary.matches(text):
                term = self.rules.terms[index]
                found.append((start, end, ntok, term.priority, term.label, term.confidence,
                              term.provenance))
        if self.matcher is not None:
            doc = self.nlp.make_doc(text)
            for match_id, s, e in self.matcher(doc):
                rule = self.rules.token_patterns[int(self.nlp.vocab.strings[match_id])]
                span = doc[s:e]
                found.append((span.start_char, span.end_char, e - s, rule.priority, rule.label,
                              rule.confidence, rule.provenance))
        for rule in self.rules.regexes:
            for m in rule.regex.finditer(text):
                start, end = m.span(rule.group)
                if end > start:
                    found.append((start, end, self._token_count(text, start, end), rule.priority,
                                  rule.label, rule.confidence, rule.provenance))
        return found

    def _token_count(self, text: str, start: int, end: int) -> int:
        return len(self.nlp.tokenizer(text[start:end]))

    def spans(self, text: str) -> list[Span]:
        """Resolve overlaps: longest match in tokens, then higher priority, then leftmost, then
        label (so equal candidates resolve the same way every time)."""
        taken = bytearray(len(text))
        kept = []
        for start, end, _, _, label, confidence, provenance in sorted(
                self.candidates(text), key=lambda c: (-c[2], -c[3], c[0], c[1], c[4])):
            if not any(taken[start:end]):
                taken[start:end] = b"\1" * (end - start)
                kept.append(Span(label=label, start=start, end=end, text=text[start:end],
                                 score=confidence, provenance=dict(provenance)))
        return sorted(kept, key=lambda s: s.start)

    def annotate(self, tasks: Sequence[Task], upstream: Mapping[str, Sequence[Prediction]]):
        return [self.spans(text) if isinstance(text := task.data[self.field], str)
                else TaskFailed(f"{self.field!r} holds a {type(text).__name__}, not text")
                for task in tasks]

    def matching(self, label: str) -> tuple[str, str]:
        """(case, accents) for finding copies of a span labeled ``label``: the settings of
        that label's dictionary terms when they all share one, else the rules folder's."""
        settings = {(t.case, t.accents) for t in self.rules.terms if t.label == label}
        if len(settings) == 1:
            return settings.pop()
        return self.rules.defaults["case"], self.rules.defaults["accents"]

    def _phrase(self, phrase: str, case: str, accents: str) -> Dictionary:
        return Dictionary(self.nlp, [(0, phrase)], case, accents)

    def interact(self, task: Task, prompts: Sequence[Region]) -> list[Span] | TaskFailed:
        """Label one, get all: for each span the user labeled, every other occurrence of its
        text in the task, with its label.

        Occurrences are found as the dictionaries find terms (spaCy token boundaries, so
        "art" is not found in "party"), with the case and accent settings of the label's
        rules (:meth:`matching`); none overlaps a prompt or another occurrence (the first
        prompt wins). Score 1.0: the text is the very text a person just labeled, so the
        only doubt left (a homonym) is theirs to judge in the editor, as with their own
        label. Provenance ``prompt`` holds the prompt's id and offsets. Only these spans
        are returned; ``preannot serve`` adds the pipeline's own.
        """
        text = task.data.get(self.field)
        if not isinstance(text, str):
            return TaskFailed(f"{self.field!r} holds a {type(text).__name__}, not text")
        spans = [p for p in prompts if isinstance(p, Span)]
        for span in spans:
            if not 0 <= span.start < span.end <= len(text):
                return TaskFailed(f"labeled span {span.start}-{span.end} ({span.label!r}) lies "
                                  f"outside the task's {len(text)}-character {self.field!r}")
        taken = bytearray(len(text))
        for span in spans:
            taken[span.start:span.end] = b"\1" * (span.end - span.start)
        found = []
        for span in spans:
            piece = text[span.start:span.end]
            phrase = piece.strip()  # the editor's selections often take a space along
            if not phrase:
                continue
            for start, end, _, _ in self.phrase(phrase, *self.matching(span.label)).matches(text):
                if any(taken[start:end]):
                    continue
                taken[start:end] = b"\1" * (end - start)
                found.append(Span(label=span.label, start=start, end=end, text=text[start:end],
                                  score=1.0, provenance={"prompt": {
                                      "id": span.id, "start": span.start, "end": span.end}}))
        return sorted(found, key=lambda s: s.start)
