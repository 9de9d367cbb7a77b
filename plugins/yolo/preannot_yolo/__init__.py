"""preannot plugin ``yolo``: ultralytics YOLO pre-annotations. Importing it loads no torch."""

from preannot import hookimpl


@hookimpl
def register_annotators(register):
    from .annotator import YoloAnnotator

    register(YoloAnnotator)
