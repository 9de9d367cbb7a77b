"""The suite's own small real models, in one module: annotators and a trainer that the runner,
Label Studio, selection and training tests plug into a host (``load_host((KeywordsPlugin(),))``).
The plugins that a test installs as a distribution of their own stay beside that test."""

from __future__ import annotations

from collections import Counter

from preannot import Annotator, Choice, Span, TaskFailed, Trainer, hookimpl, open_image

calls: list[int] = []
"""The size of each batch FirstWord was given (the runner tests count them)."""


class FirstWord(Annotator):
    """Tags the first word; refuses texts that say 'refuse', crashes on 'crash'."""

    type = "first-word"

    def annotate(self, tasks, upstream):
        calls.append(len(tasks))
        out = []
        for task in tasks:
            text = task.data[self.field]
            if "crash" in text:
                raise RuntimeError("the model fell over")
            if "interrupt" in text:
                raise KeyboardInterrupt
            if "refuse" in text:
                out.append(TaskFailed("refused on purpose"))
                continue
            word = text.split()[0]
            out.append([Span(label="FIRST", start=0, end=len(word), text=word, score=0.7)])
        return out


class CountUpstream(Annotator):
    """Chained: classifies by how many regions its upstream found."""

    type = "count-upstream"
    emits = ("choices",)

    def annotate(self, tasks, upstream):
        (name,) = self.after
        return [[Choice(label=f"{len(p.regions)} regions")] for p in upstream[name]]


class ImageSize(Annotator):
    """Classifies an image by its size, as the annotator sees it."""

    type = "image-size"
    reads = ("image",)
    emits = ("choices",)

    def annotate(self, tasks, upstream):
        out = []
        for task in tasks:
            image = open_image(task, self.field, self.context)
            out.append(image if isinstance(image, TaskFailed)
                       else [Choice(label=f"{image.width}x{image.height}")])
        return out




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
            results.append([Span(label=label, start=text.find(word),
                                 end=text.find(word) + len(word), text=word, score=score)
                            for word, (label, score) in self.options["words"].items()
                            if word in text])
        return results


class Gazetteer(Trainer):
    """Learns the span texts humans marked as a dictionary (a rules folder the real ``rules``
    annotator runs), so the gate, the registry and rollback are tested on real models that
    train in milliseconds."""

    type = "gazetteer"
    annotator = "rules"
    learns = ("labels",)

    def train(self, train, dev, work_dir, *, parent=None, log=print):
        seen = Counter((r.text, r.label) for e in train for r in e.regions)
        keep = sorted(k for k, n in seen.items() if n >= self.options.get("min_count", 1))
        folder = work_dir / "terms"
        folder.mkdir(exist_ok=True)
        rows = "".join(f'"{text}",{label}\n' for text, label in keep)
        (folder / "terms.csv").write_text("term,label\n" + rows, encoding="utf-8")
        log(f"learned {len(keep)} terms from {len(train)} tasks")
        return folder


class RunnerPlugin:
    @hookimpl
    def register_annotators(self, register):
        register(FirstWord)
        register(CountUpstream)
        register(ImageSize)


class KeywordsPlugin:
    @hookimpl
    def register_annotators(self, register):
        register(Keywords)


class GazetteerPlugin:
    @hookimpl
    def register_trainers(self, register):
        register(Gazetteer)
