"""The plugin manager and the provider registry built from it.

Plugins come from three places through one code path: the `voicebot` entry-point group (built-ins
and installed distributions alike) and module paths listed under `plugins:` in config.yaml.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import pluggy

from . import hookspecs
from .providers import ROLES, Provider
from .telephony.carrier import Carrier
from .telephony.stream import TcpCarrier

ENTRY_POINT_GROUP = "voicebot"


class PluginError(Exception):
    """A plugin could not be loaded, or two plugins claim the same name."""


@dataclass
class Registry:
    """Everything the loaded plugins registered, with who registered it."""

    providers: dict[str, dict[str, type[Provider]]] = field(
        default_factory=lambda: {role: {} for role in ROLES}
    )
    transports: dict[str, Any] = field(default_factory=dict)  # carrier name → serializer class
    carriers: dict[str, Carrier] = field(default_factory=dict)
    tcp_carriers: dict[str, TcpCarrier] = field(default_factory=dict)  # PBXs over plain TCP
    actions: dict[str, Callable[..., Any]] = field(default_factory=dict)
    slot_types: dict[str, Callable[..., Any]] = field(default_factory=dict)
    owners: dict[tuple[str, str], str] = field(default_factory=dict)

    def provider(self, role: str, name: str) -> type[Provider]:
        return self.providers[role][name]

    def names(self, role: str) -> list[str]:
        return sorted(self.providers[role])


def _plugin_label(pm: pluggy.PluginManager, plugin: object) -> str:
    return pm.get_name(plugin) or getattr(plugin, "__name__", repr(plugin))


class PluginManager:
    """Wraps pluggy: loads plugins, builds the `Registry`, exposes `hook` for lifecycle calls."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("voicebot")
        self.pm.add_hookspecs(hookspecs)
        self._registry: Registry | None = None

    @property
    def hook(self) -> Any:
        return self.pm.hook

    def load_entry_points(self) -> None:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if self.pm.get_plugin(ep.name) is not None:
                continue
            try:
                module = ep.load()
            except Exception as exc:  # a broken third-party plugin must not hide which one it is
                dist = ep.dist.name if ep.dist else "?"
                raise PluginError(
                    f"plugin '{ep.name}' from package '{dist}' failed to import: {exc}"
                ) from exc
            self.register(module, ep.name)

    def load_modules(self, names: Iterable[str]) -> None:
        for name in names:
            if self.pm.get_plugin(name) is not None:
                continue
            try:
                module = importlib.import_module(name)
            except ImportError as exc:
                raise PluginError(
                    f"plugin module '{name}' could not be imported: {exc}. Install the package "
                    "that provides it, or remove it from `plugins:`"
                ) from exc
            self.register(module, name)

    def register(self, plugin: object, name: str | None = None) -> None:
        self.pm.register(plugin, name)
        self._registry = None

    def plugin_names(self) -> list[str]:
        return sorted(_plugin_label(self.pm, p) for p in self.pm.get_plugins())

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = self._build_registry()
        return self._registry

    def _build_registry(self) -> Registry:
        reg = Registry()
        plugins = self.pm.get_plugins()
        for plugin in plugins:
            label = _plugin_label(self.pm, plugin)
            others = [p for p in plugins if p is not plugin]
            for role in ROLES:
                self._call_one(
                    plugin, others, f"register_{role}", self._provider_register(reg, role, label)
                )
            self._call_one(plugin, others, "register_telephony", self._carrier_register(reg, label))
            for hook, table in (
                ("register_transports", reg.transports),
                ("register_actions", reg.actions),
                ("register_slot_types", reg.slot_types),
            ):
                kind = hook[len("register_") :]
                self._call_one(plugin, others, hook, self._named_register(reg, kind, table, label))
        return reg

    def _call_one(
        self, plugin: object, others: list[object], hook: str, register: Callable[..., None]
    ) -> None:
        """Call one plugin's implementation of a `register_*` hook through pluggy (so `@hookimpl`
        options such as `specname` apply), with a `register` that knows which plugin it serves:
        that is how a duplicate name is reported with both plugins' names."""
        self.pm.subset_hook_caller(hook, remove_plugins=others)(register=register)

    @staticmethod
    def _provider_register(reg: Registry, role: str, label: str) -> Callable[..., None]:
        base = ROLES[role]

        def register(cls: type[Provider]) -> None:
            if not (isinstance(cls, type) and issubclass(cls, base)):
                raise PluginError(
                    f"plugin '{label}' registered {cls!r} as {role}, but it is not a subclass "
                    f"of voicebot.providers.{base.__name__}"
                )
            name = getattr(cls, "name", None)
            if not isinstance(name, str) or not name:
                raise PluginError(f"plugin '{label}': {cls.__name__} has no `name`")
            _claim(reg, role, name, label)
            reg.providers[role][name] = cls

        return register

    @staticmethod
    def _carrier_register(reg: Registry, label: str) -> Callable[[Carrier | TcpCarrier], None]:
        def register(carrier: Carrier | TcpCarrier) -> None:
            if isinstance(carrier, TcpCarrier):
                _claim(reg, "transports", carrier.name, label)
                reg.tcp_carriers[carrier.name] = carrier
                return
            if not isinstance(carrier, Carrier):
                raise PluginError(
                    f"plugin '{label}' registered {carrier!r} as a carrier, but it is not a "
                    "voicebot.telephony.carrier.Carrier (or a voicebot.telephony.stream.TcpCarrier)"
                )
            _claim(reg, "transports", carrier.name, label)
            reg.carriers[carrier.name] = carrier
            reg.transports[carrier.name] = carrier.serializer

        return register

    @staticmethod
    def _named_register(
        reg: Registry, kind: str, table: dict[str, Any], label: str
    ) -> Callable[[str, Any], None]:
        def register(name: str, obj: Any) -> None:
            _claim(reg, kind, name, label)
            table[name] = obj
            if kind == "transports":  # the deprecated hook: a carrier with a media stream only
                reg.carriers[name] = Carrier(serializer=obj)

        return register


def _claim(reg: Registry, kind: str, name: str, label: str) -> None:
    owner = reg.owners.get((kind, name))
    if owner is not None:
        raise PluginError(
            f"{kind} provider '{name}' is registered twice: by plugin '{owner}' and by plugin "
            f"'{label}'. Uninstall one of them or rename its provider"
        )
    reg.owners[(kind, name)] = label


def make_plugin_manager(extra_modules: Iterable[str] = ()) -> PluginManager:
    pm = PluginManager()
    pm.load_entry_points()
    pm.load_modules(extra_modules)
    return pm
