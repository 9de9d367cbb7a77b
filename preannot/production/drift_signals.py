"""Drift signals: does a window of recent production tasks still look like the tasks the
current calibration was fitted on (the reference)?

Each signal is a two-sample test with a p-value (scipy; TF-IDF from scikit-learn), computed on
*profiles*: what the monitor keeps of a task (its words, image statistics, predicted labels and
scores, calibrated probability, and the human's verdict once reviewed). All the signals of one
check form one family: Holm's step-down correction keeps the chance that a check raises a false
alarm at most ``alpha``, however many signals there are. PSI is shown beside the KS tests as an
effect size (0.1 moderate, 0.25 major), never as a test of its own.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .calibration import label_of

WORD = re.compile(r"[^\W\d_]+")
"""A word: letters only, so order numbers and quantities are never 'new vocabulary'."""
IMAGE_STATS = ("brightness", "contrast", "pixels")
INPUT, PREDICTIONS, HUMANS = "input", "predictions", "humans"


def words(text: str) -> list[str]:
    return [w.lower() for w in WORD.findall(text)]


def text_of(data: Mapping[str, Any]) -> str:
    """The task's text: its ``text`` field, else its string fields that are not paths or URLs."""
    if isinstance(data.get("text"), str):
        return data["text"]
    return " ".join(v for v in data.values() if isinstance(v, str) and not _looks_like_path(v))


def _looks_like_path(value: str) -> bool:
    from ..engine.readers import IMAGE_SUFFIXES
    return value.startswith(("/", "http://", "https://", "s3://", "gs://", "upload/")) or \
        value.lower().endswith(tuple(IMAGE_SUFFIXES))


def image_stats(image: Any) -> dict[str, Any]:
    """Brightness (mean grey level), contrast (its spread), size, and an 8x8 grey thumbnail (a
    cheap embedding: the layout of the scene) of a PIL image."""
    grey = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    thumb = np.asarray(image.convert("L").resize((8, 8)), dtype=np.float32) / 255.0
    return {"brightness": float(grey.mean()), "contrast": float(grey.std()),
            "pixels": float(grey.size), "thumb": [round(float(x), 4) for x in thumb.ravel()]}


def profile(key: str, data: Mapping[str, Any], result: Sequence[Mapping[str, Any]],
            probability: float | None, threshold: float | None,
            image: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What the monitor keeps of one task (a JSON-able dict)."""
    scored = [[(r.get("preannot") or {}).get("annotator") or "", label_of(r), float(r["score"])]
              for r in result if isinstance(r.get("score"), (int, float))]
    text = text_of(data)
    return {"key": key, "text": text[:4000] if text else "", "image": dict(image or {}) or None,
            "labels": [label_of(r) for r in result], "scores": scored,
            "probability": probability,
            "above": None if probability is None or threshold is None else
            bool(probability >= threshold)}


@dataclass
class Signal:
    """One signal of one check: its test, statistic and p-value, and the verdict."""

    name: str
    kind: str
    test: str
    statistic: float
    p_value: float | None
    reference: float | None = None
    """The quantity in the reference (a share, a mean...), for the verdict and the plots."""
    window: float | None = None
    tasks: tuple[int, int] = (0, 0)
    """(reference, window) sample sizes."""
    psi: float | None = None
    labels: list[str] = field(default_factory=list)
    """The labels it concerns (empty: every task)."""
    level: float | None = None
    """The p-value it had to reach (Holm)."""
    fired: bool = False
    verdict: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def holm(signals: list[Signal], alpha: float) -> list[Signal]:
    """Holm's step-down over the signals with a p-value: the chance that any signal of the check
    fires on a same-distribution window is at most ``alpha``."""
    tested = sorted((s for s in signals if s.p_value is not None), key=lambda s: s.p_value)
    going = True
    for i, s in enumerate(tested):
        s.level = alpha / (len(tested) - i)
        s.fired = going and s.p_value <= s.level
        going = s.fired
    for s in signals:
        if s.p_value is None:
            s.verdict = s.verdict or "not tested: too few tasks"
        elif s.fired:
            s.verdict = f"DRIFT: {s.verdict} (p = {s.p_value:.2g} <= {s.level:.2g})"
        else:
            s.verdict = f"no drift: {s.verdict} (p = {s.p_value:.2g})"
    return signals


def psi(reference: Sequence[float], window: Sequence[float], bins: int = 10) -> float:
    """Population stability index over the reference's deciles."""
    ref, win = np.asarray(reference, float), np.asarray(window, float)
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    a = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=len(edges) + 1)
    b = np.bincount(np.searchsorted(edges, win, side="right"), minlength=len(edges) + 1)
    a = (a + 0.5) / (a.sum() + 0.5 * len(a))
    b = (b + 0.5) / (b.sum() + 0.5 * len(b))
    return float(np.sum((b - a) * np.log(b / a)))


