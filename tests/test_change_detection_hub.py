"""Finding change in an ``hf://`` session dataset without listing its history.

The Hub is the one edge nobody here can reach (no network), so these tests read from
``HubStandIn``, a named stand-in for ``HfFileSystem``: files in memory, listed the way the
real one lists a dataset's tree — every entry made by huggingface_hub's own converter from
its ``RepoFolder``/``RepoFile`` objects, with git's content addressing (a file's blob id
hashes its bytes, a folder's tree id hashes its entries' names and ids). Everything else
(ingest, the store, its scan record) is the real thing, on both engines.
"""

from __future__ import annotations

import hashlib
import posixpath
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import fsspec
import pytest
from fsspec.spec import AbstractFileSystem
from huggingface_hub.hf_api import RepoFile, RepoFolder
from huggingface_hub.hf_file_system import _cache_info_from_path_info

from agentkpi.errors import SourceError
from agentkpi.ingestion import ingest
from agentkpi.sources import session_dataset
from agentkpi.sources.dayfolders import DAY_DIR
from agentkpi.store import DuckDBStore
from agentkpi.store.base import Store

from .conftest import ev, write_session
from .test_change_detection import _grow, _history
from .test_change_detection_engines import _calls

REPO = "datasets/acme/agent-sessions"
URL = f"hfstandin://{REPO}"


class HubStandIn(AbstractFileSystem):
    """Stand-in for the remote Hugging Face Hub's ``HfFileSystem`` (see the module's doc)."""

    protocol = "hfstandin"
    root_marker = ""
    files: ClassVar[dict[str, bytes]] = {}
    listed: ClassVar[list[str]] = []  #: every path ``ls`` was asked for, in order
    tree_ids: ClassVar[bool] = True  #: False: folders without one (like a Hub bucket's)
    down: ClassVar[set[str]] = set()  #: paths whose listing fails (the Hub answering 503)
    removed: ClassVar[set[str]] = set()  #: folders gone when listed (their parent lists them)
    flaky: ClassVar[dict[str, int]] = {}  #: path -> how many of its next reads fail
    latency: ClassVar[float] = 0.0  #: seconds each read waits (a request's round trip)
    reading: ClassVar[list[int]] = [0, 0]  #: reads in progress now, most at once

    @classmethod
    def _strip_protocol(cls, path: Any) -> str:
        path = str(path)
        if path.startswith("hfstandin://"):
            path = path[len("hfstandin://"):]
        return path.rstrip("/")

    def _children(self, path: str) -> dict[str, bool]:
        """``{name: is_folder}`` of the entries directly in ``path``."""
        out: dict[str, bool] = {}
        for p in self.files:
            if p.startswith(path + "/"):
                head, _, rest = p[len(path) + 1:].partition("/")
                out[head] = out.get(head, False) or bool(rest)
        return out

    @staticmethod
    def _blob(data: bytes) -> str:
        return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()

    def _tree(self, path: str) -> str:
        ids = {name: self._tree(f"{path}/{name}") if folder
               else self._blob(self.files[f"{path}/{name}"])
               for name, folder in self._children(path).items()}
        body = "".join(f"{name}\0{ids[name]}\n" for name in sorted(ids))
        return hashlib.sha1(f"tree {body}".encode()).hexdigest()

    def _entry(self, path: str, folder: bool) -> dict[str, Any]:
        repo_path = path[len(REPO) + 1:]
        if folder:
            info = _cache_info_from_path_info(RepoFolder(path=repo_path, oid=self._tree(path)),
                                              path)
            if not self.tree_ids:
                info.pop("tree_id")
            return info
        data = self.files[path]
        return _cache_info_from_path_info(RepoFile(path=repo_path, size=len(data),
                                                   oid=self._blob(data)), path)

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        path = self._strip_protocol(path)
        self.listed.append(path)
        if path in self.down:
            raise OSError(f"503 Server Error: Service Unavailable for url: .../tree/main/{path}")
        if path in self.removed:  # deleted by a commit since its parent was listed
            raise FileNotFoundError(path)
        if path in self.files:
            out = [self._entry(path, False)]
        else:
            children = self._children(path)
            if not children:
                raise FileNotFoundError(path)
            out = [self._entry(f"{path}/{name}", folder)
                   for name, folder in sorted(children.items())]
        return out if detail else [o["name"] for o in out]

    def cat_file(self, path: str, start: int | None = None, end: int | None = None,
                 **kwargs: Any) -> bytes:
        path = self._strip_protocol(path)
        with _lock:
            self.reading[0] += 1
            self.reading[1] = max(self.reading)
        try:
            time.sleep(self.latency)
            if self.flaky.get(path):
                self.flaky[path] -= 1
                raise OSError(f"503 Server Error: Service Unavailable for url: .../{path}")
            if path not in self.files:
                raise FileNotFoundError(path)
            return self.files[path][start:end]
        finally:
            with _lock:
                self.reading[0] -= 1


