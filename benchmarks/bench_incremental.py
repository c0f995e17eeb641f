"""The hourly cron run: `agentkpi rollup` after one new hour of sessions, on a large history.

    python benchmarks/bench_incremental.py --source /tmp/akscale/source-200000 \\
        --store /tmp/akscale/store-duckdb-source-200000.duckdb --workdir /tmp/incr/w200k \\
        [--runs 3] [--link | --in-place] [--per-hour N] [--full-folder-hour 2026-05-21T12]
        [--profile] [--json-out F]

``--source`` is a session dataset made by ``bench_scaling.py``/``bench_rollup.py`` and
``--store`` the DuckDB store built from it; neither is modified. The workdir gets a copy of
both (``--link``: the source's files are hard links, for a 1M dataset; new files are
then moved in with ``os.link``, which refuses to replace an existing name, so a shared
file is never written), the store's paths pointed at the copy (``--in-place``: no copies,
for a source and store that are scratch copies already). Then, each step a child process
(wall seconds, CPU seconds of it and its workers, peak RSS via ``wait4``):

1. a run with no new data and no recorded folder state (lists the whole source);
2. a run with no new data (what the cron does when nothing arrived);
3. ``--runs`` times: ``append_hour`` adds N/48 new sessions starting in the next hour
   after the newest one the store holds (their day folder is the newest one), then
   ``agentkpi rollup --source SRC --target OUT --store S --datetime H`` (format
   auto-detected, as a cron job runs it) — the measured figure;
4. with ``--full-folder-hour H``: the same for an hour inside a day folder that already
   holds a whole day of sessions (the last cron run of a day).

Each incremental run's CSV must count at least the sessions appended (checked, printed).
The commands run with their bytecode cached (``WORKDIR/pycache``, written by the first
run), as an installed package's are: a shell with ``PYTHONDONTWRITEBYTECODE=1`` would
otherwise compile every module of agentkpi whose ``.pyc`` is missing or stale on every
run (0.05-0.1 s; ``--compile-each-run`` measures that way).
Prints a markdown table with the time, load average and the files stat-ed / read beside
each figure, and what stat-ing the live files would cost in a real cron (the dataset's
newest event lies days after the appended hours, so the runs themselves see few).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench_rollup import hour_arg, machine, run_child  # benchmarks/ is on sys.path


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def prepare(source: Path, store: Path, workdir: Path, link: bool) -> tuple[Path, Path]:
    """Copies of the dataset and the store under ``workdir`` (made once, then reused)."""
    import duckdb

    src = workdir / "source"
    st = workdir / "store.duckdb"
    marker = workdir / "prepared.json"
    if marker.exists():
        return src, st
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(src, ignore_errors=True)
    for p in workdir.glob("store.duckdb*"):
        p.unlink()
    print(f"[bench] copying {source} -> {src} ({'hard links' if link else 'files'})",
          flush=True)
    subprocess.run(["cp", "-al" if link else "-a", str(source), str(src)], check=True)
    shutil.copyfile(store, st)
    con = duckdb.connect(str(st))
    old, new = str(source), str(src)
    con.execute("BEGIN")
    con.execute("UPDATE ingested_files SET path = replace(path, ?, ?)", [old, new])
    con.execute("UPDATE sessions SET source_path = replace(source_path, ?, ?)", [old, new])
    con.execute("UPDATE events SET file = replace(file, ?, ?)", [old, new])
    con.execute("DELETE FROM source_scans")
    con.execute("COMMIT")
    con.execute("CHECKPOINT")
    con.close()
    marker.write_text(json.dumps({"source": old, "store": str(store), "link": link}))
    return src, st


def newest_hour(st: Path) -> datetime:
    import duckdb

    con = duckdb.connect(str(st), read_only=True)
    try:
        (h,), = con.execute("SELECT date_trunc('hour', max(start_ts)) FROM sessions").fetchall()
    finally:
        con.close()
    return h.replace(tzinfo=UTC)


def append(src: Path, hour: datetime, n: int) -> int:
    """Generate ``n`` sessions of ``hour`` in a staging folder and link them into ``src``.

    ``os.link`` fails on an existing name: a file of the (possibly hard-linked) copy is
    never opened for writing. Returns the number of files added.
    """
    from agentkpi.generate import append_hour

    with tempfile.TemporaryDirectory(dir=src.parent) as stage:
        append_hour(stage, hour, n, seed=0)
        added = 0
        for day in sorted((Path(stage) / "sessions").iterdir()):
            dest = src / "sessions" / day.name
            dest.mkdir(exist_ok=True)
            for f in sorted(day.iterdir()):
                os.link(f, dest / f.name)  # FileExistsError rather than overwrite
                added += 1
    return added


def hour_sessions(out: Path, hour: datetime) -> int | None:
    path = out / "hourly" / f"{hour:%Y-%m-%d}" / f"{hour:%H}.csv"
    if not path.exists():
        return None
    import csv

    with path.open() as fh:
        row = next(csv.DictReader(fh))
    return int(row["sessions"])


def files_checked(out: Path) -> dict:
    """Files stat-ed (``files_seen``) and read by the run, from its report."""
    try:
        ing = json.loads((out / "_reports" / "latest.json").read_text())["ingest"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return {"files_seen": ing.get("files_seen"), "files_read": ing.get("files_read")}


def live_set(st: Path, hour: datetime) -> dict:
    """What stat-ing the live files costs when the newest event is ``hour`` (a real cron)."""
    import duckdb

    con = duckdb.connect(str(st), read_only=True)
    try:
        paths = [p for (p,) in con.execute(
            "SELECT DISTINCT s.source_path FROM sessions s JOIN (SELECT DISTINCT session_id "
            "FROM agg_hourly WHERE _hour >= ? - INTERVAL 2 HOUR AND _hour <= ?) USING "
            "(session_id)", [hour.replace(tzinfo=None), hour.replace(tzinfo=None)]).fetchall()]
    finally:
        con.close()
    for _ in range(2):
        t0 = time.perf_counter()
        for p in paths:
            try:
                os.stat(p)
            except OSError:
                pass
        seconds = time.perf_counter() - t0
    return {"hour": f"{hour:%Y-%m-%dT%H}", "files": len(paths), "seconds": seconds}


def rollup_cmd(src: Path, st: Path, out: Path, hour: datetime, profile: Path | None
               ) -> list[str]:
    pre = [sys.executable]
    if profile is not None:
        pre += ["-m", "cProfile", "-o", str(profile)]
    return [*pre, "-m", "agentkpi", "rollup", "--quiet", "--source", str(src), "--target",
            str(out), "--store", str(st), "--datetime", hour_arg(hour)]


def bytecode_env(workdir: Path, compile_each_run: bool) -> dict | None:
    """The commands' environment: bytecode cached under ``workdir`` (None: as inherited)."""
    if compile_each_run:
        return None
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
    return env


