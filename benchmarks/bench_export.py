"""Peak memory of ``agentkpi export`` per format: every export streams, whatever the size.

    python benchmarks/bench_export.py STORE.duckdb [--formats parquet,csv,jsonl,xlsx]
        [--what events] [--from 2026-05-20T00 --to 2026-05-20T01]

Runs ``agentkpi export WHAT --format F`` in a child process per format (the CLI a user
runs) and reports its wall time, peak RSS (``wait4``), the rows and the file size, with
the machine's load average. Without ``--from/--to`` the whole store is exported; XLSX
(openpyxl, ~20k rows/s) is best given a range.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import cpu_model
from bench_rollup import run_child


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("store")
    ap.add_argument("--formats", default="parquet,csv,jsonl,xlsx")
    ap.add_argument("--what", default="events", choices=["events", "sessions", "kpis"])
    ap.add_argument("--from", dest="start")
    ap.add_argument("--to", dest="end")
    ap.add_argument("--workdir", default=tempfile.gettempdir())
    a = ap.parse_args()
    rng = [*(["--from", a.start] if a.start else []), *(["--to", a.end] if a.end else [])]
    print(f"store {a.store}; {a.what} {' '.join(rng) or '(all)'}; cpu {cpu_model()}, "
          f"{os.cpu_count()} cores")
    print("| format | rows | file | wall | peak RSS | load (1 min) |\n"
          "|---|---:|---:|---:|---:|---:|")
    for fmt in a.formats.split(","):
        out = Path(a.workdir) / f"bench-export-{os.getpid()}.{fmt}"
        load = os.getloadavg()[0]
        r = run_child([sys.executable, "-m", "agentkpi", "export", a.what, "--format", fmt,
                       "--out", str(out), "--store", a.store, *rng],
                      f"export {a.what} {fmt}")
        size = out.stat().st_size if out.exists() else 0
        out.unlink(missing_ok=True)
        if r["returncode"] != 0:
            print(f"| {fmt} | failed: {r['stderr_tail'][-300:]!r} |")
            continue
        said = r["_stdout"] + r["stderr_tail"]  # "export  N what row(s) -> ..."
        rows = said.split("export", 1)[1].split()[0] if "export " in said else "?"
        print(f"| {fmt} | {rows} | {size / 1e6:,.0f} MB | {r['seconds']:.1f} s | "
              f"{r['peak_rss_mb']:,.0f} MB | {load:.1f} |", flush=True)
        r.pop("_stdout", None)
        print(json.dumps({k: r[k] for k in ("cmd", "seconds", "peak_rss_mb")}),
              file=sys.stderr)


if __name__ == "__main__":
    main()
