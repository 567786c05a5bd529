"""Error hierarchy. Every message says what was wrong and how to fix it (like opacus/validators/errors.py).

Messages speak of settings, not of one surface's spelling of them: a message may name settings as
`{epochs}` placeholders, and each surface renders them its own way (`--epochs` on the command line, the
form label on the dashboard) with `describe(namer)`; `str()` renders them as their YAML keys. Pages catch
EngineError and show it; the CLI prints it on one line and exits non-zero.
"""

from __future__ import annotations

import re
from typing import Callable, Iterable


class EngineError(Exception):
    """Base of every error the engine raises on purpose."""

    def __init__(self, message: str = "", *, setting: str | None = None, mentions: Iterable[str] = ()):
        super().__init__(message)
        self.message = message
        self.setting = setting  # the setting the error is about, if one
        # Placeholders are replaced only for these names, so braces in a user's text are left alone.
        self.mentions = frozenset([*([setting] if setting else []), *mentions])

    def describe(self, namer: Callable[[str], str] | None = None) -> str:
        """The message with each `{setting}` placeholder named by `namer` (default: the setting's own name)."""
        def name(match: re.Match) -> str:
            return (namer or str)(match[1]) if match[1] in self.mentions else match[0]

        return re.sub(r"\{([a-z_]+)\}", name, self.message)

    def __str__(self) -> str:
        return self.describe()


class ConfigError(EngineError, ValueError):
    """A sweep or run configuration is invalid (epsilon <= 0, unknown technique, delta >= 1/n, ...)."""


class DataError(EngineError, ValueError):
    """A dataset cannot be loaded or prepared (missing file, label column absent, one class, ...)."""


class UnsupportedError(EngineError):
    """A valid request that this technique or model cannot serve (e.g. a CNN on a table)."""


class MissingExtraError(EngineError, ImportError):
    """An optional dependency is not installed; the message names the install command."""


class StoreError(EngineError):
    """The result store cannot be opened, read or written (not SQLite, read-only, newer schema, disk full)."""
