"""Secrets: a value that never shows in a log line, and the file it is read from.

Passwords and tokens come from files (Kubernetes secrets, Docker secrets) rather than
environment variables where possible; errors name the variable and the path, never the content.
"""

from __future__ import annotations

from pathlib import Path

from cxstream.config.errors import SettingsError


class Secret:
    """A value that never shows in a repr, str or log line; ``reveal()`` gives it to a client."""

    __slots__ = ("_value",)

    def __init__(self, value: str = "") -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    __str__ = __repr__


def read_secret(variable: str, path: str) -> str:
    """The file's text without one trailing newline; errors name the variable, never the content."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise SettingsError(f"{variable}={path} cannot be read ({reason}): check the path and that "
                            "this user may read it") from None
    text = text[:-1] if text.endswith("\n") else text
    text = text[:-1] if text.endswith("\r") else text
    if not text.strip():
        raise SettingsError(f"{variable}={path} is empty")
    return text
