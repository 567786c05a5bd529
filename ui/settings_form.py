"""A form generated from declared settings (engine.settings): one widget per setting, values parsed strictly.

Widgets follow the declaration: a list setting is a comma-separated text box, a setting with choices a select
box, a bool a checkbox, a number a number box (empty = the technique's default for optional ones). Values are
parsed by the declaration itself, so the form accepts exactly what the CLI and YAML accept.
"""

from __future__ import annotations

from typing import Any, Iterable

import streamlit as st

from engine.errors import EngineError
from engine.settings import Setting

DEFAULT_LABEL = "default"


def _default_text(declared: Setting) -> str:
    if declared.default is None:
        return ""
    return ", ".join(map(str, declared.default)) if declared.many else str(declared.default)


def setting_widget(declared: Setting, key: str, column=None, *, label: str | None = None, disabled: bool = False) -> Any:
    """The raw widget value for `declared` (parse it with `declared.parse` / `parse_text`)."""
    where = column or st
    label = label or declared.form_label
    help_text = declared.help or None
    if declared.many or declared.text_entry or (declared.kind is str and not declared.choices):
        return where.text_input(label, _default_text(declared), key=key, help=help_text, disabled=disabled,
                                placeholder=DEFAULT_LABEL if declared.optional else None)
    if declared.choices:
        options = [None, *declared.choices] if declared.optional else list(declared.choices)
        index = options.index(declared.default) if declared.default in options else 0
        names = dict(zip(declared.choices, declared.choice_labels or declared.choices))
        return where.selectbox(label, options, index=index, key=key, help=help_text, disabled=disabled,
                               format_func=lambda value: DEFAULT_LABEL if value is None else str(names[value]))
    if declared.kind is bool:
        return where.checkbox(label, value=bool(declared.default), key=key, help=help_text, disabled=disabled)
    bounds = {}
    if declared.minimum is not None:
        bounds["min_value"] = declared.kind(declared.minimum)
    if declared.maximum is not None:
        bounds["max_value"] = declared.kind(declared.maximum)
    if declared.kind is float:
        return where.number_input(label, value=declared.default, key=key, help=help_text, disabled=disabled,
                                  format="%g", step=None, placeholder=DEFAULT_LABEL, **bounds)
    return where.number_input(label, value=declared.default, step=1, key=key, help=help_text, disabled=disabled,
                              placeholder=DEFAULT_LABEL, **bounds)


def read_setting(declared: Setting, raw: Any, errors: list[str]) -> Any:
    """The widget's value parsed by its declaration; None (and an error in `errors`) when it is refused."""
    try:
        if isinstance(raw, str):
            return declared.parse_text(raw) if raw.strip() or not declared.optional else None
        return declared.parse(raw)
    except EngineError as exc:
        errors.append(exc.describe(lambda name: declared.form_label if name == declared.name else name))
        return None


def settings_form(settings: Iterable[Setting], key_prefix: str, errors: list[str], *, columns: int = 4,
                  disabled: Iterable[str] = ()) -> dict[str, Any]:
    """Widgets for `settings` in rows of `columns`; returns {name: parsed value} (None: not set / refused)."""
    settings = list(settings)
    off = set(disabled)
    values: dict[str, Any] = {}
    for start in range(0, len(settings), columns):
        row = st.columns(columns)
        for declared, column in zip(settings[start:start + columns], row):
            raw = setting_widget(declared, f"{key_prefix}_{declared.name}", column, disabled=declared.name in off)
            values[declared.name] = None if declared.name in off else read_setting(declared, raw, errors)
    return values
