"""Typed errors: the CLI turns each into one stderr line and an exit code, in one place."""

from __future__ import annotations

from pathlib import Path


class BindError(Exception):
    """Base of every error bind expects and reports without a traceback."""


class InputError(BindError):
    """One input could not be used; names the input so a batch run can go on and report it."""

    def __init__(self, source: str | Path, reason: str) -> None:
        self.source = str(source)
        self.reason = reason
        super().__init__(f"{self.source}: {reason}")


class UnknownModalityError(InputError):
    """The file's extension maps to no modality and no override was given."""


class CheckpointError(BindError):
    """A checkpoint that does not fit the model config, or is not a checkpoint at all."""


class WeightsError(BindError):
    """Weights could not be found, downloaded or verified."""


class ConfigError(BindError):
    """A model config that is unknown or malformed."""