def step(label: str, cmd: list[str], env: dict | None = None) -> dict:
    """Run ``cmd``: wall seconds, CPU seconds (user + system, the process and its workers)
    and peak RSS; the CPU time is the figure a busy shared machine distorts least."""
    load = loadavg()
    at = time.strftime("%H:%M:%S", time.gmtime())
    res = run_child(cmd, label, env)  # cpu_s: user + system of the command and its workers
    res.update(load=load, at=at)
    res.pop("_stdout", None)
    res.pop("stdout_tail", None)
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", required=True)
    ap.add_argument("--store", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--per-hour", type=int, help="sessions per new hour [default: N/48]")
    ap.add_argument("--link", action="store_true", help="hard-link the source copy")
    ap.add_argument("--in-place", action="store_true",
                    help="use --source and --store themselves (scratch copies; new hours are "
                         "added to that source)")
    ap.add_argument("--full-folder-hour", metavar="YYYY-MM-DDTHH")
    ap.add_argument("--profile", action="store_true",
                    help="run the incremental rollups under cProfile (WORKDIR/prof-*.out)")
    ap.add_argument("--compile-each-run", action="store_true",
                    help="no bytecode cache for the commands (as a PYTHONDONTWRITEBYTECODE "
                         "shell runs them)")
    ap.add_argument("--json-out")
    args = ap.parse_args(argv)
    source, workdir = Path(args.source), Path(args.workdir)
    if args.in_place:
        src, st = source, Path(args.store)
        workdir.mkdir(parents=True, exist_ok=True)
    else:
        src, st = prepare(source, Path(args.store), workdir, args.link)
    out = workdir / "out"
    env = bytecode_env(workdir, args.compile_each_run)
    per_hour = args.per_hour
    if per_hour is None:
        gen = json.loads((source / "generate.json").read_text())  # the original dataset's
        per_hour = max(1, gen["n_sessions"] // gen["params"]["hours"])
    res: dict = {"machine": machine(), "source": str(source), "per_hour": per_hour,
                 "bytecode_cached": env is not None, "steps": []}
    steps = res["steps"]
    if not (workdir / "warmed").exists():
        steps.append(step("full listing, nothing new (no folder state yet)",
                          rollup_cmd(src, st, out, newest_hour(st), None), env))
        (workdir / "warmed").write_text("")
    steps.append(step("nothing new", rollup_cmd(src, st, out, newest_hour(st), None), env))
    steps[-1].update(files_checked(out))
    top = newest_hour(st)
    hours = [top + timedelta(hours=k + 1) for k in range(args.runs)]
    if args.full_folder_hour:
        hours.append(datetime.strptime(args.full_folder_hour, "%Y-%m-%dT%H").replace(tzinfo=UTC))
    for i, hour in enumerate(hours):
        added = append(src, hour, per_hour)
        prof = workdir / f"prof-{hour:%Y%m%dT%H}.out" if args.profile else None
        kind = "full day folder" if i >= args.runs else "newest day folder"
        s = step(f"+{added:,} sessions in {hour:%Y-%m-%dT%H} ({kind})",
                 rollup_cmd(src, st, out, hour, prof), env)
        s["sessions_in_csv"] = hour_sessions(out, hour)
        s.update(files_checked(out))
        s["appended"] = added
        if s["returncode"] == 0 and (s["sessions_in_csv"] or 0) < added:
            print(f"[bench] WRONG: {hour} has {s['sessions_in_csv']} sessions in its CSV, "
                  f"{added} were appended", file=sys.stderr)
            s["wrong"] = True
        steps.append(s)
    res["live"] = live_set(st, hours[args.runs - 1] if args.runs else top)
    print(f"\n| step ({per_hour:,} sessions per hour) | wall | CPU (user+sys) | peak RSS "
          "| files stat-ed / read | load (1/5/15 min) | at (UTC) |")
    print("|---|---:|---:|---:|---:|---|---|")
    for s in steps:
        flag = "" if s["returncode"] == 0 and not s.get("wrong") else " **FAILED**"
        print(f"| {s['label']} | {s['seconds']:.2f} s{flag} | {s['cpu_s']:.2f} s | "
              f"{s['peak_rss_mb']:.0f} MB | {s.get('files_seen', '?')} / "
              f"{s.get('files_read', '?')} | {s['load']} | {s['at']} |")
    lv = res["live"]
    print(f"\nLive files: the store's newest event lies days after the appended hours (sessions "
          f"of the dataset run on), so the runs above stat ~no live file. A cron run at "
          f"{lv['hour']} would stat the {lv['files']:,} files of sessions active in the 2 hours "
          f"before it: {lv['seconds']:.3f} s here (a second pass, warm cache).")
    m = res["machine"]
    print(f"\nMachine: {m['nproc']} CPUs ({m['cpu']}), {m['ram_gb']} GB RAM, Python "
          f"{m['python']}, DuckDB {m['duckdb']}.")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(res, indent=1, default=str))
    return 0 if all(s["returncode"] == 0 and not s.get("wrong") for s in steps) else 1


if __name__ == "__main__":
    sys.exit(main())
