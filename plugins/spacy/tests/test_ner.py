"""The spacy-ner trainer and annotator with real spaCy training on generated sentences.

The sentences put BRAND and PRODUCT names from small vocabularies into short order/support
templates. One training run (module fixture, about 10 s on 2 cores) serves most tests.
"""

from __future__ import annotations

import random

import pytest

from preannot import ConfigError, Context, Example, Span, Task, TaskFailed
from preannot_spacy.ner import SpacyNerAnnotator
from preannot_spacy.trainer import SpacyNerTrainer

BRANDS = ["Acme", "Bosch", "Makita", "Ryobi", "Hilti", "Stanley", "Festool", "Metabo"]
PRODUCTS = ["PowerDrill 300", "TurboSaw X2", "GrindMaster 9", "ImpactPro 18",
            "SandStar 5", "CutLine 700", "BoltRunner 12", "MightyHammer 4"]
UNSEEN_BRANDS = ["Vexor", "Kirkland"]
UNSEEN_PRODUCTS = ["DrillMax 450", "SawKing Z3"]
TEMPLATES = [
    "I ordered {n} {BRAND} {PRODUCT} yesterday",
    "My {PRODUCT} from {BRAND} stopped working after a week",
    "Is the {BRAND} {PRODUCT} still in stock ?",
    "Please send me a quote for {n} {PRODUCT} units",
    "{BRAND} shipped the wrong {PRODUCT} again",
    "Can I return the {PRODUCT} I bought last month ?",
    "We need {n} more {BRAND} tools for the site",
    "The invoice lists {n} {PRODUCT} but only {m} arrived",
    "Do you repair {BRAND} machines ?",
    "Thanks , the {PRODUCT} works great",
    # distractors: capitalised names, days and "Word 123" shapes that are not entities
    "Anna from Paris asked whether the {PRODUCT} fits {BRAND} batteries",
    "Order 4512 : {n} {BRAND} {PRODUCT} , delivery on Monday",
    "Hi Tom , {BRAND} says the {PRODUCT} ships Friday from Gate 7",
    "Room 12 at Berlin still waits for the {PRODUCT}",
]


def sentence(rng: random.Random, brands: list[str], products: list[str]) -> tuple[str, list]:
    """A templated sentence and its gold (start, end, label) entities."""
    template = rng.choice(TEMPLATES)
    text, gold, pos = "", [], 0
    for piece in template.replace("{", "\0{").replace("}", "}\0").split("\0"):
        value, label = piece, None
        if piece == "{BRAND}":
            value, label = rng.choice(brands), "BRAND"
        elif piece == "{PRODUCT}":
            value, label = rng.choice(products), "PRODUCT"
        elif piece in ("{n}", "{m}"):
            value = str(rng.randint(2, 40))
        if label:
            gold.append((pos, pos + len(value), label))
        text += value
        pos += len(value)
    return text, gold


def examples(n: int, seed: int, brands=BRANDS, products=PRODUCTS) -> list[Example]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        text, gold = sentence(rng, brands, products)
        out.append(Example(Task(f"s{seed}-{i}", {"text": text}),
                           [Span(start=s, end=e, text=text[s:e], label=lab) for s, e, lab in gold]))
    return out


