"""Retraining from corrections: the split, the registry, the gate, promotion and rollback, with
a real (tiny) trainer whose models the real rules annotator runs."""

import json
import random

import pytest
import spacy
from click.testing import CliRunner

from annotators import GazetteerPlugin
from preannot import Example, Task, hold_out
from preannot.engine.config import load_config, parse_config
from preannot.engine.host import get_host, load_host
from preannot.engine.runner import run
from preannot.training import commands as training_cli
from preannot.training import flow
from preannot.evaluation.split import in_eval_split
from preannot.training.dataset import load_dataset
from preannot.training.gate import GatePolicy, decide
from preannot.training.registry import Registry, resolve_models
from helpers import run_cli

PRODUCTS = {"Acme drill": "PRODUCT", "Zeta saw": "PRODUCT", "Omega sander": "PRODUCT",
            "Bolt kit": "PRODUCT", "Acme": "BRAND", "Zeta": "BRAND", "Omega": "BRAND"}
TEMPLATES = ["I would like 2 {p} please", "Is the {p} in stock?", "Send a {p} to Lyon",
             "my {p} broke again", "price of the {p}?"]


def record(i, term, label, status="annotated"):
    template = TEMPLATES[i % len(TEMPLATES)]
    text = template.format(p=term)
    start = template.index("{p}")
    item = {"id": f"h{i}", "from_name": "label", "to_name": "text", "type": "labels",
            "value": {"start": start, "end": start + len(term), "text": term, "labels": [label]},
            "classification": "added"}
    return {"task": i, "preannot_id": f"doc{i}", "data": {"text": text}, "status": status,
            "human": [item] if status == "annotated" else [], "predicted": []}


def write_corrections(folder, n, seed=0):
    rng = random.Random(seed)
    terms = sorted(PRODUCTS)
    lines = []
    for i in range(n):
        term = rng.choice(terms)
        lines.append(json.dumps(record(i, term, PRODUCTS[term])))
    lines.append(json.dumps(record(n, "Acme", "BRAND", status="skipped")))
    (folder / "harvest").mkdir(exist_ok=True)
    (folder / "harvest" / "corrections.jsonl").write_text("\n".join(lines) + "\n")


@pytest.fixture
def project(tmp_path):
    (tmp_path / "preannot.toml").write_text("""
[input]
paths = ["in.jsonl"]
[output]
path = "out/predictions.json"

[[annotators]]
name = "learned"
type = "rules"
rules = "registry:terms"

[[trainers]]
name = "terms"
type = "gazetteer"

[training]
eval_fraction = 0.3
margin = 0.01
""")
    (tmp_path / "in.jsonl").write_text(json.dumps({"id": "x", "text": "I want a Zeta saw"}) + "\n")
    return tmp_path


@pytest.fixture
def host():
    return load_host((GazetteerPlugin(),))


def train(folder, host, **options):
    config = load_config(folder / "preannot.toml")
    spec = {**flow.trainer_specs(config)[0], **options}
    return flow.train(config, host, spec, log=lambda message: None)


def test_the_evaluation_split_is_fixed_by_task_id(tmp_path):
    keys = [f"doc{i}" for i in range(2000)]
    chosen = [k for k in keys if in_eval_split(k, 0.2)]
    assert len(chosen) == 434  # about a fifth, fixed by the ids' digests
    assert chosen == [k for k in keys if in_eval_split(k, 0.2)]  # same answer every time
    assert set(chosen) <= {k for k in keys if in_eval_split(k, 0.5)}  # a larger split keeps it
    write_corrections(tmp_path, 200)
    data = load_dataset(tmp_path / "harvest" / "corrections.jsonl", learns=("labels",),
                        field="text", eval_fraction=0.3)
    assert data.reviewed == 200  # the skipped task teaches nothing
    train_ids = {e.task.id for e in data.train + data.dev}
    assert train_ids.isdisjoint(e.task.id for e in data.eval)
    assert all(in_eval_split(e.task.id, 0.3) for e in data.eval)