def ks(name: str, kind: str, reference: Sequence[float], window: Sequence[float],
       least: int, labels: list[str] | None = None, what: str = "mean") -> Signal:
    from scipy.stats import ks_2samp
    sizes = (len(reference), len(window))
    if min(sizes) < least:
        return Signal(name, kind, "two-sample Kolmogorov-Smirnov", 0.0, None, tasks=sizes,
                      labels=labels or [])
    test = ks_2samp(reference, window)
    ref, win = float(np.mean(reference)), float(np.mean(window))
    return Signal(name, kind, "two-sample Kolmogorov-Smirnov", float(test.statistic),
                  float(test.pvalue), ref, win, sizes, psi(reference, window), labels or [],
                  verdict=f"{what} {win:.3f} against {ref:.3f} in the reference, "
                          f"KS D = {test.statistic:.3f}, PSI {psi(reference, window):.3f}")


def share_test(name: str, kind: str, test: str, ref_hits: int, ref_n: int, win_hits: int,
               win_n: int, least: int, alternative: str, what: str) -> Signal:
    """Fisher's exact test on two shares (window against reference)."""
    from scipy.stats import fisher_exact
    sizes = (ref_n, win_n)
    if min(sizes) < least:
        return Signal(name, kind, test, 0.0, None, tasks=sizes)
    p = float(fisher_exact([[win_hits, win_n - win_hits], [ref_hits, ref_n - ref_hits]],
                           alternative=alternative)[1])
    ref, win = ref_hits / ref_n, win_hits / win_n
    return Signal(name, kind, test, win - ref, p, ref, win, sizes,
                  verdict=f"{what} {win:.1%} against {ref:.1%} in the reference")


def unseen_words(reference: Sequence[Mapping[str, Any]], window: Sequence[Mapping[str, Any]],
                 least: int) -> tuple[Signal, set[str]]:
    """Share of window tasks holding a word no reference task holds, against the reference's
    own leave-one-out share (a reference task holding a word no *other* reference task holds):
    the same quantity under the same distribution, so Fisher's exact test compares like with
    like. Also returns the reference vocabulary."""
    ref_words = [set(words(p.get("text") or "")) for p in reference]
    df = Counter(w for ws in ref_words for w in ws)
    vocab = set(df)
    ref_hits = sum(any(df[w] == 1 for w in ws) for ws in ref_words)
    win_words = [set(words(p.get("text") or "")) for p in window]
    win_hits = sum(bool(ws - vocab) for ws in win_words)
    tokens = [w for p in window for w in words(p.get("text") or "")]
    signal = share_test("unseen words", INPUT, "Fisher exact, one-sided", ref_hits,
                        len(ref_words), win_hits, len(win_words), least, "greater",
                        "tasks with a word the reference never had:")
    if signal.p_value is not None and tokens:
        unseen = sum(w not in vocab for w in tokens) / len(tokens)
        signal.verdict += f"; {unseen:.1%} of the window's words are unseen"
    return signal, vocab


