"""Retraining from corrections: the model registry, the evaluation split, the promotion gate."""
