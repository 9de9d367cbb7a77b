"""Dictionary matching that finds exactly the spans spaCy's EntityRuler finds, several times faster.

spaCy's PhraseMatcher compares token sequences, and tokenizing every text is most of its cost.
Here an Aho-Corasick automaton (pyahocorasick) finds candidate strings in the (normalised) text,
and spaCy's own tokenizer is consulted only where it could disagree:

* spaCy splits text on whitespace first and tokenizes each non-space chunk on its own, so a
  candidate that starts and ends at whitespace (or the text's ends, or behind punctuation the
  tokenizer always cuts off, such as brackets and commas) and equals, character for character,
  a key whose tokens were checked at build time has exactly the term's tokens;
* a candidate that starts or ends between two letters of a word is no match, unless the word
  is a tokenizer exception that cuts there ("cannot", "don't");
* any other candidate is checked against the tokens of the chunks it touches (``nlp.tokenizer``
  on those chunks only, cached), as the PhraseMatcher would see them.

Keys include the term's spacing variants ("wi-fi", "wi - fi"...) because the PhraseMatcher
ignores whitespace between tokens. A text whose lower-casing changes its length is matched by
spaCy's own PhraseMatcher, so no shortcut ever changes the result.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache

import ahocorasick

OPENERS = '([{"'
CLOSERS = ',;!?)]}"'
"""Punctuation spaCy's tokenizer always cuts off a chunk's start or end (prefixes, suffixes)."""
WORD_MARKS = "'’."
QUOTES = "'’"
MAX_VARIANT_GAPS = 4
"""Terms with more joins between tokens than this match with their own spacing only."""


class _AccentFold(dict):
    """A ``str.translate`` table that drops accents, one character for one character."""

    def __missing__(self, code: int) -> int:
        stripped = "".join(c for c in unicodedata.normalize("NFD", chr(code))
                           if not unicodedata.combining(c))
        self[code] = ord(stripped) if len(stripped) == 1 else code
        return self[code]


_FOLD = _AccentFold()


def normaliser(case: str, accents: str) -> Callable[[str], str]:
    """A length-preserving normalisation for one (case, accents) setting."""
    lower = case == "insensitive"
    fold = accents == "fold"
    if lower and fold:
        return lambda s: s.lower().translate(_FOLD)
    if lower:
        return str.lower
    if fold:
        return lambda s: s.translate(_FOLD)
    return lambda s: s


@dataclass(frozen=True)
class Entry:
    term: int
    """Index of the term in the caller's list."""
    raw: str
    """The spelling (with this spacing) that the key was made from."""
    tokens: int