def f1(annotator: SpacyNerAnnotator, held_out: list[Example]) -> float:
    predicted = annotator.annotate([e.task for e in held_out], {})
    gold = {(i, r.start, r.end, r.label) for i, e in enumerate(held_out) for r in e.regions}
    found = {(i, s.start, s.end, s.label) for i, p in enumerate(predicted) for s in p.regions}
    tp = len(gold & found)
    return 2 * tp / (len(gold) + len(found)) if gold or found else 1.0


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(trainer, work_dir, model folder, log lines) of one small training run (8 epochs)."""
    work = tmp_path_factory.mktemp("spacy-ner")
    trainer = SpacyNerTrainer("products", {"epochs": 8}, Context(base_dir=work))
    lines: list[str] = []
    model = trainer.train(examples(300, seed=1), [], work / "run", log=lines.append)
    return trainer, work / "run", model, lines


def test_trained_model_finds_seen_and_unseen_names(trained):
    """Bars: F1 >= 0.9 on held-out sentences with names seen in training, >= 0.8 with brand and
    product names never seen (same templates: generalising from context and word shape)."""
    _, _, model, lines = trained
    assert model.name == "model-best" and model.is_dir()
    assert any("270 train / 30 dev examples (dev carved" in line and "BRAND, PRODUCT" in line for line in lines)
    annotator = SpacyNerAnnotator("ner", {"model": str(model)})
    assert annotator.labels == ["BRAND", "PRODUCT"]
    seen = f1(annotator, examples(50, seed=2))
    unseen = f1(annotator, examples(50, seed=3, brands=UNSEEN_BRANDS, products=UNSEEN_PRODUCTS))
    print(f"entity F1: seen names {seen:.3f}, unseen names {unseen:.3f}")
    assert seen >= 0.9
    assert unseen >= 0.8


def test_spans_carry_offsets_text_provenance_and_the_fixed_score(trained):
    model = trained[2]
    annotator = SpacyNerAnnotator("ner", {"model": str(model), "score": 0.7, "labels": ["BRAND"]})
    text = "I ordered 3 Acme PowerDrill 300 yesterday"
    [spans, failed] = annotator.annotate([Task("a", {"text": text}), Task("b", {"text": 42})], {})
    assert [(s.start, s.end, s.text, s.label, s.score) for s in spans] == [
        (12, 16, "Acme", "BRAND", 0.7)]
    assert spans[0].provenance == {"model": str(model)}
    assert isinstance(failed, TaskFailed) and "int" in str(failed)
    assert annotator.labels == ["BRAND"]


def held_out_tasks() -> list[Task]:
    """Held-out sentences with seen and unseen names: some entities the model is less sure of."""
    return [e.task for e in examples(30, seed=7)
            + examples(30, seed=3, brands=UNSEEN_BRANDS, products=UNSEEN_PRODUCTS)]


def beam_marginals(nlp, text: str, beam_width: int) -> dict[tuple[int, int, str], float]:
    """Independently of the annotator: the (start, end, label) marginals of ``text`` in the beam
    of the pipeline's ``ner`` (run on the doc as tok2vec hands it over, the ner not yet run)."""
    doc = nlp.get_pipe("tok2vec")(nlp.make_doc(text))
    ner = nlp.get_pipe("ner")
    [beam] = ner.beam_parse([doc], beam_width=beam_width)
    parses = ner.moves.get_beam_parses(beam)
    total = sum(prob for prob, _ in parses)
    marginals: dict[tuple[int, int, str], float] = {}
    for prob, ents in parses:
        for ent in ents:
            marginals[ent] = marginals.get(ent, 0.0) + prob / total
    return marginals


def test_scores_are_beam_marginals_on_the_greedy_regions(trained):
    """Each entity's score is its marginal probability in an 8-wide beam (the default), recomputed here from
    ``beam_parse`` + ``get_beam_parses``; the regions stay those of ``nlp.pipe`` (greedy)."""
    import spacy

    model = trained[2]
    nlp = spacy.load(model)
    assert nlp.pipe_names == ["tok2vec", "ner"]
    tasks = held_out_tasks()
    annotator = SpacyNerAnnotator("ner", {"model": str(model)})
    results = [p.regions for p in annotator.annotate(tasks, {})]
    greedy = [[(e.start_char, e.end_char, e.label_) for e in doc.ents]
              for doc in nlp.pipe(t.data["text"] for t in tasks)]
    assert [[(s.start, s.end, s.label) for s in spans] for spans in results] == greedy
    scores = [s.score for spans in results for s in spans]
    assert len(scores) > 50
    assert all(isinstance(x, float) and 0.0 <= x <= 1.0 for x in scores)
    assert len(set(scores)) > 10 and min(scores) < 0.999  # a signal, not a constant

    # the exact marginals, on the text the model is least sure of and on one it is sure of
    least = min(range(len(tasks)), key=lambda i: min((s.score for s in results[i]), default=1))
    for i in (least, 0):
        text = tasks[i].data["text"]
        expected = beam_marginals(nlp, text, 8)
        doc = nlp(text)
        [alone] = [p.regions for p in annotator.annotate([tasks[i]], {})]
        assert len(alone) == len(doc.ents) > 0
        for span, ent in zip(alone, doc.ents):
            assert (span.start, span.end) == (ent.start_char, ent.end_char)
            assert span.score == pytest.approx(expected[(ent.start, ent.end, ent.label_)],
                                               abs=1e-9)
        # batched (and in other batch sizes) the same
        assert [s.score for s in results[i]] == pytest.approx([s.score for s in alone], abs=1e-9)
    assert min(s.score for s in results[least]) < 0.999

    small = SpacyNerAnnotator("ner", {"model": str(model), "batch_size": 7, "beam_width": 4})
    narrow = [p.regions for p in small.annotate(tasks, {})]
    assert [[(s.start, s.end, s.label) for s in spans] for spans in narrow] == greedy
    text = tasks[least].data["text"]
    expected = beam_marginals(nlp, text, 4)
    assert [s.score for s in narrow[least]] == pytest.approx(
        [expected[(e.start, e.end, e.label_)] for e in nlp(text).ents], abs=1e-9)
    assert small.fingerprint() != annotator.fingerprint()


