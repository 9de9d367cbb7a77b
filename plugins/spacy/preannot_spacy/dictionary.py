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
import os
import pickle
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import ahocorasick

from preannot import digest, file_digest

OPENERS = '([{"'
CLOSERS = ',;!?)]}"'
"""Punctuation spaCy's tokenizer always cuts off a chunk's start or end (prefixes, suffixes)."""
WORD_MARKS = "'’."
QUOTES = "'’"
MAX_FREE_JOINS = 6
"""Terms with more joins that may be written with or without a space match with their own
spacing only (2**6 spellings at most per term)."""


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


def _straddling_specials(tokenizer) -> tuple[frozenset[tuple[str, str]], int]:
    """The (last character, first character) pairs of consecutive tokens inside the special
    cases spaCy matches over several tokens, and the most chunks such a case can span."""
    from spacy.tokenizer import Tokenizer

    plain = Tokenizer(tokenizer.vocab, rules={}, prefix_search=tokenizer.prefix_search,
                      suffix_search=tokenizer.suffix_search,
                      infix_finditer=tokenizer.infix_finditer, token_match=tokenizer.token_match,
                      url_match=tokenizer.url_match)
    joins, longest = set(), 1
    for special in tokenizer.rules or ():
        pieces = [t.text for t in plain(special)]
        longest = max(longest, len(pieces))
        joins.update((a[-1], b[0]) for a, b in zip(pieces, pieces[1:]) if a.strip() and b.strip())
    return frozenset(joins), longest - 1


def _chunk_bounds(text: str, start: int, end: int) -> tuple[int, int]:
    """The whitespace-free stretch of ``text`` around [start, end)."""
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    while end < len(text) and not text[end].isspace():
        end += 1
    return start, end


@dataclass(frozen=True)
class Entry:
    term: int
    """Index of the term in the caller's list."""
    raw: str | None
    """The spelling (with this spacing) the key was made from, if spaCy cuts it alone into the
    term's tokens; None for a spacing that can only match inside a longer chunk ("HP /" written
    "HP/FOO" is cut "HP", "/", "FOO", but "HP/" alone is one token): always checked in place."""
    tokens: int


