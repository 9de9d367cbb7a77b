"""Retraining from corrections: the model registry, the evaluation split, the promotion gate,
and the fusion annotator with its learned combiner."""

REQUIRES: tuple[str, ...] = ()
