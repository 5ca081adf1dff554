"""The small error hierarchy the CLI turns into one-line messages and exit code 2."""

from __future__ import annotations


class VSkipError(Exception):
    """Base of every error vskip raises on purpose: the message is for the user, one line."""


class BadInput(VSkipError):
    """A dataset, record, image or option the user gave cannot be used as it is."""


class UnsupportedModel(VSkipError):
    """The checkpoint's architecture is no supported model family, or the directory is not a usable model."""


class BadRecord(BadInput):
    """One record of a dataset cannot be used. The message adds what to do (`fix`, or set the record aside with
    --skip-bad); `reason`, what is wrong, is all a record set aside needs, as --skip-bad is then in use."""

    def __init__(self, reason: str, fix: str = "fix or drop the record"):
        super().__init__(f"{reason}; {fix}, or rerun with --skip-bad")
        self.reason = reason


class VSkipWarning(UserWarning):
    """Something the user should know that does not stop the work; the CLI prints it as one line."""


def warn(message: str) -> None:
    """Warn with a `VSkipWarning` (the CLI prints `vskip: warning: MESSAGE` on stderr, from its main process)."""
    import warnings

    warnings.warn(message, VSkipWarning, stacklevel=2)
