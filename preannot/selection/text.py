"""The embedder that needs no model: TF-IDF of the text (words and character 3-5-grams, so
spelling variants stay close) reduced by truncated SVD (latent semantic analysis).

It is fitted once, on the first pool it sees, and kept in ``.preannot/index/``: later tasks
are embedded with the same fit, so cached vectors and the index stay valid as tasks arrive.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..annotator import ConfigError, TaskFailed, file_digest, read_texts
from ..model import Task

FIT_SAMPLE = 50_000


class TfidfEmbedder:
    """TF-IDF + truncated SVD over the task data's ``field``."""

    def __init__(self, folder: Path, field: str = "text", dim: int = 128) -> None:
        self.folder, self.field, self.dim = folder, field, dim
        self.path = folder / f"tfidf-{field}-{dim}.pkl"
        self.model = None
        if self.path.exists():
            self.model = pickle.loads(self.path.read_bytes())

    @property
    def model_version(self) -> str:
        if self.model is None:
            raise RuntimeError("fit the TF-IDF embedder first")
        return f"tfidf-svd-{self.dim}-{self._digest}"

    def fit(self, tasks: Sequence[Task]) -> None:
        """Fit on (a sample of) ``tasks`` unless a fit is kept already."""
        if self.model is not None:
            return
        try:
            from sklearn.decomposition import TruncatedSVD
            from sklearn.feature_extraction.text import TfidfVectorizer
            from sklearn.pipeline import make_pipeline, make_union
        except ImportError:
            raise ConfigError('the default text embedder needs scikit-learn: pip install '
                              '"preannot[select]"') from None
        texts = [t.data.get(self.field) for t in tasks[:FIT_SAMPLE]]
        texts = [t for t in texts if isinstance(t, str) and t.strip()]
        if len(texts) < 3:
            raise ConfigError(f"the default text embedder needs at least 3 tasks with text in "
                              f"{self.field!r} to fit on; it found {len(texts)} (set "
                              "[selection] field, or an embedder)")
        features = make_union(
            TfidfVectorizer(sublinear_tf=True, min_df=1),
            TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True,
                            min_df=2 if len(texts) > 1000 else 1, max_features=200_000))
        matrix = features.fit_transform(texts)
        components = max(1, min(self.dim, matrix.shape[1] - 1, len(texts) - 1))
        svd = TruncatedSVD(n_components=components, random_state=0).fit(matrix)
        self.model = make_pipeline(features, svd)
        self.folder.mkdir(parents=True, exist_ok=True)
        blob = pickle.dumps(self.model)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(blob)
        tmp.replace(self.path)
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
            for i, row in zip(slots, self.model.transform(texts)):
                out[i] = row.tolist()
        return out
