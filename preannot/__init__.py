"""preannot: pre-annotate data with pluggable annotators and keep Label Studio in step.

Everything a plugin needs is importable from here; anything else is private to the host.
"""

from .annotator import (Annotator, ConfigError, Context, Example, Pool, Ranker, Selector,
                        TaskFailed, Trainer, batches, can_embed, digest, file_digest, hold_out,
                        notice, read_texts)
from .hookspecs import hookimpl
from .images import locate_image, open_image
from .model import Box, Choice, Mask, Point, Polygon, Prediction, Region, Span, Task
from .regions import ImageKind, RegionKind, register_kind

__all__ = [
    "Annotator", "Box", "Choice", "ConfigError", "Context", "Example", "ImageKind", "Mask", "Point",
    "Polygon", "Pool", "Prediction", "Ranker", "Region", "RegionKind", "Selector", "Span", "Task",
    "TaskFailed", "Trainer", "batches", "can_embed", "digest", "file_digest", "hold_out",
    "hookimpl", "locate_image", "notice", "open_image", "read_texts", "register_kind",
]
