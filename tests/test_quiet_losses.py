"""Inputs that used to vanish without a word (issue 19, item 6): each is now a named failure,
through the real command line, worker processes and Label Studio."""

from __future__ import annotations

import json

import pytest

from annotators import Keywords, RunnerPlugin
from helpers import pip_install, run_cli, write_plugin
from preannot.engine.host import load_host
from preannot.engine.readers import count_records
from preannot.engine.runner import run
from preannot.labelstudio.push import ensure_project
from test_ls_push import WORDS, runner_output
from test_runner import config

WIDE = {"COLUMNS": "400"}  # rich wraps tables at 80 columns; one row per line is checkable

PLUGIN = """
    import os
    import signal

    from preannot import Annotator, hookimpl

    class Quiet(Annotator):
        type = "quiet"
        def annotate(self, tasks, upstream):
            for task in tasks:
                if task.data["text"] == "KILL" and os.environ.get("QUIET_TEST_KILL"):
                    os.kill(os.getpid(), signal.SIGKILL)  # what the OOM killer does
            return [[] for _ in tasks]

    @hookimpl
    def register_annotators(register):
        register(Quiet)
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    base = tmp_path_factory.mktemp("quiet-plugin")
    return pip_install(write_plugin(base / "src", "preannot-quiet", PLUGIN), base / "site")


def preannot_run(tmp_path, site, *args, env=None):
    (tmp_path / "preannot.toml").write_text('[[annotators]]\ntype = "quiet"\n')
    return run_cli(["run", *args, "-c", str(tmp_path / "preannot.toml"), "-o",
                    str(tmp_path / "out.json"), "--no-progress"], pythonpath=[site],
                   env={**WIDE, **(env or {})})


def written(tmp_path):
    return [(t["meta"]["preannot_id"], t["data"]["text"])
            for t in json.loads((tmp_path / "out.json").read_text())]


def test_an_unclosed_csv_quote_is_a_bad_record_and_the_rows_after_it_are_read(tmp_path, site):
    (tmp_path / "a.csv").write_text('id,text\nm1,"first line\nsecond, with a comma"\n'
                                    'm2,"stray quote\nm3,plain\nm4,last one\n')
    (tmp_path / "b.csv").write_text('id,text\nb1,"oops\nb2,"quoted"\nb3,ok\n')
    result = preannot_run(tmp_path, site, str(tmp_path / "a.csv"), str(tmp_path / "b.csv"))
    assert result.returncode == 3, result.stderr
    assert "5 tasks (5 annotated now, 0 already done), 2 failed of 7 records read" in result.stderr
    # a quote closed on a later line is one multi-line value, as written
    assert written(tmp_path) == [("m1", "first line\nsecond, with a comma"), ("m3", "plain"),
                                 ("m4", "last one"), ("b2", "quoted"), ("b3", "ok")]
    for source, lines in (("a.csv:4", "4-6"), ("b.csv:2", "2-3")):  # runs to the end / to b2
        line = source.split(":")[1]
        assert (f"{source} (an unclosed quote at line {line} swallowed lines {lines}: fix the "
                "quote; the lines after it were read as rows of their own)") in result.stderr


def test_files_a_folder_does_not_read_are_named_not_skipped(tmp_path, site):
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    for name, text in (("a.txt", "alpha"), ("sub/f.txt", "sub text"), ("c.jsonl", '{"text": "x"}'),
                       ("d.csv", "text\nx\n"), ("notes.md", "# notes"), ("README", "readme"),
                       (".hidden.jsonl", '{"text": "h"}'), ("sub/.DS_Store", "")):
        (docs / name).write_text(text)
    assert count_records([docs]) == 6  # the progress bar's total: every file the run reports
    summary = run(config(tmp_path, ["docs"]), host=load_host((RunnerPlugin(),)))
    assert summary.failures == [
        ("docs/README", "not read from a folder",
         "a folder gives only .txt files and images, not files without a suffix"),
        ("docs/c.jsonl", "not read from a folder",
         "a folder gives only .txt files and images: give this file as an input"),
        ("docs/d.csv", "not read from a folder",
         "a folder gives only .txt files and images: give this file as an input"),
        ("docs/notes.md", "not read from a folder",
         "a folder gives only .txt files and images, not .md files")]
    result = preannot_run(tmp_path, site, str(docs))
    assert result.returncode == 3, result.stderr
    assert "2 tasks (2 annotated now, 0 already done), 4 failed of 6 records read" in result.stderr
    assert "not read from a folder │ 4 " in result.stderr
    assert [text for _, text in written(tmp_path)] == ["alpha", "sub text"]


def test_a_killed_worker_is_one_line_and_a_rerun_resumes_without_loss(tmp_path, site):
    texts = [f"text {i}" for i in range(40)]
    texts[30] = "KILL"  # batch 7 of 10 (batches of 4)
    (tmp_path / "in.jsonl").write_text(
        "".join(json.dumps({"id": f"doc{i}", "text": t}) + "\n" for i, t in enumerate(texts)))
    args = (str(tmp_path / "in.jsonl"), "-w", "2", "-b", "4")
    killed = preannot_run(tmp_path, site, *args, env={"QUIET_TEST_KILL": "1"})
    assert killed.returncode == 1, killed.stderr
    assert "Traceback" not in killed.stderr
    assert ("Error: a worker process died (killed, or out of memory?): the batches finished "
            "before it are saved; run the same command again to resume\n") in killed.stderr
    assert not (tmp_path / "out.json").exists()
    rerun = preannot_run(tmp_path, site, *args)
    assert rerun.returncode == 0, rerun.stderr
    assert written(tmp_path) == [(f"doc{i}", t) for i, t in enumerate(texts)]
    counts = rerun.stderr.split("40 tasks (")[1].split(" already done")[0]
    annotated, done = (int(n) for n in counts.split(" annotated now, "))
    # batch 7 is submitted only after batches 0-2 are recorded (at most 4 in flight with 2
    # workers); which of batches 3-6 finish before the kill is up to the scheduler
    assert annotated + done == 40 and done % 4 == 0 and 12 <= done <= 28


@pytest.mark.parametrize("name", ["missing.jsonl", "missing.json"])
def test_a_missing_push_file_is_one_line_and_makes_no_project(labelstudio, tmp_path, name):
    client = labelstudio.client()
    before = sorted(p.id for p in client.sdk.projects.list())
    path = tmp_path / name  # no -p: a push would make a project with the config's title
    result = run_cli(["ls", "push", str(path), "--no-progress"],
                     env={**labelstudio.env(), **WIDE}, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"Error: {path}: no such file; run `preannot run` first"]
    assert sorted(p.id for p in client.sdk.projects.list()) == before


def test_a_truncated_push_file_pushes_the_tasks_before_the_cut(labelstudio, tmp_path):
    texts = ["an apple", "a pear", "a bolt", "apple and bolt", "nothing"]
    output = runner_output(tmp_path, texts)
    lines = output.read_text().split("\n")  # "[", then one task a line
    assert len(lines) == 8 and '"preannot_id": "doc3"' in lines[4]
    output.write_text("\n".join(lines[:4] + [lines[4][:len(lines[4]) // 2]]))  # cut in task 4
    client = labelstudio.client()
    project = ensure_project(client, None, title="truncated push",
                             annotators=[Keywords("kw", {"words": WORDS})])
    result = run_cli(["ls", "push", str(output), "-p", str(project), "--no-progress"],
                     env={**labelstudio.env(), **WIDE}, cwd=tmp_path)
    assert result.returncode == 3, result.stderr
    assert "3 tasks created with their predictions" in result.stderr
    assert ("not pushed pred.json[3]: invalid JSON: the file ends early (truncated?) after "
            "task 2") in result.stderr
    pushed = sorted(t["meta"]["preannot_id"] for t in client.tasks(project))
    assert pushed == ["doc0", "doc1", "doc2"]
