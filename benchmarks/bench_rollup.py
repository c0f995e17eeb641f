"""Benchmark: `agentkpi rollup` (cold, warm, incremental hour) vs the seed's pure-Python approach.

    python benchmarks/bench_rollup.py --sessions 200000 --workdir /tmp/akbench
        [--skip-baseline] [--baseline-hours K] [--skip-rollup] [--json-out FILE]

Steps, all in one run, each in a child process (wall seconds and peak RSS from
a small launcher's ``os.wait4``; the RSS is the largest process of the child's tree):

1. dataset: ``generate_sessions(WORKDIR/source-N-sSEED, N, 2026-05-20T00Z, 48 h,
   seed)``, reused when ``generate.json`` there records the same parameters;
   sessions appended by a previous run are removed first.
2. (a) cold: ``agentkpi rollup --source SRC --target OUT --from A --to B --store S``
   over the 48 hours with a fresh store and target;
   (b) warm: the same command again;
   (c) incremental: ``append_hour`` adds N/48 new sessions in hour B, then
   ``--from B --to B+1h`` (the hourly cron run).
3. (d) baseline: ``benchmarks/baseline_seed.py`` over the same 48 hours; with
   ``--baseline-hours K`` < 48 only K hours spread evenly over the range are
   timed and the total is extrapolated linearly to 48 (labelled so).
   The baseline rows of the timed hours are compared with the CSVs of (a).

Prints a markdown table and the machine (nproc, RAM, CPU model).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _machine import cpu_model, measured, measured_popen  # benchmarks/ is on sys.path

HERE = Path(__file__).resolve().parent
START = datetime(2026, 5, 20, tzinfo=UTC)


# ----------------------------------------------------------------- child runs

def run_child(cmd: list[str], label: str, env: dict | None = None) -> dict:
    """Run ``cmd``; return wall seconds, peak RSS (MB) and CPU seconds of ``cmd`` and its
    workers (measured by a small launcher, see ``_machine.measured_popen``: a child forked
    from this process directly would report this process's size), return code and output
    tails."""
    fd, report = tempfile.mkstemp(prefix="bench-rusage-", suffix=".json")
    os.close(fd)
    # PYTHONSAFEPATH: ``python -m agentkpi``/``-c`` would put the current directory first
    # on sys.path, so run from a checkout's root they imported that checkout whatever
    # PYTHONPATH named (a comparison of two versions measured one twice, BENCHMARKS §19).
    env = {**(os.environ if env is None else env), "PYTHONSAFEPATH": "1"}
    proc = measured_popen(cmd, report, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    stdout, stderr = (b.decode(errors="replace") for b in proc.communicate())
    m = measured(report)
    res = {
        "label": label,
        "cmd": " ".join(cmd),
        "seconds": round(m["wall_s"], 3),
        "peak_rss_mb": round(m["peak_rss_mb"], 1),
        "cpu_s": round(m["cpu_s"], 3),
        "returncode": proc.returncode,
        "stdout_tail": stdout[-3000:],
        "stderr_tail": stderr[-3000:],
        "_stdout": stdout,
    }
    status_s = "ok" if proc.returncode == 0 else f"FAILED rc={proc.returncode}"
    print(f"[bench] {label}: {res['seconds']:.2f} s, peak RSS {res['peak_rss_mb']:.0f} MB "
          f"({status_s})", flush=True)
    if proc.returncode != 0:
        print(res["stderr_tail"][-2000:] or res["stdout_tail"][-2000:], file=sys.stderr)
    return res


def hour_arg(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H")


# ----------------------------------------------------------------- dataset

def ensure_dataset(workdir: Path, n: int, seed: int, hours: int, workers: int) -> tuple[Path, dict]:
    from agentkpi.generate import generate_sessions

    src = workdir / f"source-{n}" if seed == 0 else workdir / f"source-{n}-s{seed}"
    marker = src / "generate.json"
    params = {"n_sessions": n, "start": START.isoformat(), "hours": hours, "seed": seed,
              "dirty": False}
    appended = workdir / f"{src.name}.appended.json"
    if appended.exists():  # restore the pristine dataset: drop sessions a previous run appended
        for rel in json.loads(appended.read_text()):
            (src / rel).unlink(missing_ok=True)
        appended.unlink()
    if marker.exists():
        info = json.loads(marker.read_text())
        if info.get("params") == params:
            info["generated_now"] = False
            print(f"[bench] reusing dataset {src} ({info['n_events']:,} events, "
                  f"{info['bytes'] / 1e9:.2f} GB)", flush=True)
            return src, info
    if src.exists():
        shutil.rmtree(src)
    print(f"[bench] generating {n:,} sessions into {src} ...", flush=True)
    res = generate_sessions(src, n, START, hours=hours, seed=seed, workers=workers)
    info = asdict(res)
    info["first_event"] = str(res.first_event)
    info["last_event"] = str(res.last_event)
    info["params"] = params
    marker.write_text(json.dumps(info, indent=1))
    info["generated_now"] = True
    print(f"[bench] generated {res.n_sessions:,} sessions, {res.n_events:,} events, "
          f"{res.bytes / 1e9:.2f} GB in {res.seconds:.1f} s", flush=True)
    return src, info


def append_new_hour(workdir: Path, src: Path, hour: datetime, n: int, seed: int) -> dict:
    from agentkpi.generate import append_hour

    before = {p.relative_to(src).as_posix() for p in (src / "sessions").rglob("*.jsonl")}
    res = append_hour(src, hour, n, seed=seed)
    after = {p.relative_to(src).as_posix() for p in (src / "sessions").rglob("*.jsonl")}
    (workdir / f"{src.name}.appended.json").write_text(json.dumps(sorted(after - before)))
    return {"n_sessions": res.n_sessions, "n_events": res.n_events, "bytes": res.bytes}


# ----------------------------------------------------------------- baseline

_BASELINE_CHILD = r"""
import json, sys, time
from datetime import datetime
sys.path.insert(0, {here!r})
from baseline_seed import baseline_hour
root, hours = {root!r}, {hours!r}
out = {{}}
for h in hours:
    t0 = time.perf_counter()
    row = baseline_hour(root, datetime.fromisoformat(h))
    out[h] = {{"seconds": time.perf_counter() - t0, "row": row}}
print(json.dumps(out))
"""


def pick_hours(first: datetime, n_hours: int, k: int) -> list[datetime]:
    if k >= n_hours:
        return [first + timedelta(hours=i) for i in range(n_hours)]
    step = n_hours / k
    return [first + timedelta(hours=int(step * i + step / 2)) for i in range(k)]


def compare(rows: dict[str, dict], target: Path) -> dict:
    """Baseline rows vs the CSVs agentkpi wrote: columns equal / within 1e-9 relative / differ."""
    equal = close = 0
    diffs: list[str] = []
    for h, row in rows.items():
        dt = datetime.fromisoformat(h)
        path = target / "hourly" / dt.strftime("%Y-%m-%d") / f"{dt.strftime('%H')}.csv"
        if not path.exists():
            diffs.append(f"{h}: no CSV")
            continue
        with open(path, newline="") as fh:
            got = next(csv.DictReader(fh))
        for col, want in row.items():
            if col not in got:
                continue
            g, w = got[col], str(want)
            if g == w:
                equal += 1
                continue
            try:
                if math.isclose(float(g), float(w), rel_tol=1e-9, abs_tol=1e-9):
                    close += 1
                    continue
            except ValueError:
                try:
                    jg, jw = json.loads(g), json.loads(w)
                    if jg.keys() == jw.keys() and all(
                            math.isclose(jg[x], jw[x], rel_tol=1e-9) for x in jg):
                        close += 1
                        continue
                except (ValueError, TypeError, AttributeError):
                    pass
            diffs.append(f"{h} {col}: agentkpi={g} baseline={w}")
    return {"equal": equal, "close": close, "differ": len(diffs), "examples": diffs[:10]}


# ----------------------------------------------------------------- machine

def machine() -> dict:
    cpu = cpu_model("unknown")
    ram_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    try:
        nproc = len(os.sched_getaffinity(0))
    except AttributeError:
        nproc = os.cpu_count()
    try:
        import duckdb
        duck = duckdb.__version__
    except ImportError:
        duck = None
    return {"nproc": nproc, "ram_gb": ram_gb, "cpu": cpu, "python": platform.python_version(),
            "duckdb": duck, "platform": platform.platform()}


# ----------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=200_000)
    ap.add_argument("--workdir", default="/tmp/akbench")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hours", type=int, default=48, help="dataset span and rollup range")
    ap.add_argument("--gen-workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument("--baseline-hours", type=int, default=4,
                    help="hours of the baseline to time (extrapolated to the full range); "
                         ">= --hours runs it all")
    ap.add_argument("--skip-rollup", action="store_true", help="only the dataset and baseline")
    ap.add_argument("--rollup-arg", action="append", default=[],
                    help="extra argument passed to every `agentkpi rollup` (repeatable)")
    ap.add_argument("--json-out", help="also write all results as JSON here")
    args = ap.parse_args(argv)

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    src, info = ensure_dataset(workdir, args.sessions, args.seed, args.hours, args.gen_workers)
    first, end = START, START + timedelta(hours=args.hours)
    store = workdir / f"store-{src.name}.duckdb"
    target = workdir / f"out-{src.name}"
    results: dict[str, dict] = {}
    rollup = [sys.executable, "-m", "agentkpi", "rollup", "--source", str(src),
              "--target", str(target)]

    if not args.skip_rollup:
        for p in workdir.glob(f"{store.name}*"):
            p.unlink()
        shutil.rmtree(target, ignore_errors=True)
        rng = ["--from", hour_arg(first), "--to", hour_arg(end), "--store", str(store)]
        results["cold"] = run_child(rollup + rng + args.rollup_arg,
                                    f"(a) cold rollup, {args.hours} h, fresh store")
        results["warm"] = run_child(rollup + rng + args.rollup_arg,
                                    f"(b) warm re-run, {args.hours} h")
        n_new = max(1, args.sessions // args.hours)
        results["append"] = append_new_hour(workdir, src, end, n_new, args.seed)
        inc = ["--from", hour_arg(end), "--to", hour_arg(end + timedelta(hours=1)),
               "--store", str(store)]
        results["incremental"] = run_child(rollup + inc + args.rollup_arg,
                                           f"(c) incremental: +{n_new:,} sessions, 1 h")
        # leave the dataset pristine for the baseline and for the next run
        for rel in json.loads((workdir / f"{src.name}.appended.json").read_text()):
            (src / rel).unlink(missing_ok=True)
        (workdir / f"{src.name}.appended.json").unlink()

    if not args.skip_baseline:
        hours = pick_hours(first, args.hours, args.baseline_hours)
        code = _BASELINE_CHILD.format(here=str(HERE), root=str(src),
                                      hours=[h.isoformat() for h in hours])
        k = len(hours)
        extrap = k < args.hours
        label = (f"(d) baseline, {k} of {args.hours} h timed" if extrap
                 else f"(d) baseline, {args.hours} h")
        res = run_child([sys.executable, "-c", code], label)
        if res["returncode"] == 0:
            per_hour = json.loads(res["_stdout"])
            timed = sum(v["seconds"] for v in per_hour.values())
            res["hours_timed"] = k
            res["seconds_timed"] = round(timed, 3)
            res["seconds_per_hour"] = round(timed / k, 3)
            res["extrapolated"] = extrap
            res["seconds_48h"] = round(timed / k * args.hours, 1) if extrap else res["seconds"]
            rows = {h: v["row"] for h, v in per_hour.items() if v["row"]}
            if not args.skip_rollup and results.get("cold", {}).get("returncode") == 0:
                res["agreement"] = compare(rows, target)
        results["baseline"] = res

    for r in results.values():
        r.pop("_stdout", None)
        if r.get("label", "").startswith("(d)"):
            r["stdout_tail"] = ""
    print_report(results, info, args)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"machine": machine(), "dataset": info,
                                                   "results": results}, indent=1, default=str))
    failed = [k for k, v in results.items() if isinstance(v, dict) and v.get("returncode")]
    return 1 if failed else 0


def print_report(results: dict, info: dict, args: argparse.Namespace) -> None:
    m = machine()
    base = results.get("baseline") or {}
    base_s = base.get("seconds_48h")
    print()
    print(f"## agentkpi rollup benchmark — {args.sessions:,} sessions, {args.hours} h")
    print()
    when = "now" if info.get("generated_now") else "earlier"
    print(f"Dataset: {info['n_sessions']:,} session files, {info['n_events']:,} events, "
          f"{info['bytes'] / 1e9:.2f} GB (generated {when} in {info.get('seconds', 0):.1f} s, "
          f"seed {args.seed}).")
    print()
    print("| step | seconds | peak RSS MB | speedup vs baseline |")
    print("|---|---:|---:|---:|")
    for key in ("cold", "warm", "incremental"):
        r = results.get(key)
        if not r:
            continue
        ok = r["returncode"] == 0
        sp = f"{base_s / r['seconds']:.1f}x" if (base_s and ok and key != "incremental") else ""
        if key == "incremental" and ok and base.get("seconds_per_hour"):
            sp = f"{base['seconds_per_hour'] / r['seconds']:.1f}x (vs 1 baseline hour)"
        secs = f"{r['seconds']:.2f}" if ok else f"FAILED rc={r['returncode']}"
        print(f"| {r['label']} | {secs} | {r['peak_rss_mb']:.0f} | {sp} |")
    if base:
        if base.get("returncode") == 0:
            if base.get("extrapolated"):
                print(f"| (d) baseline, {args.hours} h — **extrapolated** from "
                      f"{base['hours_timed']} timed hours ({base['seconds_timed']:.1f} s, "
                      f"{base['seconds_per_hour']:.1f} s/h) | ~{base_s:.0f} | "
                      f"{base['peak_rss_mb']:.0f} | 1.0x |")
            else:
                print(f"| {base['label']} | {base_s:.2f} | {base['peak_rss_mb']:.0f} | 1.0x |")
        else:
            print(f"| {base['label']} | FAILED | | |")
    if "append" in results:
        a = results["append"]
        print()
        print(f"Incremental hour: {a['n_sessions']:,} new sessions ({a['n_events']:,} events) "
              "appended with append_hour.")
    if base.get("agreement"):
        g = base["agreement"]
        print(f"Baseline vs agentkpi CSVs on the timed hours: {g['equal']} cells equal, "
              f"{g['close']} equal within 1e-9, {g['differ']} differ.")
        for ex in g["examples"]:
            print(f"  - {ex}")
    print()
    print(f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['ram_gb']} GB RAM, Python {m['python']}, "
          f"DuckDB {m['duckdb']}, {m['platform']}")


if __name__ == "__main__":
    sys.exit(main())
