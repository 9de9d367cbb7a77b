"""For a pure dictionary, the rules annotator finds exactly the spans spaCy's EntityRuler finds."""

from __future__ import annotations

import random

import pytest
import spacy

from preannot import Context
from preannot_spacy.annotator import RulesAnnotator

SYLLABLES = ["ka", "lo", "mi", "ne", "ro", "tu", "shi", "van", "por", "del", "ex", "qu", "zo"]
DECOR = ["{}", "({})", "{},", "{}.", '"{}"', "{}'s", "{}-based", "[{}]", "{}!", "{}?", "x{}",
         "{}s", "{}:", "{}...", "{}n't", "can{}", "{}not", "{}km", "$"+"{}", "{} 8)", "({}:)", "{};)"]


def word(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 3)))


def make_terms(rng: random.Random, n: int) -> list[str]:
    terms: dict[str, str] = {}
    while len(terms) < n:
        shape = rng.random()
        words = [word(rng) for _ in range(rng.randint(1, 3))]
        if shape < 0.1:
            term = "-".join(words[:2]) if len(words) > 1 else words[0] + "-" + str(rng.randint(1, 99))
        elif shape < 0.15:
            term = f"{words[0]} {rng.randint(2, 900)}"
        elif shape < 0.18:
            term = f"{words[0]}'{words[-1]}"
        elif shape < 0.2:
            term = f"{words[0]}.{rng.randint(0, 9)}"
        else:
            term = " ".join(words)
        if rng.random() < 0.3:
            term = term.capitalize()
        terms.setdefault(term.lower(), term)  # one spelling per lower-cased term: one label each
    return list(terms.values())


def make_texts(rng: random.Random, terms: list[str], n: int) -> list[str]:
    texts = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(8, 30)):
            if rng.random() < 0.35:
                term = rng.choice(terms)
                term = rng.choice([term, term, term.upper(), term.lower(), term.replace("-", " - ")])
                parts.append(rng.choice(DECOR).format(term))
            else:
                parts.append(rng.choice([word(rng), word(rng), ",", "and", "the", "\n", "  ",
                                         "cannot", "don't", "Im", "gonna", "U.S."]))
        texts.append(" ".join(parts))
    return texts


def entity_ruler_spans(terms, labels, texts, attr):
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler", config={"phrase_matcher_attr": attr})
    ruler.add_patterns([{"label": labels[t], "pattern": t} for t in terms])
    return [sorted((e.start_char, e.end_char, e.label_) for e in doc.ents) for doc in nlp.pipe(texts)]


@pytest.mark.parametrize("case,attr", [("sensitive", None), ("insensitive", "LOWER")])
def test_same_spans_as_entity_ruler_on_a_generated_12k_term_dictionary(tmp_path, case, attr):
    rng = random.Random(7)
    terms = make_terms(rng, 12_000)
    labels = {t: rng.choice(["PRODUCT", "BRAND", "PART"]) for t in terms}
    (tmp_path / "terms.tsv").write_text(
        "term\tlabel\n" + "".join(f"{t}\t{labels[t]}\n" for t in terms), encoding="utf-8")
    (tmp_path / "rules.toml").write_text(f'[defaults]\ncase = "{case}"\n')
    texts = make_texts(rng, terms, 600)
    annotator = RulesAnnotator("dict", {"rules": str(tmp_path)}, Context(base_dir=tmp_path))
    ours = [sorted((s.start, s.end, s.label) for s in annotator.spans(t)) for t in texts]
    theirs = entity_ruler_spans(terms, labels, texts, attr)
    assert sum(map(len, theirs)) > 3000, "the generated texts must hold many matches"
    mismatched = [(t, a, b) for t, a, b in zip(texts, ours, theirs) if a != b]
    assert mismatched == []


PIECES = ["wi", "fi", "usb", "c", "C++", "AT&T", "U.S.", "e.g.", "3.5mm", "Ø", "straße", "café",
          "don't", "can", "not", "gonna", "x1", "iPhone", "15", "M2", "1,000", "€", "$", "#1",
          "@home", "o'neil", "rock'n'roll", "a.b", "foo.com", "…", "--", "/", "&", "HP", "hp",
          "LaserJet", "Pro", "'s", "n't", "e-mail", "10", "km", "'", ":", ")"]
JOINS = [" ", "-", "", "/", ".", "'", "&", " - "]
TRAPS = ["{}", "({})", "{}.)", "“{}”", "{}’s", "{}…", "http://{}.com/x", "www.{}.org", "{}@mail.com",
         "#{}", "{}\t", "{}\n\n", "{}\xa0", "'{}'", "{}/{}", "--{}", "<{}>", "{}%", "{}°C", "{}'",
         "' '{}-x", "x' {}", "{} :-)", ":-( {}", "{} ''", "{}&", "¿{}?", "{}'ll", "{}n’t", "{}km"]


def tricky_terms(rng: random.Random, nlp, n: int) -> list[str]:
    """Terms full of punctuation, apostrophes, units and tokenizer exceptions; at most 7 tokens
    (longer ones match with their own spacing only, see rules/README.md)."""
    terms: dict[str, str] = {}
    while len(terms) < n:
        term = rng.choice(PIECES)
        for _ in range(rng.randint(0, 2)):
            term += rng.choice(JOINS) + rng.choice(PIECES)
        if term == term.strip() and len(nlp.make_doc(term)) <= 7:
            terms.setdefault(term.lower(), term)
    return list(terms.values())


@pytest.mark.parametrize("case,attr", [("sensitive", None), ("insensitive", "LOWER")])
def test_same_spans_as_entity_ruler_where_the_tokenizer_is_tricky(tmp_path, case, attr):
    """Terms glued to punctuation, URLs, emoticons and quotes on the next word (spaCy applies
    those special cases over the whole text), hyphens spaced out, odd whitespace."""
    rng = random.Random(11)
    terms = tricky_terms(rng, spacy.blank("en"), 3000)
    labels = {t: "THING" for t in terms}
    (tmp_path / "terms.tsv").write_text(
        "term\tlabel\n" + "".join(f"{t}\tTHING\n" for t in terms), encoding="utf-8")
    (tmp_path / "rules.toml").write_text(f'[defaults]\ncase = "{case}"\n')
    texts = []
    for _ in range(400):
        parts = []
        for _ in range(rng.randint(5, 20)):
            term = rng.choice(terms)
            term = rng.choice([term, term.upper(), term.lower(), term.replace("-", " - "),
                               term.replace(" ", "-"), term.replace(" ", "")])
            parts.append(rng.choice(TRAPS).replace("{}", term, 1).replace("{}", rng.choice(terms)))
        texts.append(rng.choice([" ", "", "-", "  "]).join(parts))
    annotator = RulesAnnotator("dict", {"rules": str(tmp_path)}, Context(base_dir=tmp_path))
    ours = [sorted((s.start, s.end, s.label) for s in annotator.spans(t)) for t in texts]
    theirs = entity_ruler_spans(terms, labels, texts, attr)
    assert sum(map(len, theirs)) > 3000
    mismatched = [(t, a, b) for t, a, b in zip(texts, ours, theirs) if a != b]
    assert mismatched == []
