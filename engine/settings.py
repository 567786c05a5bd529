"""Settings declared once, read strictly everywhere.

A setting is a field of a frozen dataclass (the shared SweepSpec, or a technique's own settings class) made
with `setting(...)`: its name, type (from the annotation), default, allowed values or range, help text, CLI
flag, form label and, for sweep axes, the run field each value becomes. The CLI options, the YAML keys, the
dashboard form and the store's columns are all generated from these declarations (engine.cli,
ui/settings_form.py, engine.runner.records), and every value that enters the engine passes `Setting.parse`:
wrong types are errors, never coercions ("no" is not false, true is not 1, 2.7 is not 2).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import types
import typing
from dataclasses import dataclass
from typing import Any, Iterable

from engine.errors import ConfigError

SCALAR_KINDS = (bool, int, float, str)


@dataclass(frozen=True)
class Setting:
    """One declared setting. `kind` is the type of one value; `many` settings hold a tuple of them."""

    name: str  # the YAML key, the record field and (dashes for underscores) the default CLI flag
    kind: type
    default: Any = None
    optional: bool = False  # None is allowed: "the technique's default" (the help says what that is)
    many: bool = False  # a list of values (comma-separated on the command line)
    help: str = ""
    label: str = ""  # the dashboard's name for it
    flag: str = ""  # the CLI's name for it, without the dashes
    choices: tuple = ()
    choice_labels: tuple = ()  # how a form names each choice, in order (default: the choice itself)
    minimum: float | None = None  # inclusive bounds
    maximum: float | None = None
    above: float | None = None  # exclusive bounds (epsilon > 0, delta < 1)
    below: float | None = None
    axis: str | None = None  # a sweep axis: runs expand over the values, each becoming this RunConfig field
    group: str = ""  # the form section it is shown in
    example: str = ""  # a value to suggest in error messages
    text_entry: bool = False  # a form shows a text box even for a number (delta: 1e-5 is easier typed than stepped)

    @property
    def cli_flag(self) -> str:
        return "--" + (self.flag or self.name.replace("_", "-"))

    @property
    def form_label(self) -> str:
        return self.label or self.name.replace("_", " ").capitalize()

    # --- reading values ---------------------------------------------------------------------------------
    def parse(self, value: Any) -> Any:
        """The value as this setting's type, checked; ConfigError naming the setting otherwise."""
        if value is None:
            if self.optional:
                return None
            raise self.error(f"{{{self.name}}} needs a value{self._hint()}.")
        if self.many:
            items = list(value) if isinstance(value, (list, tuple)) else [value]
            if not items:
                raise self.error(f"{{{self.name}}} is empty: give at least one value{self._hint()}.")
            return tuple(dict.fromkeys(self._parse_one(item) for item in items))  # de-duplicated, order kept
        return self._parse_one(value)

    def parse_text(self, text: str) -> Any:
        """A value typed on the command line or in a text box: comma-separated for `many` settings."""
        text = text.strip()
        if self.many:
            parts = [part.strip() for part in text.split(",")]
            if not any(parts):
                raise self.error(f"{{{self.name}}} is empty: give comma-separated values{self._hint()}.")
            if not all(parts):  # "1,,2" or "1,": a value was lost between commas, never silently dropped
                raise self.error(f"{{{self.name}}} has an empty value between commas in {text!r}{self._hint()}.")
            return self.parse([self._from_text(part) for part in parts])
        return self.parse(self._from_text(text))

    def _from_text(self, text: str) -> Any:
        if self.kind is str:
            return text
        if self.kind is bool:
            lowered = text.lower()
            if lowered in ("true", "false"):
                return lowered == "true"
            raise self.error(f"{{{self.name}}} must be true or false, got {text!r}.")
        try:
            return self.kind(text)
        except ValueError:
            what = "whole numbers" if self.kind is int else "numbers"
            raise self.error(f"{{{self.name}}} must be {'comma-separated ' if self.many else ''}{what}, "
                             f"got {text!r}{self._hint()}.") from None

    def _parse_one(self, value: Any) -> Any:
        kind = self.kind
        if kind is bool:
            if not isinstance(value, bool):
                raise self.error(f"{{{self.name}}} must be true or false, got {value!r}"
                                 + (" (a quoted string: write true or false without quotes)" if isinstance(value, str) else "")
                                 + ".")
            parsed = value
        elif kind is int:
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise self.error(f"{{{self.name}}} must be a whole number, got {value!r}{self._hint()}.")
            if isinstance(value, numbers.Integral):
                parsed = int(value)
            elif math.isfinite(float(value)) and float(value).is_integer():
                parsed = int(value)  # 3.0 loses nothing; 2.7 would
            else:
                raise self.error(f"{{{self.name}}} must be a whole number, got {value!r}{self._hint()}.")
        elif kind is float:
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise self.error(f"{{{self.name}}} must be a number, got {value!r}{self._hint()}.")
            parsed = float(value)
            if not math.isfinite(parsed):
                raise self.error(f"{{{self.name}}} must be a finite number, got {value!r}{self._hint()}.")
        elif kind is str:
            if not isinstance(value, str):
                raise self.error(f"{{{self.name}}} must be text, got {value!r}{self._hint()}.")
            parsed = value.strip()
            if not parsed:
                raise self.error(f"{{{self.name}}} must not be empty{self._hint()}.")
        else:  # pragma: no cover - declarations are checked when their class is made
            raise TypeError(f"Setting {self.name} has unsupported kind {kind!r}.")
        self._check_range(parsed)
        return parsed

    def _check_range(self, value: Any) -> None:
        if self.choices and value not in self.choices:
            raise self.error(f"Unknown {{{self.name}}} {value!r}: choose one of {', '.join(map(str, self.choices))}.")
        if self.kind not in (int, float):
            return
        bounds = [(">=", self.minimum, value >= (self.minimum or 0)), ("<=", self.maximum, value <= (self.maximum or 0)),
                  (">", self.above, value > (self.above or 0)), ("<", self.below, value < (self.below or 0))]
        present = [(operator, bound, holds) for operator, bound, holds in bounds if bound is not None]
        if not all(holds for _, _, holds in present):
            allowed = " and ".join(f"{operator} {bound:g}" for operator, bound, _ in present)
            raise self.error(f"{{{self.name}}} must be {allowed}, got {value!r}{self._hint()}.")

    def _hint(self) -> str:
        return f" (e.g. {self.example})" if self.example else ""

    def error(self, message: str) -> ConfigError:
        return ConfigError(message, setting=self.name)


