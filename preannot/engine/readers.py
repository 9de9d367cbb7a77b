"""Stream tasks out of input files: JSONL, Label Studio JSON, CSV/TSV, folders of texts or images.

Every reader yields, in a stable order, either a :class:`Task` or a :class:`BadRecord` that names
the file and line, so one bad record never stops a run and is never silently dropped.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..model import Task

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
TEXT_SUFFIXES = {".txt"}


@dataclass
class BadRecord:
    source: str
    """``file:line`` or a file path."""
    reason: str
    """A short category the summary counts by: invalid JSON, wrong encoding, missing field..."""
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.source}: {self.reason}" + (f" ({self.detail})" if self.detail else "")


Record = Task | BadRecord


def _record_task(record: object, source: str, default_id: str, text_field: str | None) -> Record:
    """A task from one JSON/CSV record: Label Studio task format or a bare data dict."""
    if not isinstance(record, dict):
        return BadRecord(source, "not an object", f"got {type(record).__name__}")
    if isinstance(record.get("data"), dict):
        data, task_id, meta = record["data"], record.get("id"), record.get("meta") or {}
        task_id = meta.get("preannot_id", task_id)
    else:
        data, task_id, meta = record, record.get("id"), {}
    if text_field and not isinstance(data.get(text_field), str):
        have = ", ".join(sorted(data)) or "none"
        return BadRecord(source, f"missing field {text_field!r}", f"fields: {have}")
    return Task(id=str(task_id) if task_id is not None else default_id, data=data,
                source=source, meta=dict(meta))


def read_jsonl(path: Path, label: str, text_field: str | None) -> Iterator[Record]:
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            source = f"{label}:{lineno}"
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield BadRecord(source, "wrong encoding", f"not UTF-8 at byte {exc.start}")
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                yield BadRecord(source, "invalid JSON", exc.msg)
                continue
            yield _record_task(record, source, source, text_field)


def read_json(path: Path, label: str, text_field: str | None) -> Iterator[Record]:
    """A Label Studio import file: a JSON list of tasks (read whole: such files are small)."""
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        yield BadRecord(label, "wrong encoding", f"not UTF-8 at byte {exc.start}")
        return
    except json.JSONDecodeError as exc:
        yield BadRecord(f"{label}:{exc.lineno}", "invalid JSON", exc.msg)
        return
    if isinstance(records, dict):
        records = [records]
    for index, record in enumerate(records):
        source = f"{label}[{index}]"
        yield _record_task(record, source, source, text_field)


def read_csv(path: Path, label: str, text_field: str | None) -> Iterator[Record]:
    delimiter = "\t" if path.suffix.lower() in {".tsv", ".tab"} else ","
    csv.field_size_limit(sys.maxsize)
    with path.open(encoding="utf-8", newline="", errors="strict") as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        row_iter = iter(reader)
        while True:
            try:
                row = next(row_iter)
            except StopIteration:
                return
            except UnicodeDecodeError as exc:
                yield BadRecord(f"{label}:{reader.line_num + 1}", "wrong encoding",
                                f"not UTF-8 at byte {exc.start}; the rest of the file is unreadable")
                return
            except csv.Error as exc:
                yield BadRecord(f"{label}:{reader.line_num}", "invalid CSV", str(exc))
                continue
            source = f"{label}:{reader.line_num}"
            if None in row:
                yield BadRecord(source, "invalid CSV", "more fields than the header")
                continue
            yield _record_task({k: v for k, v in row.items()}, source, source, text_field)


def _walk(folder: Path) -> Iterator[Path]:
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                yield Path(root) / name


def read_folder(folder: Path, label: str, text_field: str | None,
                image_field: str = "image") -> Iterator[Record]:
    """One task per .txt file (``{"text": ...}``) or per image (``{"image": path}``)."""
    for path in _walk(folder):
        rel = f"{label}/{path.relative_to(folder).as_posix()}"
        suffix = path.suffix.lower()
        if suffix in TEXT_SUFFIXES:
            yield _text_file(path, rel, text_field)
        elif suffix in IMAGE_SUFFIXES:
            yield Task(id=rel, data={image_field: str(path.resolve())}, source=rel)


READERS = {".jsonl": read_jsonl, ".ndjson": read_jsonl, ".json": read_json,
           ".csv": read_csv, ".tsv": read_csv, ".tab": read_csv}


def read_inputs(paths: list[Path], text_field: str | None, base_dir: Path | None = None) -> Iterator[Record]:
    """Every record of every input, in order; paths are shown relative to ``base_dir``."""
    for path in paths:
        label = _label(path, base_dir)
        if path.is_dir():
            yield from read_folder(path, label, text_field)
        elif not path.exists():
            yield BadRecord(label, "missing input", "no such file or folder")
        elif path.suffix.lower() in READERS:
            yield from READERS[path.suffix.lower()](path, label, text_field)
        elif path.suffix.lower() in TEXT_SUFFIXES:
            yield _text_file(path, label, text_field)
        else:
            known = ", ".join(sorted(READERS))
            yield BadRecord(label, "unknown input format", f"use a folder or one of {known}")


def _text_file(path: Path, label: str, text_field: str | None) -> Record:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        return BadRecord(label, "wrong encoding", f"not UTF-8 at byte {exc.start}")
    return Task(id=label, data={text_field or "text": text}, source=label)


def _label(path: Path, base_dir: Path | None) -> str:
    try:
        return path.resolve().relative_to((base_dir or Path.cwd()).resolve()).as_posix()
    except ValueError:
        return str(path)


def count_records(paths: list[Path]) -> int | None:
    """A cheap estimate of the number of records, for the progress bar (None if unknown)."""
    total = 0
    for path in paths:
        if path.is_dir():
            total += sum(1 for p in _walk(path) if p.suffix.lower() in TEXT_SUFFIXES | IMAGE_SUFFIXES)
        elif not path.exists():
            total += 1
        elif path.suffix.lower() in {".jsonl", ".ndjson", ".csv", ".tsv", ".tab"}:
            with path.open("rb") as f:
                lines = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
            total += lines - (0 if path.suffix.lower() in {".jsonl", ".ndjson"} else 1)
        else:
            return None
    return max(total, 0)
