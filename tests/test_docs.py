"""The configuration reference keeps up with the settings, as datasette's tests/test_docs.py
keeps its settings documented: a setting added without a row in docs/reference/config.md, or a
row left behind by a setting removed, fails here by name."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from preannot.engine.config import SECTIONS, settings_sections

REFERENCE = Path(__file__).resolve().parent.parent / "docs" / "reference" / "config.md"

# Fields of a settings class that are not TOML keys of their own: ``options`` gathers the
# section's other keys (the ranker's or selector's options, documented as "other keys"),
# ``configured`` records that the table is there; and one key spelled otherwise in the file.
NOT_KEYS = {"options", "configured"}
KEY_OF_FIELD = {("selection", "data_field"): "field"}


def _documented() -> dict[str, set[str]]:
    """Each ``## `[section]``` (or ``[[section]]``) heading of the reference, with the keys its
    tables list in their first column."""
    sections: dict[str, set[str]] = {}
    current = None
    for line in REFERENCE.read_text(encoding="utf-8").splitlines():
        if heading := re.match(r"## `\[{1,2}(\w+)\]{1,2}`$", line):
            current = sections.setdefault(heading.group(1), set())
        elif line.startswith("## "):
            current = None
        elif current is not None and (row := re.match(r"\| (`\w+`(?:, `\w+`)*) \|", line)):
            current.update(re.findall(r"`(\w+)`", row.group(1)))
    return sections


def _keys(section: str, settings: type) -> set[str]:
    return {KEY_OF_FIELD.get((section, f.name), f.name) for f in dataclasses.fields(settings)
            if f.name not in NOT_KEYS}


SETTINGS = [(section, key) for section, settings in settings_sections().items()
            for key in sorted(_keys(section, settings))]


def test_every_section_has_a_heading():
    assert [s for s in SECTIONS if s not in _documented()] == []


@pytest.mark.parametrize(("section", "key"), SETTINGS, ids=[f"{s}.{k}" for s, k in SETTINGS])
def test_every_setting_is_documented(section, key):
    assert key in _documented().get(section, set()), \
        f"[{section}] {key} has no row in {REFERENCE.name}"


def test_every_documented_setting_exists():
    sections = settings_sections()
    assert set(sections) <= set(SECTIONS)
    gone = [f"[{section}] {key}" for section, keys in _documented().items()
            if section in sections for key in sorted(keys - _keys(section, sections[section]))]
    assert gone == []


def test_every_common_annotator_option_is_documented():
    from preannot import Annotator

    common = Annotator.COMMON_OPTIONS | {"name", "type"}
    assert sorted(common - _documented().get("annotators", set())) == []
