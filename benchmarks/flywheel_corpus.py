"""A seeded corpus of customer order e-mails where a product dictionary is not enough.

Used by ``benchmarks/flywheel.py``. Each text comes with its gold spans (``BRAND`` and
``PRODUCT``); the dictionary written by :func:`write_rules` (a ``products.csv`` referential, case
insensitive, as rules/README.md describes) knows only part of the catalogue:

- **products absent from the dictionary** (30 of 58, and five of 18 brands), which a model can
  only find from context and shape ("my Legion 5 will not boot"); 11 of them (``UNSEEN``, with
  the brand Anker) and a few phrasings appear in the held-out test set only (``held_out=True``),
  so the test also measures what no training example ever showed;
- **spelling variants** the dictionary does not list: typos ("Thinkpda T14"), a hyphen for a space
  ("XPS-13"), a missing space where no synonym has it ("PixelBuds Pro"), plurals ("2 MacBook
  Airs");
- **ambiguous words**: bare product lines and brands that are also common words ("Pixel" /
  "a dead pixel", "Surface" / "the surface is scratched", "Echo" / "an echo on calls", "Apple" /
  "apple juice"), on which the case-insensitive dictionary fires wrongly, and unknown models
  of known lines ("Pixel 9") where it finds only part of the span ("Pixel").

The gold convention: a brand written before a product is its own ``BRAND`` span; ``PRODUCT`` is the
product name without the brand ("Dell" + "XPS 13"), plural ``s`` included; common-word uses are
not entities.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

BRAND, PRODUCT = "BRAND", "PRODUCT"

# brand -> [(product, status)]: "dict" in the dictionary; "new" not in it, but in the pool that
# humans correct (a model can learn it there); "unseen" only in the held-out test set (neither the
# dictionary nor any training example has it: only context and shape can find it)
DICT, NEW, UNSEEN = "dict", "new", "unseen"
CATALOGUE: dict[str, list[tuple[str, str]]] = {
    "Lenovo": [("ThinkPad T14", DICT), ("ThinkPad X1 Carbon", DICT), ("IdeaPad 5", DICT),
               ("Yoga 7", DICT), ("Legion 5", NEW), ("ThinkCentre M70", UNSEEN)],
    "Dell": [("XPS 13", DICT), ("XPS 15", DICT), ("Latitude 5440", DICT), ("Inspiron 14", NEW),
             ("Precision 3580", UNSEEN)],
    "HP": [("EliteBook 840", DICT), ("ProBook 450", DICT), ("Spectre x360", NEW),
           ("Envy 13", UNSEEN)],
    "Apple": [("MacBook Air", DICT), ("MacBook Pro", DICT), ("iPad Air", DICT),
              ("iPhone 15", DICT), ("AirPods Pro", DICT), ("Magic Mouse", NEW),
              ("Vision Pro", UNSEEN)],
    "Samsung": [("Galaxy S24", DICT), ("Galaxy Tab S9", DICT), ("Galaxy Buds2", NEW),
                ("Odyssey G7", NEW)],
    "Google": [("Pixel 8", DICT), ("Pixel 8 Pro", DICT), ("Pixel 9", NEW),
               ("Pixel Buds Pro", NEW), ("Nest Hub", UNSEEN)],
    "Microsoft": [("Surface Pro 9", DICT), ("Surface Laptop 5", DICT), ("Surface Go 4", NEW)],
    "Amazon": [("Echo Dot", DICT), ("Kindle Paperwhite", DICT), ("Echo Show 8", NEW),
               ("Kindle Scribe", UNSEEN)],
    "Logitech": [("MX Master 3", DICT), ("MX Keys", DICT), ("Brio 500", NEW), ("G502", UNSEEN)],
    "Sony": [("WH-1000XM5", DICT), ("Xperia 10", NEW)],
    "Asus": [("ZenBook 14", DICT), ("ROG Strix G16", UNSEEN)],
    "Acer": [("Swift 3", DICT), ("Aspire 5", NEW)],
    "Bose": [("QuietComfort 45", DICT), ("SoundLink Flex", NEW)],
    "Xiaomi": [("Redmi Note 13", NEW), ("Mi Band 8", NEW)],
    "Razer": [("Blade 15", NEW), ("DeathAdder V3", UNSEEN)],
    "Framework": [("Laptop 13", NEW)],
    "Fairphone": [("Fairphone 5", NEW)],
    "Anker": [("PowerCore 10000", UNSEEN), ("Soundcore Q30", UNSEEN)],
}
UNKNOWN_BRANDS = {"Xiaomi", "Razer", "Anker", "Framework", "Fairphone"}
"""Brands not in the dictionary (Anker appears in the held-out test set only)."""
# product lines written alone ("my Surface"), which the dictionary lists as PRODUCT terms: they
# are also common words, or the first word of models the dictionary does not know
BARE_LINES = {"Pixel": "Google", "Surface": "Microsoft", "Echo": "Amazon", "Kindle": "Amazon",
              "Galaxy": "Samsung", "ThinkPad": "Lenovo"}

ORDER = [
    "Hello, please send {q} {m} to our Lyon office.",
    "Hi team, we would like to order {q} {m} for the new hires.",
    "Could you quote {q} {m} and {q2} {m2}?",
    "Is the {m} in stock? We need {q} by Friday.",
    "Please add {q} {m} to order 4411.",
    "Our {m} arrived with a cracked screen, can you replace it?",
    "My {m} will not charge since the last update.",
    "We received {q} {m} instead of {q2} {m2}, please fix the order.",
    "What is the price of the {m} with the extended warranty?",
    "The {m} I bought last month keeps rebooting.",
    "Can the {m} be delivered together with the {m2}?",
    "I returned the {m} yesterday, when do I get the refund?",
    "Do you have a cheaper alternative to the {m}?",
    "Thanks, the {m} works fine, but the {m2} is missing a cable.",
    "please cancel the {m}, we ordered it twice",
    "need {q} {m} asap for the sales team",
]
TEST_ORDER = [  # phrasings only the held-out test set uses
    "Would it be possible to swap the {m} for a {m2}?",
    "invoice 8812 lists {q} {m} but we only got one",
    "Our accounting wants a quote for {q} {m} before March.",
    "Since Monday the {m} shows a blank screen after login.",
    "Any discount if we take {q} {m} plus {q2} {m2}?",
]
BARE = [
    "My {line} freezes when I open the camera.",
    "the {line} we got last week is already broken",
    "Can you repair my {line} under warranty?",
]
AMBIGUOUS = [  # common-word uses: not entities
    "There is a dead pixel on the screen of my {m}.",
    "The {m} has a stuck pixel in the corner.",
    "The surface of the {m} is scratched.",
    "The surface of my desk got scratched by the {m}.",
    "There is an echo during calls on my {m}.",
    "I hear an echo in meetings since I use the {m}.",
    "I spilled apple juice on my {m}.",
    "The {m} smells of apple pie, odd.",
    "Pixel density of the {m} looks low to me.",
    "Surface scratches on the {m} are not covered?",
]
TEST_AMBIGUOUS = [
    "One pixel of the {m} display stays green.",
    "Is the surface of the {m} water resistant?",
    "Colleagues hear an echo of their own voice on the {m}.",
    "We keep an apple tree next to the office, unrelated, but the {m} is late.",
]
CLOSING = ["Thanks.", "Best regards, Anna", "Kind regards, the IT desk", "Cheers", "",
           "Thank you for your help.", "Order ref 77-1203."]
QUANTITIES = ["2", "3", "5", "10", "two", "three", "a dozen"]


@dataclass
class Doc:
    id: str
    text: str
    spans: list[tuple[int, int, str]] = field(default_factory=list)
    """Gold (start, end, label), sorted."""
    novel: bool = False
    """It holds a product or a phrasing that only the held-out test set has."""


class _Builder:
    def __init__(self) -> None:
        self.text = ""
        self.spans: list[tuple[int, int, str]] = []

    def add(self, piece: str, label: str | None = None) -> None:
        if label:
            self.spans.append((len(self.text), len(self.text) + len(piece), label))
        self.text += piece


def _typo(word: str, rng: random.Random) -> str:
    letters = [i for i, c in enumerate(word) if c.isalpha()]
    if len(letters) < 4:
        return word
    i = rng.choice(letters[1:-1])
    kind = rng.random()
    if kind < 0.4 and i + 1 < len(word) and word[i + 1].isalpha() and word[i] != word[i + 1]:
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]  # swap
    if kind < 0.7:
        return word[:i] + word[i + 1:]  # drop
    return word[:i] + word[i] + word[i:]  # double


def product_variant(name: str, rng: random.Random, plural: bool) -> tuple[str, str]:
    """(surface form, variant kind) of a product name."""
    roll = rng.random()
    words = name.split(" ")
    if roll < 0.50:
        form, kind = name, "canonical"
    elif roll < 0.65:
        form, kind = name.lower(), "lower case"
    elif roll < 0.73 and len(words) > 1:
        form, kind = "".join(words), "no space"
    elif roll < 0.79 and len(words) == 2:
        form, kind = "-".join(words), "hyphen"
    elif roll < 0.89:
        longest = max(range(len(words)), key=lambda k: len(words[k]))
        words[longest] = _typo(words[longest], rng)
        form, kind = " ".join(words), "typo"
    else:
        form, kind = name, "canonical"
    if plural and form[-1].isalpha() and not form.endswith("s"):
        form, kind = form + "s", kind if kind != "canonical" else "plural"
    return form, kind


def brand_variant(brand: str, rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.2:
        return brand.lower()
    if roll < 0.26:
        return _typo(brand, rng)
    return brand


class Generator:
    """Seeded texts with gold spans; ``variants`` counts what kinds of mentions were made."""

    def __init__(self, seed: int, *, held_out: bool = False) -> None:
        """``held_out``: the test set, which also uses the unseen products and the test-only
        phrasings (about a third of its texts then hold something no training example has)."""
        self.rng = random.Random(seed)
        self.held_out = held_out
        self.products = [(b, p, status) for b, ps in CATALOGUE.items() for p, status in ps
                         if held_out or status != UNSEEN]
        self.variants: dict[str, int] = {}
        self.novel = False

    def _mention(self, b: _Builder, plural: bool = False) -> None:
        rng = self.rng
        brand, product, status = rng.choice(self.products)
        self.novel |= status == UNSEEN
        if rng.random() < 0.45 and brand not in product:
            b.add(brand_variant(brand, rng), BRAND)
            b.add(" ")
        form, kind = product_variant(product, rng, plural)
        self.variants[kind] = self.variants.get(kind, 0) + 1
        b.add(form, PRODUCT)

    def _fill(self, b: _Builder, template: str) -> None:
        rng = self.rng
        pos = 0
        while pos < len(template):
            start = template.find("{", pos)
            if start < 0:
                b.add(template[pos:])
                break
            b.add(template[pos:start])
            end = template.index("}", start)
            slot = template[start + 1:end]
            if slot in ("q", "q2"):
                b.add(rng.choice(QUANTITIES))
            elif slot in ("m", "m2"):
                before = template[:start].rstrip()
                plural = before.endswith(("{q}", "{q2}"))
                self._mention(b, plural=plural and rng.random() < 0.4)
            elif slot == "line":
                line = rng.choice(sorted(BARE_LINES))
                form = line.lower() if rng.random() < 0.3 else line
                b.add(form, PRODUCT)
                self.variants["bare line"] = self.variants.get("bare line", 0) + 1
            pos = end + 1

    def doc(self, key: str) -> Doc:
        rng = self.rng
        b = _Builder()
        self.novel = False
        order = ORDER + TEST_ORDER if self.held_out else ORDER
        ambiguous = AMBIGUOUS + TEST_AMBIGUOUS if self.held_out else AMBIGUOUS
        sentences = [rng.choice(order)]
        if rng.random() < 0.35:
            sentences.append(rng.choice(ambiguous))
        if rng.random() < 0.15:
            sentences.append(rng.choice(BARE))
        if rng.random() < 0.3:
            sentences.append(rng.choice(order))
        self.novel |= any(s in TEST_ORDER or s in TEST_AMBIGUOUS for s in sentences)
        rng.shuffle(sentences)
        for i, sentence in enumerate(sentences):
            if i:
                b.add(" ")
            self._fill(b, sentence)
        closing = rng.choice(CLOSING)
        if closing:
            b.add(" " + closing)
        return Doc(key, b.text, sorted(b.spans), self.novel)

    def docs(self, prefix: str, n: int) -> list[Doc]:
        return [self.doc(f"{prefix}-{i:05d}") for i in range(n)]


def write_rules(folder: Path, rare: bool = False) -> dict[str, int]:
    """The partial dictionary: known brands, known products (half with a no-space synonym), and
    the bare product lines; matched case-insensitively. Returns what it holds, by kind.
    ``rare``: it also knows the products only the held-out test set mentions (a catalogue
    holds rare terms no training example ever shows a model)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["term,label,canonical,synonyms"]
    counts = {"brands": 0, "products": 0, "bare lines": 0}
    for brand, products in CATALOGUE.items():
        if brand in UNKNOWN_BRANDS:
            continue
        rows.append(f"{brand},{BRAND},{brand},")
        counts["brands"] += 1
        for n, (product, status) in enumerate(products):
            if status != DICT and not (rare and status == UNSEEN):
                continue
            synonym = product.replace(" ", "") if " " in product and n % 2 == 0 else ""
            rows.append(f"{product},{PRODUCT},{product},{synonym}")
            counts["products"] += 1
    for line in sorted(BARE_LINES):
        rows.append(f"{line},{PRODUCT},{line},")
        counts["bare lines"] += 1
    (folder / "products.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (folder / "rules.toml").write_text('[files."products.csv"]\ncase = "insensitive"\n'
                                       "confidence = 0.9\n", encoding="utf-8")
    return counts


