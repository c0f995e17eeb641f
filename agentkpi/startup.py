"""What the ``agentkpi`` program settles before it imports its libraries.

The cron commands (``rollup``, ``ingest``) start once an hour or more, and their
start-up is a large part of an hourly run (BENCHMARKS.md §20). Two packages they never
use would be imported on the way: pandas, which pyarrow imports the first time it
converts a Python list (only to ask whether the list is a pandas object), and numpy,
which pyarrow imports with itself when it is installed (~0.06-0.09 s here). pyarrow and
DuckDB work without either, so those commands keep both out: an import of them fails as
if they were not installed. Every other command (plots need numpy) and every library
caller, who may want pandas or numpy in the same process, imports as usual.

This module imports nothing heavy: :func:`main` (the ``agentkpi`` program) runs
:func:`prepare` before it imports :mod:`agentkpi.cli`.
"""

from __future__ import annotations

import importlib.abc
import sys
from typing import Any

#: Commands whose process keeps numpy and pandas out (see the module's docstring).
LEAN_COMMANDS = frozenset({"ingest", "rollup"})


def main() -> None:
    """The ``agentkpi`` program (console script and ``python -m agentkpi``)."""
    prepare(sys.argv)
    from agentkpi.cli import run

    run()


def prepare(argv: list[str]) -> None:
    """Keep numpy and pandas out of this process when ``argv`` runs a lean command, and
    start reading the newest day folder of its local ``--source`` meanwhile (the listing
    of an hourly run reads it whole: :mod:`agentkpi.sources.dayfolders`)."""
    if len(argv) > 1 and argv[1] in LEAN_COMMANDS:
        keep_out("numpy", "pandas")
        source = source_arg(argv)
        if source and not {"--rescan", "--help"} & set(argv):
            from agentkpi.sources import dayfolders
            from agentkpi.sources.localfs import local_path

            root = local_path(source)  # the path the listing will name it by
            if root is not None:
                dayfolders.prefetch(root)


def source_arg(argv: list[str]) -> str | None:
    """The value of ``--source`` in ``argv`` (``--source X`` or ``--source=X``; the last
    one, as the command line parser takes it), or None."""
    found = None
    for i, arg in enumerate(argv):
        if arg == "--source" and i + 1 < len(argv):
            found = argv[i + 1]
        elif arg.startswith("--source="):
            found = arg.partition("=")[2]
    return found


def keep_out(*packages: str) -> None:
    """Make every later import of ``packages`` fail as if they were not installed.

    A package already imported stays (its importers have it); one that is not is kept
    out for the rest of the process, worker processes forked from it included. Not for
    library callers, who may want these packages in the same process.
    """
    names = frozenset(p for p in packages if p not in sys.modules)
    if names and not any(isinstance(f, _KeptOut) and names <= f.names for f in sys.meta_path):
        sys.meta_path.insert(0, _KeptOut(names))


class _KeptOut(importlib.abc.MetaPathFinder):
    """An import finder that answers "not installed" for some packages (:func:`keep_out`)."""

    def __init__(self, names: frozenset[str]) -> None:
        self.names = names

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name.partition(".")[0] in self.names:
            raise ModuleNotFoundError(f"{name} is kept out of this agentkpi process "
                                      "(agentkpi.startup)", name=name)
        return None
