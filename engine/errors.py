"""Error hierarchy. Every message says what was wrong and how to fix it (like opacus/validators/errors.py).

Pages catch EngineError and show it; the CLI prints it on one line and exits non-zero.
"""


class EngineError(Exception):
    """Base of every error the engine raises on purpose."""


class ConfigError(EngineError, ValueError):
    """A sweep or run configuration is invalid (epsilon <= 0, unknown technique, delta >= 1/n, ...)."""


class DataError(EngineError, ValueError):
    """A dataset cannot be loaded or prepared (missing file, label column absent, one class, ...)."""


class UnsupportedError(EngineError):
    """A valid request that this technique or model cannot serve (e.g. a CNN on a table)."""


class MissingExtraError(EngineError, ImportError):
    """An optional dependency is not installed; the message names the install command."""