def centroid_distance(vectors: Any, n_reference: int, permutations: int,
                      seed: int = 0) -> tuple[float, float]:
    """Cosine distance between the reference's and the window's mean vector, and its
    permutation p-value (reference and window rows pooled, relabelled at random)."""
    n = vectors.shape[0]
    n_window = n - n_reference
    total = np.asarray(vectors.sum(axis=0), dtype=np.float64).ravel()

    def distance(sums: np.ndarray) -> np.ndarray:  # sums: (dims, k) of the reference side
        a = sums / n_reference
        b = (total[:, None] - sums) / n_window
        cos = (a * b).sum(axis=0) / np.maximum(
            np.linalg.norm(a, axis=0) * np.linalg.norm(b, axis=0), 1e-12)
        return 1 - cos

    member = np.zeros((n, 1))
    member[:n_reference] = 1
    observed = float(distance(np.asarray(vectors.T @ member, dtype=np.float64))[0])
    rng = np.random.default_rng(seed)
    above, done = 0, 0
    while done < permutations:
        k = min(1000, permutations - done)
        draws = rng.random((n, k))  # each column: n_reference rows picked at random
        picks = draws <= np.partition(draws, n_reference - 1, axis=0)[n_reference - 1]
        sums = np.asarray(vectors.T @ picks.astype(np.float32), dtype=np.float64)
        above += int((distance(sums) >= observed - 1e-12).sum())
        done += k
    return observed, (above + 1) / (permutations + 1)


def text_embedding(reference: Sequence[Mapping[str, Any]], window: Sequence[Mapping[str, Any]],
                   least: int, permutations: int) -> Signal:
    """TF-IDF vectors (fitted on reference and window pooled, so the permutation test is fair);
    the distance between the two mean vectors, tested by permutation."""
    name, test = "text embedding (TF-IDF)", f"permutation test ({permutations})"
    sizes = (len(reference), len(window))
    if min(sizes) < least:
        return Signal(name, INPUT, test, 0.0, None, tasks=sizes)
    from sklearn.feature_extraction.text import TfidfVectorizer
    texts = [p.get("text") or "" for p in [*reference, *window]]
    try:
        vectors = TfidfVectorizer(tokenizer=words, lowercase=False, token_pattern=None,
                                  dtype=np.float32).fit_transform(texts).tocsr()
    except ValueError:  # no words at all
        return Signal(name, INPUT, test, 0.0, None, tasks=sizes, verdict="no words to compare")
    observed, p = centroid_distance(vectors, len(reference), permutations)
    return Signal(name, INPUT, test, observed, p, tasks=sizes,
                  verdict=f"cosine distance {observed:.4f} between the mean TF-IDF vectors")


def image_signals(reference: Sequence[Mapping[str, Any]], window: Sequence[Mapping[str, Any]],
                  least: int, permutations: int) -> list[Signal]:
    ref = [p["image"] for p in reference if p.get("image")]
    win = [p["image"] for p in window if p.get("image")]
    if not ref and not win:
        return []
    out = [ks(f"image {stat}", INPUT, [x[stat] for x in ref], [x[stat] for x in win], least)
           for stat in IMAGE_STATS]
    name, test = "image thumbnails", f"permutation test ({permutations})"
    if min(len(ref), len(win)) < least:
        out.append(Signal(name, INPUT, test, 0.0, None, tasks=(len(ref), len(win))))
    else:
        vectors = np.asarray([x["thumb"] for x in [*ref, *win]], dtype=np.float32)
        observed, p = centroid_distance(vectors, len(ref), permutations)
        out.append(Signal(name, INPUT, test, observed, p, tasks=(len(ref), len(win)),
                          verdict=f"cosine distance {observed:.4f} between mean 8x8 thumbnails"))
    return out


