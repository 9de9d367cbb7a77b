"""A seeded corpus of customer order e-mails where a product dictionary is not enough.

Used by ``benchmarks/flywheel.py``. Each text comes with its gold spans (``BRAND`` and
``PRODUCT``); the dictionary written by :func:`write_rules` (a ``products.csv`` referential, case
insensitive, as rules/README.md describes) knows only part of the catalogue:

- **products absent from the dictionary** (about 40% of the catalogue, and five brands), which a
  model can only find from context and shape ("my Legion 5 will not boot");
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

# brand -> [(product, in the dictionary?)]; brands marked False are not in the dictionary at all
CATALOGUE: dict[str, list[tuple[str, bool]]] = {
    "Lenovo": [("ThinkPad T14", True), ("ThinkPad X1 Carbon", True), ("IdeaPad 5", True),
               ("Yoga 7", True), ("Legion 5", False), ("ThinkCentre M70", False)],
    "Dell": [("XPS 13", True), ("XPS 15", True), ("Latitude 5440", True), ("Inspiron 14", False),
             ("Precision 3580", False)],
    "HP": [("EliteBook 840", True), ("ProBook 450", True), ("Spectre x360", False),
           ("Envy 13", False)],
    "Apple": [("MacBook Air", True), ("MacBook Pro", True), ("iPad Air", True),
              ("iPhone 15", True), ("AirPods Pro", True), ("Magic Mouse", False),
              ("Vision Pro", False)],
    "Samsung": [("Galaxy S24", True), ("Galaxy Tab S9", True), ("Galaxy Buds2", False),
                ("Odyssey G7", False)],
    "Google": [("Pixel 8", True), ("Pixel 8 Pro", True), ("Pixel 9", False),
               ("Pixel Buds Pro", False), ("Nest Hub", False)],
    "Microsoft": [("Surface Pro 9", True), ("Surface Laptop 5", True), ("Surface Go 4", False)],
    "Amazon": [("Echo Dot", True), ("Kindle Paperwhite", True), ("Echo Show 8", False),
               ("Kindle Scribe", False)],
    "Logitech": [("MX Master 3", True), ("MX Keys", True), ("Brio 4K", False), ("G502", False)],
    "Sony": [("WH-1000XM5", True), ("Xperia 10", False)],
    "Asus": [("ZenBook 14", True), ("ROG Strix G16", False)],
    "Acer": [("Swift 3", True), ("Aspire 5", False)],
    "Bose": [("QuietComfort 45", True), ("SoundLink Flex", False)],
    "Xiaomi": [("Redmi Note 13", False), ("Mi Band 8", False)],
    "Razer": [("Blade 15", False), ("DeathAdder V3", False)],
    "Anker": [("PowerCore 10000", False), ("Soundcore Q30", False)],
    "Framework": [("Laptop 13", False)],
    "Fairphone": [("Fairphone 5", False)],
}
UNKNOWN_BRANDS = {"Xiaomi", "Razer", "Anker", "Framework", "Fairphone"}
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
CLOSING = ["Thanks.", "Best regards, Anna", "Kind regards, the IT desk", "Cheers", "",
           "Thank you for your help.", "Order ref 77-1203."]
QUANTITIES = ["2", "3", "5", "10", "two", "three", "a dozen"]


@dataclass
class Doc:
    id: str
    text: str
    spans: list[tuple[int, int, str]] = field(default_factory=list)
    """Gold (start, end, label), sorted."""


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

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.products = [(b, p, known) for b, ps in CATALOGUE.items() for p, known in ps]
        self.variants: dict[str, int] = {}

    def _mention(self, b: _Builder, plural: bool = False) -> None:
        rng = self.rng
        brand, product, _ = rng.choice(self.products)
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
        sentences = [rng.choice(ORDER)]
        if rng.random() < 0.35:
            sentences.append(rng.choice(AMBIGUOUS))
        if rng.random() < 0.15:
            sentences.append(rng.choice(BARE))
        if rng.random() < 0.3:
            sentences.append(rng.choice(ORDER))
        rng.shuffle(sentences)
        for i, sentence in enumerate(sentences):
            if i:
                b.add(" ")
            self._fill(b, sentence)
        closing = rng.choice(CLOSING)
        if closing:
            b.add(" " + closing)
        return Doc(key, b.text, sorted(b.spans))

    def docs(self, prefix: str, n: int) -> list[Doc]:
        return [self.doc(f"{prefix}-{i:05d}") for i in range(n)]


def write_rules(folder: Path) -> dict[str, int]:
    """The partial dictionary: known brands, known products (half with a no-space synonym), and
    the bare product lines; matched case-insensitively. Returns what it holds, by kind."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["term,label,canonical,synonyms"]
    counts = {"brands": 0, "products": 0, "bare lines": 0}
    for brand, products in CATALOGUE.items():
        if brand in UNKNOWN_BRANDS:
            continue
        rows.append(f"{brand},{BRAND},{brand},")
        counts["brands"] += 1
        for n, (product, known) in enumerate(products):
            if not known:
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
