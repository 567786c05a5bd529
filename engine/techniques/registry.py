"""Technique registry, shaped like Opacus' accountant registry: a private dict and a decorator."""

from __future__ import annotations


from engine.errors import ConfigError
from engine.techniques.base import Technique

_TECHNIQUES: dict[str, type[Technique]] = {}


def register_technique(name: str, cls: type[Technique] | None = None, *, force: bool = False):
    """Register `cls` under `name`; usable as `@register_technique("dp-sgd")`. Duplicates need force=True."""

    def decorate(technique_cls: type[Technique]) -> type[Technique]:
        if not (isinstance(technique_cls, type) and issubclass(technique_cls, Technique)):
            raise TypeError(f"{technique_cls!r} is not a Technique subclass.")
        if name in _TECHNIQUES and not force:
            raise ValueError(f"Technique {name!r} is already registered; pass force=True to replace it.")
        technique_cls.name = name
        _TECHNIQUES[name] = technique_cls
        return technique_cls

    return decorate(cls) if cls is not None else decorate


def technique_names() -> list[str]:
    return sorted(_TECHNIQUES)


def get_technique_class(name: str) -> type[Technique]:
    if name not in _TECHNIQUES:
        raise ConfigError(f"Unknown technique {name!r}: choose one of {', '.join(technique_names())}.")
    return _TECHNIQUES[name]


def create_technique(name: str) -> Technique:
    return get_technique_class(name)()


def unregister_technique(name: str) -> None:
    """For tests and plugins that replace a technique temporarily."""
    _TECHNIQUES.pop(name, None)


