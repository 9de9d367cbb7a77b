"""Finds and loads plugins: every distribution with a ``preannot`` entry point, built-ins included.

``PREANNOT_PLUGINS`` restricts loading to a comma-separated list of entry-point names; set it
to an empty string to load none. A plugin that fails to import is recorded, not fatal.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass, field
from functools import cache
from importlib import metadata
from typing import Any

import click
import pluggy

from .. import hookspecs
from ..annotator import Annotator, ConfigError, Ranker, Selector, Trainer
from ..plugins import DEFAULT_PLUGINS
from .config import RankingSettings, SelectionSettings

ENTRY_POINT_GROUP = "preannot"
ENV_VAR = "PREANNOT_PLUGINS"


@dataclass
class PluginFailure:
    name: str
    distribution: str
    error: str


def listed_name(plugin_name: str) -> str:
    """How a registered plugin is named to users: the built-in features are one plugin,
    ``preannot``, as the distribution that ships them."""
    return "preannot" if plugin_name in DEFAULT_PLUGINS else plugin_name


@dataclass
class Host:
    """The loaded plugin manager and what its plugins registered."""

    pm: pluggy.PluginManager
    failures: list[PluginFailure] = field(default_factory=list)
    distributions: dict[str, tuple[str, str]] = field(default_factory=dict)
    """plugin name -> (distribution name, version)"""

    @property
    def hook(self) -> Any:
        """The hooks, to emit an event: ``host.hook.harvested(config=..., ...)``."""
        return self.pm.hook

    def _collect(self, hook_name: str, base: type) -> dict[str, tuple[str, type]]:
        found: dict[str, tuple[str, type]] = {}
        for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
            def register(cls: type, _plugin: str = listed_name(impl.plugin_name)) -> None:
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

    def selector_types(self) -> dict[str, tuple[str, type[Selector]]]:
        return self._collect("register_selectors", Selector)

    def selector(self, settings: SelectionSettings) -> Selector | None:
        """The selector ``[selection]`` names, built with its options (None: none)."""
        return self._chosen("selection", "selector", settings.selector, self.selector_types(),
                            settings.options)

    def ranker(self, settings: RankingSettings) -> Ranker | None:
        """The ranker ``[ranking]`` names, built with its other keys as options (None: none)."""
        return self._chosen("ranking", "ranker", settings.ranker, self.ranker_types(),
                            settings.options)

    @staticmethod
    def _chosen(section: str, key: str, name: str | None, types: dict[str, tuple[str, type]],
                options: dict[str, Any]) -> Any:
        if not name:
            return None
        if name not in types:
            known = ", ".join(sorted(types)) or "none"
            raise ConfigError(f"[{section}] {key} {name!r} is not installed (installed: {known})")
        return types[name][1](dict(options))

    def listing(self) -> list[dict[str, Any]]:
        """Every loaded plugin with its distribution, hooks, annotator and trainer types
        (what ``preannot plugins`` shows)."""
        annotators, trainers = self.annotator_types(), self.trainer_types()
        trainable = {cls.annotator for _, cls in trainers.values()}
        listing = []
        for name, owners in self._plugins().items():
            dist, version = self.distributions.get(name, (name, _version(name)))
            hooks = sorted({h.name for plugin in owners.values()
                            for h in self.pm.get_hookcallers(plugin) or []})
            provided = [{"type": t, "description": cls.description, "reads": list(cls.reads),
                         "emits": list(cls.emits), "can_train": t in trainable}
                        for t, (owner, cls) in sorted(annotators.items()) if owner == name]
            trains = [{"type": t, "description": cls.description, "annotator": cls.annotator,
                       "learns": list(cls.learns)}
                      for t, (owner, cls) in sorted(trainers.items()) if owner == name]
            listing.append({"name": name, "distribution": dist, "version": version,
                            "hooks": hooks, "annotators": provided, "trainers": trains})
        return listing

    def _plugins(self) -> dict[str, dict[str, object]]:
        """Listed name -> {registered name: plugin}: the built-in features are one plugin,
        ``preannot``, as the distribution that ships them."""
        grouped: dict[str, dict[str, object]] = {}
        for name, plugin in self.pm.list_name_plugin():
            grouped.setdefault(listed_name(name), {})[name] = plugin
        return grouped

    def add_commands(self, cli: click.Group) -> list[str]:
        """Let each plugin add its commands to ``cli``, after the built-in ones: a command whose
        name is already taken is not added. Returns what was refused, in sentences."""
        refused = []
        for impl in self.pm.hook.register_commands.get_hookimpls():
            staged = click.Group()
            try:
                impl.function(cli=staged)
            except Exception as exc:  # a broken plugin must not take the CLI down
                refused.append(f"plugin {impl.plugin_name!r} failed to add its commands: "
                               f"{type(exc).__name__}: {exc}")
                continue
            refused += _merge(cli, staged, impl.plugin_name)
        return refused

    def annotator_class(self, type_name: str) -> type[Annotator]:
        types = self.annotator_types()
        if type_name not in types:
            known = ", ".join(sorted(types)) or "none"
            raise ConfigError(
                f"no annotator type {type_name!r} is installed (installed: {known}); "
                "install the plugin that provides it, e.g. `pip install preannot-spacy` for "
                "'rules', and check `preannot plugins`")
        return types[type_name][1]


def _merge(cli: click.Group, staged: click.Group, plugin: str, where: str = "") -> list[str]:
    """Add ``staged``'s commands to ``cli``; a group of the same name as one of ``cli``'s (e.g.
    ``ls``) adds its sub-commands to it. A name already taken is refused, in a sentence."""
    refused = []
    for name, command in staged.commands.items():
        taken = cli.commands.get(name)
        if isinstance(taken, click.Group) and isinstance(command, click.Group):
            refused += _merge(taken, command, plugin, f"{where}{name} ")
        elif taken is not None:
            refused.append(f"plugin {plugin!r}: command {where + name!r} is already taken (by "
                           "preannot or another plugin): not added; rename it")
        else:
            cli.add_command(command, name)
    return refused


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "?"


def _wanted() -> set[str] | None:
    value = os.environ.get(ENV_VAR)
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


def load_host(extra_plugins: tuple[object, ...] = ()) -> Host:
    """A fresh host with every installed plugin (restricted by ``PREANNOT_PLUGINS``)."""
    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    for name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(name), name=name)
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
