"""Auto-detection: the session dataset is recognised by one listing, a Codex home is not it."""

from __future__ import annotations

from pathlib import Path

import fsspec

from agentkpi.sources import detect


def test_day_folders_are_a_session_dataset_and_year_folders_a_codex_home(
        tmp_path: Path) -> None:
    fs = fsspec.filesystem("file")
    ds = tmp_path / "ds" / "sessions" / "2026-05-20"
    ds.mkdir(parents=True)
    (ds / "s1.jsonl").write_text("{}\n")
    assert detect(fs, str(tmp_path / "ds")).NAME == "session_dataset"
    empty = tmp_path / "empty" / "sessions"
    empty.mkdir(parents=True)  # a dataset before its first upload
    assert detect(fs, str(tmp_path / "empty")).NAME == "session_dataset"
    codex = tmp_path / "codex" / "sessions" / "2026" / "02" / "23"
    codex.mkdir(parents=True)
    (codex / "rollout-2026-02-23T20-34-25-x.jsonl").write_text("{}\n")
    assert detect(fs, str(tmp_path / "codex")).NAME == "codex"