def test_group_by_never_puts_two_tasks_of_one_group_on_both_sides(tmp_path):
    lines = []
    for i in range(300):  # 60 stories of 5 sentences; the story id in the data and in the id
        r = record(i, "Acme drill", "PRODUCT")
        r["preannot_id"] = f"story{i // 5}-s{i % 5}"
        r["data"]["doc_id"] = f"story{i // 5}"
        lines.append(json.dumps(r))
    (tmp_path / "c.jsonl").write_text("\n".join(lines) + "\n")
    for group_by in ("doc_id", r"re:^(story\d+)-s\d+$"):
        data = load_dataset(tmp_path / "c.jsonl", learns=("labels",), field="text",
                            eval_fraction=0.3, group_by=group_by)
        side = {}
        for name, examples in (("train", data.train), ("dev", data.dev), ("eval", data.eval)):
            for e in examples:
                story = e.task.id.split("-")[0]
                assert side.setdefault(story, name) == name, (story, group_by)
        assert len(side) == 60
        sides = data.sides()
        assert sum(n["groups"] for n in sides.values()) == 60
        assert sum(n["tasks"] for n in sides.values()) == 300
        assert all(n["tasks"] == 5 * n["groups"] for n in sides.values())
        assert sides["eval"]["groups"] == sum(in_eval_split(f"group:story{g}", 0.3)
                                              for g in range(60))
    by_task = load_dataset(tmp_path / "c.jsonl", learns=("labels",), field="text",
                           eval_fraction=0.3)  # per task: stories straddle the split
    straddling = {e.task.id.split("-")[0] for e in by_task.eval} & {
        e.task.id.split("-")[0] for e in by_task.train + by_task.dev}
    assert len(straddling) == 49  # of 60: what the gate's figures leaked without group_by


def test_refit_retrains_the_promoted_configuration_on_train_and_dev(project, host):
    (project / "preannot.toml").write_text((project / "preannot.toml").read_text().replace(
        "[training]\n", "[training]\nrefit = true\n"))
    write_corrections(project, 60)
    messages = []
    config = load_config(project / "preannot.toml")
    outcome = flow.train(config, host, flow.trainer_specs(config)[0], log=messages.append)
    assert outcome.promoted and outcome.version.version == "terms-v1"
    registry = Registry(project / ".preannot" / "models")
    refit = registry.current("terms")
    assert outcome.refit.version == refit.version == "terms-v2"
    gated = outcome.version.card["harvest"]
    assert refit.card["refit_of"] == "terms-v1"
    stop = refit.card["harvest"]["dev"]  # early-stopping slice: part of dev, never trained on
    assert 0 < stop < gated["dev"]
    assert refit.card["harvest"]["train"] == gated["train"] + gated["dev"] - stop
    assert refit.card["harvest"]["eval"] == gated["eval"]  # never the eval split
    assert f"from {refit.card['harvest']['train']} tasks" in " ".join(messages)
    assert refit.card["evaluation"]["tasks"] == gated["eval"]
    assert refit.card["gate"]["baseline"] == "terms-v1" and refit.card["gate"]["promote"]


SPACY_REFIT = """
[[annotators]]
name = "ner"
type = "spacy-ner"
model = "registry:products"
[[trainers]]
name = "products"
type = "spacy-ner"
epochs = 40
[training]
eval_fraction = 0.3
refit = true
"""


def test_the_refit_early_stops_on_dev_tasks_it_never_trains_on(tmp_path):
    """Real spaCy training. The refit used to train on all of dev and stop on it (ENTS_F 100):
    the stopping slice's tasks here carry a label of their own, STOP, which spaCy must score
    (it stopped on them) and the refit's model must not know (it never trained on them)."""
    (tmp_path / "preannot.toml").write_text(SPACY_REFIT)
    write_corrections(tmp_path, 60)
    path = tmp_path / "harvest" / "corrections.jsonl"
    data = load_dataset(path, learns=["labels"], field="text", eval_fraction=0.3)
    stop = {e.task.id for e in flow.refit_split(data)[1]}
    assert len(stop) == 1 and len(data.dev) == 4
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for r in records:
        if r["preannot_id"] in stop:
            r["human"][0]["value"]["labels"] = ["STOP"]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    config = load_config(tmp_path / "preannot.toml")
    outcome = flow.train(config, get_host(), flow.trainer_specs(config)[0], log=lambda m: None)
    assert outcome.promoted and outcome.refit.card["refit_of"] == outcome.version.version
    model = outcome.refit.artifact
    assert "STOP" not in spacy.load(model).get_pipe("ner").labels
    scored = json.loads((model / "meta.json").read_text())["performance"]["ents_per_type"]
    assert scored["STOP"] == {"p": 0.0, "r": 0.0, "f": 0.0}  # stopped on STOP, never learned it
    gate = outcome.refit.card["gate"]
    assert gate["baseline"] == outcome.version.version
    current = Registry(config.registry_dir).current("products").version
    assert current == (outcome.refit.version if gate["promote"] else outcome.version.version)


