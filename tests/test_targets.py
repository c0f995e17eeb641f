"""Where the CSVs go: local atomic writes, and one commit per run on the Hugging Face Hub.

The Hub is the one edge nobody here can reach (no network), so the hf:// test uses
``FakeHub``, a named stand-in for the remote HfApi + HfFileSystem that records commits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agentkpi.sinks import target
from agentkpi.sinks.target import write_files


def test_local_writes_are_atomic_and_unchanged_files_untouched(tmp_path: Path) -> None:
    r1 = write_files(str(tmp_path), {"hourly/2026-05-20/14.csv": b"a\n1\n", "x/y.csv": b"b"})
    assert sorted(r1.written) == ["hourly/2026-05-20/14.csv", "x/y.csv"]
    mtime = (tmp_path / "x" / "y.csv").stat().st_mtime_ns
    r2 = write_files(str(tmp_path), {"hourly/2026-05-20/14.csv": b"a\n2\n", "x/y.csv": b"b"})
    assert r2.written == ["hourly/2026-05-20/14.csv"] and r2.unchanged == ["x/y.csv"]
    assert (tmp_path / "x" / "y.csv").stat().st_mtime_ns == mtime
    assert (tmp_path / "hourly" / "2026-05-20" / "14.csv").read_bytes() == b"a\n2\n"
    assert not list(tmp_path.rglob(".tmp-*"))  # no temporary file left behind


class FakeHub:
    """Stand-in for the remote Hugging Face Hub (HfApi + HfFileSystem)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.commits: list[dict[str, Any]] = []

    # HfFileSystem
    def cat_file(self, path: str) -> bytes:
        if path not in self.files:
            raise FileNotFoundError(path)
        return self.files[path]

    # HfApi
    def create_repo(self, repo_id: str, repo_type: str, exist_ok: bool) -> None:
        assert exist_ok and repo_type == "dataset"

    def create_commit(self, repo_id: str, repo_type: str, operations: list[Any],
                      commit_message: str) -> None:
        self.commits.append({"repo": repo_id, "message": commit_message,
                             "paths": [op.path_in_repo for op in operations]})
        for op in operations:
            self.files[f"datasets/{repo_id}/{op.path_in_repo}"] = op.path_or_fileobj


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> FakeHub:
    fake = FakeHub()
    monkeypatch.setattr(target, "_hub", lambda: (fake, fake))
    return fake


def test_hf_target_gets_one_commit_per_run_and_none_when_nothing_changed(hub: FakeHub) -> None:
    files = {f"hourly/2026-05-20/{h:02d}.csv": f"bucket\n{h}\n".encode() for h in range(24)}
    r1 = write_files("hf://datasets/acme/kpis", files, message="KPIs for 2026-05-20")
    assert len(hub.commits) == 1 and len(hub.commits[0]["paths"]) == 24
    assert len(r1.written) == 24
    r2 = write_files("hf://datasets/acme/kpis", files, message="again")
    assert len(hub.commits) == 1 and r2.unchanged == sorted(files)
    files["hourly/2026-05-20/03.csv"] = b"bucket\nchanged\n"
    write_files("hf://datasets/acme/kpis/sub", files, message="third")
    assert len(hub.commits) == 2
    assert hub.commits[1]["paths"][0].startswith("sub/hourly/")


def test_rollup_to_hf_commits_all_hours_at_once(hub: FakeHub, constructed: Path,
                                                 tmp_path: Path) -> None:
    from agentkpi.rollups import rollup

    r = rollup("hf://datasets/acme/kpis", source=str(constructed),
               store=str(tmp_path / "s.duckdb"), start="2026-05-20T13", end="2026-05-20T16")
    assert r.written == ["hourly/2026-05-20/14.csv"]
    assert hub.commits == [{"repo": "acme/kpis", "message": "KPIs for 2026-05-20T13..2026-05-20T15",
                            "paths": ["hourly/2026-05-20/14.csv"]}]
