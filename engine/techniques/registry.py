"""Technique registry, shaped like Opacus' accountant registry: a private dict, clear errors, `force=`.

The built-in techniques are listed in engine.techniques.builtin and registered on first use. Plugins (a
module of the user's own holding `TECHNIQUES = [SomeTechnique, ...]`) are loaded by name with
`load_plugins`; the surfaces (CLI, dashboard) pass the names they were given (FRONTIER_PLUGINS), and the
runner hands the same names to its worker processes.

Settings are one flat namespace across techniques (a spec says `rounds: 20` once for every federated
technique it runs), so two techniques may declare a setting of the same name only if the declarations are
identical (usually a settings class they share).
"""

from __future__ import annotations

import importlib

from engine.config import SweepSpec
from engine.errors import ConfigError
from engine.settings import Setting, declared_settings
from engine.techniques.base import Measurement, Technique

PLUGINS_ENVIRONMENT_VARIABLE = "FRONTIER_PLUGINS"  # what the surfaces read: comma-separated plugin modules
_TECHNIQUES: dict[str, type[Technique]] = {}
_PLUGINS: list[str] = []  # plugin modules loaded so far, in order
_builtins_loaded = False


def register_technique(name: str, cls: type[Technique] | None = None, *, force: bool = False):
    """Register `cls` under `name`; usable as a decorator. Duplicates need force=True."""

    def decorate(technique_cls: type[Technique]) -> type[Technique]:
        if not (isinstance(technique_cls, type) and issubclass(technique_cls, Technique)):
            raise TypeError(f"{technique_cls!r} is not a Technique subclass.")
        if name in _TECHNIQUES and not force:
            raise ValueError(f"Technique {name!r} is already registered; pass force=True to replace it.")
        _check_settings_agree(name, technique_cls)
        technique_cls.name = name
        _TECHNIQUES[name] = technique_cls
        return technique_cls

    _ensure_builtins()
    return decorate(cls) if cls is not None else decorate


def _check_settings_agree(name: str, technique_cls: type[Technique]) -> None:
    shared = {declared.name for declared in declared_settings(SweepSpec)}
    mine = {declared.name: declared for declared in technique_cls.settings.declared()}
    clash = sorted(shared & set(mine))
    if clash:
        raise ValueError(f"Technique {name!r} redeclares shared setting(s) {', '.join(clash)}.")
    for other_name, other in _TECHNIQUES.items():
        if other_name == name:
            continue
        for declared in other.settings.declared():
            if declared.name in mine and mine[declared.name] != declared:
                raise ValueError(f"Technique {name!r} declares setting {declared.name!r} differently from "
                                 f"{other_name!r}: share one declaration or choose another name.")


def _ensure_builtins() -> None:
    global _builtins_loaded
    if _builtins_loaded:
        return
    _builtins_loaded = True  # set first: registering the built-ins calls back into this module
    from engine.techniques.builtin import BUILTIN_TECHNIQUES

    for name, technique_cls in BUILTIN_TECHNIQUES.items():
        register_technique(name, technique_cls)


def load_plugins(modules: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """Import plugin modules (comma-separated or a list) and register their TECHNIQUES; returns all loaded."""
    _ensure_builtins()
    names = [part.strip() for part in modules.split(",")] if isinstance(modules, str) else list(modules or ())
    for module_name in names:
        if not module_name or module_name in _PLUGINS:
            continue
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigError(f"Plugin module {module_name!r} cannot be imported ({exc}): check its name and that "
                              "it is on PYTHONPATH.") from exc
        techniques = getattr(module, "TECHNIQUES", None)
        if not techniques:
            raise ConfigError(f"Plugin module {module_name!r} has no TECHNIQUES list: add "
                              "`TECHNIQUES = [YourTechnique]` to it.")
        for technique_cls in techniques:
            register_technique(technique_cls.name, technique_cls, force=True)
        _PLUGINS.append(module_name)
    return list(_PLUGINS)


def loaded_plugins() -> list[str]:
    return list(_PLUGINS)


def technique_names() -> list[str]:
    _ensure_builtins()
    return sorted(_TECHNIQUES)


def get_technique_class(name: str) -> type[Technique]:
    _ensure_builtins()
    if name not in _TECHNIQUES:
        raise ConfigError(f"Unknown technique {name!r}: choose one of {', '.join(technique_names())}.",
                          setting="techniques")
    return _TECHNIQUES[name]


def create_technique(name: str) -> Technique:
    return get_technique_class(name)()


def unregister_technique(name: str) -> None:
    """For tests and plugins that replace a technique temporarily."""
    _TECHNIQUES.pop(name, None)


def technique_settings(names: list[str] | tuple[str, ...] | None = None) -> dict[str, Setting]:
    """Every technique setting (of `names`, or of all techniques) by name, in declaration order."""
    found: dict[str, Setting] = {}
    for name in names if names is not None else technique_names():
        for declared in get_technique_class(name).settings.declared():
            found.setdefault(declared.name, declared)
    return found


def techniques_declaring(setting_name: str) -> list[str]:
    return [name for name in technique_names()
            if any(declared.name == setting_name for declared in get_technique_class(name).settings.declared())]


def all_measurements() -> dict[str, Measurement]:
    """Every measurement any technique declares, by name (equal names must agree)."""
    found: dict[str, Measurement] = {}
    for name in technique_names():
        for measurement in get_technique_class(name).measurements:
            known = found.setdefault(measurement.name, measurement)
            if known.kind is not measurement.kind:
                raise ValueError(f"Measurement {measurement.name!r} is declared with two types.")
    return found
