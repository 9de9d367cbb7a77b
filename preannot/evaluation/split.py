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


def group_key(key: str, data: dict | None, group_by: str | None) -> str:
    """What decides a task's side of the split: its id, or with ``[training] group_by`` its
    group, so a whole group (the sentences of one news story) falls on one side. ``group_by``
    names a task data field (``"doc_id"``), or is a regex over the task id (``"re:^(.*)-s\\d+$"``:
    its first group, else the whole match). A task without the field, or whose id the regex
    does not match, is its own group."""
    if not group_by:
        return key
    if group_by.startswith("re:"):
        import re

        found = re.search(group_by[3:], key)
        if found is None:
            return key
        return f"group:{found.group(1) if found.groups() else found.group(0)}"
    value = (data or {}).get(group_by)
    return key if value is None or value == "" else f"group:{value}"


def training_side(records, share: float, group_by: str | None = None):
    """The harvested corrections records outside the evaluation split: what may teach rules
    (a dictionary grown from the evaluation tasks would be measured on what it memorised)."""
    from ..lsjson import task_key

    for record in records:
        key = task_key(record.get("preannot_id"), record.get("task"))
        if not in_eval_split(group_key(key, record.get("data"), group_by), share):
            yield record
