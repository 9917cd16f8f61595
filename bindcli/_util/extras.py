"""bind's optional extras, in one table: each knows its pip spec, the packages it brings (by
import name) and what a missing one stops, so every "install this" message is made here.

Nothing here imports the packages: `missing` asks the import system whether they are there,
and the module that uses a package imports it where it needs it.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Sequence


@dataclasses.dataclass(frozen=True)
class Extra:
    """One `bindcli[name]` extra."""

    name: str
    #: the packages it installs, by import name, in the order their absence is reported
    modules: tuple[str, ...]
    #: what its absence stops, as the start of a message; `{missing}` stands for the names
    needed_by: str

    @property
    def install(self) -> str:
        """The command that installs it."""
        return f"pip install 'bindcli[{self.name}]'"

    def missing(self) -> list[str]:
        """Its packages that cannot be imported here."""
        return [m for m in self.modules if importlib.util.find_spec(m) is None]

    def hint(self, missing: Sequence[str] = (), needed_by: str | None = None) -> str:
        """The message for a missing package: what it stops (`needed_by`, else the extra's
        own words), then the install to run."""
        stops = (needed_by or self.needed_by).format(missing=" and ".join(missing))
        return f"{stops}: {self.install}"


PLOT = Extra("plot", ("matplotlib",), "a PNG confusion matrix needs matplotlib")
GENERATE = Extra("generate", ("diffusers", "transformers"), "bind generate needs {missing}")
INDEX = Extra("index", ("faiss",), "approximate search needs the vector index library")
RAY = Extra("ray", ("ray",), "--engine ray needs Ray")
EVAL = Extra("eval", ("h5py", "scipy"), "the nyu-d and sun-d presets read MATLAB files with h5py and scipy")
SERVE = Extra(
    "serve", ("python_multipart", "starlette", "uvicorn"),
    "bind serve needs the server extra ({missing} is missing)",
)

#: every extra, as `bind doctor` lists them
ALL = (SERVE, GENERATE, INDEX, RAY, PLOT, EVAL)
