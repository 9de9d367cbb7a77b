"""preannot.toml is parsed once into typed sections: a typo or a wrong value is refused with
what is known, never silently ignored."""

from __future__ import annotations

import pytest

from preannot import ConfigError
from preannot.engine.config import load_config


def write(tmp_path, text):
    path = tmp_path / "preannot.toml"
    path.write_text(text)
    return path


def refused(tmp_path, text) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    return str(info.value)


def test_sections_are_typed_and_paths_relative_to_the_file(tmp_path):
    config = load_config(write(tmp_path, """
[labelstudio]
url = "http://ls:8080"
api_key_file = "secrets/token"
project = 12
combine_versions = false
[harvest]
output_dir = "h"
box_iou = 0.7
[training]
registry = "models"
eval_fraction = 0.3
retrain_after = 25
[ranking]
ranker = "disagreement"
annotators = ["a", "b"]
threshold = 0.4
"""))
    assert config.labelstudio.url == "http://ls:8080"
    assert config.labelstudio.api_key_file == tmp_path / "secrets" / "token"
    assert (config.labelstudio.project, config.labelstudio.combine_versions) == (12, False)
    assert config.harvest.output_dir == tmp_path / "h"
    assert config.harvest.thresholds == {"box_iou": 0.7}
    assert config.training.registry == config.registry_dir == tmp_path / "models"
    assert config.training.corrections == tmp_path / "h" / "corrections.jsonl"
    assert (config.training.eval_fraction, config.training.retrain_after) == (0.3, 25)
    assert (config.training.margin, config.training.metric) == (0.0, "f1")  # defaults
    assert config.ranking.ranker == "disagreement"
    assert config.ranking.options == {"annotators": ["a", "b"], "threshold": 0.4}


def test_defaults_without_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config(None)
    assert config.harvest.output_dir == tmp_path / "harvest"
    assert config.training.registry == tmp_path / ".preannot" / "models"
    assert config.ranking.ranker is None and config.labelstudio.url is None


def test_unknown_keys_and_sections_name_what_is_known(tmp_path):
    assert refused(tmp_path, "[training]\nretrain_afer = 5\n") == (
        f"{tmp_path / 'preannot.toml'}: [training] has no setting 'retrain_afer' (known: "
        "corrections, eval_fraction, fusion_margin, group_by, label_tolerance, margin, metric, "
        "min_label_support, min_score, refit, registry, retrain_after)")
    assert "[harvest] has no setting 'span_ioU' (known: adjudication_threshold, box_iou, " \
           "mask_iou, output_dir, polygon_iou, span_iou, truth)" in refused(tmp_path, "[harvest]\nspan_ioU = 0.5\n")
    assert "unknown section 'labelstudo' (known: input, output, run, annotators, trainers, " \
           "labelstudio, harvest, training, ranking, review, serve, labels, selection, drift)" in refused(
               tmp_path, "[labelstudo]\n")
    assert "[serve] has no setting 'prot' (known: debounce, host, learn, port, url)" in refused(
        tmp_path, "[serve]\nprot = 9090\n")
    assert "[serve] port must be 1-65535 and debounce at least 0" in refused(
        tmp_path, "[serve]\nport = 0\n")
    assert "[labelstudio] api_key is not allowed" in refused(
        tmp_path, '[labelstudio]\napi_key = "abc"\n')


def test_wrong_values_are_refused_with_the_key(tmp_path):
    assert refused(tmp_path, '[training]\nretrain_after = "often"\n').endswith(
        "[training] retrain_after = 'often': expected a whole number")
    assert refused(tmp_path, '[training]\nmargin = "a lot"\n').endswith(
        "[training] margin = 'a lot': could not convert string to float: 'a lot'")
    assert refused(tmp_path, "[run]\nbatch_size = 0\n").endswith(
        "[run] batch_size = 0: must be at least 1")
    assert refused(tmp_path, '[run]\nworkers = "two"\n').endswith(
        "[run] workers = 'two': expected a whole number")
    assert refused(tmp_path, "[input]\npaths = 5\n").endswith(
        "[input] paths = 5: expected a list of paths")
    assert refused(tmp_path, "[labelstudio]\ncombine_versions = 1\n").endswith(
        "[labelstudio] combine_versions = 1: expected true or false")
    assert "[[trainers]] #1: set 'name'" in refused(tmp_path, '[[trainers]]\ntype = "x"\n')
    assert refused(tmp_path, "ranking = 5\n").endswith("[ranking] must be a table")


def test_labels_and_truth_settings(tmp_path):
    (tmp_path / "preannot.toml").write_text(
        '[harvest]\ntruth = "weighted"\nadjudication_threshold = 0.5\n'
        '[labels]\nrename = {GADGET = "PRODUCT"}\nmerge = {BRAND = ["MAKER", "LABEL"]}\n')
    config = load_config(tmp_path / "preannot.toml")
    assert (config.harvest.truth, config.harvest.adjudication_threshold) == ("weighted", 0.5)
    assert config.labels.rename == {"GADGET": "PRODUCT"}
    assert config.labels.merge == {"BRAND": ["MAKER", "LABEL"]}
    assert refused(tmp_path, '[harvest]\ntruth = "vote"\n').endswith(
        "[harvest] truth = 'vote': use \"majority\" or \"weighted\"")
    assert refused(tmp_path, '[labels]\nmerge = {BRAND = "MAKER"}\n').endswith(
        "[labels] merge = {'BRAND': 'MAKER'}: expected {NEW = [\"A\", \"B\"]}")
