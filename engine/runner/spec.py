"""Reading a sweep spec: the one strict path from a YAML file, CLI flags or a dashboard form to a SweepSpec.

Every value is parsed by its declaration (shared settings in engine.config, technique settings on each
technique), so wrong types are errors rather than coercions; an unknown key is an error; a technique
setting that none of the chosen techniques declares is an error that names it.
"""

from __future__ import annotations

from typing import Any, Mapping

from engine.config import SweepSpec
from engine.errors import ConfigError
from engine.settings import Setting, declared_settings
from engine.techniques.registry import get_technique_class, technique_settings, techniques_declaring


def shared_settings() -> tuple[Setting, ...]:
    return declared_settings(SweepSpec)


def all_settings() -> dict[str, Setting]:
    """Shared settings, then every registered technique's, by name: what the CLI and YAML accept."""
    return {**{declared.name: declared for declared in shared_settings()}, **technique_settings()}


def spec_from_mapping(values: Mapping[str, Any]) -> SweepSpec:
    """A validated SweepSpec from plain values (YAML, flags, a form). None means "not given": the default."""
    if not isinstance(values, Mapping):
        raise ConfigError("A sweep spec is a mapping of settings (dataset: adult, techniques: [dp-sgd], ...).")
    known = all_settings()
    unknown = sorted(str(name) for name in values if name not in known)
    if unknown:  # quoted (repr): a key is user text and may hold anything, a line break included
        raise ConfigError(f"Unknown sweep setting(s) {', '.join(map(repr, unknown))}: known settings are "
                          f"{', '.join(sorted(known))}.")
    given = {name: value for name, value in values.items() if value is not None}
    shared = {declared.name: declared.parse(given[declared.name]) for declared in shared_settings()
              if declared.name in given}
    techniques = shared.get("techniques", SweepSpec.techniques)
    for name in techniques:
        get_technique_class(name)  # ConfigError naming the choices
    applicable = technique_settings(list(techniques))
    options = {}
    for name, value in given.items():
        if name in shared:
            continue
        if name not in applicable:
            users = ", ".join(techniques_declaring(name))
            raise ConfigError(f"{{{name}}} does not apply to {', '.join(techniques)}: it is a setting of {users}. "
                              "Drop it or add one of those techniques.", setting=name)
        options[name] = applicable[name].parse(value)
    spec = SweepSpec(**shared, options=tuple(sorted(options.items())))
    spec.validate()
    for name in dict.fromkeys(techniques):
        technique_options(spec, name).check()  # checks across one technique's settings
    return spec


def technique_options(spec: SweepSpec, technique: str):
    """The technique's settings object for `spec`: the spec's options where given, defaults elsewhere."""
    settings_class = get_technique_class(technique).settings
    return settings_class.from_values(dict(spec.options))