def read_conll(path: Path, prefix: str) -> list[Doc]:
    """CoNLL sentences (``token<TAB>IOB2 tag``, blank line between sentences) as documents:
    tokens joined by single spaces, gold spans from the tags."""
    docs: list[Doc] = []
    tokens: list[tuple[str, str]] = []

    def flush() -> None:
        if not tokens:
            return
        text, spans, pos, current = "", [], 0, None
        for token, tag in tokens:
            start = pos + (1 if text else 0)
            text = f"{text} {token}" if text else token
            pos = len(text)
            if tag.startswith("B-") or (tag.startswith("I-") and (current is None
                                                               or current[2] != tag[2:])):
                if current:
                    spans.append(tuple(current))
                current = [start, pos, tag[2:]]
            elif tag.startswith("I-") and current:
                current[1] = pos
            else:
                if current:
                    spans.append(tuple(current))
                current = None
        if current:
            spans.append(tuple(current))
        docs.append(Doc(f"{prefix}-{len(docs):05d}", text, spans))
        tokens.clear()

    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            flush()
            continue
        token, _, tag = line.rstrip("\n").rpartition("\t")
        tokens.append((token.strip(), tag.strip() or "O"))
    flush()
    return docs


def write_gazetteer(folder: Path, docs: list[Doc]) -> int:
    """A case-insensitive dictionary of every entity of ``docs`` (its most frequent label)."""
    import csv
    from collections import Counter

    folder.mkdir(parents=True, exist_ok=True)
    seen: dict[str, Counter[str]] = {}
    spelling: dict[str, str] = {}
    for d in docs:
        for s, e, label in d.spans:
            term = d.text[s:e]
            seen.setdefault(term.casefold(), Counter())[label] += 1
            spelling.setdefault(term.casefold(), term)
    with (folder / "gazetteer.csv").open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["term", "label"])
        for key in sorted(seen):
            writer.writerow([spelling[key], seen[key].most_common(1)[0][0]])
    (folder / "rules.toml").write_text('[files."gazetteer.csv"]\ncase = "insensitive"\n'
                                       "confidence = 0.9\n", encoding="utf-8")
    return len(seen)
