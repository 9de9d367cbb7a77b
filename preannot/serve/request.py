"""What a request may hold, checked in one place: the body is parsed safely (no nesting deep
enough to exhaust the parser, no NaN, only text UTF-8 can carry) and read through typed
accessors, so a field of the wrong shape is a 400 that names it, never a 500 deep inside."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

from ..engine.readers import strict_loads
from ..lsjson import result_to_region
from ..model import Region

PROJECT = re.compile(r"([0-9]+)(?:\..*)?", re.DOTALL)
"""Label Studio names a project ``"<id>.<created timestamp>"``."""
FIELD_TYPES = {"int": ((int,), "a number"), "float": ((int, float), "a number"),
               "str": ((str,), "a string")}
"""What a region's typed fields must hold, by their annotation (``| None``: or null)."""


class BadRequest(ValueError):
    """A request the backend cannot answer; the message says why (sent back as JSON)."""

    status = 400


class Unavailable(BadRequest):
    """A request that cannot be answered now (Label Studio, which it needs, does not answer)."""

    status = 503


def parse(path: str, raw: bytes) -> Body:
    """The body of a request to ``path``: a JSON object (empty when there is no body)."""
    try:
        value = strict_loads(raw.decode("utf-8")) if raw.strip() else {}
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except RecursionError:
        raise BadRequest(f"{path}: the body is nested too deeply") from None
    except UnicodeError as exc:
        raise BadRequest(f"{path}: the body holds {exc.object[exc.start:exc.end]!r}, which is "
                         "not UTF-8 text") from None
    except ValueError as exc:
        raise BadRequest(f"{path}: the body is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise BadRequest(f"{path}: the body must be a JSON object, not {kind(value)}")
    return Body(path, value)


def kind(value: Any) -> str:
    """A JSON value's kind as an error message names it."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
             int: "a number", float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _holds(value: Any, types: tuple[type, ...]) -> bool:
    return isinstance(value, types) and not isinstance(value, bool)


class Body:
    """A request's JSON object, read field by field; each accessor names the field it refuses."""

    def __init__(self, path: str, values: dict[str, Any]) -> None:
        self.path, self.values = path, values

    def refuse(self, field: str, wanted: str, value: Any) -> BadRequest:
        return BadRequest(f"{self.path}: {field!r} must be {wanted}, not {kind(value)}")

    def get(self, field: str, types: type | tuple[type, ...], wanted: str,
            default: Any = None, *, required: bool = False) -> Any:
        """The field when of one of ``types``, or absent and not ``required`` (``default``);
        else a BadRequest."""
        value = self.values.get(field)
        if value is None and not required:
            return default
        if not isinstance(value, types):
            raise self.refuse(field, wanted, value)
        return value

    def text(self, field: str, wanted: str = "a string") -> str | None:
        return self.get(field, str, wanted)

    def object(self, field: str, wanted: str = "an object") -> dict[str, Any]:
        return self.get(field, dict, wanted, {})

    def project(self) -> int | None:
        """The project the request comes from: ``"<id>.<timestamp>"``, an id, or (webhooks)
        the project object with its ``id``."""
        value = self.values.get("project")
        if isinstance(value, dict):
            value = value.get("id")
        if value is None:
            return None
        if _holds(value, (int,)) and value >= 0:
            return value
        match = PROJECT.fullmatch(value) if isinstance(value, str) else None
        if match is None:
            raise BadRequest(f"{self.path}: 'project' must be a Label Studio project id "
                             f"(\"<id>.<timestamp>\"), not {value!r}"[:300])
        return int(match.group(1))

    def context(self) -> dict[str, Any]:
        """The editor's interactive context (``params.context``, or ``context``)."""
        params = self.object("params")
        context = params.get("context")
        if context is None:
            return self.object("context", "an object (the editor's interactive context)")
        if not isinstance(context, dict):
            raise self.refuse("params.context", "an object (the editor's interactive context)",
                              context)
        return context

    def prompts(self, context: dict[str, Any]) -> list[Region]:
        """The regions a user drew in the editor (``context.result``), each read whole."""
        raw = context.get("result") or []
        if not isinstance(raw, list):
            raise self.refuse("context.result", "a list of Label Studio results", raw)
        return [self._prompt(f"context.result[{i}]", item) for i, item in enumerate(raw)]

    def _prompt(self, field: str, item: Any) -> Region:
        if not isinstance(item, dict):
            raise self.refuse(field, "a Label Studio result (an object)", item)
        try:
            region = result_to_region(item)
        except KeyError as exc:
            raise BadRequest(f"{self.path}: {field} lacks {exc}") from None
        except (ValueError, TypeError, IndexError, AttributeError) as exc:
            raise BadRequest(f"{self.path}: {field} cannot be read: {exc}"[:300]) from None
        for spec in dataclasses.fields(region):
            value = getattr(region, spec.name)
            declared = str(spec.type).removesuffix(" | None")
            if declared not in FIELD_TYPES or value is None and declared != spec.type:
                continue
            types, wanted = FIELD_TYPES[declared]
            if not _holds(value, types):
                raise BadRequest(f"{self.path}: {field}: {spec.name!r} must be {wanted}, "
                                 f"not {kind(value)}")
        return region
