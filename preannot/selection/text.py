"""The embedder that needs no model: TF-IDF of the text (words and character 3-5-grams, so
spelling variants stay close) reduced by truncated SVD (latent semantic analysis).

It is fitted once, on the first pool it sees, and kept in ``.preannot/index/`` as plain arrays
(the vocabularies, their IDF weights and the SVD components in an ``.npz`` read without pickle,
so a cache folder someone hands you cannot run code): later tasks are embedded with the same
fit, so cached vectors and the index stay valid as tasks arrive.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..annotator import ConfigError, TaskFailed, file_digest, read_texts
from ..extras import require
from ..model import Task

FIT_SAMPLE = 50_000
ANALYZERS = {"word": (1, 1), "char_wb": (3, 5)}
"""The two TF-IDF views and their n-gram ranges: words, and character 3-5-grams."""


class TfidfEmbedder:
    """TF-IDF + truncated SVD over the task data's ``field``."""

    def __init__(self, folder: Path, field: str = "text", dim: int = 128) -> None:
        self.folder, self.field, self.dim = folder, field, dim
        self.path = folder / f"tfidf-{field}-{dim}.npz"
        self.model: tuple[list[Any], Any] | None = None
        """(the word and character TF-IDF vectorizers, the SVD components)."""
        if self.path.exists():
            self.model = _load(self.path)

    @property
    def model_version(self) -> str:
        if self.model is None:
            raise RuntimeError("fit the TF-IDF embedder first")
        return f"tfidf-svd-{self.dim}-{self._digest}"

    def fit(self, tasks: Sequence[Task]) -> None:
        """Fit on (a sample of) ``tasks`` unless a fit is kept already."""
        if self.model is not None:
            return
        require("select", "the default text embedder")
        from scipy.sparse import hstack
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer

        texts = [t.data.get(self.field) for t in tasks[:FIT_SAMPLE]]
        texts = [t for t in texts if isinstance(t, str) and t.strip()]
        if len(texts) < 3:
            raise ConfigError(f"the default text embedder needs at least 3 tasks with text in "
                              f"{self.field!r} to fit on; it found {len(texts)} (set "
                              "[selection] field, or an embedder)")
        vectorizers = [
            TfidfVectorizer(analyzer="word", ngram_range=ANALYZERS["word"], sublinear_tf=True),
            TfidfVectorizer(analyzer="char_wb", ngram_range=ANALYZERS["char_wb"],
                            sublinear_tf=True, min_df=2 if len(texts) > 1000 else 1,
                            max_features=200_000)]
        matrix = hstack([v.fit_transform(texts) for v in vectorizers]).tocsr()
        components = max(1, min(self.dim, matrix.shape[1] - 1, len(texts) - 1))
        svd = TruncatedSVD(n_components=components, random_state=0).fit(matrix)
        self.model = (vectorizers, svd.components_.astype("float32"))
        self.folder.mkdir(parents=True, exist_ok=True)
        _save(self.model, self.path)
        self.__dict__.pop("_digest_value", None)

    @property
    def _digest(self) -> str:
        if "_digest_value" not in self.__dict__:
            self.__dict__["_digest_value"] = file_digest(self.path, size=8)
        return self.__dict__["_digest_value"]

    def embed(self, tasks: Sequence[Task]) -> list[list[float] | TaskFailed]:
        texts, slots, failed = read_texts(tasks, self.field)
        out: list[Any] = list(failed)
        if texts:
            for i, row in zip(slots, _transform(self.model, texts)):
                out[i] = row.tolist()
        return out


def _transform(model: tuple[list[Any], Any], texts: list[str]) -> Any:
    """The fit's vectors of ``texts``: each TF-IDF side by side, projected on the components."""
    from scipy.sparse import hstack

    vectorizers, components = model
    return hstack([v.transform(texts) for v in vectorizers]).tocsr() @ components.T


def _save(model: tuple[list[Any], Any], path: Path) -> None:
    import numpy as np

    vectorizers, components = model
    arrays = {"components": components}
    for n, vectorizer in enumerate(vectorizers):
        terms = sorted(vectorizer.vocabulary_, key=vectorizer.vocabulary_.__getitem__)
        arrays[f"terms{n}"] = np.array(terms, dtype=str)
        arrays[f"idf{n}"] = vectorizer.idf_
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)


def _load(path: Path) -> tuple[list[Any], Any]:
    """The fit :func:`_save` kept: vectorizers set from their vocabulary and IDF, not refitted."""
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer

    with np.load(path, allow_pickle=False) as arrays:
        vectorizers = []
        for n, analyzer in enumerate(ANALYZERS):  # the order fit made them in
            terms = arrays[f"terms{n}"].tolist()
            vectorizer = TfidfVectorizer(analyzer=analyzer, ngram_range=ANALYZERS[analyzer],
                                         sublinear_tf=True,
                                         vocabulary={t: i for i, t in enumerate(terms)})
            vectorizer.idf_ = arrays[f"idf{n}"]
            vectorizers.append(vectorizer)
        return vectorizers, arrays["components"]
