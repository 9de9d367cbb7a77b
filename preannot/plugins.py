"""Finds and loads plugins: every distribution with a ``preannot`` entry point, built-ins included.

``PREANNOT_PLUGINS`` restricts loading to a comma-separated list of entry-point names; set it
to an empty string to load none. A plugin that fails to import is recorded, not fatal.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from functools import cache
from importlib import metadata

import pluggy

from . import default_plugins, hookspecs
from .annotator import Annotator, ConfigError, Ranker, Trainer

ENTRY_POINT_GROUP = "preannot"
ENV_VAR = "PREANNOT_PLUGINS"


@dataclass
class PluginFailure:
    name: str
    distribution: str
    error: str


@dataclass
class Host:
    """The loaded plugin manager and what its plugins registered."""

    pm: pluggy.PluginManager
    failures: list[PluginFailure] = field(default_factory=list)
    distributions: dict[str, tuple[str, str]] = field(default_factory=dict)
    """plugin name -> (distribution name, version)"""

    def _collect(self, hook_name: str, base: type) -> dict[str, tuple[str, type]]:
        found: dict[str, tuple[str, type]] = {}
        for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
            def register(cls: type, _plugin: str = impl.plugin_name) -> None:
                if not (isinstance(cls, type) and issubclass(cls, base) and cls.type):
                    raise ConfigError(
                        f"plugin {_plugin!r} registered {cls!r}: expected a {base.__name__} "
                        "subclass with a 'type' name")
                if cls.type in found and found[cls.type][1] is not cls:
                    raise ConfigError(
                        f"{base.__name__.lower()} type {cls.type!r} is registered twice: by "
                        f"{found[cls.type][0]!r} and {_plugin!r}; uninstall one or restrict "
                        f"{ENV_VAR}")
                found[cls.type] = (_plugin, cls)
            impl.function(register=register)
        return found

    def annotator_types(self) -> dict[str, tuple[str, type[Annotator]]]:
        """type name -> (plugin name, class)"""
        return self._collect("register_annotators", Annotator)

    def ranker_types(self) -> dict[str, tuple[str, type[Ranker]]]:
        return self._collect("register_rankers", Ranker)

    def trainer_types(self) -> dict[str, tuple[str, type[Trainer]]]:
        return self._collect("register_trainers", Trainer)

    def annotator_class(self, type_name: str) -> type[Annotator]:
        types = self.annotator_types()
        if type_name not in types:
            known = ", ".join(sorted(types)) or "none"
            raise ConfigError(
                f"no annotator type {type_name!r} is installed (installed: {known}); "
                "install the plugin that provides it, e.g. `pip install preannot-spacy` for "
                "'rules', and check `preannot plugins`")
        return types[type_name][1]


def _wanted() -> set[str] | None:
    value = os.environ.get(ENV_VAR)
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


def load_host(extra_plugins: tuple[object, ...] = ()) -> Host:
    """A fresh host with every installed plugin (restricted by ``PREANNOT_PLUGINS``)."""
    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    pm.register(default_plugins, name="preannot")
    host = Host(pm)
    wanted = _wanted()
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if wanted is not None and ep.name not in wanted:
            continue
        if pm.has_plugin(ep.name):
            continue
        dist = ep.dist.name if ep.dist else "?"
        version = ep.dist.version if ep.dist else "?"
        try:
            plugin = ep.load()
        except Exception as exc:  # a broken plugin must not take the CLI down
            host.failures.append(PluginFailure(ep.name, dist, f"{type(exc).__name__}: {exc}"))
            continue
        pm.register(plugin, name=ep.name)
        host.distributions[ep.name] = (dist, version)
    for plugin in extra_plugins:
        pm.register(plugin)
    return host


@cache
def get_host() -> Host:
    """The process-wide host, loaded once."""
    return load_host()


def report_failures(host: Host) -> None:
    for failure in host.failures:
        print(f"warning: plugin {failure.name!r} from distribution {failure.distribution!r} "
              f"failed to load: {failure.error}", file=sys.stderr)