def setting(default: Any = None, **declaration: Any) -> Any:
    """A dataclass field declaring a setting: `epochs: int = setting(10, minimum=1, help="...")`."""
    metadata = {"setting": declaration}
    if isinstance(default, (list, dict, set)):
        raise TypeError("Setting defaults must be immutable: use a tuple.")
    return dataclasses.field(default=default, metadata=metadata)


def declared_settings(cls: type) -> tuple[Setting, ...]:
    """The Settings of a dataclass's `setting(...)` fields, with kinds read from its annotations."""
    cached = cls.__dict__.get("_declared_settings")
    if cached is not None:
        return cached
    hints = typing.get_type_hints(cls)
    found = []
    for field in dataclasses.fields(cls):
        if "setting" not in field.metadata:
            continue
        kind, optional, many = _kind_of(hints[field.name], f"{cls.__name__}.{field.name}")
        declared = Setting(name=field.name, kind=kind, default=field.default, optional=optional, many=many,
                           **field.metadata["setting"])
        if declared.default is not None:
            declared.parse(declared.default)  # a default that its own checks refuse is a programming error
        found.append(declared)
    result = tuple(found)
    setattr(cls, "_declared_settings", result)
    return result


def _kind_of(hint: Any, where: str) -> tuple[type, bool, bool]:
    """int -> (int, False, False); float | None -> (float, True, False); tuple[str, ...] | None -> (str, True, True)."""
    optional = False
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        arguments = [argument for argument in typing.get_args(hint) if argument is not type(None)]
        optional = len(arguments) < len(typing.get_args(hint))
        if len(arguments) != 1:
            raise TypeError(f"{where}: a setting has one type (optionally | None), got {hint!r}.")
        hint = arguments[0]
    many = typing.get_origin(hint) is tuple
    if many:
        arguments = typing.get_args(hint)
        if len(arguments) != 2 or arguments[1] is not Ellipsis:
            raise TypeError(f"{where}: a list setting is tuple[kind, ...], got {hint!r}.")
        hint = arguments[0]
    if hint not in SCALAR_KINDS:
        raise TypeError(f"{where}: settings are bool, int, float or str (or tuples of them), got {hint!r}.")
    return hint, optional, many


def parse_values(settings: Iterable[Setting], values: dict[str, Any]) -> dict[str, Any]:
    """Each given value parsed by its declaration (keys without a declaration are left to the caller)."""
    by_name = {declared.name: declared for declared in settings}
    return {name: by_name[name].parse(value) if name in by_name else value for name, value in values.items()}
