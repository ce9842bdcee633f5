"""Errors a person can act on. Anything that is a NixDeckError is shown as its message, never a traceback."""

from __future__ import annotations


class NixDeckError(Exception):
    """Base of every error NixDeck reports to the user as plain text."""
