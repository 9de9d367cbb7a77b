"""No input file can crash a run: odd but valid JSON, byte-order marks, other encodings and
duplicate ids are named bad records (file, line, reason), the rest goes on, exit status 3."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

from annotators import RunnerPlugin
from helpers import ROOT, pip_install, run_cli
from preannot.engine.host import load_host
from preannot.engine.readers import ENCODING_HINT, BadRecord, read_inputs
from preannot.engine.runner import run
from preannot.lsjson import task_to_ls
from preannot.model import Task
from test_runner import config, output

BOM = "\ufeff".encode()


def test_odd_but_valid_json_is_a_named_bad_record(tmp_path):
    deep = "[" * 100_000 + "]" * 100_000
    lines = ['{"text": "good one"}', deep, '{"data": "just a string"}',
             '{"data": {"text": "x"}, "meta": "a string"}', '{"text": "lone \\ud800 half"}',
             '{"text": NaN}', '{"text": 1e999}', '{"text": "good two"}']
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "deep.json").write_text(deep)
    (tmp_path / "number.json").write_text("5")
    summary = run(config(tmp_path, ["in.jsonl", "deep.json", "number.json"]),
                  host=load_host((RunnerPlugin(),)))
    assert summary.failures == [
        ("in.jsonl:2", "invalid JSON", "nested too deeply"),
        ("in.jsonl:3", "not a task", "'data' is a str, not an object"),
        ("in.jsonl:4", "not a task", "'meta' is a str, not an object"),
        ("in.jsonl:5", "invalid text", "'\\ud800' (a lone surrogate) cannot be written as UTF-8"),
        ("in.jsonl:6", "invalid JSON", "NaN is not JSON (Label Studio would refuse it)"),
        ("in.jsonl:7", "invalid JSON", "1e999 is too large for a JSON number"),
        ("deep.json", "invalid JSON", "nested too deeply"),
        ("number.json", "not a task list",
         "the top level is a int: use a list of tasks, or one task object")]
    assert [t["data"]["text"] for t in output(tmp_path)] == ["good one", "good two"]


def test_a_byte_order_mark_is_accepted_in_every_format(tmp_path):
    (tmp_path / "a.jsonl").write_bytes(BOM + b'{"text": "jsonl"}\n')
    (tmp_path / "b.json").write_bytes(BOM + b'[{"text": "json"}]')
    (tmp_path / "c.csv").write_bytes(BOM + b"text,shop\ncsv,x\n")
    (tmp_path / "d.txt").write_bytes(BOM + b"plain text")
    summary = run(config(tmp_path, ["a.jsonl", "b.json", "c.csv", "d.txt"]),
                  host=load_host((RunnerPlugin(),)))
    assert summary.failures == []
    assert [t["data"] for t in output(tmp_path)] == [
        {"text": "jsonl"}, {"text": "json"}, {"text": "csv", "shop": "x"}, {"text": "plain text"}]


def test_latin1_rows_are_named_and_the_rest_read_or_all_read_with_the_encoding(tmp_path):
    (tmp_path / "in.csv").write_bytes("text\ncafé crème\nplain\nno€l\nlast\n".encode("cp1252"))
    summary = run(config(tmp_path, ["in.csv"]), host=load_host((RunnerPlugin(),)))
    assert summary.failures == [("in.csv:2", "wrong encoding", f"not UTF-8: {ENCODING_HINT}"),
                                ("in.csv:4", "wrong encoding", f"not UTF-8: {ENCODING_HINT}")]
    assert [t["data"]["text"] for t in output(tmp_path)] == ["plain", "last"]
    summary = run(config(tmp_path, ["in.csv"], encoding="cp1252"), host=load_host((RunnerPlugin(),)))
    assert summary.failures == []
    assert [t["data"]["text"] for t in output(tmp_path)] == ["café crème", "plain", "no€l", "last"]


def test_duplicate_ids_with_workers_are_reported_like_without(tmp_path):
    site = pip_install(ROOT / "examples" / "custom-plugin", tmp_path / "site")
    records = [{"id": f"m{i % 7}" if i in (3, 10) else f"m{i}", "text": f"mail {i} asap"}
               for i in range(40)]  # m3 twice, in different batches of 4
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (tmp_path / "preannot.toml").write_text('[[annotators]]\ntype = "urgency"\n')
    results = {}
    for workers in ("1", "2"):
        out = tmp_path / f"w{workers}.json"
        result = run_cli(["run", str(tmp_path / "in.jsonl"), "-c", str(tmp_path / "preannot.toml"),
                          "-o", str(out), "-b", "4", "-w", workers, "--no-progress",
                          "--encoding", "utf-8"], pythonpath=[site])
        assert result.returncode == 3, result.stderr
        assert "Traceback" not in result.stderr
        said = " ".join(result.stderr.split())
        assert "39 tasks (39 annotated now, 0 already done), 1 failed of 40 records read" in said
        assert "duplicate task id" in said and "in.jsonl:11 (m3)" in said
        results[workers] = out.read_text()
    assert results["1"] == results["2"]


def test_an_unknown_encoding_is_refused_with_where_it_came_from(tmp_path):
    (tmp_path / "preannot.toml").write_text('[input]\nencoding = "latin-9000"\n')
    result = run_cli(["run", "-c", str(tmp_path / "preannot.toml")])
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "[input] encoding = 'latin-9000': no such encoding" in result.stderr
    (tmp_path / "elsewhere").mkdir()
    result = run_cli(["run", str(tmp_path / "x.jsonl"), "--encoding", "nope", "-o", "o.json"],
                     cwd=tmp_path / "elsewhere")
    assert result.returncode == 1 and "--encoding = 'nope': no such encoding" in result.stderr


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                    | st.text(), lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=5), inner, max_size=4), max_leaves=12)
SUFFIXES = [".jsonl", ".json", ".csv", ".tsv", ".txt"]


def _check_every_record_is_a_task_or_named(folder: Path, name: str, content: bytes) -> None:
    path = folder / name
    path.write_bytes(content)
    for record in read_inputs([path], None, folder):
        assert isinstance(record, (Task, BadRecord))
        if isinstance(record, BadRecord):
            assert record.source.startswith(name) and record.reason
        else:  # what the run writes must be valid JSON in UTF-8 that Label Studio can import
            text = json.dumps(task_to_ls(record, []), ensure_ascii=False, allow_nan=False)
            assert json.loads(text.encode("utf-8")) is not None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(JSON, max_size=5), top=JSON, suffix=st.sampled_from(SUFFIXES),
       bom=st.booleans())
def test_fuzz_json_values_never_crash_a_reader(values, top, suffix, bom):
    if suffix == ".jsonl":
        text = "\n".join(json.dumps(v) for v in values)
    elif suffix == ".json":
        text = json.dumps(top)
    else:
        text = "\n".join(str(v) for v in values)
    with tempfile.TemporaryDirectory() as tmp:
        _check_every_record_is_a_task_or_named(Path(tmp), "in" + suffix,
                                               (BOM if bom else b"") + text.encode("utf-8",
                                                                                 "surrogatepass"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(content=st.binary(max_size=300), suffix=st.sampled_from(SUFFIXES))
def test_fuzz_bytes_never_crash_a_reader(content, suffix):
    with tempfile.TemporaryDirectory() as tmp:
        _check_every_record_is_a_task_or_named(Path(tmp), "in" + suffix, content)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(JSON, min_size=1, max_size=6))
def test_fuzz_a_whole_run_writes_valid_output(values):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "in.jsonl").write_text("\n".join(json.dumps(v) for v in values))
        summary = run(config(folder, ["in.jsonl"]), host=load_host((RunnerPlugin(),)))
        written = json.loads((folder / "out.json").read_text(encoding="utf-8"))
        assert len(written) + summary.failed == summary.read


def test_the_encoding_hint_is_printed_with_its_config_section(tmp_path):
    """rich markup once ate "[input]": the hint then said "set  encoding in preannot.toml"."""
    (tmp_path / "in.csv").write_bytes("text\ncafé crème\nplain\n".encode("cp1252"))
    result = run_cli(["run", "in.csv", "--rules", str(ROOT / "rules" / "product-ner"), "-o",
                      "out.json", "--no-progress"], cwd=tmp_path, env={"COLUMNS": "300"})
    assert result.returncode == 3, result.stderr
    assert ("in.csv:2 (not UTF-8: set [input] encoding in preannot.toml or pass --encoding "
            "(e.g. latin-1, cp1252))") in result.stderr