def test_the_prediction_score_is_the_beam_probability_of_the_whole_entity_set(trained):
    """The task's score: the beam's mass on parses holding exactly the greedy entities. It is
    at most any entity's marginal, and it falls below them where the beam also considers an
    entity the greedy pass left out (a possible miss that no region's score shows)."""
    import spacy

    nlp = spacy.load(trained[2])
    tasks = held_out_tasks()
    annotator = SpacyNerAnnotator("ner", {"model": str(trained[2])})
    predictions = annotator.annotate(tasks, {})
    assert [p.model_version for p in predictions] == [annotator.model_version] * len(tasks)
    misses = 0
    for task, prediction in zip(tasks, predictions):
        text = task.data["text"]
        doc = nlp.get_pipe("tok2vec")(nlp.make_doc(text))
        [beam] = nlp.get_pipe("ner").beam_parse([doc], beam_width=8)
        parses = nlp.get_pipe("ner").moves.get_beam_parses(beam)
        total = sum(p for p, _ in parses)
        greedy = {(e.start, e.end, e.label_) for e in nlp(text).ents}
        expected = sum(p for p, ents in parses if set(ents) == greedy) / total
        assert prediction.score == pytest.approx(expected, abs=1e-9)
        assert all(prediction.score <= r.score + 1e-9 for r in prediction.regions)
        weakest = min((r.score for r in prediction.regions), default=1.0)
        misses += prediction.score < weakest - 1e-6
    print("tasks whose score is below their weakest entity's:", misses)
    assert misses >= 1  # the held-out texts hold possible misses the score must show


def test_a_fixed_score_replaces_the_beam_confidence(trained):
    annotator = SpacyNerAnnotator("ner", {"model": str(trained[2]), "score": 0.5})
    results = annotator.annotate(held_out_tasks(), {})
    assert all(isinstance(spans, list) for spans in results)  # no beam: no task score either
    scores = [s.score for spans in results for s in spans]
    assert len(scores) > 50 and set(scores) == {0.5}


def test_entities_no_ner_predicted_have_no_score(trained, tmp_path):
    """An entity_ruler's entities (before the ner: they constrain its beam) have score None; the
    ner's own entities keep their beam marginals."""
    import spacy

    nlp = spacy.load(trained[2])
    ruler = nlp.add_pipe("entity_ruler", before="ner")
    ruler.add_patterns([{"label": "PERSON", "pattern": "Anna"}])
    nlp.to_disk(tmp_path / "m")
    text = "Anna from Paris asked whether the PowerDrill 300 fits Acme batteries"
    annotator = SpacyNerAnnotator("ner", {"model": "m"}, Context(base_dir=tmp_path))
    [prediction] = annotator.annotate([Task("a", {"text": text})], {})
    spans = prediction.regions
    assert [(s.text, s.label) for s in spans] == [
        ("Anna", "PERSON"), ("PowerDrill 300", "PRODUCT"), ("Acme", "BRAND")]
    assert spans[0].score is None
    doc = nlp.get_pipe("entity_ruler")(nlp.get_pipe("tok2vec")(nlp.make_doc(text)))
    [beam] = nlp.get_pipe("ner").beam_parse([doc], beam_width=8)
    parses = nlp.get_pipe("ner").moves.get_beam_parses(beam)
    for span in spans[1:]:
        ent = next(e for e in nlp(text).ents if e.start_char == span.start)
        key = (ent.start, ent.end, ent.label_)
        assert span.score == pytest.approx(
            sum(p for p, ents in parses if key in ents) / sum(p for p, _ in parses), abs=1e-9)
    # the whole set: the parses holding exactly the ner's own entities (the ruler's aside)
    own = {(e.start, e.end, e.label_) for e in nlp(text).ents if e.label_ != "PERSON"}
    had = {(e.start, e.end, e.label_) for e in doc.ents}
    assert prediction.score == pytest.approx(
        sum(p for p, ents in parses if set(ents) - had == own) / sum(p for p, _ in parses),
        abs=1e-9)


