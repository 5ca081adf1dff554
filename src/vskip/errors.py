"""The small error hierarchy the CLI turns into one-line messages and exit code 2."""

from __future__ import annotations


class VSkipError(Exception):
    """Base of every error vskip raises on purpose: the message is for the user, one line."""


class BadInput(VSkipError):
    """A dataset, record, image or option the user gave cannot be used as it is."""


class UnsupportedModel(VSkipError):
    """The checkpoint's architecture is no supported model family, or the directory is not a usable model."""
