"""The fixed evaluation split: decided by a hash of each task's stable id, so a task stays on
its side for ever. The gate measures models on it and the production review calibrates on it:
neither ever sees a task the models trained on.
"""

from __future__ import annotations

import hashlib

SPLIT_SALT = "preannot-eval"


def fraction(key: str, salt: str) -> float:
    """Where ``key`` falls in [0, 1) for ``salt``: the same on every machine and run."""
    digest = hashlib.blake2b(f"{salt}|{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2 ** 64


def in_eval_split(key: str, share: float) -> bool:
    """Whether the task with stable id ``key`` belongs to the evaluation split."""
    return fraction(key, SPLIT_SALT) < share
