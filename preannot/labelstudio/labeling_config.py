"""Labeling configs: generate one from the configured annotators, or check a user's against them.

A prediction whose ``from_name``, ``to_name`` or label is not in the project's labeling config is
silently not shown by Label Studio; checking before a push turns that into a clear error.

An interactive annotator (one with ``prompts``) also gets the editor's smart tools it answers
(``smart="true"``, as Label Studio's interactive SAM template has them): a keypoint tool for
clicks, a rectangle tool for boxes. They are prompts, not predictions, so a user's own config is
not checked for them.
"""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from xml.sax.saxutils import quoteattr

from ..annotator import Annotator, ConfigError
from ..model import Prediction
from ..regions import KINDS, RegionKind


def _kind(annotator: Annotator, kind: str, doing: str) -> RegionKind:
    """The registered kind an annotator emits or takes as prompts, or a clear error."""
    if kind not in KINDS:
        raise ConfigError(f"annotator {annotator.name!r} {doing}, which preannot cannot map to "
                          f"Label Studio (known: {', '.join(KINDS)})")
    return KINDS[kind]


@dataclass
class Control:
    kind: RegionKind
    to_name: str
    labels: list[str] = field(default_factory=list)
    users: list[str] = field(default_factory=list)
    smart: bool = False
    """A tool whose regions the editor sends to the ML backend as prompts."""

    @property
    def tag(self) -> str:
        return self.kind.control_tag


def expected_controls(annotators: Sequence[Annotator]) -> tuple[dict[str, Control], dict[str, tuple[str, str]]]:
    """Controls (by from_name) and objects (to_name -> (tag, data field)) the annotators need."""
    controls: dict[str, Control] = {}
    objects: dict[str, tuple[str, str]] = {}
    for a in annotators:
        if a.combines:
            continue  # its regions are its upstreams', with their names
        for kind in a.emits:
            region_kind = _kind(a, kind, f"emits {kind!r}")
            tag = region_kind.control_tag
            control = controls.setdefault(a.from_name, Control(region_kind, a.to_name))
            if (control.tag, control.to_name) != (tag, a.to_name):
                raise ConfigError(
                    f"annotators {control.users[0]!r} and {a.name!r} both write from_name "
                    f"{a.from_name!r} but as {control.tag}->{control.to_name} and "
                    f"{tag}->{a.to_name}: give one of them its own from_name")
            control.users.append(a.name)
            control.labels += [label for label in a.labels if label not in control.labels]
            objects.setdefault(a.to_name, (region_kind.object_tag, a.field))
    return controls, objects


def add_prompt_tools(annotators: Sequence[Annotator], controls: dict[str, Control]) -> None:
    """Mark, or add, the smart tools each interactive annotator takes prompts from: its own
    control when it emits that type, else the image's (or text's) control of that type, else a
    new one named ``<from_name>_<point|box|...>``; each with the annotator's labels."""
    for a in annotators:
        for kind in a.prompts:
            region_kind = _kind(a, kind, f"takes {kind!r} prompts")
            tag = region_kind.control_tag
            own = controls.get(a.from_name)
            tool = (own if own is not None and own.tag == tag and own.to_name == a.to_name else
                    next((c for c in controls.values() if (c.tag, c.to_name) == (tag, a.to_name)),
                         None))
            if tool is None:
                name = f"{a.from_name}_{region_kind.prompt_suffix or kind}"
                tool = controls.setdefault(name, Control(region_kind, a.to_name))
            tool.smart = True
            if a.name not in tool.users:
                tool.users.append(a.name)
            tool.labels += [label for label in a.labels if label not in tool.labels]


def generate(annotators: Sequence[Annotator]) -> str:
    """A labeling config that shows every region the annotators can emit, with the smart tools
    the interactive ones answer."""
    controls, objects = expected_controls(annotators)
    add_prompt_tools(annotators, controls)
    lines = ["<View>"]
    for to_name, (tag, data_field) in objects.items():
        lines.append(f"  <{tag} name={quoteattr(to_name)} value={quoteattr('$' + data_field)}/>")
    for from_name, control in controls.items():
        if not control.labels:
            raise ConfigError(f"annotator {control.users[0]!r} declares no labels: set "
                              "labels = [...] in its [[annotators]] table or give a labeling config")
        lines += control.kind.control(from_name, control.to_name, control.labels, control.smart)
    lines.append("</View>")
    return "\n".join(lines) + "\n"