def label_mix(reference: Sequence[Mapping[str, Any]], window: Sequence[Mapping[str, Any]],
              least: int) -> Signal:
    """Chi-square on the predicted labels' counts; the labels whose count moved most (an
    adjusted residual beyond 3, or a label the reference never had) are the ones concerned."""
    from scipy.stats import chi2_contingency
    ref = Counter(label for p in reference for label in p.get("labels") or [])
    win = Counter(label for p in window for label in p.get("labels") or [])
    labels = sorted(set(ref) | set(win))
    sizes = (sum(ref.values()), sum(win.values()))
    name, test = "predicted label mix", "chi-square"
    if len(labels) < 2 or min(sizes) < least:
        return Signal(name, PREDICTIONS, test, 0.0, None, tasks=sizes,
                      verdict="not tested: " + ("too few regions" if min(sizes) < least else
                                                f"one label only ({', '.join(labels)})"))
    table = np.asarray([[ref[label] for label in labels], [win[label] for label in labels]])
    stat, p, _, expected = chi2_contingency(table)
    total = table.sum()
    rows, cols = table.sum(axis=1, keepdims=True), table.sum(axis=0, keepdims=True)
    adjusted = (table - expected) / np.sqrt(expected * (1 - rows / total) * (1 - cols / total))
    moved = [label for label, r in zip(labels, adjusted[1]) if abs(r) > 3 or not ref[label]]
    shares = ", ".join(f"{label} {win[label] / sizes[1]:.0%} (was {ref[label] / sizes[0]:.0%})"
                       for label in labels)
    return Signal(name, PREDICTIONS, test, float(stat), float(p), tasks=sizes, labels=moved,
                  verdict=f"label shares {shares}")


def compare(reference: Sequence[Mapping[str, Any]], window: Sequence[Mapping[str, Any]], *,
            alpha: float, least: int = 30, least_reviewed: int = 20,
            permutations: int | None = None) -> tuple[list[Signal], set[str]]:
    """Every signal of one check, Holm-corrected at ``alpha``; and the reference vocabulary."""
    permutations = permutations or max(1000, math.ceil(20 / alpha))
    signals: list[Signal] = []
    if any(p.get("text") for p in [*reference, *window]):
        unseen, vocab = unseen_words(reference, window, least)
        signals += [unseen, text_embedding(reference, window, least, permutations)]
    else:
        vocab = set()
    signals += image_signals(reference, window, least, permutations)
    signals.append(ks("calibrated confidence", PREDICTIONS,
                      [p["probability"] for p in reference if p.get("probability") is not None],
                      [p["probability"] for p in window if p.get("probability") is not None],
                      least, what="mean probability"))
    groups = sorted({(a, label) for p in [*reference, *window] for a, label, _ in p["scores"]})
    for annotator, label in groups:
        pick = lambda ps: [s for p in ps for a, lab, s in p["scores"]  # noqa: E731
                           if (a, lab) == (annotator, label)]
        signals.append(ks(f"scores {annotator}/{label}", PREDICTIONS, pick(reference),
                          pick(window), least, [label], what="mean score"))
    signals.append(label_mix(reference, window, least))
    signals.append(share_test(
        "empty predictions", PREDICTIONS, "Fisher exact, two-sided",
        sum(not p["labels"] for p in reference), len(reference),
        sum(not p["labels"] for p in window), len(window), least, "two-sided",
        "tasks with nothing predicted:"))
    strata: list[tuple[bool | None, str]] = [(None, "acceptance")]
    if any(p.get("above") is not None for p in reference):
        strata = [(True, "acceptance above threshold"), (False, "acceptance below threshold")]
    for side, name in strata:
        ref, win = ([p for p in ps if p.get("right") is not None
                     and (side is None or p.get("above") == side)] for ps in (reference, window))
        signal = share_test(name, HUMANS, "Fisher exact, one-sided",
                            sum(bool(p["right"]) for p in ref), len(ref),
                            sum(bool(p["right"]) for p in win), len(win), 1, "less",
                            "tasks the reviewer kept whole:")
        if len(win) < least_reviewed or not ref:
            signal.p_value, signal.verdict = None, (
                f"not tested: {len(win)} reviewed tasks in the window, {len(ref)} in the "
                f"reference ({least_reviewed} and 1 needed)")
        signals.append(signal)
    return holm(signals, alpha), vocab


def new_terms(added: Iterable[tuple[str, str]], vocab: set[str], top: int = 10
              ) -> list[tuple[str, str, int]]:
    """(term, label, count) of regions humans added whose words the reference never had:
    where a new product line shows up first."""
    counts = Counter((text.strip(), label) for text, label in added
                     if text and set(words(text)) - vocab)
    return [(t, label, n) for (t, label), n in counts.most_common(top)]
