"""preannot plugin ``sam``: Segment Anything pre-annotations. Importing it loads no torch."""

from preannot import hookimpl


@hookimpl
def register_annotators(register):
    from .annotator import SamAnnotator

    register(SamAnnotator)
