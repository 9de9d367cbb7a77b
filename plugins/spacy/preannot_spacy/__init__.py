"""preannot's built-in text plugin: dictionary and business-rule NER, and trained spaCy NER."""

from preannot import hookimpl

from .annotator import RulesAnnotator
from .ner import SpacyNerAnnotator
from .trainer import SpacyNerTrainer


@hookimpl
def register_annotators(register):
    register(RulesAnnotator)
    register(SpacyNerAnnotator)


@hookimpl
def register_trainers(register):
    register(SpacyNerTrainer)
