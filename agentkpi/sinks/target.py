"""Write a set of files to a target directory: local path or any fsspec URL.

Files appear atomically (written to a temporary name, then renamed); a file
whose bytes are unchanged is left alone, so a re-run rewrites nothing and
uploads nothing. ``hf://datasets/OWNER/NAME[/prefix]`` targets are written as
**one commit per run** through huggingface_hub, not one per file.
"""

from __future__ import annotations

import os
import posixpath
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agentkpi.errors import AgentKpiError, OutputError, UsageError, os_reason

_HF = re.compile(r"^hf://(?P<kind>datasets|spaces|models)/(?P<repo>[^/]+/[^/]+)(?:/(?P<prefix>.*))?$")


@dataclass
class WriteResult:
    written: list[str]
    unchanged: list[str]


def write_files(target: str, files: Mapping[str, bytes], message: str = "agentkpi") -> WriteResult:
    """Write ``{relative_path: bytes}`` under ``target``; returns what changed."""
    if not files:
        return WriteResult([], [])
    m = _HF.match(target)
    try:
        if m:
            return _write_hf(m["kind"], m["repo"], (m["prefix"] or "").strip("/"), files,
                             message)
        if "://" not in target:
            return _write_local(target, files)
        return _write_fsspec(target, files)
    except AgentKpiError:
        raise
    except OSError as exc:
        raise OutputError(f"cannot write to target {target}: {os_reason(exc)}; pass a "
                          "writable directory (or URL) as --target") from None
    except (ValueError, ImportError) as exc:  # fsspec: unknown protocol, missing backend
        raise UsageError(f"cannot use target {target!r}: {exc}; use a directory, file://, "
                         "memory:// or hf://datasets/OWNER/NAME") from None


def _write_local(root: str, files: Mapping[str, bytes]) -> WriteResult:
    written, unchanged = [], []
    for rel, data in sorted(files.items()):
        path = os.path.join(root, *rel.split("/"))
        try:
            with open(path, "rb") as fh:
                if fh.read() == data:
                    unchanged.append(rel)
                    continue
        except OSError:
            pass
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(path))
        try:
            os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a CSV is like any file
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        written.append(rel)
    return WriteResult(written, unchanged)


def _umask() -> int:
    """The process umask, read without changing it (Linux), else by setting it back."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _write_fsspec(target: str, files: Mapping[str, bytes]) -> WriteResult:
    import fsspec  # not for local targets (~30-40 ms of a cron run's start-up)

    fs, root = fsspec.core.url_to_fs(target)
    written, unchanged = [], []
    for rel, data in sorted(files.items()):
        path = posixpath.join(root, rel)
        if fs.exists(path) and fs.cat_file(path) == data:
            unchanged.append(rel)
            continue
        parent = posixpath.dirname(path)
        fs.makedirs(parent, exist_ok=True)
        tmp = posixpath.join(parent, f".tmp-{posixpath.basename(path)}")
        fs.pipe_file(tmp, data)
        fs.mv(tmp, path)
        written.append(rel)
    return WriteResult(written, unchanged)


def _hub() -> tuple[Any, Any]:
    """The Hugging Face Hub client and filesystem (the one remote edge of this module)."""
    from huggingface_hub import HfApi, HfFileSystem

    return HfApi(), HfFileSystem()


def _write_hf(kind: str, repo: str, prefix: str, files: Mapping[str, bytes],
              message: str) -> WriteResult:
    try:
        return _commit_hf(kind, repo, prefix, files, message)
    except AgentKpiError:
        raise
    except Exception as exc:  # noqa: BLE001 - huggingface_hub / httpx raise many types
        raise OutputError(f"cannot write to hf://{kind}/{repo}: {type(exc).__name__}: "
                          f"{_first_line(exc)}; check the network, the repository name and "
                          "that HF_TOKEN has write access") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _commit_hf(kind: str, repo: str, prefix: str, files: Mapping[str, bytes],
               message: str) -> WriteResult:
    from huggingface_hub import CommitOperationAdd

    repo_type = {"datasets": "dataset", "spaces": "space", "models": "model"}[kind]
    api, fs = _hub()
    written, unchanged, ops = [], [], []
    for rel, data in sorted(files.items()):
        path_in_repo = f"{prefix}/{rel}" if prefix else rel
        try:
            if fs.cat_file(f"{kind}/{repo}/{path_in_repo}") == data:
                unchanged.append(rel)
                continue
        except (FileNotFoundError, OSError):
            pass
        ops.append(CommitOperationAdd(path_in_repo=path_in_repo, path_or_fileobj=data))
        written.append(rel)
    if ops:
        api.create_repo(repo_id=repo, repo_type=repo_type, exist_ok=True)
        api.create_commit(repo_id=repo, repo_type=repo_type, operations=ops,
                          commit_message=message)
    return WriteResult(written, unchanged)