class Dictionary:
    """All terms that share one normalisation, compiled into one automaton."""

    def __init__(self, nlp, terms: list[tuple[int, str]], case: str, accents: str) -> None:
        self.nlp = nlp
        self.norm = normaliser(case, accents)
        self.case = case
        self.automaton = ahocorasick.Automaton()
        self.patterns: dict[int, tuple[str, ...]] = {}
        self._fallback = None
        self._terms = terms
        keys: dict[str, list[Entry]] = {}
        for index, text in terms:
            doc = nlp.make_doc(text)
            tokens = tuple(self.norm(t.text) for t in doc)
            if not tokens:
                continue
            self.patterns[index] = tokens
            for raw in self._variants(doc):
                keys.setdefault(self.norm(raw), []).append(Entry(index, raw, len(tokens)))
        for key, entries in keys.items():
            self.automaton.add_word(key, (len(key), tuple(entries)))
        if keys:
            self.automaton.make_automaton()
        self.exceptions = frozenset(nlp.tokenizer.rules or ())
        punct = sorted((k for k in self.exceptions if set(k) & set(OPENERS + CLOSERS)),
                       key=len, reverse=True)
        self.punct_exceptions = re.compile("|".join(map(re.escape, punct))) if punct else None
        self.letter_splits = frozenset(k for k in self.exceptions if self._cuts_between_letters(k))
        """Exceptions that cut between two letters ("cannot", "don't"): the only cuts there,
        since prefix, suffix and infix rules cut next to a non-letter (the equivalence test
        checks this against spaCy)."""
        self.chunk_tokens = lru_cache(maxsize=200_000)(self._chunk_tokens)

    def _cuts_between_letters(self, text: str) -> bool:
        cuts = [t.idx for t in self.nlp.make_doc(text)][1:]
        return any(text[i - 1].isalpha() and text[i].isalpha() for i in cuts)

    def _opens_chunk(self, text: str, start: int) -> bool:
        """``start`` begins a chunk, after nothing but punctuation spaCy always cuts off."""
        left = start
        while left > 0 and text[left - 1] in OPENERS:
            left -= 1
        if left > 0 and not text[left - 1].isspace():
            return False
        return left == start or not self._has_punct_exception(text, left)

    def _closes_chunk(self, text: str, end: int) -> bool:
        right = end
        while right < len(text) and text[right] in CLOSERS:
            right += 1
        if right < len(text) and not text[right].isspace():
            return False
        return right == end or not self._has_punct_exception(text, end, right)

    def _has_punct_exception(self, text: str, at: int, right: int | None = None) -> bool:
        """Whether the chunk around ``at`` holds an exception made of punctuation ("8)", ":(")."""
        if self.punct_exceptions is None:
            return False
        left = at
        while left > 0 and not text[left - 1].isspace():
            left -= 1
        right = at if right is None else right
        while right < len(text) and not text[right].isspace():
            right += 1
        return self.punct_exceptions.search(text, left, right) is not None

    def _inside_word(self, text: str, cut: int) -> bool:
        """True if ``cut`` falls between two letters of a word no exception splits there."""
        if not (0 < cut < len(text) and text[cut - 1].isalpha() and text[cut].isalpha()):
            return False
        left, right = cut - 1, cut
        while left > 0 and (text[left - 1].isalpha() or text[left - 1] in WORD_MARKS):
            left -= 1
        while right < len(text) and (text[right].isalpha() or text[right] in WORD_MARKS):
            right += 1
        word = text[left:right]
        return not any(w in self.letter_splits for w in
                       {word, word.rstrip("."), word.strip(QUOTES), word.strip(QUOTES + ".")})

    def _variants(self, doc) -> Iterator[str]:
        """Spellings with the same tokens as ``doc``: each join between tokens with or without
        a space (checked by tokenizing, as spaCy would tokenize the text)."""
        texts = [t.text for t in doc]
        original = doc.text
        yield original
        gaps = len(texts) - 1
        if gaps == 0 or gaps > MAX_VARIANT_GAPS:
            return
        want = tuple(self.norm(t) for t in texts)
        for spaces in itertools.product(("", " "), repeat=gaps):
            raw = texts[0] + "".join(s + t for s, t in zip(spaces, texts[1:]))
            if raw != original and tuple(self.norm(t.text) for t in self.nlp.make_doc(raw)) == want:
                yield raw

    def _chunk_tokens(self, chunk: str) -> tuple[tuple[int, int], ...]:
        """Token offsets within one whitespace-free chunk, as spaCy's tokenizer cuts it.

        A chunk of letters only is one token unless it is a tokenizer exception ("cannot"):
        prefix, suffix and infix rules all need a non-letter character to cut at.
        """
        if chunk.isalpha() and chunk not in self.exceptions:
            return ((0, len(chunk)),)
        return tuple((t.idx, t.idx + len(t.text)) for t in self.nlp.tokenizer(chunk))

    def _tokens_between(self, text: str, start: int, end: int) -> list[tuple[int, int]] | None:
        """Tokens covering [start, end) if both ends are token boundaries, else None."""
        left = start
        while left > 0 and not text[left - 1].isspace():
            left -= 1
        right = end
        while right < len(text) and not text[right].isspace():
            right += 1
        tokens: list[tuple[int, int]] = []
        offset = left
        for chunk in text[left:right].split(" "):
            tokens.extend((offset + a, offset + b) for a, b in self.chunk_tokens(chunk))
            offset += len(chunk) + 1
        starts = [a for a, _ in tokens]
        if start not in starts:
            return None
        inside = tokens[starts.index(start):]
        for i, (_, b) in enumerate(inside):
            if b == end:
                return inside[:i + 1]
            if b > end:
                return None
        return None

    def matches(self, text: str) -> Iterator[tuple[int, int, int, int]]:
        """(start, end, term index, token count) of every term occurrence spaCy would match."""
        if not self.patterns:
            return
        normed = self.norm(text)
        if len(normed) != len(text):
            yield from self._spacy_matches(text)
            return
        n = len(text)
        for last, (length, entries) in self.automaton.iter(normed):
            end = last + 1
            start = end - length
            bounded = self._opens_chunk(text, start) and self._closes_chunk(text, end)
            if not bounded and (self._inside_word(text, start) or self._inside_word(text, end)):
                continue
            raw = text[start:end]
            tokens = None
            for entry in entries:
                if bounded and raw == entry.raw:
                    yield start, end, entry.term, entry.tokens
                    continue
                if tokens is None:
                    tokens = self._tokens_between(text, start, end) or []
                if tokens and tuple(self.norm(text[a:b]) for a, b in tokens) == self.patterns[entry.term]:
                    yield start, end, entry.term, len(tokens)

    def _spacy_matches(self, text: str) -> Iterator[tuple[int, int, int, int]]:
        """The exact answer from spaCy's PhraseMatcher, for the rare texts normalisation can't
        map character for character (built on first use)."""
        from spacy.matcher import PhraseMatcher

        if self._fallback is None:
            attr = "LOWER" if self.case == "insensitive" else "ORTH"
            self._fallback = PhraseMatcher(self.nlp.vocab, attr=attr)
            for index, term in self._terms:
                if index in self.patterns:
                    self._fallback.add(str(index), [self.nlp.make_doc(term)])
        doc = self.nlp.make_doc(text)
        for match_id, start, end in self._fallback(doc):
            span = doc[start:end]
            yield span.start_char, span.end_char, int(self.nlp.vocab.strings[match_id]), end - start