def test_first_version_is_promoted_and_runs_through_the_registry(project, host):
    write_corrections(project, 60)
    outcome = train(project, host)
    assert outcome.promoted and outcome.version.version == "terms-v1"
    assert "no current version" in outcome.reasons[0]
    card = Registry(project / ".preannot" / "models").get("terms-v1").card
    assert card["status"] == "promoted" and card["parent"] is None
    assert card["harvest"]["train"] + card["harvest"]["dev"] + card["harvest"]["eval"] == 60
    assert card["evaluation"]["overall"]["f1"] > 0.9
    config = load_config(project / "preannot.toml")
    run(config, host=host, models=Registry(config.registry_dir))
    task = json.loads((project / "out" / "predictions.json").read_text())[0]
    assert task["predictions"][0]["model_version"] == "terms-v1"
    assert [r["value"]["text"] for r in task["predictions"][0]["result"]] == ["Zeta saw"]


def test_gate_refuses_a_worse_version_and_accepts_a_better_one_then_rollback(project, host):
    write_corrections(project, 12)  # few examples: v1 misses terms it never saw
    first = train(project, host)
    assert first.promoted
    worse = train(project, host, min_count=1000)  # learns nothing
    assert not worse.promoted and worse.version.version == "terms-v2"
    assert "not better enough" in worse.reasons[0]
    registry = Registry(project / ".preannot" / "models")
    assert registry.current("terms").version == "terms-v1"
    assert registry.get("terms-v2").status == "rejected"
    assert "refused" in worse.report.read_text()
    write_corrections(project, 120)  # more reviewed tasks
    better = train(project, host)
    assert better.promoted and better.version.version == "terms-v3"
    card = registry.get("terms-v3").card
    assert card["parent"] == "terms-v1"
    assert card["gate"]["baseline"] == "terms-v1"
    assert card["evaluation"]["overall"]["f1"] > card["gate"]["baseline_evaluation"]["overall"]["f1"]
    html = better.report.read_text()
    assert "promoted" in html and "PRODUCT" in html and "<svg" in html
    # the same data and options again: no new version
    again = train(project, host)
    assert again.reused and again.version.version == "terms-v3"
    assert [v.version for v in registry.versions("terms")] == ["terms-v1", "terms-v2", "terms-v3"]

    result = CliRunner().invoke(training_cli.models, ["rollback", "terms", "-c",
                                                      str(project / "preannot.toml"), "--no-push"])
    assert result.exit_code == 0, result.output
    assert registry.current("terms").version == "terms-v1"
    assert registry.get("terms-v3").status == "rolled back"
    result = CliRunner().invoke(training_cli.models, ["list", "--json", "-c",
                                                      str(project / "preannot.toml")])
    listed = {r["version"]: r for r in json.loads(result.output)}
    assert listed["terms-v1"]["current"] and not listed["terms-v3"]["current"]


def test_gate_refuses_a_version_that_loses_a_label(tmp_path):
    def figures(product, brand):
        labels = {"PRODUCT": {"f1": product, "support": 50}, "BRAND": {"f1": brand, "support": 10}}
        return {"tasks": 60, "overall": {"f1": (5 * product + brand) / 6}, "labels": labels}

    policy = GatePolicy(margin=0.01, label_tolerance=0.05)
    assert decide(figures(0.95, 0.80), figures(0.80, 0.80), policy).promote
    refused = decide(figures(0.99, 0.60), figures(0.80, 0.80), policy)
    assert not refused.promote and "label BRAND" in refused.reasons[-1]
    assert not decide(figures(0.80, 0.80), figures(0.80, 0.80), policy).promote  # no margin
    small = GatePolicy(margin=0.01, label_tolerance=0.05, min_label_support=20)
    assert decide(figures(0.99, 0.60), figures(0.80, 0.80), small).promote  # BRAND too rare
    first = {"tasks": 5, "overall": {"f1": 0.0}, "labels": {}}
    assert not decide(first, None, policy).promote  # a first version must find something
    assert decide({**first, "overall": {"f1": 0.4}}, None, policy).promote
    assert not decide({**first, "overall": {"f1": 0.4}}, None, GatePolicy(min_score=0.5)).promote
    with pytest.raises(ValueError, match="metric"):
        GatePolicy.from_settings(parse_config({"training": {"metric": "accuracy"}}, tmp_path,
                                              "preannot.toml").training)


def test_a_model_with_no_version_yet_is_left_out_with_what_follows_it(tmp_path):
    specs = [{"name": "rules", "type": "rules", "rules": "r"},
             {"name": "ner", "type": "spacy-ner", "model": "registry:ner"},
             {"name": "masks", "type": "sam", "after": "ner"},
             {"name": "fused", "type": "fusion", "after": ["rules", "ner"]}]
    resolved, notices = resolve_models(specs, Registry(tmp_path),
                                       lambda spec: spec["type"] == "fusion")
    assert [s["name"] for s in resolved] == ["rules", "fused"]
    assert resolved[1]["after"] == ["rules"]
    assert "model 'ner' has no promoted version yet" in notices[0]
    assert "'masks' left out: it runs after ner" in notices[1]