_lock = threading.Lock()


@pytest.fixture
def hub() -> Iterator[type[HubStandIn]]:
    fsspec.register_implementation("hfstandin", HubStandIn, clobber=True)
    HubStandIn.clear_instance_cache()
    HubStandIn.files, HubStandIn.listed, HubStandIn.tree_ids = {}, [], True
    HubStandIn.down, HubStandIn.flaky, HubStandIn.removed = set(), {}, set()
    HubStandIn.latency, HubStandIn.reading = 0.0, [0, 0]
    yield HubStandIn
    HubStandIn.files, HubStandIn.listed, HubStandIn.down = {}, [], set()


def _upload(hub: type[HubStandIn], local: Path, *paths: Path) -> None:
    """Commit ``paths`` (default: every file) of the local dataset ``local`` to the hub."""
    for p in paths or sorted(local.rglob("*.jsonl")):
        hub.files[f"{REPO}/{p.relative_to(local).as_posix()}"] = p.read_bytes()


def _days_listed(hub: type[HubStandIn]) -> list[str]:
    return sorted(posixpath.basename(p) for p in hub.listed
                  if DAY_DIR.match(posixpath.basename(p)))


def _events(st: Store) -> list[tuple[Any, ...]]:
    _, rows = st.fetch("SELECT session_id, seq, ts, event_type, tool, prompt_tokens, cost_usd "
                       "FROM events ORDER BY session_id, seq")
    return [tuple(r) for r in rows]


def test_only_day_folders_whose_tree_changed_are_listed(hub: type[HubStandIn], store: Store,
                                                         dataset: Path, tmp_path: Path) -> None:
    paths = _history(dataset)
    _upload(hub, dataset)
    first = ingest(URL, store, workers=1)
    assert (first.files_seen, first.files_read) == (12, 12)
    assert _days_listed(hub) == ["2026-05-18", "2026-05-19", "2026-05-20"]
    _, folders = store.scan_state(f"{REPO}")
    assert sorted(folders) == [f"{REPO}/sessions/2026-05-{d}" for d in (18, 19, 20)]

    # nothing committed since: one listing of sessions/, no day folder, no file
    hub.listed.clear()
    second = ingest(URL, store, workers=1)
    assert (second.files_seen, second.files_read) == (0, 0)
    assert _days_listed(hub) == []

    # a file rewritten in place in an old folder (no live session, no new name: only its
    # blob id, hence its folder's tree id, changes) and a new session in another folder
    _grow(paths[0], "2026-05-18T10:40:00+00:00")
    new = write_session(dataset, "late", "2026-05-20T23:00:00+00:00",
                        [ev("2026-05-20T23:10:00+00:00", "llm_call", cost_usd=2.0)])
    _upload(hub, dataset, paths[0], new)
    hub.listed.clear()
    third = ingest(URL, store, workers=1)
    assert _days_listed(hub) == ["2026-05-18", "2026-05-20"]
    assert (third.files_seen, third.files_read) == (4 + 5, 2)

    # the same rows as the final data ingested whole from a local folder
    local = tmp_path / "copy"
    shutil.copytree(dataset, local)
    with DuckDBStore(tmp_path / "whole.duckdb") as whole:
        ingest(str(local), whole, workers=1)
        assert _events(store) == _events(whole)
        assert store.counts()["sessions"] == whole.counts()["sessions"] == 13


def test_a_bad_file_on_the_hub_is_reported_until_fixed(hub: type[HubStandIn], store: Store,
                                                        dataset: Path) -> None:
    _history(dataset)
    bad = dataset / "sessions" / "2026-05-19" / "broken.jsonl"
    bad.write_text('{"session_id": "broken", "events": "[{\\"timest')
    _upload(hub, dataset)
    first = ingest(URL, store, workers=1)
    assert first.files_read == 13 and [s["path"] for s in first.quality.skipped] == [
        f"{REPO}/sessions/2026-05-19/broken.jsonl"]
    assert store.counts()["sessions"] == 12
    # unchanged: no folder listed, the skipped file still reported, nothing lost
    hub.listed.clear()
    second = ingest(URL, store, workers=1)
    assert second.files_read == 0 and _days_listed(hub) == ["2026-05-19"]  # its info
    assert [s["path"] for s in second.still_skipped] == [f"{REPO}/sessions/2026-05-19/broken.jsonl"]
    # fixed in place on the hub: read again, the skip gone
    write_session(dataset, "broken", "2026-05-19T15:00:00+00:00",
                  [ev("2026-05-19T15:00:00+00:00", "llm_call", cost_usd=1.0)])
    _upload(hub, dataset, bad)
    third = ingest(URL, store, workers=1)
    assert third.files_read == 1 and not third.quality.skipped and not third.still_skipped
    assert store.counts()["sessions"] == 13


