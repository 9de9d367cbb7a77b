"""Dictionary pre-annotation speed: preannot's rules annotator vs spaCy's own EntityRuler.

Both run on the same generated texts with the same 50,000-term dictionary, in this process, on one
core; the spans must be identical. With --workers N it also times `preannot run` with N worker
processes against one. Prints words per second and the ratios.

    python benchmarks/dictionary_vs_entityruler.py [--terms 50000] [--texts 20000] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import spacy

from preannot import Context, Task
from preannot_spacy.annotator import RulesAnnotator

FILLER = ("please send us the and a for with our new office order two more of it by friday "
          "invoice thanks we need can you quote is this in stock delivery to floor asap").split()
SYLLABLES = ["ka", "lo", "mi", "ne", "ro", "tu", "shi", "van", "por", "del", "ex", "qu", "zo",
             "ar", "bel", "cor", "dia", "fen", "gal", "hu"]


def generate(n_terms: int, n_texts: int, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    terms: set[str] = set()
    while len(terms) < n_terms:
        words = ["".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3)))
                 for _ in range(rng.randint(1, 3))]
        term = " ".join(words).title() if rng.random() < 0.5 else " ".join(words)
        if rng.random() < 0.1:
            term += f" {rng.randint(2, 999)}"
        terms.add(term)
    ordered = sorted(terms)
    texts = []
    for _ in range(n_texts):
        words = []
        for _ in range(rng.randint(30, 90)):
            if rng.random() < 0.08:
                words.append(rng.choice(["{}", "{},", "({})", "{}."]).format(rng.choice(ordered)))
            else:
                words.append(rng.choice(FILLER))
        texts.append(" ".join(words))
    return ordered, texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--terms", type=int, default=50_000)
    parser.add_argument("--texts", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=0, help="also time `preannot run -w N`")
    parser.add_argument("--repeat", type=int, default=15,
                        help="the texts are repeated this many times for `preannot run`")
    args = parser.parse_args()
    terms, texts = generate(args.terms, args.texts)
    words = sum(len(t.split()) for t in texts)
    print(f"{len(terms):,} terms, {len(texts):,} texts, {words:,} words")

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rules = folder / "rules"
        rules.mkdir()
        (rules / "terms.tsv").write_text("term\tlabel\n" + "".join(f"{t}\tPRODUCT\n" for t in terms))
        nlp = spacy.blank("en")
        ruler = nlp.add_pipe("entity_ruler")
        ruler.add_patterns([{"label": "PRODUCT", "pattern": t} for t in terms])
        annotator = RulesAnnotator("bench", {"rules": str(rules)}, Context(base_dir=folder))
        tasks = [Task(str(i), {"text": t}) for i, t in enumerate(texts)]
        annotator.annotate(tasks[:1], {})  # compiles the dictionary, as add_patterns did for spaCy

        start = time.perf_counter()
        theirs = [[(e.start_char, e.end_char) for e in doc.ents] for doc in nlp.pipe(texts)]
        ruler_s = time.perf_counter() - start
        start = time.perf_counter()
        ours = []
        for i in range(0, len(tasks), 256):
            ours += [[(s.start, s.end) for s in spans]
                     for spans in annotator.annotate(tasks[i:i + 256], {})]
        ours_s = time.perf_counter() - start
        same = ours == theirs
        print(f"spans identical: {same} ({sum(map(len, theirs)):,} spans)")
        print(f"spaCy EntityRuler : {words / ruler_s:>12,.0f} words/s")
        print(f"preannot rules    : {words / ours_s:>12,.0f} words/s")
        print(f"ratio preannot / EntityRuler: {ruler_s / ours_s:.2f}x (target >= 3x)")

        if args.workers:
            data = folder / "texts.jsonl"
            # enough work that start-up (spaCy import, rules compiled once per worker) and the
            # serial reading and writing in the main process do not hide the parallel part
            data.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts * args.repeat))
            run_words = words * args.repeat
            seconds = {}
            for n in (1, args.workers):
                shutil.rmtree(folder / ".preannot", ignore_errors=True)  # both start cold
                start = time.perf_counter()
                subprocess.run([sys.executable, "-m", "preannot", "run", str(data), "--rules",
                                str(rules), "-o", str(folder / f"out{n}.json"), "-w", str(n),
                                "--no-progress", "--force"], check=True, capture_output=True,
                               cwd=folder)
                seconds[n] = time.perf_counter() - start
                print(f"preannot run -w {n}: {run_words / seconds[n]:>12,.0f} words/s "
                      f"({seconds[n]:.1f} s, start-up and output included)")
            print(f"speed-up with {args.workers} workers: {seconds[1] / seconds[args.workers]:.2f}x")
        if not same:
            sys.exit("spans differ: the comparison is void")


if __name__ == "__main__":
    main()
