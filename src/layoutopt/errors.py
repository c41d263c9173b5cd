"""Errors a user can act on. Each message is one line: what is wrong and what to do."""
from __future__ import annotations


class LayoutoptError(Exception):
    """Base class of every error layoutopt raises on purpose."""


class InputError(LayoutoptError):
    """A file, argument or model that layoutopt cannot read."""


class ExportError(LayoutoptError):
    """``torch.export`` could not capture the module."""


class UnsupportedError(LayoutoptError):
    """A graph layoutopt cannot plan safely (dynamic shapes, for instance)."""


class TargetError(LayoutoptError):
    """An unknown target name."""


class InternalError(LayoutoptError):
    """A plan that failed its own checks; never returned to the user as a result."""
