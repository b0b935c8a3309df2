"""The one error every configuration problem raises: the CLI prints it as one line and exits 2."""

from __future__ import annotations


class SettingsError(ValueError):
    """A setting has a value cxstream cannot use; the message names the variable and the fix."""
