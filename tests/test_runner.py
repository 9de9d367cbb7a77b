"""Batch runs: readers, bad records, resume after an interruption, chaining, worker processes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from annotators import RunnerPlugin, calls
from helpers import ROOT, pip_install, run_cli
from preannot import ConfigError
from preannot.engine.config import RunConfig, load_config
from preannot.engine.host import load_host
from preannot.engine.readers import ENCODING_HINT
from preannot.engine.runner import run

@pytest.fixture
def host():
    calls.clear()
    return load_host((RunnerPlugin(),))


def config(tmp_path: Path, inputs, **kw) -> RunConfig:
    kw.setdefault("annotators", [{"name": "fw", "type": "first-word"}])
    return RunConfig(base_dir=tmp_path, inputs=[tmp_path / i for i in inputs],
                     output=tmp_path / "out.json", **kw)


def output(tmp_path):
    return json.loads((tmp_path / "out.json").read_text())


def texts_of(tasks):
    return [t["data"].get("text") for t in tasks]


def test_bad_records_are_reported_with_file_and_line_and_the_rest_goes_on(tmp_path, host):
    (tmp_path / "in.jsonl").write_bytes(
        b'{"text": "alpha one"}\n{not json\n{"body": "no text"}\n\n'
        b'{"text": "caf\xe9 latin-1"}\n{"text": "beta two"}\n{"text": "refuse me"}\n'
        b'{"text": "crash now"}\n[1, 2]\n')
    summary = run(config(tmp_path, ["in.jsonl", "missing.jsonl"], batch_size=3), host=host)
    assert texts_of(output(tmp_path)) == ["alpha one", "beta two"]
    assert summary.failures == [
        ("in.jsonl:2", "invalid JSON", "Expecting property name enclosed in double quotes"),
        ("in.jsonl:3", "missing field 'text'", "read by 'fw'"),
        ("in.jsonl:5", "wrong encoding", f"not UTF-8 at byte 13: {ENCODING_HINT}"),
        ("in.jsonl:7", "annotator 'fw' failed", "refused on purpose"),
        ("in.jsonl:8", "annotator 'fw' raised RuntimeError", "the model fell over"),
        ("in.jsonl:9", "not an object", "got list"),
        ("missing.jsonl", "missing input", "no such file or folder"),
    ]
    assert (summary.read, summary.annotated, summary.failed) == (9, 2, 7)


def test_output_is_label_studio_import_json(tmp_path, host):
    (tmp_path / "in.jsonl").write_text('{"text": "hello world", "id": 42}\n')
    run(config(tmp_path, ["in.jsonl"]), host=host)
    (task,) = output(tmp_path)
    (prediction,) = task["predictions"]
    assert task["meta"] == {"preannot_id": "42", "preannot_annotators": ["fw"]}
    assert prediction["model_version"].startswith("fw-") and prediction["score"] == 0.7
    (region,) = prediction["result"]
    assert region["value"] == {"start": 0, "end": 5, "text": "hello", "labels": ["FIRST"]}
    assert (region["from_name"], region["to_name"], region["type"]) == ("label", "text", "labels")
    assert region["preannot"] == {"annotator": "fw"}


def test_rerun_skips_done_records_and_redoes_changed_ones(tmp_path, host):
    lines = [json.dumps({"text": f"word{i} rest"}) for i in range(10)]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    first = run(config(tmp_path, ["in.jsonl"], batch_size=4), host=host)
    assert (first.annotated, first.skipped) == (10, 0)
    lines[3] = json.dumps({"text": "changed rest"})
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    second = run(config(tmp_path, ["in.jsonl"], batch_size=4), host=host)
    assert (second.annotated, second.skipped) == (1, 9)
    assert texts_of(output(tmp_path))[3] == "changed rest" and len(output(tmp_path)) == 10
    forced = run(config(tmp_path, ["in.jsonl"], batch_size=4), host=host, force=True)
    assert (forced.annotated, forced.skipped) == (10, 0)
    other = config(tmp_path, ["in.jsonl"], batch_size=4,
                   annotators=[{"name": "fw", "type": "first-word", "labels": ["FIRST"]}])
    changed_options = run(other, host=host)
    assert changed_options.annotated == 10, "new annotator options must redo everything"


def test_interrupted_run_resumes_without_losing_or_duplicating(tmp_path, host):
    texts = [f"t{i} x" for i in range(7)] + ["interrupt here"] + [f"u{i} y" for i in range(6)]
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"text": t, "id": i}) + "\n" for i, t in enumerate(texts)))
    with pytest.raises(KeyboardInterrupt):
        run(config(tmp_path, ["in.jsonl"], batch_size=3), host=host)
    assert not (tmp_path / "out.json").exists()
    texts[7] = "fixed now"
    path.write_text("".join(json.dumps({"text": t, "id": i}) + "\n" for i, t in enumerate(texts)))
    calls.clear()
    summary = run(config(tmp_path, ["in.jsonl"], batch_size=3), host=host)
    assert summary.skipped == 6, "the two batches finished before Ctrl-C are kept"
    assert summary.annotated == 8 and sum(calls) == 8
    result = output(tmp_path)
    assert texts_of(result) == texts
    assert [t["meta"]["preannot_id"] for t in result] == [str(i) for i in range(14)]


def test_records_gone_from_the_input_leave_the_output(tmp_path, host):
    (tmp_path / "in.jsonl").write_text('{"text": "a b"}\n{"text": "c d"}\n')
    run(config(tmp_path, ["in.jsonl"]), host=host)
    (tmp_path / "in.jsonl").write_text('{"text": "a b"}\n')
    run(config(tmp_path, ["in.jsonl"]), host=host)
    assert texts_of(output(tmp_path)) == ["a b"]


def test_duplicate_task_ids_are_reported_not_overwritten(tmp_path, host):
    (tmp_path / "in.jsonl").write_text('{"id": 1, "text": "a b"}\n{"id": 1, "text": "c d"}\n')
    summary = run(config(tmp_path, ["in.jsonl"]), host=host)
    assert texts_of(output(tmp_path)) == ["a b"]
    assert summary.failures == [("in.jsonl:2", "duplicate task id", "1")]


def test_csv_tsv_text_folder_and_label_studio_json_inputs(tmp_path, host):
    (tmp_path / "a.csv").write_text('id,text,shop\nc1,"csv one, quoted",x\nc2,csv two,y\n')
    (tmp_path / "b.tsv").write_text("text\tshop\ntsv one\tz\n")
    docs = tmp_path / "docs" / "sub"
    docs.mkdir(parents=True)
    (docs / "1.txt").write_text("folder one")
    (docs / "2.txt").write_bytes(b"\xff\xfe broken")
    (tmp_path / "tasks.json").write_text(json.dumps(
        [{"data": {"text": "ls one"}, "meta": {"preannot_id": "keep-me"}}]))
    summary = run(config(tmp_path, ["a.csv", "b.tsv", "docs", "tasks.json"]), host=host)
    result = output(tmp_path)
    assert texts_of(result) == ["csv one, quoted", "csv two", "tsv one", "folder one", "ls one"]
    assert [t["meta"]["preannot_id"] for t in result] == ["c1", "c2", "b.tsv:2", "docs/sub/1.txt",
                                                          "keep-me"]
    assert result[0]["data"]["shop"] == "x"
    assert summary.failures == [("docs/sub/2.txt", "wrong encoding",
                                 f"not UTF-8 at byte 0: {ENCODING_HINT}")]


def test_chained_annotator_receives_upstream_predictions(tmp_path, host):
    (tmp_path / "in.jsonl").write_text('{"text": "a b"}\n{"text": "refuse"}\n')
    annotators = [{"name": "count", "type": "count-upstream", "after": "fw"},
                  {"name": "fw", "type": "first-word"}]
    summary = run(config(tmp_path, ["in.jsonl"], annotators=annotators), host=host)
    (task,) = output(tmp_path)
    assert [p["model_version"].split("-")[0] for p in task["predictions"]] == ["fw", "count"]
    assert task["predictions"][1]["result"][0]["value"] == {"choices": ["1 regions"]}
    assert summary.failures == [("in.jsonl:2", "annotator 'fw' failed", "refused on purpose")]


def test_config_file_paths_are_relative_to_it(tmp_path):
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "preannot.toml").write_text(
        '[input]\npaths = "data.jsonl"\n[output]\npath = "out/p.json"\n[run]\nworkers = 2\n'
        '[[annotators]]\ntype = "rules"\nrules = "r"\n')
    cfg = load_config(tmp_path / "proj" / "preannot.toml")
    assert cfg.inputs == [tmp_path / "proj" / "data.jsonl"]
    assert cfg.output == tmp_path / "proj" / "out" / "p.json"
    assert cfg.workers == 2 and cfg.annotators == [{"type": "rules", "rules": "r", "name": "rules"}]


def test_worker_processes_give_the_same_output_as_one(tmp_path):
    site = pip_install(ROOT / "examples" / "custom-plugin", tmp_path / "site")
    texts = [f"mail {i}: please answer {'asap' if i % 3 == 0 else 'soon'}" for i in range(300)]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    base = ["run", str(tmp_path / "in.jsonl"), "-c", str(tmp_path / "preannot.toml"),
            "--batch-size", "16", "--no-progress"]
    (tmp_path / "preannot.toml").write_text('[[annotators]]\ntype = "urgency"\n')
    one = run_cli(base + ["-o", str(tmp_path / "one.json")], pythonpath=[site])
    two = run_cli(base + ["-o", str(tmp_path / "two.json"), "--workers", "2"], pythonpath=[site])
    assert one.returncode == 0 and two.returncode == 0, one.stderr + two.stderr
    assert "300 tasks (300 annotated now" in two.stderr
    assert (tmp_path / "one.json").read_text() == (tmp_path / "two.json").read_text()
    assert sum('"URGENT"' in line for line in (tmp_path / "one.json").read_text().splitlines()) == 100


def test_cli_exit_status_and_summary_on_bad_records(tmp_path):
    site = pip_install(ROOT / "examples" / "custom-plugin", tmp_path / "site")
    (tmp_path / "in.jsonl").write_text('{"text": "urgent"}\n{oops\n')
    (tmp_path / "preannot.toml").write_text('[[annotators]]\ntype = "urgency"\n')
    result = run_cli(["run", str(tmp_path / "in.jsonl"), "-c", str(tmp_path / "preannot.toml"),
                      "-o", str(tmp_path / "o.json"), "--no-progress"], pythonpath=[site])
    assert result.returncode == 3
    assert "1 failed of 2 records read" in result.stderr
    assert "invalid JSON" in result.stderr and "in.jsonl:2" in result.stderr
    # -o *.jsonl writes JSON lines: one Label Studio task per line, the same tasks
    lines = run_cli(["run", str(tmp_path / "in.jsonl"), "-c", str(tmp_path / "preannot.toml"),
                     "-o", str(tmp_path / "o.jsonl"), "--no-progress"], pythonpath=[site])
    assert lines.returncode == 3
    written = (tmp_path / "o.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in written] == json.loads((tmp_path / "o.json").read_text())
    assert len(written) == 1 and json.loads(written[0])["data"] == {"text": "urgent"}


def test_an_image_replaced_in_place_is_annotated_again(tmp_path, host):
    from PIL import Image

    (tmp_path / "imgs").mkdir()
    Image.new("RGB", (64, 48)).save(tmp_path / "imgs" / "a.png")
    Image.new("RGB", (20, 20)).save(tmp_path / "imgs" / "b.png")
    cfg = config(tmp_path, ["imgs"], annotators=[{"name": "size", "type": "image-size"}])
    run(cfg, host=host)
    Image.new("RGB", (48, 64)).save(tmp_path / "imgs" / "a.png")  # same path, turned
    summary = run(cfg, host=host)
    assert (summary.annotated, summary.skipped) == (1, 1)
    sizes = [t["predictions"][0]["result"][0]["value"]["choices"] for t in output(tmp_path)]
    assert sizes == [["48x64"], ["20x20"]]


def test_one_folder_spelled_two_ways_gives_the_same_task_ids(tmp_path, host):
    data = tmp_path / "data" / "small"
    data.mkdir(parents=True)
    (data / "a.txt").write_text("alpha one")
    project = tmp_path / "project"
    project.mkdir()
    relative = RunConfig(base_dir=project, inputs=[project / ".." / "data" / "small"],
                         output=project / "out.json",
                         annotators=[{"name": "fw", "type": "first-word"}])
    run(relative, host=host)
    first = json.loads((project / "out.json").read_text())
    absolute = RunConfig(base_dir=project, inputs=[data], output=project / "out.json",
                         annotators=[{"name": "fw", "type": "first-word"}])
    summary = run(absolute, host=host)
    assert (summary.annotated, summary.skipped) == (0, 1)  # the same task, already done
    ids = [t["meta"]["preannot_id"] for t in json.loads((project / "out.json").read_text())]
    assert ids == [t["meta"]["preannot_id"] for t in first] == [f"{data.as_posix()}/a.txt"]


def test_an_output_that_is_a_folder_is_refused_before_any_work(tmp_path, host):
    (tmp_path / "in.jsonl").write_text('{"text": "hello"}\n')
    (tmp_path / "out.json").mkdir()
    with pytest.raises(ConfigError) as refused:
        run(config(tmp_path, ["in.jsonl"]), host=host)
    assert str(refused.value) == (f"output {tmp_path / 'out.json'} is a folder: give a file "
                                  "(.json for Label Studio import JSON, .jsonl for JSON lines)")
    assert calls == [] and list((tmp_path / "out.json").iterdir()) == []


def test_tasks_an_annotator_failed_on_are_kept_for_a_review(tmp_path, host):
    (tmp_path / "in.jsonl").write_text('{"id": "a", "text": "fine"}\n{"id": "b", "text": "refuse"}\n'
                                       "{oops\n")
    summary = run(config(tmp_path, ["in.jsonl"]), host=host)
    assert [(reason, json.loads(task)) for reason, task in summary.failed_tasks] == [
        ("annotator 'fw' failed", {"data": {"id": "b", "text": "refuse"},
                                   "meta": {"preannot_id": "b", "preannot_annotators": []},
                                   "predictions": []})]
    assert summary.failed == 2  # the bad record has no task to review
