"""On-disk cache of SAM image embeddings, so a rerun or a second prompt does not re-encode.

The key is the decoded image's content (pixels after EXIF orientation, so the same picture under
two names or URLs is encoded once) plus the model (checkpoint digest and model type). Files are
written atomically; an unreadable entry is treated as a miss and rewritten.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


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
