"""A small real trainer for the training tests: learns the span texts humans marked as a
dictionary (a rules folder the real ``rules`` annotator runs), so the gate, the registry and
rollback are tested on real models that train in milliseconds."""

from collections import Counter

from preannot import Trainer, hookimpl


class Gazetteer(Trainer):
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


class GazetteerPlugin:
    @hookimpl
    def register_trainers(self, register):
        register(Gazetteer)
