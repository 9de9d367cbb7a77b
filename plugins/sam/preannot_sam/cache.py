"""SAM image embedding caches, so a rerun or a second prompt on an image does not re-encode.

:class:`Embeddings` keeps the last few images' embeddings in memory (the editor's prompts hop
between a handful of open tasks); :class:`EmbeddingCache` keeps them all on disk. On disk, the key is the decoded image's content (pixels after EXIF orientation, so the same picture under
two names or URLs is encoded once) plus the model (checkpoint digest and model type). Files are
written atomically; an unreadable entry is treated as a miss and rewritten.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def image_digest(pixels) -> str:
    digest = hashlib.blake2b(digest_size=16)
    digest.update(repr(pixels.shape).encode())
    digest.update(pixels.tobytes())
    return digest.hexdigest()


class EmbeddingCache:
    def __init__(self, folder: Path, model_key: str) -> None:
        self.folder = folder / model_key
        self.hits = 0
        self.misses = 0

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.pt"

    def get(self, key: str):
        """``(features, input_size)`` or None."""
        import torch

        path = self._path(key)
        if path.exists():
            try:
                entry = torch.load(path, map_location="cpu", weights_only=True)
                self.hits += 1
                return entry["features"], tuple(entry["input_size"])
            except Exception:
                pass  # a truncated or foreign file: recompute and overwrite it
        self.misses += 1
        return None

    def put(self, key: str, features, input_size: tuple[int, int]) -> None:
        import torch

        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        torch.save({"features": features.detach().float().cpu(), "input_size": list(input_size)}, tmp)
        os.replace(tmp, path)


@dataclass(frozen=True)
class Embedding:
    """What SamPredictor needs to answer prompts on one image without its encoder."""

    features: Any
    """The encoder's output (1, 256, 64, 64), on the model's device."""
    input_size: tuple[int, int]
    """The image's size after resizing to the encoder's 1024-pixel side."""
    original_size: tuple[int, int]
    """(height, width) of the image, where the masks are drawn."""


class Embeddings:
    """An in-memory LRU of the last ``size`` images' embeddings (~4 MB each); 0 keeps none.
    Not locked itself: the annotator holds its lock around every use."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: OrderedDict[str, Embedding] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> Embedding | None:
        embedding = self.items.get(key)
        if embedding is None:
            self.misses += 1
            return None
        self.items.move_to_end(key)
        self.hits += 1
        return embedding

    def put(self, key: str, embedding: Embedding) -> None:
        if self.size <= 0:
            return
        self.items[key] = embedding
        self.items.move_to_end(key)
        while len(self.items) > self.size:
            self.items.popitem(last=False)