def test_folders_without_a_content_id_are_listed_whole(hub: type[HubStandIn], dataset: Path,
                                                        tmp_path: Path) -> None:
    hub.tree_ids = False  # e.g. a Hub bucket: folders carry no tree id
    _history(dataset)
    _upload(hub, dataset)
    fs = HubStandIn()
    assert session_dataset.list_changed(fs, REPO, {}, [], None) is None
    with DuckDBStore(tmp_path / "s.duckdb") as st:
        assert ingest(URL, st, workers=1).files_read == 12
        again = ingest(URL, st, workers=1)
        assert (again.files_seen, again.files_read) == (12, 0)  # whole listing, nothing read
    hub.tree_ids = True
    listing, record, _ = session_dataset.list_changed(fs, REPO, {}, [], None) or ({}, {}, {})
    assert len(listing) == 12 and len(record) == 3


def test_a_listing_that_fails_midway_records_nothing_and_the_next_run_catches_up(
        hub: type[HubStandIn], store: Store, dataset: Path) -> None:
    paths = _history(dataset)
    _upload(hub, dataset)
    ingest(URL, store, workers=1)
    _grow(paths[0], "2026-05-18T10:40:00+00:00")
    _grow(paths[4], "2026-05-19T10:40:00+00:00")  # d19s0
    _upload(hub, dataset, paths[0], paths[4])
    hub.down = {f"{REPO}/sessions/2026-05-19"}  # the second changed folder's listing fails
    with pytest.raises(SourceError, match=r"cannot list source hfstandin://.*503 Server Error.*"
                                          r"check the path or URL, the network"):
        ingest(URL, store, workers=1)
    assert _calls(store, "d18s0") == 1  # nothing written, nothing recorded as seen
    hub.down = set()
    hub.listed.clear()
    again = ingest(URL, store, workers=1)
    assert _days_listed(hub) == ["2026-05-18", "2026-05-19"] and again.files_read == 2
    assert _calls(store, "d18s0") == _calls(store, "d19s0") == 2



def test_files_are_read_several_at_a_time_and_a_failed_read_is_retried_next_run(
        hub: type[HubStandIn], store: Store, dataset: Path) -> None:
    _history(dataset)
    _upload(hub, dataset)
    hub.latency = 0.02
    flaky = f"{REPO}/sessions/2026-05-19/d19s2.jsonl"
    hub.flaky = {flaky: 1}  # its first read fails, as a request the Hub drops
    first = ingest(URL, store, workers=1)
    assert hub.reading[1] > 1  # requests overlapped
    assert [(s["path"], s["kind"]) for s in first.quality.skipped] == [(flaky, "file_unreadable")]
    assert "cannot read: OSError: 503 Server Error" in first.quality.skipped[0]["reason"]
    assert store.counts()["sessions"] == 11
    # every session came from its own file, whatever order the reads finished in
    _, rows = store.fetch("SELECT session_id, source_path FROM sessions")
    assert all(str(p).endswith(f"/{sid}.jsonl") for sid, p in rows) and len(rows) == 11
    # nothing changed on the Hub, no folder listed: the unread file alone is read again
    hub.listed.clear()
    second = ingest(URL, store, workers=1)
    assert second.files_read == 1 and not second.quality.skipped and not second.still_skipped
    assert store.counts()["sessions"] == 12 and _days_listed(hub) == ["2026-05-19"]  # its info


def test_a_day_folder_removed_while_listing_is_passed_over_and_not_recorded(
        hub: type[HubStandIn], store: Store, dataset: Path) -> None:
    _history(dataset)
    _upload(hub, dataset)
    day = f"{REPO}/sessions/2026-05-19"
    hub.removed = {day}  # listed in sessions/, gone when its own listing is asked
    first = ingest(URL, store, workers=1)
    assert first.files_read == 8 and not first.quality.skipped
    assert day not in store.scan_state(REPO)[1]
    hub.removed = set()  # it was there after all (or came back): read next run
    hub.listed.clear()
    second = ingest(URL, store, workers=1)
    assert second.files_read == 4 and _days_listed(hub) == ["2026-05-19"]
    assert store.counts()["sessions"] == 12
