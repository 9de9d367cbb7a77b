"""The ``spacy-ner`` trainer: human-final spans -> DocBin files -> ``spacy train`` -> a model folder
that the ``spacy-ner`` annotator loads.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from preannot import ConfigError, Example, Span, Trainer, digest, hold_out

MARKER = "preannot-trained.json"
"""Written only after spaCy finished; its presence (with the same digest) means done."""


def to_docs(nlp, examples: Sequence[Example], field: str, counts: Counter) -> list:
    """spaCy ``Doc`` objects with the examples' spans as entities.

    Spans are aligned to tokens with ``alignment_mode="expand"``: a human who marked "drill" in
    "drills" or left off a character meant the word, so widening keeps the example where
    "contract" would drop it. Every fix or drop is counted in ``counts``: nothing is silent.
    """
    docs = []
    for example in examples:
        text = example.task.data.get(field)
        if not isinstance(text, str):
            counts["examples without text (skipped)"] += 1
            continue
        doc = nlp.make_doc(text)
        aligned = []
        for region in example.regions:
            if not isinstance(region, Span):
                continue
            start, end = region.start, region.end
            piece = text[start:end] if 0 <= start < end <= len(text) else ""
            if not piece.strip():
                counts["spans outside the text or blank (dropped)"] += 1
                continue
            start += len(piece) - len(piece.lstrip())
            end -= len(piece) - len(piece.rstrip())
            span = doc.char_span(start, end, label=region.label, alignment_mode="expand")
            if span is None:
                counts["spans not alignable to tokens (dropped)"] += 1
                continue
            if (span.start_char, span.end_char) != (start, end):
                counts["spans misaligned with tokens (expanded to whole tokens)"] += 1
            aligned.append(span)
        kept, taken = [], set()
        # keep the longer of overlapping spans (in tokens, then characters), then the earlier
        for span in sorted(aligned, key=lambda s: (-len(s), -len(s.text), s.start, s.label_)):
            tokens = set(range(span.start, span.end))
            if tokens & taken:
                if not any(k.start == span.start and k.end == span.end and k.label_ == span.label_
                           for k in kept):
                    counts["overlapping spans (dropped, the longer kept)"] += 1
                continue  # an exact duplicate is not a conflict
            taken |= tokens
            kept.append(span)
        doc.ents = sorted(kept, key=lambda s: s.start)
        docs.append(doc)
    return docs


def run_digest(config_text: str, overrides: dict, gpu: int, *doc_lists) -> str:
    """What a finished run depends on; the marker keeps it so a changed input retrains."""
    data = [[(d.text, [(e.start_char, e.end_char, e.label_) for e in d.ents]) for d in docs]
            for docs in doc_lists]
    return digest(config_text, overrides, gpu, data, size=16)


class SpacyNerTrainer(Trainer):
    """Trains a spaCy NER pipeline with spaCy's own ``spacy train`` loop.

    - ``parent`` is ignored: spaCy's usual practice is to retrain from scratch on all the
      accumulated corrections, which also avoids forgetting what older corrections taught.
    - Resume: a finished run writes a marker; a rerun with the same data and config returns the
      model without training. spaCy's loop cannot resume mid-run, so an interrupted run (a
      ``model-last`` without the marker) trains again from the start.
    """

    type = "spacy-ner"
    description = "Train a spaCy NER pipeline (spacy train) from human-final spans"
    annotator = "spacy-ner"
    learns = ("labels",)
    known_options = frozenset({"config", "language", "epochs", "seed", "gpu", "patience",
                               "eval_frequency"})

    def __init__(self, name: str, options: Mapping[str, Any] | None = None, context=None) -> None:
        super().__init__(name, options, context)
        where = f"trainer {name!r} (spacy-ner)"
        for option in ("epochs", "seed", "gpu", "patience", "eval_frequency"):
            value = self.options.get(option, 0)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(f"{where}: {option!r} must be a whole number, not {value!r}")
        if "config" in self.options and "language" in self.options:
            raise ConfigError(f"{where}: 'language' only applies to the generated config; set "
                              "[nlp] lang in your own config instead")
        self.config_path = None
        if "config" in self.options:
            self.config_path = self.context.path(self.options["config"])
            if not self.config_path.is_file():
                raise ConfigError(f"{where}: config file {self.config_path} not found (write one "
                                  "with `python -m spacy init config -p ner config.cfg`)")
        self.where = where

    def _config_text(self) -> str:
        if self.config_path is not None:
            return self.config_path.read_text(encoding="utf-8")
        from spacy.cli.init_config import init_config

        return init_config(lang=self.options.get("language", "en"), pipeline=["ner"],
                           optimize="efficiency", gpu=False).to_str()

    def _training_overrides(self, words: int) -> dict[str, int]:
        """``[training]`` values: the options set, plus small-data defaults for the generated
        config. A user's own config keeps its values for options not set."""
        frequency = max(10, min(200, words // 100))  # ~ once an epoch at spaCy's first batch size
        defaults = {"epochs": 20, "seed": 0, "eval_frequency": frequency,
                    "patience": 10 * int(self.options.get("eval_frequency", frequency))}
        chosen = {**({} if self.config_path else defaults), **self.options}
        names = {"epochs": "max_epochs", "seed": "seed", "eval_frequency": "eval_frequency",
                 "patience": "patience"}
        return {f"training.{key}": int(chosen[option]) for option, key in names.items()
                if option in chosen}

    def train(self, train: Sequence[Example], dev: Sequence[Example], work_dir: Path, *,
              parent: Path | None = None, log: Callable[[str], None] = print) -> Path:
        import spacy
        from spacy import util
        from spacy.tokens import DocBin

        work_dir = Path(work_dir)
        work_dir.mkdir(parents=True, exist_ok=True)
        config_text = self._config_text()
        config = util.load_config_from_str(config_text, interpolate=False)
        if "paths" not in config:
            raise ConfigError(f"{self.where}: the config has no [paths] section (train/dev); "
                              "fill it with `python -m spacy init fill-config`")
        # the config's own tokenizer: spans must align to the tokens spaCy will train on
        section = config.get("nlp", {})
        if "lang" not in section:
            raise ConfigError(f"{self.where}: the config has no [nlp] lang; fill it with "
                              "`python -m spacy init fill-config`")
        tokenizer = {"tokenizer": section["tokenizer"]} if "tokenizer" in section else {}
        nlp = spacy.blank(section["lang"], config={"nlp": tokenizer})
        carved = not dev
        if carved:
            train, dev = hold_out(train, 10)  # a tenth
        counts: Counter = Counter()
        train_docs = to_docs(nlp, train, self.field, counts)
        dev_docs = to_docs(nlp, dev, self.field, counts)
        labels = sorted({e.label_ for d in train_docs for e in d.ents})
        if not labels:
            raise ValueError(f"{self.where}: no span in the {len(train)} training examples "
                             "survived conversion; nothing to learn")
        overrides = {"paths.train": str(work_dir / "train.spacy"),
                     "paths.dev": str(work_dir / "dev.spacy"),
                     **self._training_overrides(sum(len(d) for d in train_docs))}
        problems = "; ".join(f"{n} {what}" for what, n in sorted(counts.items()))
        log(f"{self.name}: {len(train_docs)} train / {len(dev_docs)} dev examples"
            f"{' (dev carved from train)' if carved else ''}, labels "
            f"{', '.join(labels)}; {problems or 'every span aligned, none dropped'}")
        key = run_digest(config_text, overrides, int(self.options.get("gpu", -1)),
                            train_docs, dev_docs)
        marker = work_dir / MARKER
        if marker.exists():
            done = json.loads(marker.read_text(encoding="utf-8"))
            if done.get("digest") == key and (work_dir / done["model"]).is_dir():
                model = work_dir / done["model"]
                log(f"{self.name}: already trained on this data and config, reusing {model}")
                return model
            marker.unlink()
        for stale in ("model-best", "model-last"):
            if (work_dir / stale).exists():
                log(f"{self.name}: removing {stale} of an unfinished or older run; spaCy "
                    "training cannot resume, it starts again")
                shutil.rmtree(work_dir / stale)
        DocBin(docs=train_docs).to_disk(work_dir / "train.spacy")
        DocBin(docs=dev_docs).to_disk(work_dir / "dev.spacy")
        (work_dir / "config.cfg").write_text(config_text, encoding="utf-8")
        self._run_spacy(work_dir, overrides)
        model = next((work_dir / m for m in ("model-best", "model-last")
                      if (work_dir / m).is_dir()), None)
        if model is None:
            raise RuntimeError(f"{self.where}: spaCy finished without saving a model in {work_dir}")
        marker.write_text(json.dumps({"digest": key, "model": model.name, "labels": labels,
                                      "dropped": dict(counts)}, indent=2), encoding="utf-8")
        return model

    def _run_spacy(self, work_dir: Path, overrides: dict[str, Any]) -> None:
        """``spacy train``; its config errors exit the process, here they become errors."""
        from spacy.cli.train import train as spacy_train

        try:
            spacy_train(work_dir / "config.cfg", work_dir, use_gpu=int(self.options.get("gpu", -1)),
                        overrides=overrides)
        except SystemExit as exc:
            raise ConfigError(f"{self.where}: spacy train stopped (exit {exc.code}) on "
                              f"{work_dir / 'config.cfg'}; its message is above") from None
