"""Errors that are the user's to fix: a bad config value, missing data, a checkpoint that does not fit.

Entry points print them as one message (field, value, fix) without a traceback and exit with status 2; any other
exception is a bug and keeps its traceback. Both types also derive from the built-in exception a caller would
expect (`ValueError`, `FileNotFoundError`), so library code can catch them as such.

This module imports nothing, so every layer of the package (the framework-free `align` core included) can use it.
"""


class UserError(Exception):
    """Base of the errors caused by the user's input rather than by a bug."""


class ConfigError(UserError, ValueError):
    """A config value, or a combination of values, that cannot work."""


class MissingInputError(UserError, FileNotFoundError):
    """A file or directory the config points to does not exist or is not what it should be."""


def check_choice(field: str, value: object, choices: tuple, fix: str = "") -> None:
    """Raise `ConfigError` (`<field>=<value>; choose one of <choices>`) unless `value` is one of `choices`."""
    if value not in choices:
        raise ConfigError(f"{field}={value!r}; choose one of {choices}{fix}")
