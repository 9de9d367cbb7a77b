"""The cross-feature rules are events: the feature that knows something happened calls a hook
through the host, and each reaction lives in one hook implementation, which a third-party
plugin can add to."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from preannot import hookimpl
from preannot.cli import cli
from preannot.commandline import after_harvest
from preannot.engine.config import load_config
from preannot.engine.host import get_host
from preannot.labelstudio import sync
from preannot.production.reviewed import reviewed_corrections
from preannot.training import flow, retrain
from preannot.training.registry import Registry


class Listener:
    """A third-party plugin listening to every event."""

    def __init__(self) -> None:
        self.heard: list[tuple] = []

    @hookimpl
    def harvested(self, config, log, interactive):
        self.heard.append(("harvested", interactive))

    @hookimpl
    def promoted(self, config, push, log):
        self.heard.append(("promoted", push))

    @hookimpl
    def training_corrections(self, config):
        return [config.base_dir / "extra.jsonl"]

    @hookimpl
    def pre_annotated(self, config, annotators, no_progress):
        self.heard.append(("pre_annotated", [a.name for a in annotators]))
        return 0

    @hookimpl
    def push_ranker(self, config, annotators, client, project_id, input_file, log):
        return "the listener's ranker"

    @hookimpl
    def harvest_duplicates(self, config, corrections, warnings):
        return {"threshold": 0.5, "groups": [[1, 2]]}

    @hookimpl
    def model_source(self, config):
        return None  # no opinion: the training feature's registry answers


@pytest.fixture
def listener():
    plugin = Listener()
    get_host().pm.register(plugin)
    yield plugin
    get_host().pm.unregister(plugin)


@pytest.fixture
def config(tmp_path):
    (tmp_path / "preannot.toml").write_text('[input]\npaths = ["in.jsonl"]\n'
                                            '[output]\npath = "out/predictions.json"\n')
    return load_config(tmp_path / "preannot.toml")


def test_a_harvest_is_announced_to_training_production_and_plugins(config, listener):
    reacting = [impl.plugin_name for impl in get_host().hook.harvested.get_hookimpls()]
    assert {"preannot.training.plugin", "preannot.production.plugin"} <= set(reacting)
    after_harvest(config)  # what `ls pull` and `review sync` call; nothing is due here
    assert listener.heard == [("harvested", True)]


def test_a_promotion_and_a_rollback_by_hand_are_announced(config, listener, tmp_path):
    registry = Registry(config.registry_dir)
    for number in (1, 2):
        (tmp_path / f"model{number}").mkdir()
        version = registry.add("terms", tmp_path / f"model{number}", {})
        retrain.promote(config, version.version, push=False)
    retrain.rollback(config, "terms", push=False)
    assert listener.heard == [("promoted", False)] * 3
    assert registry.current("terms").version == "terms-v1"


def test_training_learns_from_the_corrections_other_features_give(config, listener):
    files = [config.training.corrections, reviewed_corrections(config),
             config.base_dir / "extra.jsonl"]
    for path in files:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
    found = flow.corrections_files(config)
    assert found[0] == config.training.corrections and sorted(found) == sorted(files)


def test_registry_models_are_resolved_by_the_training_feature(config, listener):
    assert sync.models(config).root == config.registry_dir


def test_a_plugins_answer_to_push_ranker_and_harvest_duplicates_is_used(config, listener):
    """Registered last, the plugin is asked first; the selection feature says nothing without
    ``[selection]``."""
    hook = get_host().hook
    assert hook.push_ranker(config=config, annotators=[], client=None, project_id=1,
                            input_file=None, log=print) == "the listener's ranker"
    assert hook.harvest_duplicates(config=config, corrections=None, warnings=[])["groups"] \
        == [[1, 2]]
    get_host().pm.unregister(listener)
    try:
        assert hook.push_ranker(config=config, annotators=[], client=None, project_id=1,
                                input_file=None, log=print) is None
        assert hook.harvest_duplicates(config=config, corrections=None, warnings=[]) is None
    finally:
        get_host().pm.register(listener)


def test_a_run_with_selection_is_followed_by_the_embedding(tmp_path, listener):
    (tmp_path / "in.jsonl").write_text("".join(
        json.dumps({"text": text}) + "\n"
        for text in ("I want a Zeta saw", "A drill, please", "Two Zeta saws and a hammer")))
    (tmp_path / "preannot.toml").write_text(
        '[input]\npaths = ["in.jsonl"]\n[output]\npath = "out/predictions.json"\n'
        '[[annotators]]\nname = "terms"\ntype = "rules"\nrules = "rules"\n[selection]\n')
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "patterns.jsonl").write_text(
        json.dumps({"label": "PRODUCT", "pattern": "Zeta saw"}) + "\n")
    result = CliRunner().invoke(cli, ["run", "-c", str(tmp_path / "preannot.toml"),
                                      "--no-progress"])
    assert result.exit_code == 0, result.output
    assert ("pre_annotated", ["terms"]) in listener.heard
    assert (tmp_path / ".preannot" / "embeddings.sqlite").exists()
