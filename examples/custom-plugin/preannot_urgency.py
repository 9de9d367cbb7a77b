"""A complete preannot plugin: classifies a text as urgent when it contains an urgency cue."""

import re

from preannot import Annotator, Choice, Span, hookimpl


class Urgency(Annotator):
    type = "urgency"
    description = "Flags urgent e-mails and highlights the words that made them urgent."
    reads = ("text",)
    emits = ("choices", "labels")

    def __init__(self, name, options=None, context=None):
        super().__init__(name, options, context)
        cues = self.options.get("cues", ["urgent", "asap", "immediately", "today"])
        self.pattern = re.compile(r"\b(" + "|".join(map(re.escape, cues)) + r")\b", re.I)

    @property
    def labels(self):
        return ["URGENT", "CUE"]

    def annotate(self, tasks, upstream):
        results = []
        for task in tasks:
            text = task.data[self.field]
            cues = [Span(label="CUE", start=m.start(), end=m.end(), text=m.group(), score=0.6)
                    for m in self.pattern.finditer(text)]
            verdict = [Choice(label="URGENT", score=0.8, from_name="urgency")] if cues else []
            results.append(verdict + cues)
        return results


@hookimpl
def register_annotators(register):
    register(Urgency)
