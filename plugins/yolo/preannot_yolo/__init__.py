"""preannot plugin ``yolo``: ultralytics YOLO pre-annotations, and a trainer that fine-tunes them on
human boxes. Importing it loads no torch."""

from preannot import hookimpl


@hookimpl
def register_annotators(register):
    from .annotator import YoloAnnotator

    register(YoloAnnotator)


@hookimpl
def register_trainers(register):
    from .trainer import YoloTrainer

    register(YoloTrainer)
