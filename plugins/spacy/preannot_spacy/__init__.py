"""preannot's built-in text plugin: dictionary and business-rule NER on spaCy."""

from preannot import hookimpl

from .annotator import RulesAnnotator


@hookimpl
def register_annotators(register):
    register(RulesAnnotator)