@dataclass
class Fit:
    """How a labeling config fits what the annotators emit: why it cannot serve them at all
    (``problems``), and the labels it lacks, whose predictions are left out (Label Studio would
    not show them; its ML backends predict the labels a project has)."""

    problems: list[str] = field(default_factory=list)
    lacking: dict[str, list[str]] = field(default_factory=dict)
    """from_name -> the labels the annotators emit there that the config lacks."""

    @property
    def note(self) -> str:
        """One line saying which predictions are left out ('' when none)."""
        if not self.lacking:
            return ""
        return f"the labeling config lacks {self._lacking()}: predictions of them are left out"

    def _lacking(self) -> str:
        return "; ".join(f"label(s) {', '.join(map(repr, labels))} (from_name {name!r})"
                         for name, labels in self.lacking.items())

    def keeps(self, from_name: str | None, labels: Sequence[Any]) -> bool:
        """Whether a region of these labels shows in the project."""
        lacking = self.lacking.get(from_name or "", ())
        return not any(label in lacking for label in labels)

    def predictions(self, predictions: Sequence[Prediction]) -> list[Prediction]:
        """The predictions without the regions the config has no label for."""
        return [replace(p, regions=[r for r in p.regions if self.keeps(r.from_name, [r.label])])
                for p in predictions]

    def task(self, item: Any) -> Any:
        """A Label Studio import task without the predicted results the config has no label
        for (anything else as it is: the push names what it cannot read)."""
        if not self.lacking or not isinstance(item, dict) or not isinstance(
                item.get("predictions"), list):
            return item
        return {**item, "predictions": [
            {**p, "result": [r for r in p.get("result") or [] if self._keeps_result(r)]}
            if isinstance(p, dict) else p for p in item["predictions"]]}

    def _keeps_result(self, result: Any) -> bool:
        value = result.get("value") if isinstance(result, dict) else None
        labels = value.get(result.get("type")) if isinstance(value, dict) else None
        return not isinstance(labels, list) or self.keeps(result.get("from_name"), labels)


def fit(label_config: str, annotators: Sequence[Annotator]) -> Fit:
    """How ``label_config`` fits what the annotators emit. A config that lacks some labels
    fits; one with none of the labels, or without a control or object they write, does not."""
    try:
        root = ET.fromstring(label_config)
    except (ET.ParseError, ValueError, LookupError) as exc:
        return Fit([f"labeling config is not valid XML: {exc}"])
    found: dict[str, ET.Element] = {el.get("name"): el for el in root.iter() if el.get("name")}
    controls, objects = expected_controls(annotators)
    result = Fit()
    for to_name, (tag, _) in objects.items():
        if to_name not in found:
            result.problems.append(f"no <{tag} name=\"{to_name}\"> for annotators to annotate "
                                   f"(to_name {to_name!r})")
    for from_name, control in controls.items():
        who = ", ".join(control.users)
        el = found.get(from_name)
        if el is None:
            result.problems.append(f"no <{control.tag} name=\"{from_name}\"> (from_name of {who})")
            continue
        if el.tag != control.tag:
            result.problems.append(f"from_name {from_name!r} is a <{el.tag}>, but {who} emit "
                                   f"{control.tag}")
        if el.get("toName") != control.to_name:
            result.problems.append(f"from_name {from_name!r} has toName={el.get('toName')!r}, "
                                   f"but {who} write to_name {control.to_name!r}")
        have = {child.get("value") for child in el}
        if missing := [label for label in control.labels if label not in have]:
            result.lacking[from_name] = missing
    emitted = [label for control in controls.values() for label in control.labels]
    if emitted and len(emitted) == sum(map(len, result.lacking.values())):
        result.problems.append(f"it has none of the labels the annotators emit: it lacks "
                               f"{result._lacking()}")
    return result


def check(label_config: str, annotators: Sequence[Annotator]) -> list[str]:
    """Why ``label_config`` cannot show what the annotators emit (empty when it can)."""
    return fit(label_config, annotators).problems


def spec(label_config: str) -> dict[str, Any]:
    """The parts of a labeling config annotations depend on: every control (a tag with a
    ``toName``) with its name, target and label values. Layout, styles and hotkeys are left out,
    so editing them does not make a new version."""
    root = ET.fromstring(label_config)
    controls = []
    for element in root.iter():
        if "toName" not in element.attrib:
            continue
        controls.append({"tag": element.tag, "name": element.attrib.get("name", ""),
                         "to_name": element.attrib["toName"],
                         "labels": sorted(child.attrib["value"] for child in element
                                          if "value" in child.attrib)})
    controls.sort(key=lambda c: (c["name"], c["tag"]))
    return {"controls": controls,
            "version": hashlib.sha256(json.dumps(controls, sort_keys=True).encode()).hexdigest()[:12]}


def labels_of(found: dict[str, Any]) -> frozenset[str]:
    """Every label value of a :func:`spec`."""
    return frozenset(label for control in found["controls"] for label in control["labels"])
