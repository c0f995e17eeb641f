"""``agentkpi.sources.localfs``: local folders answered without fsspec, exactly as
fsspec's ``LocalFileSystem`` answers them (compared on real files, links included)."""

from __future__ import annotations

import os
from pathlib import Path

import fsspec
import pytest

from agentkpi.sources.localfs import LocalFiles, open_fs


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "a.jsonl").write_text("{}\n")
    (tmp_path / "d" / "sub" / "b.jsonl").write_text("{}\n")
    os.symlink(tmp_path / "d", tmp_path / "link-to-dir")
    os.symlink(tmp_path / "gone", tmp_path / "broken-link")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "d"))
    return tmp_path


NAMES = ["d", "d/", "./d", ".", "d/a.jsonl", "d/sub", "missing", "link-to-dir",
         "broken-link", "~", "~/sub", "file://{root}/d", "file:{root}/d", "local://{root}/d",
         "{root}/d/", "{root}/d/a.jsonl", "/"]


def _answer(call: object) -> object:
    try:
        return call()  # type: ignore[operator]
    except Exception as exc:  # noqa: BLE001 - the exception's type is the answer compared
        return type(exc)


@pytest.mark.parametrize("name", NAMES)
def test_local_files_answer_as_fsspec_does(tree: Path, name: str) -> None:
    path = name.format(root=tree)
    ours, theirs = LocalFiles(), fsspec.filesystem("file")
    assert ours.strip(path) == theirs._strip_protocol(path)
    for method in ("exists", "isdir", "isfile"):
        assert getattr(ours, method)(path) == getattr(theirs, method)(path), method
    if name != "/":  # the root's listing: same call, too large to compare usefully
        assert _answer(lambda: sorted(ours.ls(path))) == \
            _answer(lambda: sorted(theirs.ls(path, detail=False)))


@pytest.mark.parametrize("name", ["d", "./d", "{root}/d", "file://{root}/d", "~/sub"])
def test_open_fs_gives_fsspecs_path_for_a_local_source(tree: Path, name: str) -> None:
    url = name.format(root=tree)
    fs, root = open_fs(url)
    assert isinstance(fs, LocalFiles)
    assert root == fsspec.core.url_to_fs(url)[1]


def test_other_calls_and_other_filesystems_go_to_fsspec(tree: Path) -> None:
    ours = LocalFiles()
    path = str(tree / "d" / "a.jsonl")
    assert ours.info(path) == fsspec.filesystem("file").info(path)  # handed over
    assert sorted(ours.find(str(tree / "d"))) == [path, str(tree / "d" / "sub" / "b.jsonl")]
    assert sorted(ours.ls(str(tree / "d"), detail=True), key=lambda i: i["name"]) == sorted(
        fsspec.filesystem("file").ls(str(tree / "d"), detail=True), key=lambda i: i["name"])
    fs, root = open_fs("memory://x/y")
    assert not isinstance(fs, LocalFiles) and "memory" in fs.protocol and root == "/x/y"
