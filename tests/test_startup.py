"""The program's start-up (``agentkpi.startup``): the cron commands keep numpy and pandas
out of their process, with the same output; other commands import them as usual. (And
an hourly run of a local source never imports fsspec: ``agentkpi.sources.localfs``.)

Each case runs a real Python process: this test process has numpy imported already.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from agentkpi.rollups import rollup
from agentkpi.store import DuckDBStore


def _python(code: str) -> str:
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_the_hourly_rollup_runs_without_numpy_or_pandas_and_writes_the_same_csv(
        constructed: Path, tmp_path: Path) -> None:
    out = tmp_path / "program"
    argv = ["agentkpi", "rollup", "--quiet", "--source", str(constructed), "--target",
            str(out), "--store", str(tmp_path / "p.duckdb"), "--datetime", "2026-05-20T14"]
    imported = _python(
        "import sys\n"
        "from agentkpi.startup import prepare\n"
        f"argv = {argv!r}\n"
        "prepare(argv)  # what the agentkpi program does first\n"
        "from agentkpi.cli import main\n"
        "try:\n"
        "    main(argv[1:])\n"
        "except SystemExit as exc:\n"
        "    assert exc.code in (0, None), exc.code\n"
        "print(sorted(m for m in ('numpy', 'pyarrow', 'pandas', 'duckdb', 'fsspec')"
        "             if m in sys.modules))")
    assert imported == "['duckdb', 'pyarrow']"  # fsspec: a local source (sources.localfs)
    with DuckDBStore(tmp_path / "here.duckdb") as st:  # numpy is loaded in this process
        rollup(str(tmp_path / "here"), source=str(constructed), store=st, at="2026-05-20T14")
    csv = Path("hourly", "2026-05-20", "14.csv")
    assert (out / csv).read_bytes() == (tmp_path / "here" / csv).read_bytes()


def test_only_the_cron_commands_keep_numpy_out() -> None:
    code = ("import sys\n"
            "from agentkpi.startup import prepare\n"
            "prepare(['agentkpi', {cmd!r}, '--help'])\n"
            "try:\n"
            "    import numpy\n"
            "    print('imported')\n"
            "except ModuleNotFoundError as exc:\n"
            "    print(exc)\n")
    assert _python(code.format(cmd="plot")) == "imported"
    assert _python(code.format(cmd="query")) == "imported"
    for cmd in ("rollup", "ingest"):
        assert _python(code.format(cmd=cmd)) == ("numpy is kept out of this agentkpi "
                                                 "process (agentkpi.startup)")


def test_keep_out_leaves_a_package_already_imported() -> None:
    code = ("import sys, numpy\n"
            "from agentkpi.startup import keep_out\n"
            "keep_out('numpy', 'pandas')\n"
            "import numpy.fft  # not yet imported, of a package the process has: found\n"
            "try:\n"
            "    import pandas\n"
            "except ModuleNotFoundError:\n"
            "    print('pandas kept out')\n")
    assert _python(code) == "pandas kept out"
