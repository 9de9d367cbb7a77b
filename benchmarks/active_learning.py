"""Active learning: the labels each selection strategy needs, against random, and the vector
index against a brute-force numpy search.

**Rounds.** On each corpus (WNUT-17 from ``../shared/data/wnut17/`` and the seeded product
order e-mails of ``flywheel_corpus.py``) a spaCy NER model is trained from ``--start`` labeled
tasks; then each round every strategy selects ``--step`` more from the unlabeled pool, the
simulated annotator labels them (gold spans), the model is trained again, and F1 (exact span and
label) is measured on the corpus's test split. Strategies: ``random``; ``uncertainty`` (the
least sure first: 1 - the probability of the best parse in a beam of 4); ``diversity`` (the
``diversity`` selector: k-center greedy over TF-IDF + SVD embeddings, preannot's default text
embedder); ``hybrid`` (the ``hybrid`` selector, ``--weight``). Seeds are fixed; ``--repeats``
runs with other seeds are averaged.

It prints F1 against labels per strategy and the **labels each strategy needs to reach the F1
random reaches with ``--target`` labels** (linear interpolation; the ratio to ``--target`` is the
saving; ">" when it never does within the rounds).

**Index.** ``--index-size`` random unit vectors of ``--dim`` dimensions go into a usearch index
(preannot's :class:`~preannot.selection.index.VectorIndex`), 100k per add; 1,000 of them,
perturbed, are the queries (``--data clustered``: vectors around 1,000 centres, as real
embeddings are; uniform random vectors have no neighbourhood beyond the first). It prints build time, query time against a numpy brute-force search (exact, the
baseline, same run), and recall@10 against it.

    python benchmarks/active_learning.py [--start 50] [--step 100] [--rounds 10] [--repeats 3]
        [--seeds 0 1 2] [--out curves.json] [--combine a.json b.json ...] [--target 1000] [--pool 5000] [--epochs 8] [--index-size 1000000] [--dim 256]
        [--data uniform|clustered] [--corpus wnut17 --corpus product] [--skip-index] [--skip-rounds]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from preannot import Pool, Task  # noqa: E402
from preannot.engine.config import SelectionSettings  # noqa: E402
from preannot.engine.host import load_host  # noqa: E402
from preannot.selection.index import VectorIndex  # noqa: E402
from preannot.selection.text import TfidfEmbedder  # noqa: E402

WNUT = HERE.parent.parent / "shared" / "data" / "wnut17"
STRATEGIES = ("random", "uncertainty", "diversity", "hybrid")


def read_conll(path: Path) -> list[tuple[str, list[tuple[int, int, str]]]]:
    """(text, [(start, end, label)]) per sentence of a BIO CoNLL file (tokens joined by a space)."""
    from flywheel_corpus import read_conll as read_docs

    return [(doc.text, list(doc.spans)) for doc in read_docs(path, path.stem)]


def corpus(name: str, pool: int, seed: int):
    """(train pool, test) lists of (text, spans)."""
    if name == "wnut17":
        if not WNUT.exists():
            raise SystemExit(f"{WNUT}: not found (the WNUT-17 data set of ../shared/data)")
        train = read_conll(WNUT / "train.conll") + read_conll(WNUT / "dev.conll")
        test = read_conll(WNUT / "test.conll")
    else:
        from flywheel_corpus import Generator

        train = [(d.text, d.spans) for d in Generator(seed).docs("t", pool)]
        test = [(d.text, d.spans) for d in Generator(seed + 1000, held_out=True).docs("x", 800)]
    rng = random.Random(seed)
    rng.shuffle(train)
    return train[:pool], test


def train_model(data, labels, epochs: int, seed: int):
    import spacy
    from spacy.training import Example
    from spacy.util import fix_random_seed, minibatch

    fix_random_seed(seed)
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("ner")
    for label in labels:
        ner.add_label(label)
    examples = []
    for text, spans in data:
        doc = nlp.make_doc(text)
        ents = [s for s in (doc.char_span(a, b, label=lab, alignment_mode="expand")
                            for a, b, lab in spans) if s is not None]
        try:
            examples.append(Example.from_dict(doc, {"entities": [(s.start_char, s.end_char, s.label_)
                                                                 for s in spacy.util.filter_spans(ents)]}))
        except ValueError:
            continue
    optimizer = nlp.initialize(lambda: examples)
    rng = random.Random(seed)
    for _ in range(epochs):
        rng.shuffle(examples)
        for batch in minibatch(examples, 16):
            nlp.update(batch, drop=0.2, sgd=optimizer)
    return nlp


def f1(nlp, test) -> float:
    from spacy.training import Example

    examples = []
    for doc, (text, spans) in zip(nlp.pipe([t for t, _ in test], batch_size=256), test):
        gold = nlp.make_doc(text)
        ents = [gold.char_span(a, b, label=lab, alignment_mode="expand") for a, b, lab in spans]
        import spacy
        gold.ents = spacy.util.filter_spans([e for e in ents if e is not None])
        examples.append(Example(doc, gold))
    from spacy.scorer import Scorer

    return float(Scorer.score_spans(examples, "ents")["ents_f"] or 0.0)


def uncertainty(nlp, texts: list[str]) -> np.ndarray:
    """1 - the probability of the best parse in a beam of 4, per text."""
    ner = nlp.get_pipe("ner")
    out = np.zeros(len(texts), dtype=np.float32)
    docs = [nlp.make_doc(t) for t in texts]
    for first in range(0, len(docs), 256):
        chunk = docs[first:first + 256]
        todo = [i for i, d in enumerate(chunk) if len(d)]
        beams = ner.beam_parse([chunk[i] for i in todo], beam_width=4)
        for i, beam in zip(todo, beams):
            probs = [p for p, _ in ner.moves.get_beam_parses(beam)]
            out[first + i] = 1.0 - (max(probs) / sum(probs) if probs and sum(probs) > 0 else 0.0)
    return out


def run_corpus(name: str, args, host, seed: int) -> dict[str, list[tuple[int, float]]]:
    import tempfile

    train, test = corpus(name, args.pool, seed)
    labels = sorted({lab for _, spans in train for *_, lab in spans})
    tasks = [Task(f"t{i}", {"text": t}) for i, (t, _) in enumerate(train)]
    with tempfile.TemporaryDirectory() as tmp:
        embedder = TfidfEmbedder(Path(tmp), "text", args.dim_text)
        embedder.fit(tasks)
        vectors = np.asarray(embedder.embed(tasks), dtype=np.float32)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)
    rng = random.Random(seed)
    start = rng.sample(range(len(train)), args.start)
    curves = {}
    for strategy in args.strategies:
        labeled = list(start)
        curve = []
        for round_ in range(args.rounds + 1):
            t0 = time.perf_counter()
            nlp = train_model([train[i] for i in labeled], labels, args.epochs, seed)
            score = f1(nlp, test)
            curve.append((len(labeled), score))
            print(f"  {name} seed {seed} {strategy:<11} {len(labeled):>5} labels: F1 {score:.3f} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
            if round_ == args.rounds:
                break
            taken = set(labeled)
            rest = [i for i in range(len(train)) if i not in taken]
            if strategy == "random":
                picks = random.Random(seed * 100 + round_).sample(rest, args.step)
            elif strategy == "uncertainty":
                u = uncertainty(nlp, [train[i][0] for i in rest])
                picks = [rest[i] for i in np.argsort(-u, kind="stable")[:args.step]]
            else:
                pool = Pool(ids=[str(i) for i in rest], vectors=vectors[rest],
                            labeled=vectors[labeled])
                options = {"weight": args.weight} if strategy == "hybrid" else {}
                if strategy == "hybrid":
                    pool.uncertainty = uncertainty(nlp, [train[i][0] for i in rest])
                selector = host.selector(SelectionSettings(strategy, options=options))
                picks = [rest[i] for i in selector.select(pool, args.step)]
            labeled += picks
        curves[strategy] = curve
    return curves


def labels_to_reach(curve: list[tuple[int, float]], target: float) -> float | None:
    for (n0, f0), (n1, f1_) in zip(curve, curve[1:]):
        if f0 >= target:
            return float(n0)
        if f1_ >= target:
            return n0 + (n1 - n0) * (target - f0) / (f1_ - f0)
    return float(curve[0][0]) if curve and curve[0][1] >= target else None


def value_at(curve: list[tuple[int, float]], n: int) -> float:
    xs, ys = zip(*curve)
    return float(np.interp(n, xs, ys))


def rounds(args) -> None:
    host = load_host()
    kept: dict[str, dict[str, Any]] = {}
    for name in args.corpus:
        seeds = args.seeds if args.seeds is not None else list(range(args.repeats))
        print(f"\n== {name}: start {args.start}, +{args.step} per round, {args.rounds} rounds, "
              f"seeds {seeds}, pool {args.pool}, {args.epochs} epochs ==", flush=True)
        kept[name] = {str(seed): run_corpus(name, args, host, seed) for seed in seeds}
        summarize(name, list(kept[name].values()), args)
    if args.out:
        args.out.write_text(json.dumps(kept))


def combine(args) -> None:
    """Summaries over the runs of several ``--out`` files (seeds run in parallel)."""
    merged: dict[str, dict[str, Any]] = {}
    for path in args.combine:
        for name, runs in json.loads(Path(path).read_text()).items():
            merged.setdefault(name, {}).update(runs)
    for name, runs in merged.items():
        args.strategies = [s for s in STRATEGIES if all(s in r for r in runs.values())]
        print(f"\n== {name}: seeds {sorted(runs, key=int)} ==")
        summarize(name, [{s: [tuple(p) for p in c] for s, c in r.items()}
                         for r in runs.values()], args)


def summarize(name: str, runs: list[dict[str, list[tuple[int, float]]]], args) -> None:
    mean = {s: [(n, float(np.mean([r[s][i][1] for r in runs])))
                for i, (n, _) in enumerate(runs[0][s])] for s in args.strategies}
    sizes = [n for n, _ in mean[args.strategies[0]]]
    print(f"\n{name}: F1 by labeled tasks (mean of {len(runs)})")
    print("labels      " + "".join(f"{s:>12}" for s in args.strategies))
    for i, n in enumerate(sizes):
        print(f"{n:<12}" + "".join(f"{mean[s][i][1]:>12.3f}" for s in args.strategies))
    print("mean F1  " + "".join(f"{np.mean([f for _, f in mean[s]]):>12.3f}"
                               for s in args.strategies)
          + "   (area under the curve: all rounds, less noisy than one crossing)")
    target = min(args.target, sizes[-1])
    if "random" not in mean:
        return
    goal = value_at(mean["random"], target)
    print(f"\n{name}: random reaches F1 {goal:.3f} with {target} labels; labels each "
          "strategy needs for it (ratio to random):")
    for s in args.strategies:
        need = labels_to_reach(mean[s], goal)
        said = (f"{need:.0f} ({need / target:.2f})" if need is not None
                else f"> {sizes[-1]} (not reached)")
        print(f"  {s:<12} {said}")


def index(args) -> None:
    rng = np.random.default_rng(0)
    n, dim = args.index_size, args.dim
    print(f"\n== index: {n:,} random unit vectors x {dim} d ({args.data}), 1,000 queries ==",
          flush=True)
    if args.data == "clustered":  # embeddings have structure: 1,000 topics, tasks around them
        centres = rng.standard_normal((1000, dim), dtype=np.float32)
        vectors = centres[rng.integers(0, 1000, n)] + 0.5 * rng.standard_normal((n, dim),
                                                                              dtype=np.float32)
    else:
        vectors = rng.standard_normal((n, dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    picks = rng.choice(n, 1000, replace=False)
    queries = vectors[picks] + 0.05 * rng.standard_normal((1000, dim), dtype=np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)

    t0 = time.perf_counter()
    exact = np.empty((len(queries), 10), dtype=np.int64)
    for first in range(0, len(queries), 100):
        sims = queries[first:first + 100] @ vectors.T
        top = np.argpartition(-sims, 10, axis=1)[:, :10]
        order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1)
        exact[first:first + 100] = np.take_along_axis(top, order, axis=1)
    brute = time.perf_counter() - t0

    t0 = time.perf_counter()
    vi = VectorIndex(None, dim)
    if vi.index is None:
        raise SystemExit("usearch is not installed: pip install 'preannot[select]'")
    for first in range(0, n, 100_000):  # incremental, as tasks arrive
        vi.add(list(range(first, min(n, first + 100_000))), vectors[first:first + 100_000])
    build = time.perf_counter() - t0
    print(f"build (usearch HNSW, incremental adds of 100k): {build:.1f} s "
          f"({n / build:,.0f} vectors/s)")
    for expansion in sorted({args.expansion, 64, 128, 512}):  # speed against recall
        vi.index.expansion_search = expansion
        t0 = time.perf_counter()
        keys, _ = vi.search(queries, 10)
        query = time.perf_counter() - t0
        recall = np.mean([len(set(a) & set(b)) / 10
                          for a, b in zip(keys.tolist(), exact.tolist())])
        print(f"1,000 queries: numpy brute force {brute:.2f} s, usearch {query:.3f} s: "
              f"{brute / query:.0f}x faster; recall@10 {recall:.3f} (expansion_search "
              f"{expansion})", flush=True)
    print(f"memory: vectors {vectors.nbytes / 2**20:.0f} MiB; index {vi.index.memory_usage / 2**20:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", action="append", choices=["wnut17", "product"])
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES)
    parser.add_argument("--start", type=int, default=50)
    parser.add_argument("--step", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+",
                        help="run these seeds (default: 0 .. repeats - 1); to run seeds in "
                             "parallel processes, each with --out, then --combine the files")
    parser.add_argument("--out", type=Path, help="write each seed's curves here (JSON)")
    parser.add_argument("--combine", nargs="+", metavar="JSON",
                        help="summarize the curves of earlier --out files; runs nothing")
    parser.add_argument("--target", type=int, default=1000)
    parser.add_argument("--pool", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--weight", type=float, default=0.5)
    parser.add_argument("--dim-text", type=int, default=128)
    parser.add_argument("--index-size", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--expansion", type=int, default=256)
    parser.add_argument("--data", choices=["uniform", "clustered"], default="clustered",
                        help="clustered (default): 1,000 Gaussian clusters, as embeddings are; "
                             "uniform: i.i.d. normal, where the 10 nearest are hardly nearer "
                             "than any other point (no ANN index finds them)")
    parser.add_argument("--skip-index", action="store_true")
    parser.add_argument("--skip-rounds", action="store_true")
    args = parser.parse_args()
    args.corpus = args.corpus or ["wnut17", "product"]
    if "random" not in args.strategies:
        args.strategies.insert(0, "random")
    if args.combine:
        return combine(args)
    if not args.skip_rounds:
        rounds(args)
    if not args.skip_index:
        index(args)


if __name__ == "__main__":
    main()
