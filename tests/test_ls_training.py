"""The flywheel end to end against a real Label Studio and real spaCy training: push rules
pre-annotations, a human corrects tasks through the API, the pull retrains ([training]
retrain_after) and promotes a model, the unlabeled tasks get its predictions and the project's
model version points at it; `preannot train` makes another version; rollback points everything
back."""

import json
import random
import uuid

import pytest
from click.testing import CliRunner

from benchmarks.simulation.annotator import GoldText, SimulatedAnnotator
from benchmarks.simulation.config import learned_pipeline, write_config
from preannot.cli import cli
from preannot.engine.config import load_config
from preannot.engine.host import get_host
from preannot.labelstudio.push import model_version_of
from preannot.labelstudio import sync
from preannot.evaluation.split import in_eval_split
from preannot.training.registry import Registry

pytestmark = [pytest.mark.labelstudio, pytest.mark.slow]

KNOWN = ["Acme drill", "Zeta saw", "Omega sander"]  # in the dictionary
UNKNOWN = ["Nova grinder", "Vega planer"]  # only humans mark these
TEMPLATES = ["Please send 2 {p} to Lyon.", "Is the {p} in stock?", "We need a {p} for the shop.",
             "Our {p} broke, ship a new one.", "Quote 5 {p} please."]


def corpus(n=70, seed=3):
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        product = rng.choice(KNOWN + UNKNOWN)
        template = rng.choice(TEMPLATES)
        text = template.format(p=product)
        start = template.index("{p}")
        rows.append({"id": f"doc{i}", "text": text, "gold": (start, start + len(product), product)})
    return rows


@pytest.fixture
def project(tmp_path, labelstudio, monkeypatch):
    for key, value in labelstudio.env().items():
        monkeypatch.setenv(key, value)
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "products.csv").write_text(
        "term,label\n" + "".join(f"{p},PRODUCT\n" for p in KNOWN))
    rows = corpus()
    (tmp_path / "emails.jsonl").write_text(
        "".join(json.dumps({"id": r["id"], "text": r["text"]}) + "\n" for r in rows))
    write_config(tmp_path, inputs=["emails.jsonl"], annotators=learned_pipeline(),
                 trainers=[{"name": "ner", "type": "spacy-ner", "epochs": 15}],
                 training={"eval_fraction": 0.25, "margin": 0.0, "retrain_after": 40},
                 labelstudio={"project": f"flywheel {uuid.uuid4().hex[:6]}"})
    return tmp_path, rows


def invoke(*args):
    result = CliRunner().invoke(cli, [*args], catch_exceptions=False)
    return result