def test_a_rerun_returns_the_finished_model_without_training(trained):
    trainer, work, model, _ = trained
    stamps = [(p, p.stat().st_mtime_ns) for p in (model / "meta.json", work / "train.spacy")]
    lines: list[str] = []
    again = trainer.train(examples(300, seed=1), [], work, log=lines.append)
    assert again == model
    assert [(p, p.stat().st_mtime_ns) for p, _ in stamps] == stamps  # nothing rewritten
    assert any("already trained" in line for line in lines)


def test_fingerprint_follows_the_model_folder_contents(trained, tmp_path):
    import spacy

    folder = tmp_path / "m"
    spacy.load(trained[2]).to_disk(folder)
    before = SpacyNerAnnotator("ner", {"model": "m"}, Context(base_dir=tmp_path)).fingerprint()
    assert SpacyNerAnnotator("ner", {"model": "m"},
                             Context(base_dir=tmp_path)).fingerprint() == before
    nlp = spacy.load(folder)
    tok2vec = nlp.get_pipe("tok2vec").model
    node = next(n for n in tok2vec.walk() if n.param_names)
    name = node.param_names[0]
    node.set_param(name, node.get_param(name) + 0.01)  # "retrained" weights, same folder
    nlp.to_disk(folder)
    assert SpacyNerAnnotator("ner", {"model": "m"},
                             Context(base_dir=tmp_path)).fingerprint() != before


def test_misaligned_overlapping_and_blank_spans_are_counted_not_silent(tmp_path):
    from spacy.tokens import DocBin
    import spacy

    good = examples(20, seed=5)
    text = "I ordered 3 Acme drills yesterday"
    odd = Example(Task("odd", {"text": text}), [
        Span(start=12, end=15, text="Acm", label="BRAND"),          # cut inside a word
        Span(start=12, end=23, text="Acme drills", label="PRODUCT"),  # overlaps, longer
        Span(start=17, end=23, text="drills", label="PRODUCT"),       # inside the longer one
        Span(start=11, end=12, text=" ", label="BRAND"),              # blank
        Span(start=30, end=90, text="?", label="BRAND"),              # past the end
    ])
    trainer = SpacyNerTrainer("t", {"epochs": 1})
    lines: list[str] = []
    model = trainer.train(good + [odd], good[:3], tmp_path, log=lines.append)
    summary = lines[0]
    assert "1 spans misaligned with tokens (expanded to whole tokens)" in summary
    assert "2 overlapping spans (dropped, the longer kept)" in summary
    assert "2 spans outside the text or blank (dropped)" in summary
    docs = list(DocBin().from_disk(tmp_path / "train.spacy").get_docs(spacy.blank("en").vocab))
    [doc] = [d for d in docs if d.text == text]
    assert [(e.text, e.label_) for e in doc.ents] == [("Acme drills", "PRODUCT")]

    # an interrupted run (no marker) trains again from the start, and says so
    (tmp_path / "preannot-trained.json").unlink()
    lines.clear()
    assert trainer.train(good + [odd], good[:3], tmp_path, log=lines.append) == model
    assert any("cannot resume" in line for line in lines)
    assert (tmp_path / "preannot-trained.json").exists()


