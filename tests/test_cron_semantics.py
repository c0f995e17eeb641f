"""Cron semantics: what a scheduled ``agentkpi rollup`` reports when something is off.

* Without ``--source`` the store is only read: a mistyped ``--store`` is an error
  (exit 1, one line), and no empty store is created in its place.
* ``--strict`` fails on every run while a skipped file remains in the source, not
  only on the run that first read it; it passes once the file is fixed.
"""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from agentkpi.cli import main
from tests.conftest import ev, write_session


def _rollup(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(main, ["rollup", "--quiet", *args])
    return r.exit_code, r.output


def test_mistyped_store_without_source_fails_and_creates_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_session(data, "s1", "2026-05-20T10:00:00Z", [ev("2026-05-20T10:01:00Z", "llm_call")])
    good = tmp_path / "kpi.duckdb"
    code, _ = _rollup("--source", str(data), "--target", str(tmp_path / "out"), "--store",
                      str(good), "--datetime", "2026-05-20T10")
    assert code == 0 and (tmp_path / "out/hourly/2026-05-20/10.csv").exists()

    typo = tmp_path / "kpl.duckdb"
    code, output = _rollup("--target", str(tmp_path / "out2"), "--store", str(typo),
                           "--datetime", "2026-05-20T10")
    assert code == 1
    assert f"no store at {typo}" in output
    assert not typo.exists() and not (tmp_path / "out2").exists()
    # the right store without --source still works (read-only)
    code, _ = _rollup("--target", str(tmp_path / "out3"), "--store", str(good),
                      "--datetime", "2026-05-20T10")
    assert code == 0 and (tmp_path / "out3/hourly/2026-05-20/10.csv").exists()


def test_strict_fails_on_every_run_while_a_skipped_file_remains(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_session(data, "good", "2026-05-20T10:00:00Z", [ev("2026-05-20T10:01:00Z", "llm_call")])
    bad = data / "sessions" / "2026-05-20" / "broken.jsonl"
    bad.write_text('{"session_id": "broken", "events": [tru\n')
    args = ["--source", str(data), "--target", str(tmp_path / "out"), "--store",
            str(tmp_path / "s.duckdb"), "--datetime", "2026-05-20T10", "--strict"]
    code, output = _rollup(*args)
    assert code == 2 and "file_bad_json" in output
    for _ in range(2):  # the file is unchanged: not read again, but still skipped
        code, output = _rollup(*args)
        assert code == 2, output
        assert "still skipped" in output and "broken.jsonl" in output
    # without --strict the run succeeds and says so
    code, output = _rollup(*args[:-1])
    assert code == 0
    # fixed: strict passes
    write_session(data, "broken", "2026-05-20T10:00:00Z", [ev("2026-05-20T10:05:00Z", "error")])
    code, output = _rollup(*args)
    assert code == 0, output
    code, output = _rollup(*args)
    assert code == 0, output


def test_strict_fails_while_a_skipped_file_sits_in_a_folder_that_is_not_listed_again(
        tmp_path: Path) -> None:
    """Later runs list only changed day folders: a skipped file in an unchanged folder is
    not listed, yet it is still there and still skipped, so --strict still fails (exit 0
    was the bug, on a real store whose folders were more than 2 s old)."""
    import os
    import subprocess
    import sys

    data = tmp_path / "data"
    write_session(data, "good", "2026-05-20T10:00:00Z", [ev("2026-05-20T10:01:00Z", "llm_call")])
    day = data / "sessions" / "2026-05-20"
    (day / "broken.jsonl").write_text('{"session_id": "broken", "events": [tru\n')
    for p in (day, data / "sessions", data):  # old folders: recorded, not listed next run
        os.utime(p, (1_700_000_000, 1_700_000_000))
    args = [sys.executable, "-m", "agentkpi", "rollup", "--quiet", "--strict", "--source",
            str(data), "--target", str(tmp_path / "out"), "--store", str(tmp_path / "s.duckdb"),
            "--datetime", "2026-05-20T10"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    runs = [subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
            for _ in range(3)]
    assert [r.returncode for r in runs] == [2, 2, 2], [r.stderr for r in runs]
    assert all("broken.jsonl" in r.stderr or "file_bad_json" in r.stderr for r in runs)
    assert "still skipped" in runs[2].stderr
    (day / "broken.jsonl").unlink()  # removing it changes the folder: listed, and gone
    r = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