class Dictionary:
    """All terms that share one normalisation, compiled into one automaton."""

    def __init__(self, nlp, terms: list[tuple[int, str]], case: str, accents: str,
                 cache: Path | None = None) -> None:
        """``cache``: a folder where the compiled automaton is kept, keyed by the terms, the
        normalisation and the tokenizer, so other processes (a run's workers) and later runs
        load it instead of compiling again."""
        self.nlp = nlp
        self.norm = normaliser(case, accents)
        self.case = case
        self._fallback = None
        self._terms = terms
        self.joins, self.reach = _straddling_specials(nlp.tokenizer)
        self.exception_joins = frozenset(
            (self.norm(a.text), self.norm(b.text))
            for doc in map(nlp.make_doc, nlp.tokenizer.rules or ()) for a, b in zip(doc, doc[1:]))
        path = cache / f"{self._key(case, accents)}.pickle" if cache else None
        if path is not None and path.exists():
            with path.open("rb") as f:
                self.patterns, self.automaton = pickle.load(f)
        else:
            self.patterns, self.automaton = self._compile()
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
                with tmp.open("wb") as f:
                    pickle.dump((self.patterns, self.automaton), f, pickle.HIGHEST_PROTOCOL)
                os.replace(tmp, path)
        self.exceptions = frozenset(nlp.tokenizer.rules or ())
        punct = sorted((k for k in self.exceptions if set(k) & set(OPENERS + CLOSERS)),
                       key=len, reverse=True)
        self.punct_exceptions = re.compile("|".join(map(re.escape, punct))) if punct else None
        letter_cuts = {k: self._letter_cuts(k) for k in self.exceptions}
        self.letter_splits = frozenset(k for k, cuts in letter_cuts.items() if cuts)
        """Exceptions that cut between two letters ("cannot", "don't"): the only cuts there,
        since prefix, suffix and infix rules cut next to a non-letter (the equivalence test
        checks this against spaCy)."""
        self.letter_cut_pairs = frozenset(pair for cuts in letter_cuts.values() for pair in cuts)
        """The two letters around each such cut ("n", "n" in "can|not"): a quick first test."""
        self.chunk_tokens = lru_cache(maxsize=200_000)(self._chunk_tokens)

    def _key(self, case: str, accents: str) -> str:
        from spacy import about

        return digest(self._terms, case, accents, about.__version__, self.nlp.lang,
                      sorted(self.nlp.tokenizer.rules or ()), file_digest(__file__, size=8),
                      size=16)

    def _compile(self) -> tuple[dict[int, tuple[str, ...]], ahocorasick.Automaton]:
        """Every term's tokens, and its spacing variants in one automaton (the slow part)."""
        automaton = ahocorasick.Automaton()
        patterns: dict[int, tuple[str, ...]] = {}
        keys: dict[str, list[Entry]] = {}
        for index, text in self._terms:
            doc = self.nlp.make_doc(text)
            tokens = tuple(self.norm(t.text) for t in doc)
            if not tokens:
                continue
            patterns[index] = tokens
            for raw, same in self._variants(doc):
                fast = same and not any(self._linked(raw, i) for i, c in enumerate(raw) if c == " ")
                keys.setdefault(self.norm(raw), []).append(
                    Entry(index, raw if fast else None, len(tokens)))
        for key, entries in keys.items():
            automaton.add_word(key, (len(key), tuple(entries)))
        if keys:
            automaton.make_automaton()
        return patterns, automaton

    def _letter_cuts(self, text: str) -> list[tuple[str, str]]:
        cuts = [t.idx for t in self.nlp.make_doc(text)][1:]
        return [(text[i - 1], text[i]) for i in cuts if text[i - 1].isalpha() and text[i].isalpha()]

    def _linked(self, text: str, at: int) -> bool:
        """Whether the single space at ``at`` may fall inside a special case's tokens.

        spaCy matches special cases made of several tokens (":-)", "''"...) over the whole
        text's tokens, and a single space leaves no token: a match across it is never applied
        but still blocks overlapping special cases, so the chunks on both sides of such a
        space are not tokenized independently ("x' 's-x" cuts "'", "s", where "'s-x" alone
        cuts "'s").
        """
        return (0 < at < len(text) - 1 and text[at] == " "
                and (text[at - 1], text[at + 1]) in self.joins)

    def _chunk_start(self, text: str, start: int) -> int | None:
        """Where the chunk begins if ``start`` follows nothing but punctuation spaCy always
        cuts off, with no special case reaching over from the previous chunk; else None."""
        left = start
        while left > 0 and text[left - 1] in OPENERS:
            left -= 1
        if left > 0 and not text[left - 1].isspace() or self._linked(text, left - 1):
            return None
        return None if left != start and self._has_punct_exception(text, left) else left

    def _chunk_end(self, text: str, end: int) -> int | None:
        right = end
        while right < len(text) and text[right] in CLOSERS:
            right += 1
        if right < len(text) and not text[right].isspace() or self._linked(text, right):
            return None
        return None if right != end and self._has_punct_exception(text, end, right) else right

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
        if (text[cut - 1], text[cut]) not in self.letter_cut_pairs:
            return True
        left, right = cut - 1, cut
        while left > 0 and (text[left - 1].isalpha() or text[left - 1] in WORD_MARKS):
            left -= 1
        while right < len(text) and (text[right].isalpha() or text[right] in WORD_MARKS):
            right += 1
        word = text[left:right]
        return not any(w in self.letter_splits for w in
                       {word, word.rstrip("."), word.strip(QUOTES), word.strip(QUOTES + ".")})

    def _variants(self, doc) -> Iterator[tuple[str, bool]]:
        """Spellings of ``doc``'s tokens with each join written with or without a space, and
        whether spaCy cuts that spelling, on its own, into the same tokens."""
        texts = [t.text for t in doc]
        original = doc.text
        yield original, True
        joins = [[t.whitespace_] for t in doc[:-1]]
        free = [i for i, (a, b) in enumerate(zip(texts, texts[1:])) if self._free_join(a, b)]
        if not free or len(free) > MAX_FREE_JOINS:
            return
        want = tuple(self.norm(t) for t in texts)
        for i in free:
            joins[i] = ["", " "]
        for spaces in itertools.product(*joins):
            raw = texts[0] + "".join(s + t for s, t in zip(spaces, texts[1:]))
            if raw != original:
                yield raw, tuple(self.norm(t.text) for t in self.nlp.make_doc(raw)) == want

    def _free_join(self, left: str, right: str) -> bool:
        """Whether spaCy can cut between these two tokens written without a space: always
        next to a non-alphanumeric character, else only where a tokenizer exception cuts
        ("can"+"not") or a suffix rule does ("10"+"km")."""
        if not (left[-1].isalnum() and right[0].isalnum()):
            return True
        if (self.norm(left), self.norm(right)) in self.exception_joins:
            return True
        joined, tokenizer = left + right, self.nlp.tokenizer
        if not any(search and search(joined) for search in (
                tokenizer.prefix_search, tokenizer.suffix_search,
                tokenizer.infix_finditer and (lambda s: next(tokenizer.infix_finditer(s), None)))):
            return False  # no affix rule applies: spaCy keeps it in one token
        return any(t.idx == len(left) for t in self.nlp.make_doc(joined))

    def _chunk_tokens(self, chunk: str) -> tuple[tuple[int, int], ...]:
        """Token offsets within one chunk (or linked chunks), as spaCy's tokenizer cuts it.

        A chunk of letters only is one token unless it is a tokenizer exception ("cannot"):
        prefix, suffix and infix rules all need a non-letter character to cut at.
        """
        if chunk.isalpha() and chunk not in self.exceptions:
            return ((0, len(chunk)),)
        return tuple((t.idx, t.idx + len(t.text)) for t in self.nlp.tokenizer(chunk))

    def _tokens_between(self, text: str, start: int, end: int) -> list[tuple[int, int]] | None:
        """Tokens covering [start, end) if both ends are token boundaries, else None.

        The chunks the span touches are tokenized one by one (cached), unless a special case
        may straddle a space between them or next to them: then they are tokenized together,
        with as many linked neighbouring chunks as the longest such special case can reach.
        """
        left, right = _chunk_bounds(text, start, end)
        linked = any(self._linked(text, i) for i in range(left, right) if text[i] == " ")
        for _ in range(self.reach):
            if not self._linked(text, left - 1):
                break
            left, linked = _chunk_bounds(text, left - 2, left - 2)[0], True
        for _ in range(self.reach):
            if not self._linked(text, right):
                break
            right, linked = _chunk_bounds(text, right + 1, right + 1)[1], True
        pieces = [text[left:right]] if linked else text[left:right].split(" ")
        tokens: list[tuple[int, int]] = []
        offset = left
        for piece in pieces:
            tokens.extend((offset + a, offset + b) for a, b in self.chunk_tokens(piece))
            offset += len(piece) + 1
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
            if self._inside_word(text, start) or self._inside_word(text, end):
                continue
            if (start == 0 or text[start - 1].isspace()) and (end == n or text[end].isspace()):
                bounded = not (self._linked(text, start - 1) or self._linked(text, end))
            else:
                bounded = (self._chunk_start(text, start) is not None
                           and self._chunk_end(text, end) is not None)
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
