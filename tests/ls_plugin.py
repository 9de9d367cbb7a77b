"""A small real annotator for the Label Studio tests: finds configured words, with set scores."""

from preannot import Annotator, Span


class Keywords(Annotator):
    type = "keywords"
    description = "finds the configured words (word -> [label, score])"

    @property
    def labels(self):
        return sorted({label for label, _ in self.options["words"].values()})

    def annotate(self, tasks, upstream):
        results = []
        for task in tasks:
            text = task.data[self.field]
            results.append([Span(label=label, start=text.find(word), end=text.find(word) + len(word),
                                 text=word, score=score)
                            for word, (label, score) in self.options["words"].items()
                            if word in text])
        return results
