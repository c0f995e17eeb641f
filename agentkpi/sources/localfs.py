"""A source's filesystem, with local folders served without importing fsspec.

An hourly cron run of a local source only asks whether folders exist and what they hold
(the importers list with ``os.scandir`` and read with ``open``), so importing fsspec
(~30-40 ms with the asyncio it imports, BENCHMARKS.md §20) would be most of what it
costs. :class:`LocalFiles` answers those questions itself, exactly as fsspec's
``LocalFileSystem`` does, and hands every other call to one (imported then).
"""

from __future__ import annotations

import os
from typing import Any

#: fsspec's names for the local filesystem, as its ``protocol`` attribute gives them.
PROTOCOLS = ("file", "local")


def is_local(fs: Any) -> bool:
    """Whether ``fs`` (fsspec's or :class:`LocalFiles`) is the local filesystem, whose files
    the importers list with ``os.scandir`` and read with ``open``."""
    protocol = getattr(fs, "protocol", None)
    protocols = (protocol,) if isinstance(protocol, str) else tuple(protocol or ())
    return any(p in PROTOCOLS for p in protocols)


def local_path(url: str) -> str | None:
    """fsspec's path for ``url`` when it names a local path (or a ``file://`` URL) that
    :class:`LocalFiles` serves, else None (on POSIX systems: fsspec's Windows paths, with
    drives, are its own to spell)."""
    if os.sep == "/" and "::" not in url and ("://" not in url or url.startswith("file://")):
        return LocalFiles.strip(url)
    return None


def open_fs(url: str) -> tuple[Any, str]:
    """``(filesystem, path)`` for ``url``, as ``fsspec.core.url_to_fs`` gives them; a
    local path gets a :class:`LocalFiles` and fsspec's path for it (:func:`local_path`)."""
    path = local_path(url)
    if path is not None:
        return LocalFiles(), path
    import fsspec

    return fsspec.core.url_to_fs(url)


class LocalFiles:
    """Local files through fsspec's interface: ``exists``, ``isdir``, ``isfile`` and
    ``ls(path)`` without fsspec; everything else from ``fsspec.filesystem("file")``."""

    protocol = PROTOCOLS

    def __init__(self) -> None:
        self._fs: Any = None

    @property
    def fsspec(self) -> Any:
        """fsspec's ``LocalFileSystem`` (imported on first use)."""
        if self._fs is None:
            import fsspec

            self._fs = fsspec.filesystem("file")
        return self._fs

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_fs":
            raise AttributeError(name)
        return getattr(self.fsspec, name)

    @staticmethod
    def strip(path: str) -> str:
        """fsspec's local path for ``path``: no protocol, absolute, no trailing slash."""
        for prefix in ("file://", "file:", "local://", "local:"):
            if path.startswith(prefix):
                path = path.removeprefix(prefix)
                break
        if path.startswith("~"):
            path = os.path.expanduser(path)
        elif not path.startswith("/"):
            path = f"{os.getcwd()}/{'' if path == '.' else path.removeprefix('./')}"
        return path.rstrip("/") or "/"

    def exists(self, path: str, **kwargs: Any) -> bool:
        return os.path.exists(self.strip(path))

    def isdir(self, path: str) -> bool:
        return os.path.isdir(self.strip(path))

    def isfile(self, path: str) -> bool:
        return os.path.isfile(self.strip(path))

    def ls(self, path: str, detail: bool = False, **kwargs: Any) -> list[Any]:
        if detail or kwargs:
            return list(self.fsspec.ls(path, detail=detail, **kwargs))
        path = self.strip(path)
        if not os.path.isdir(path):
            if not os.path.exists(path):
                raise FileNotFoundError(path)
            return [path]
        with os.scandir(path) as entries:
            return [self.strip(e.path) for e in entries]
