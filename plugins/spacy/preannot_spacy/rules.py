"""Load a rules folder: dictionaries, spaCy pattern files and regex rules, with their settings.

File kinds by extension: ``.csv``/``.tsv`` referentials, ``.txt`` term lists, ``.jsonl`` spaCy
EntityRuler/SpanRuler patterns, ``.toml`` regex rules. An optional ``rules.toml`` manifest sets
per-file options under ``[files."name"]``. See ``rules/README.md`` for the format.
"""

from __future__ import annotations

import csv
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from preannot import ConfigError, digest, file_digest

MANIFEST = "rules.toml"
DEFAULTS = {"case": "sensitive", "accents": "keep", "confidence": 0.8, "priority": 0}


@dataclass
class Term:
    text: str
    label: str
    case: str
    accents: str
    confidence: float
    priority: int
    provenance: dict[str, Any]


@dataclass
class TokenPattern:
    label: str
    pattern: list[dict[str, Any]]
    confidence: float
    priority: int
    provenance: dict[str, Any]


@dataclass
class RegexRule:
    regex: re.Pattern[str]
    label: str
    group: int | str
    confidence: float
    priority: int
    provenance: dict[str, Any]


@dataclass
class RuleSet:
    terms: list[Term] = field(default_factory=list)
    token_patterns: list[TokenPattern] = field(default_factory=list)
    regexes: list[RegexRule] = field(default_factory=list)
    digest: str = ""
    defaults: dict[str, Any] = field(default_factory=lambda: dict(DEFAULTS))
    """The folder's settings (DEFAULTS under the manifest's ``[defaults]``), for files and
    matches that name none of their own."""

    @property
    def labels(self) -> list[str]:
        found = {t.label for t in self.terms} | {p.label for p in self.token_patterns}
        return sorted(found | {r.label for r in self.regexes})


def _settings(manifest: dict[str, Any], name: str, where: str) -> dict[str, Any]:
    settings = {**DEFAULTS, **manifest.get("defaults", {}), **manifest.get("files", {}).get(name, {})}
    if settings["case"] not in {"sensitive", "insensitive"}:
        raise ConfigError(f"{where}: case must be 'sensitive' or 'insensitive'")
    if settings["accents"] not in {"keep", "fold"}:
        raise ConfigError(f"{where}: accents must be 'keep' or 'fold'")
    return settings


def _referential(path: Path, opts: dict[str, Any], rules: RuleSet) -> None:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    term_col = opts.get("term_column", "term")
    label_col = opts.get("label_column", "label")
    canonical_col = opts.get("canonical_column", "canonical")
    synonyms_col = opts.get("synonyms_column", "synonyms")
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        missing = {term_col, label_col} - set(reader.fieldnames or [])
        if missing:
            raise ConfigError(f"{path}:1: missing column(s) {sorted(missing)}; the header has "
                              f"{reader.fieldnames}; name them in {MANIFEST} (term_column, "
                              "label_column)")
        for row in reader:
            where = f"{path.name}:{reader.line_num}"
            term, label = (row.get(term_col) or "").strip(), (row.get(label_col) or "").strip()
            if not term or not label:
                raise ConfigError(f"{path}:{reader.line_num}: empty {term_col!r} or {label_col!r}")
            canonical = (row.get(canonical_col) or "").strip() or term
            synonyms = [s.strip() for s in (row.get(synonyms_col) or "").split("|") if s.strip()]
            for text in [term, *synonyms]:
                rules.terms.append(Term(text, label, opts["case"], opts["accents"],
                                        float(opts["confidence"]), int(opts["priority"]),
                                        {"rule_file": path.name, "rule": where.split(":")[1],
                                         "canonical": canonical}))


def _term_list(path: Path, opts: dict[str, Any], rules: RuleSet) -> None:
    label = opts.get("label", path.stem.upper())
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        term = line.strip()
        if term and not term.startswith("#"):
            rules.terms.append(Term(term, label, opts["case"], opts["accents"],
                                    float(opts["confidence"]), int(opts["priority"]),
                                    {"rule_file": path.name, "rule": str(lineno), "canonical": term}))


def _patterns(path: Path, opts: dict[str, Any], rules: RuleSet) -> None:
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            label, pattern = entry["label"], entry["pattern"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path}:{lineno}: not a spaCy pattern line ({exc}); expected "
                              '{"label": ..., "pattern": "text" or [token dicts]}') from None
        confidence = float(entry.get("confidence", opts["confidence"]))
        priority = int(entry.get("priority", opts["priority"]))
        provenance = {"rule_file": path.name, "rule": str(entry.get("id", lineno))}
        if isinstance(pattern, str):
            rules.terms.append(Term(pattern, label, opts["case"], opts["accents"], confidence,
                                    priority, {**provenance, "canonical": entry.get("id", pattern)}))
        elif isinstance(pattern, list) and all(isinstance(t, dict) for t in pattern):
            rules.token_patterns.append(TokenPattern(label, pattern, confidence, priority, provenance))
        else:
            raise ConfigError(f"{path}:{lineno}: 'pattern' must be a string or a list of token dicts")


def _regexes(path: Path, opts: dict[str, Any], rules: RuleSet) -> None:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    for index, rule in enumerate(data.get("rules", []), 1):
        where = f"{path}: rule #{index} ({rule.get('name', 'unnamed')})"
        flags = 0
        for flag in rule.get("flags", ""):
            flags |= {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}.get(flag, 0)
        try:
            regex = re.compile(rule["pattern"], flags)
            label = rule["label"]
        except KeyError as exc:
            raise ConfigError(f"{where}: missing {exc}") from None
        except re.error as exc:
            raise ConfigError(f"{where}: invalid regex: {exc}") from None
        rules.regexes.append(RegexRule(regex, label, rule.get("group", 0),
                                       float(rule.get("confidence", opts["confidence"])),
                                       int(rule.get("priority", opts["priority"])),
                                       {"rule_file": path.name, "rule": rule.get("name", str(index))}))


LOADERS = {".csv": _referential, ".tsv": _referential, ".txt": _term_list, ".jsonl": _patterns,
           ".toml": _regexes}


def load_rules(folder: Path) -> RuleSet:
    """Every rules file in ``folder`` (sorted by name, so the result is deterministic)."""
    if not folder.is_dir():
        raise ConfigError(f"rules folder {folder} does not exist")
    manifest_path = folder / MANIFEST
    manifest: dict[str, Any] = {}
    read: list[tuple[str, str]] = []  # (name, content digest) of each file read, manifest last
    if manifest_path.exists():
        try:
            manifest = tomllib.loads(manifest_path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{manifest_path}: invalid TOML: {exc}") from None
    rules = RuleSet(defaults=_settings({"defaults": manifest.get("defaults", {})}, "",
                                       str(manifest_path)))
    for path in sorted(folder.iterdir()):
        loader = LOADERS.get(path.suffix.lower())
        if path.name == MANIFEST or loader is None or path.name.startswith("."):
            continue
        read.append((path.name, file_digest(path)))
        loader(path, _settings(manifest, path.name, str(path)), rules)
    if manifest_path.exists():
        read.append((MANIFEST, file_digest(manifest_path)))
    rules.digest = digest(read)
    return rules
