"""Choosing what humans label: task embeddings (cached, resumable), a vector index beside the
ledger, near-duplicate groups and the selection that orders the Label Studio queue."""

REQUIRES: tuple[str, ...] = ()