def test_train_says_what_to_do(project):
    config = project / "preannot.toml"
    result = CliRunner().invoke(training_cli.train, ["-c", str(config)])
    assert result.exit_code == 1  # the test trainer is not installed in this process
    assert "no trainer type 'gazetteer' is installed" in result.output
    config.write_text(config.read_text().replace('"gazetteer"', '"spacy-ner"'))
    result = CliRunner().invoke(training_cli.train, ["-c", str(config)])
    assert result.exit_code == 1
    assert "corrections.jsonl not found: run `preannot ls pull` first" in result.output


def test_hold_out_keeps_one_in_n_chosen_by_task_id():
    examples = [Example(Task(f"task-{i}", {"text": str(i)}), []) for i in range(50)]
    train, val = hold_out(examples, 5)
    assert len(val) == 10 and len(train) == 40
    assert {e.task.id for e in hold_out(examples[::-1], 5)[1]} == {e.task.id for e in val}
    assert hold_out(examples[:1], 5) == (examples[:1], examples[:1])


def test_models_list_keeps_versions_and_statuses_whole_at_80_columns(tmp_path):
    (tmp_path / "preannot.toml").write_text("")
    registry = Registry(tmp_path / ".preannot" / "models")
    for status in ("promoted", "rolled back"):
        artifact = tmp_path / "model.txt"
        artifact.write_text("x")
        version = registry.add("conll-2003-ner-large", artifact, {"parent": "conll-2003-ner-large-v1",
                                                                  "harvest": {"train": 1404}})
        registry.update(version, status=status)
    result = CliRunner(env={"COLUMNS": "80"}).invoke(
        training_cli.models, ["list", "-c", str(tmp_path / "preannot.toml")])
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80
    for version, status in (("conll-2003-ner-large-v1", "promoted"),
                            ("conll-2003-ner-large-v2", "rolled back")):
        assert any(version in line and status in line for line in result.output.splitlines())


def test_training_logged_to_a_file_has_no_colour_codes(tmp_path):
    """spaCy's own training table coloured the log of a redirected `preannot train`."""
    (tmp_path / "preannot.toml").write_text("""
[[annotators]]
name = "ner"
type = "spacy-ner"
model = "registry:products"
[[trainers]]
name = "products"
type = "spacy-ner"
epochs = 2
[training]
eval_fraction = 0.3
""")
    write_corrections(tmp_path, 30)
    result = run_cli(["train", "-c", str(tmp_path / "preannot.toml"), "--no-push"])
    assert result.returncode in (0, 4), result.stderr
    assert "products-v1" in result.stderr and "E    #" in result.stdout  # spaCy's table
    assert "\x1b[" not in result.stdout + result.stderr


def test_train_measures_a_precedence_fusion_against_its_sources(project, host):
    """A precedence fusion was left out of `train`: nothing measured the pipeline that goes
    to Label Studio. Here a dictionary knowing only the brand "Acme" outranks the model, so on
    each "Acme drill" task the fusion keeps the brand: a false positive and a miss."""
    (project / "dict").mkdir()
    (project / "dict" / "terms.csv").write_text("term,label\nAcme,BRAND\n")
    (project / "preannot.toml").write_text((project / "preannot.toml").read_text().replace(
        "[[trainers]]", """[[annotators]]
name = "dict"
type = "rules"
rules = "dict"

[[annotators]]
name = "fused"
type = "fusion"
after = ["learned", "dict"]
policy = "precedence"
order = ["dict", "learned"]

[[trainers]]"""))
    write_corrections(project, 60)
    outcome = train(project, host)
    data = load_dataset(project / "harvest" / "corrections.jsonl", learns=["labels"],
                        field="text", eval_fraction=0.3)
    texts = [e.regions[0].text for e in data.eval]
    n, brand, drill = len(texts), texts.count("Acme"), texts.count("Acme drill")
    [pipeline] = outcome.pipelines
    assert pipeline.fusion == pipeline.use == "fused"
    counts = {name: {k: e["overall"][k] for k in ("tp", "fp", "fn")}
              for name, e in pipeline.evaluations.items()}
    assert counts == {"learned": {"tp": n, "fp": 0, "fn": 0},
                      "dict": {"tp": brand, "fp": drill, "fn": n - brand},
                      "fused": {"tp": n - drill, "fp": drill, "fn": drill}}
    assert "learned alone does better" in pipeline.reasons[-1]
    assert outcome.version.card["pipelines"]["fused"]["use"] == "fused"
