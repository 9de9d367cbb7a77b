"""Stream tasks out of input files: JSONL, Label Studio JSON, CSV/TSV, folders of texts or images.

Every reader yields, in a stable order, either a :class:`Task` or a :class:`BadRecord` that names
the file and line, so one bad record never stops a run and is never silently dropped: odd but
valid JSON (a number at the top, nesting deeper than Python recurses, text that cannot be
written as UTF-8, NaN) is a bad record too. Text is UTF-8 unless ``[input] encoding`` says
otherwise; a leading byte-order mark (what Excel writes) is accepted in every format.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
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
DEFAULT_ENCODING = "utf-8"


ENCODING_HINT = "set [input] encoding in preannot.toml or pass --encoding (e.g. latin-1, cp1252)"


def _is_utf8(encoding: str) -> bool:
    return encoding.lower().replace("_", "-") in ("utf-8", "utf8")


def _name(encoding: str) -> str:
    return "UTF-8" if _is_utf8(encoding) else encoding


def _encoding_hint(encoding: str, exc: UnicodeDecodeError) -> str:
    return f"not {_name(encoding)} at byte {exc.start}: {ENCODING_HINT}"


def _no_constants(name: str) -> float:
    raise ValueError(f"{name} is not JSON (Label Studio would refuse it)")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text} is too large for a JSON number")
    return value


def strict_loads(text: str) -> object:
    """``json.loads`` that refuses NaN and Infinity; raises ValueError or RecursionError."""
    return json.loads(text, parse_constant=_no_constants, parse_float=_finite)


def _json_error(source: str, exc: Exception) -> BadRecord:
    if isinstance(exc, RecursionError):
        return BadRecord(source, "invalid JSON", "nested too deeply")
    if isinstance(exc, json.JSONDecodeError):
        return BadRecord(source, "invalid JSON", exc.msg)
    return BadRecord(source, "invalid JSON", str(exc))


def _record_task(record: object, source: str, default_id: str, text_field: str | None) -> Record:
    """A task from one JSON/CSV record: Label Studio task format or a bare data dict."""
    if not isinstance(record, dict):
        return BadRecord(source, "not an object", f"got {type(record).__name__}")
    if "data" in record:  # Label Studio's task format, as its importer reads it
        data, task_id, meta = record.get("data"), record.get("id"), record.get("meta") or {}
        for key, value in (("data", data), ("meta", meta)):
            if not isinstance(value, dict):
                return BadRecord(source, "not a task", f"{key!r} is a {type(value).__name__}, "
                                                       "not an object")
        task_id = meta.get("preannot_id", task_id)
    else:
        data, task_id, meta = record, record.get("id"), {}
    if text_field and not isinstance(data.get(text_field), str):
        have = ", ".join(sorted(data)) or "none"
        return BadRecord(source, f"missing field {text_field!r}", f"fields: {have}")
    task = Task(id=str(task_id) if task_id is not None else default_id, data=data,
                source=source, meta=dict(meta))
    try:
        task.checksum  # noqa: B018 (the text must encode: the ledger and the output are UTF-8)
        json.dumps(meta, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        return BadRecord(source, "invalid text", f"{exc.object[exc.start:exc.end]!r} (a lone "
                                                 "surrogate) cannot be written as UTF-8")
    except (RecursionError, ValueError) as exc:
        return BadRecord(source, "invalid JSON", f"{type(exc).__name__}: {exc}")
    return task


def _text_encoding(encoding: str) -> str:
    """UTF-8 reads with a leading byte-order mark skipped."""
    return "utf-8-sig" if _is_utf8(encoding) else encoding


def read_jsonl(path: Path, label: str, text_field: str | None,
               encoding: str = DEFAULT_ENCODING) -> Iterator[Record]:
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            source = f"{label}:{lineno}"
            if not raw.strip():
                continue
            try:
                line = raw.decode(_text_encoding(encoding) if lineno == 1 else encoding)
            except UnicodeDecodeError as exc:
                yield BadRecord(source, "wrong encoding", _encoding_hint(encoding, exc))
                continue
            try:
                record = strict_loads(line)
            except (ValueError, RecursionError) as exc:
                yield _json_error(source, exc)
                continue
            yield _record_task(record, source, source, text_field)


def read_json(path: Path, label: str, text_field: str | None,
              encoding: str = DEFAULT_ENCODING) -> Iterator[Record]:
    """A Label Studio import file: a JSON list of tasks (read whole: such files are small)."""
    try:
        records = strict_loads(path.read_text(encoding=_text_encoding(encoding)))
    except UnicodeDecodeError as exc:
        yield BadRecord(label, "wrong encoding", _encoding_hint(encoding, exc))
        return
    except json.JSONDecodeError as exc:
        yield _json_error(f"{label}:{exc.lineno}", exc)
        return
    except (ValueError, RecursionError) as exc:
        yield _json_error(label, exc)
        return
    if isinstance(records, dict):
        records = [records]
    if not isinstance(records, list):
        yield BadRecord(label, "not a task list", f"the top level is a {type(records).__name__}: "
                                                  "use a list of tasks, or one task object")
        return
    for index, record in enumerate(records):
        source = f"{label}[{index}]"
        yield _record_task(record, source, source, text_field)


def read_csv(path: Path, label: str, text_field: str | None,
             encoding: str = DEFAULT_ENCODING) -> Iterator[Record]:
    """Rows of a CSV/TSV file with a header; a row with bytes that are not in ``encoding`` is
    a bad record and the rows after it are still read.

    An unclosed quote would swallow the lines after it into one field. The csv module in
    strict mode tells it for certain (the field runs to the end of the file, or the quote
    that ends it is followed by more text: another row's opening quote): the row is then a
    bad record naming the line it opened on, and reading resumes on the next line, the
    likeliest end of the stray quote (a row that guess breaks is reported in turn). A quoted
    field that closes cleanly is one multi-line value even when its lines look like rows: a
    legitimate note with commas looks the same.
    """
    delimiter = "\t" if path.suffix.lower() in {".tsv", ".tab"} else ","
    csv.field_size_limit(sys.maxsize)
    with path.open(encoding=_text_encoding(encoding), newline="", errors="surrogateescape") as f:
        header: list[str] | None = None
        for first, last, row in _csv_rows(f, delimiter):
            if isinstance(row, csv.Error):
                detail = str(row) if first == last else (
                    f"an unclosed quote at line {first} swallowed lines {first}-{last}: fix "
                    "the quote; the lines after it were read as rows of their own")
                yield BadRecord(f"{label}:{first}", "invalid CSV", detail)
                if header is None:
                    return  # without a header no row can be read
                continue
            if header is None:
                header = row
                continue
            source = f"{label}:{last}"
            if len(row) > len(header):
                yield BadRecord(source, "invalid CSV", "more fields than the header")
                continue
            record = dict(zip(header, row + [None] * (len(header) - len(row))))
            if any(_escaped(v) for v in [*record, *row]):
                yield BadRecord(source, "wrong encoding", f"not {_name(encoding)}: {ENCODING_HINT}")
                continue
            yield _record_task(record, source, source, text_field)


def _csv_rows(f: Iterator[str], delimiter: str
              ) -> Iterator[tuple[int, int, list[str] | csv.Error]]:
    """(first line, last line, fields or the error) of each non-blank record, strictly parsed;
    after an error in a record over several lines, parsing resumes on its second line."""
    again: list[str] = []  # lines to parse again, last first
    taken: list[str] = []  # the lines of the record being parsed
    lineno = 0

    def lines() -> Iterator[str]:
        nonlocal lineno
        while (line := again.pop() if again else next(f, None)) is not None:
            lineno += 1
            taken.append(line)
            yield line

    reader = csv.reader(lines(), delimiter=delimiter, strict=True)
    while True:
        taken.clear()
        first = lineno + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield first, lineno, exc
            if len(taken) > 1:
                again.extend(reversed(taken[1:]))
                lineno = first
                reader = csv.reader(lines(), delimiter=delimiter, strict=True)
            continue
        if row:
            yield first, lineno, row


def _escaped(text: str) -> bool:
    """Whether ``text`` holds bytes the decoder could not read (surrogate escapes)."""
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def _walk(folder: Path) -> Iterator[Path]:
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                yield Path(root) / name


def read_folder(folder: Path, label: str, text_field: str | None,
                encoding: str = DEFAULT_ENCODING, image_field: str = "image") -> Iterator[Record]:
    """One task per .txt file (``{"text": ...}``) or per image (``{"image": path}``); any other
    file is a bad record, so a data file left in a folder is not silently unread."""
    for path in _walk(folder):
        rel = f"{label}/{path.relative_to(folder).as_posix()}"
        suffix = path.suffix.lower()
        if suffix in TEXT_SUFFIXES:
            yield _text_file(path, rel, text_field, encoding)
        elif suffix in IMAGE_SUFFIXES:
            yield Task(id=rel, data={image_field: str(path.resolve())}, source=rel,
                       content=_file_signature(path))
        elif suffix in READERS:
            yield BadRecord(rel, "not read from a folder", "a folder gives only .txt files and "
                                                           "images: give this file as an input")
        else:
            what = f"{suffix} files" if suffix else "files without a suffix"
            yield BadRecord(rel, "not read from a folder",
                            f"a folder gives only .txt files and images, not {what}")


READERS = {".jsonl": read_jsonl, ".ndjson": read_jsonl, ".json": read_json,
           ".csv": read_csv, ".tsv": read_csv, ".tab": read_csv}


def read_inputs(paths: list[Path], text_field: str | None, base_dir: Path | None = None,
                encoding: str = DEFAULT_ENCODING) -> Iterator[Record]:
    """Every record of every input, in order; paths are shown relative to ``base_dir``."""
    for path in paths:
        label = _label(path, base_dir)
        if path.is_dir():
            yield from read_folder(path, label, text_field, encoding)
        elif not path.exists():
            yield BadRecord(label, "missing input", "no such file or folder")
        elif path.suffix.lower() in READERS:
            yield from READERS[path.suffix.lower()](path, label, text_field, encoding)
        elif path.suffix.lower() in TEXT_SUFFIXES:
            yield _text_file(path, label, text_field, encoding)
        else:
            known = ", ".join(sorted(READERS))
            yield BadRecord(label, "unknown input format", f"use a folder or one of {known}")


def _text_file(path: Path, label: str, text_field: str | None,
               encoding: str = DEFAULT_ENCODING) -> Record:
    try:
        text = path.read_text(encoding=_text_encoding(encoding))
    except UnicodeDecodeError as exc:
        return BadRecord(label, "wrong encoding", _encoding_hint(encoding, exc))
    return Task(id=label, data={text_field or "text": text}, source=label)


def _file_signature(path: Path) -> str:
    """Size, modification time and a digest of the first 64 KiB: what tells a replaced file
    from the one annotated before without reading every image whole on every rerun."""
    stat = path.stat()
    with path.open("rb") as f:
        head = hashlib.blake2b(f.read(1 << 16), digest_size=8).hexdigest()
    return f"{stat.st_size}:{stat.st_mtime_ns}:{head}"


def _label(path: Path, base_dir: Path | None) -> str:
    """How a path is shown and how the ids of its records start: relative to the config's
    folder when inside it, else absolute and normalised (``../data`` and ``/abs/data`` are
    one folder, so they give the same task ids)."""
    resolved = path.resolve()
    try:
        return resolved.relative_to((base_dir or Path.cwd()).resolve()).as_posix()
    except ValueError:
        return resolved.as_posix()


def count_records(paths: list[Path]) -> int | None:
    """A cheap estimate of the number of records, for the progress bar (None if unknown)."""
    total = 0
    for path in paths:
        if path.is_dir():
            total += sum(1 for _ in _walk(path))  # each file is a task or a bad record
        elif not path.exists():
            total += 1
        elif path.suffix.lower() in {".jsonl", ".ndjson", ".csv", ".tsv", ".tab"}:
            with path.open("rb") as f:
                lines = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
            total += lines - (0 if path.suffix.lower() in {".jsonl", ".ndjson"} else 1)
        else:
            return None
    return max(total, 0)
