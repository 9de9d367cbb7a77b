"""The ``spacy-ner`` annotator's beam confidence: what it costs, and whether it tells right from wrong.

A spaCy NER pipeline (tok2vec + greedy-trained ``ner``) is trained with the ``spacy-ner`` trainer on
the seeded order e-mails of ``flywheel_corpus.py`` (typos, plurals, products that are also common
words), then runs on held-out texts of the same corpus (its test split: unseen products and
phrasings included) twice, in this process, after one warm-up batch each:

- ``greedy``: ``score = 0.5`` (a fixed score: the pipeline's normal pass only, through ``nlp.pipe``);
- ``beam``: the default, each entity scored by its marginal probability in a beam of ``beam_width``
  parses (the regions are the same; the script checks it).

It prints tasks/s of both and the ratio, then, on the beam run's entities against the gold spans
(exact span and label), the share of correct entities with confidence >= ``--threshold`` and below
it, and per confidence bin.

    python benchmarks/spacy_ner_confidence.py [--texts 2000] [--train 300] [--epochs 4]
        [--beam-width 16] [--model FOLDER]   # --model: reuse a trained model-best folder
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import tempfile
import time
from pathlib import Path

from flywheel_corpus import Generator

from preannot import Context, Example, Span, Task
from preannot_spacy.ner import SpacyNerAnnotator
from preannot_spacy.trainer import SpacyNerTrainer


def as_examples(docs) -> list[Example]:
    return [Example(Task(d.id, {"text": d.text}),
                    [Span(start=s, end=e, text=d.text[s:e], label=lab) for s, e, lab in d.spans])
            for d in docs]


def timed(annotator: SpacyNerAnnotator, tasks: list[Task]) -> tuple[list, float]:
    annotator.annotate(tasks[:64], {})  # warm-up
    start = time.perf_counter()
    out = annotator.annotate(tasks, {})
    return out, len(tasks) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=2000, help="held-out texts to annotate")
    parser.add_argument("--train", type=int, default=300, help="training texts")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--beam-width", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--model", type=Path, help="a trained model folder to reuse")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if model is None:
            train = as_examples(Generator(seed=1).docs("train", args.train))
            trainer = SpacyNerTrainer("bench", {"epochs": args.epochs, "seed": 0},
                                      Context(base_dir=Path(tmp)))
            with contextlib.redirect_stdout(io.StringIO()):  # spaCy's training table
                model = trainer.train(train, [], Path(tmp) / "run", log=lambda _: None)
        test = Generator(seed=2, held_out=True).docs("test", args.texts)
        tasks = [Task(d.id, {"text": d.text}) for d in test]
        common = {"model": str(model), "batch_size": args.batch_size}
        greedy_out, greedy_rate = timed(SpacyNerAnnotator("greedy", {**common, "score": 0.5}),
                                        tasks)
        beam_out, beam_rate = timed(
            SpacyNerAnnotator("beam", {**common, "beam_width": args.beam_width}), tasks)

    same = all([(s.start, s.end, s.label) for s in g] == [(s.start, s.end, s.label) for s in b]
               for g, b in zip(greedy_out, beam_out))
    print(f"{len(tasks)} held-out texts, {args.train} training texts, {args.epochs} epochs, "
          f"batch {args.batch_size}, beam width {args.beam_width}")
    print(f"greedy (fixed score): {greedy_rate:8.1f} tasks/s")
    print(f"beam confidence:      {beam_rate:8.1f} tasks/s")
    print(f"ratio greedy/beam:    {greedy_rate / beam_rate:8.2f}x slower with the beam "
          f"(same regions: {same})")

    scored = [(s.score, (s.start, s.end, s.label) in set(d.spans))
              for d, spans in zip(test, beam_out) for s in spans]
    gold = sum(len(d.spans) for d in test)
    correct = sum(ok for _, ok in scored)
    print(f"\n{len(scored)} entities predicted, {correct} correct (precision "
          f"{correct / max(1, len(scored)):.3f}; recall {correct / max(1, gold):.3f} of {gold})")

    def line(name: str, part: list[tuple[float, bool]]) -> None:
        share = sum(ok for _, ok in part) / len(part) if part else float("nan")
        print(f"  {name:<18} {len(part):6d} entities, {share:6.1%} correct")

    t = args.threshold
    line(f"confidence >= {t:g}", [x for x in scored if x[0] >= t])
    line(f"confidence <  {t:g}", [x for x in scored if x[0] < t])
    print("by bin:")
    edges = [0.0, 0.5, 0.7, 0.9, 0.99, 1.0000001]
    for lo, hi in itertools.pairwise(edges):
        line(f"[{lo:g}, {min(hi, 1):g}{']' if hi > 1 else ')'}",
             [x for x in scored if lo <= x[0] < hi])


if __name__ == "__main__":
    main()
