"""Rules learn from corrections: propose dictionary terms and flag misfiring rules, as a patch.

Nothing is applied: the output is a unified diff of the rules files for a human to review and
apply (``git apply`` or ``patch -p1``). Proposed terms are spans humans ADDED at least
``min_count`` times (same text, case-insensitive, same label) that no rules file already holds;
they go into the first CSV/TSV referential that has that label, else the ``.txt`` list of that
label, else a new ``suggested.csv``. Rules whose harvested precision is under ``min_precision``
(with at least ``min_support`` predictions) are disabled: commented out in ``.txt`` and ``.toml``
files, removed from CSV/TSV and JSONL files (which have no comments).
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Suggestions:
    terms: list[tuple[str, str, int, str]] = field(default_factory=list)
    """(term, label, times added, file it goes to)."""
    flagged: list[dict[str, Any]] = field(default_factory=list)
    """Rules metrics rows under the precision threshold (with the file they live in)."""
    patch: str = ""


def added_spans(records: Iterable[Mapping[str, Any]]) -> Counter[tuple[str, str]]:
    """(text as first seen, label) of human-added spans, counted case-insensitively."""
    counts: Counter[tuple[str, str]] = Counter()
    spelling: dict[tuple[str, str], str] = {}
    for record in records:
        for item in record.get("human") or []:
            value = item.get("value") or {}
            if item.get("classification") != "added" or item.get("type") != "labels":
                continue
            text = " ".join(str(value.get("text", "")).split())
            label = (value.get("labels") or [""])[0]
            if text and label:
                key = (text.casefold(), label)
                spelling.setdefault(key, text)
                counts[key] += 1
    return Counter({(spelling[k], k[1]): n for k, n in counts.items()})


def _known_terms(folder: Path) -> set[str]:
    """Every spelling the rules files already name (a cheap textual check, case-insensitive)."""
    known: set[str] = set()
    for path in folder.iterdir():
        suffix = path.suffix.lower()
        if suffix in (".csv", ".tsv"):
            with path.open(encoding="utf-8", newline="") as f:
                for row in csv.reader(f, delimiter="\t" if suffix == ".tsv" else ","):
                    known.update(c.casefold() for cell in row for c in cell.split("|") if c)
        elif suffix == ".txt":
            known.update(line.strip().casefold() for line in path.read_text(encoding="utf-8").splitlines())
        elif suffix == ".jsonl":
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip() and isinstance((entry := json.loads(line)).get("pattern"), str):
                    known.add(entry["pattern"].casefold())
    return known


def _label_file(folder: Path, label: str) -> Path:
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in (".csv", ".tsv"):
            with path.open(encoding="utf-8", newline="") as f:
                rows = csv.DictReader(f, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
                if any((row.get("label") or "").strip() == label for row in rows):
                    return path
    for path in sorted(folder.glob("*.txt")):
        if path.stem.upper() == label:
            return path
    return folder / "suggested.csv"


def _add_terms(lines: list[str], path: Path, terms: list[tuple[str, str]]) -> list[str]:
    if path.suffix.lower() == ".txt":
        return lines + [f"{t}\n" for t, _ in terms]
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    if not lines:
        lines = ["term,label,canonical,synonyms\n"]
    header = next(csv.reader([lines[0]], delimiter=delimiter))
    if lines[-1] and not lines[-1].endswith("\n"):
        lines = lines[:-1] + [lines[-1] + "\n"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, header, delimiter=delimiter, lineterminator="\n")
    for term, label in terms:
        writer.writerow({c: {"term": term, "label": label, "canonical": term}.get(c, "") for c in header})
    return lines + buf.getvalue().splitlines(keepends=True)


def _disable(lines: list[str], path: Path, rule: str) -> list[str]:
    """The file's lines with one rule (provenance ``rule``) disabled."""
    suffix = path.suffix.lower()
    if suffix == ".toml":
        out, inside = [], False
        for line in lines:
            if line.strip().startswith("[["):
                inside = False
            if re.match(rf"""\s*name\s*=\s*["']{re.escape(rule)}["']\s*$""", line):
                inside = True  # comment from the table header on
                for k in range(len(out) - 1, -1, -1):
                    out[k] = "# " + out[k]
                    if out[k].strip().startswith("# [["):
                        break
            out.append("# " + line if inside else line)
        return out
    if suffix == ".jsonl":
        return [line for n, line in enumerate(lines, 1)
                if not (line.strip() and str(json.loads(line).get("id", n)) == rule)]
    if rule.isdigit() and 1 <= int(rule) <= len(lines):
        n = int(rule) - 1
        return lines[:n] + ([f"# {lines[n]}"] if suffix == ".txt" else []) + lines[n + 1:]
    return lines


def suggest(records: Iterable[Mapping[str, Any]], rules: Iterable[Mapping[str, Any]],
            folder: Path, *, root: Path | None = None, min_count: int = 3,
            min_precision: float = 0.5, min_support: int = 5) -> Suggestions:
    """Suggestions and their patch; paths in the patch are relative to ``root`` (default: cwd)."""
    folder, root = folder.resolve(), (root or Path.cwd()).resolve()
    out = Suggestions()
    known = _known_terms(folder)
    edits: dict[Path, list[tuple[str, Any]]] = defaultdict(list)
    for (term, label), n in sorted(added_spans(records).items(), key=lambda kv: (-kv[1], kv[0])):
        if n >= min_count and term.casefold() not in known:
            target = _label_file(folder, label)
            out.terms.append((term, label, n, target.name))
            edits[target].append(("add", (term, label)))
    for rule in rules:
        path = folder / str(rule.get("rule_file", ""))
        if (rule["predicted"] >= min_support and rule["precision"] is not None
                and rule["precision"] < min_precision and path.is_file()):
            out.flagged.append({**rule, "file": path.name})
            edits[path].append(("disable", str(rule["rule"])))
    chunks = []
    for path in sorted(edits):
        before = path.read_text(encoding="utf-8").splitlines(keepends=True) if path.exists() else []
        after = before
        disables = [arg for kind, arg in edits[path] if kind == "disable"]
        for rule in sorted(disables, key=lambda r: -int(r) if r.isdigit() else 0):
            after = _disable(after, path, rule)  # last line first: removals shift what follows
        adds = [arg for kind, arg in edits[path] if kind == "add"]
        if adds:
            after = _add_terms(after, path, adds)
        rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.as_posix()
        chunks.extend(difflib.unified_diff(before, after, "/dev/null" if not before else f"a/{rel}",
                                           f"b/{rel}"))
    out.patch = "".join(chunks)
    return out