def test_correct_pull_train_promote_repredict_rollback(project, labelstudio):
    folder, rows = project
    config = str(folder / "preannot.toml")
    result = invoke("ls", "push", "-c", config, "--no-progress")
    assert result.exit_code == 0, result.output
    client = labelstudio.client()
    title = next(line for line in (folder / "preannot.toml").read_text().splitlines()
                 if line.startswith("project"))
    project_id = client.project(title.split('"')[1]).id
    first_version = client.sdk.projects.get(project_id).model_version
    # no model version yet: the model is left out, fusion runs on the rules alone
    built = sync.annotators(load_config(folder / "preannot.toml"), get_host())
    assert [a.name for a in built] == ["rules", "fused"]
    assert first_version == model_version_of(built) == "+".join(a.model_version for a in built)

    tasks = {t["meta"]["preannot_id"]: t for t in client.export(project_id)}
    human = SimulatedAnnotator(client, {r["id"]: GoldText(r["text"], [(*r["gold"][:2], "PRODUCT")])
                                        for r in rows})
    reviewed = [f"doc{i}" for i in range(50)]
    for key in reviewed:  # the human: exactly the gold span, whatever was predicted
        human.annotate(tasks[key])
    result = invoke("ls", "pull", "-c", config, "--no-progress")  # 50 >= retrain_after: trains
    assert result.exit_code == 0, result.output
    assert "50 newly reviewed tasks since ner was last trained" in result.output
    assert "ner-v1: promoted" in result.output
    result = invoke("ls", "pull", "-c", config, "--no-progress")  # nothing new: no training
    assert result.exit_code == 0 and "retraining" not in result.output
    registry = Registry(folder / ".preannot" / "models")
    v1 = registry.current("ner")
    assert v1.version == "ner-v1" and v1.card["harvest"]["train"] + v1.card["harvest"]["dev"] \
        + v1.card["harvest"]["eval"] == 50
    promoted_version = client.sdk.projects.get(project_id).model_version
    assert "ner-v1" in promoted_version and promoted_version != first_version
    unlabeled = [t for k, t in tasks.items() if k not in reviewed]
    for task in unlabeled:  # every unlabeled task got the new version's prediction...
        versions = [p.model_version for p in client.sdk.predictions.list(task=task["id"])]
        assert promoted_version in versions
    for key in reviewed[:5]:  # ...and the reviewed ones were left alone
        versions = [p.model_version for p in client.sdk.predictions.list(task=tasks[key]["id"])]
        assert promoted_version not in versions
    # the model finds the products the dictionary does not know, in the new predictions
    found = set()
    for task in unlabeled:
        for p in client.sdk.predictions.list(task=task["id"]):
            if p.model_version == promoted_version:
                found |= {r["value"]["text"] for r in p.result}
    assert set(UNKNOWN) & found, found
    # the learned fusion's combiner was fitted by the retraining, on this real harvest
    fitted = json.loads((folder / ".preannot" / "fusion" / "fused.json").read_text())
    fused = {a.name: a for a in sync.annotators(load_config(folder / "preannot.toml"),
                                                get_host())}["fused"]
    assert fused.model == fitted and fitted["sources"] == ["rules", "model"]
    assert fused.after == ["rules", "model"]

    result = invoke("train", "-c", config, "--force")  # same data again: a tie passes margin 0
    assert result.exit_code == 0, result.output
    assert registry.current("ner").version == "ner-v2"
    assert "ner-v2" in client.sdk.projects.get(project_id).model_version
    result = invoke("models", "compare", "ner-v1", "ner-v2", "-c", config)
    assert result.exit_code == 0 and "ner-v1 vs ner-v2 on" in result.output, result.output
    result = invoke("models", "compare", "ner-v1", "ner-v2", "-c", config, "--json")
    compared = {row["label"]: row for row in json.loads(result.output)["labels"]}
    # every reviewed task holds one product: the split's support is its task count
    assert compared["PRODUCT"]["support"] == sum(in_eval_split(k, 0.25) for k in reviewed) \
        == v1.card["harvest"]["eval"]
    assert compared["all"]["candidate f1"] > 0.5 and compared["all"]["current f1"] > 0.5
    result = invoke("models", "rollback", "ner", "-c", config)
    assert result.exit_code == 0, result.output
    assert registry.current("ner").version == "ner-v1"
    assert client.sdk.projects.get(project_id).model_version == promoted_version
    result = invoke("models", "list", "-c", config, "--json")
    statuses = {r["version"]: r["status"] for r in json.loads(result.output)}
    assert statuses == {"ner-v1": "promoted", "ner-v2": "rolled back"}
    result = invoke("models", "promote", "ner-v2", "-c", config, "--no-push")  # by hand
    assert result.exit_code == 0, result.output
    assert registry.current("ner").version == "ner-v2"
    assert registry.get("ner-v2").card["promoted_by"] == "hand"
    assert client.sdk.projects.get(project_id).model_version == promoted_version  # --no-push
    # a gate that asks for more than a retrain on the same data can give: exit status 4
    (folder / "preannot.toml").write_text((folder / "preannot.toml").read_text().replace(
        "margin = 0.0", "margin = 0.5"))
    result = invoke("train", "-c", config, "--force", "--no-push")
    assert result.exit_code == 4, result.output
    assert "ner-v3: not promoted" in result.output
    assert registry.current("ner").version == "ner-v2"
    assert registry.get("ner-v3").status == "rejected"