def test_a_user_config_is_used(tmp_path):
    import spacy
    from spacy.cli.init_config import init_config

    config = init_config(lang="en", pipeline=["ner"], optimize="efficiency", gpu=False)
    config["components"]["ner"]["model"]["hidden_width"] = 24
    config["training"]["max_epochs"] = 2
    config.to_disk(tmp_path / "my.cfg")
    trainer = SpacyNerTrainer("t", {"config": "my.cfg"}, Context(base_dir=tmp_path))
    model = trainer.train(examples(40, seed=6), [], tmp_path / "run", log=lambda _: None)
    saved = spacy.util.load_config(model / "config.cfg")
    assert saved["components"]["ner"]["model"]["hidden_width"] == 24
    assert saved["training"]["max_epochs"] == 2  # the config's own value, no option set
    assert spacy.load(model).get_pipe("ner").model.get_ref("lower").get_dim("nO") == 24
    assert (tmp_path / "run" / "config.cfg").read_text() == (tmp_path / "my.cfg").read_text()


def test_option_errors_name_the_annotator_and_say_what_to_do(trained, tmp_path):
    model = str(trained[2])
    with pytest.raises(ConfigError,
                       match=r"'ner' \(spacy-ner\): unknown option 'modle' \(known: .*\bscore\b"):
        SpacyNerAnnotator("ner", {"model": model, "modle": "x"})
    with pytest.raises(ConfigError, match="set 'model'"):
        SpacyNerAnnotator("ner", {})
    with pytest.raises(ConfigError, match="no folder .*nowhere.* and no installed spaCy package"):
        SpacyNerAnnotator("ner", {"model": "nowhere"}, Context(base_dir=tmp_path))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="not a spaCy pipeline folder"):
        SpacyNerAnnotator("ner", {"model": "empty"}, Context(base_dir=tmp_path))
    with pytest.raises(ConfigError, match=r"\['PERSON'\], which the model does not predict"):
        SpacyNerAnnotator("ner", {"model": model, "labels": ["BRAND", "PERSON"]})
    with pytest.raises(ConfigError, match="'score' must be a number"):
        SpacyNerAnnotator("ner", {"model": model, "score": "high"})
    for width in (1, 0, "16", 2.5, True):
        with pytest.raises(ConfigError) as refused:
            SpacyNerAnnotator("ner", {"model": model, "beam_width": width})
        assert str(refused.value) == (
            "annotator 'ner' (spacy-ner): 'beam_width' must be a whole number >= 2 (the number "
            f"of candidate parses the confidence beam keeps), not {width!r}")
    assert SpacyNerAnnotator("ner", {"model": model, "beam_width": 2}).beam_width == 2
    with pytest.raises(ConfigError,
                       match=r"trainer 't' \(spacy-ner\): unknown option 'epoch' "
                             r"\(known: .*\bepochs\b"):
        SpacyNerTrainer("t", {"epoch": 3})
    with pytest.raises(ConfigError, match="'epochs' must be a whole number"):
        SpacyNerTrainer("t", {"epochs": "3"})
    with pytest.raises(ConfigError, match="config file .*missing.cfg not found"):
        SpacyNerTrainer("t", {"config": "missing.cfg"}, Context(base_dir=tmp_path))


def test_both_are_registered_with_the_host(monkeypatch):
    from preannot.engine.host import load_host

    monkeypatch.setenv("PREANNOT_PLUGINS", "spacy")  # this plugin alone, whatever else is installed
    host = load_host()
    assert not host.failures, host.failures
    assert host.annotator_types()["spacy-ner"][1] is SpacyNerAnnotator
    assert host.trainer_types()["spacy-ner"][1] is SpacyNerTrainer
    assert SpacyNerTrainer.annotator == SpacyNerAnnotator.type


def test_embed_is_the_mean_of_the_pipelines_tok2vec_output(trained):
    """A trained spacy-ner model has no word vectors: a text's embedding is the mean of its
    tokens' tok2vec rows (``doc.tensor``); an empty text is a zero vector, a non-text fails."""
    import numpy as np

    from preannot import can_embed

    annotator = SpacyNerAnnotator("ner", {"model": str(trained[2])})
    texts = ["Acme sells the Rocket 3000 today", "", "a third one"]
    tasks = [Task(str(i), {"text": t}) for i, t in enumerate(texts)] + [Task("n", {"text": 4})]
    vectors = annotator.embed(tasks)
    assert can_embed(annotator)
    doc = annotator.nlp(texts[0])
    width = doc.tensor.shape[1]
    assert np.allclose(vectors[0], doc.tensor.mean(axis=0))
    assert vectors[1] == [0.0] * width and len(vectors[2]) == width
    assert isinstance(vectors[3], TaskFailed) and "holds a int" in str(vectors[3])
