"""Screenshots of every dashboard page for docs/img/ (Debian chromium via Playwright).

    python docs/screenshots.py [STORE]

Without STORE it generates the quickstart's demo data (300 sessions over 48 hours) and
ingests it, with the real Codex rollouts of tests/data and the real Claude Code transcripts
of ../shared/data/realworld/claude-code beside it, into a temporary store. The session
page shown is the real Claude Code session of tool_heavy.jsonl.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "img"
CLAUDE = ROOT.parent / "shared" / "data" / "realworld" / "claude-code"
CLAUDE_SESSION = "d6e0bada-1959-4eec-a9d2-0bfade768d8f"  # tool_heavy.jsonl
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def demo_store() -> str:
    from agentkpi.generate import generate_sessions
    from agentkpi.ingestion import ingest
    from agentkpi.store import DuckDBStore

    tmp = Path(tempfile.mkdtemp(prefix="agentkpi-shots-"))
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0, tzinfo=None)
    generate_sessions(str(tmp / "data"), 300, start - timedelta(hours=50), hours=48, seed=7,
                      workers=1, not_after=start)  # every session over by now
    with DuckDBStore(tmp / "store.duckdb") as st:
        ingest(str(tmp / "data"), st, workers=1)
        ingest(str(ROOT / "tests" / "data" / "realworld" / "codex"), st, fmt="codex",
               workers=1)
        ingest(str(CLAUDE), st, fmt="claude-code", workers=1)
    # two rules next to the store (the dashboard finds alerts.toml there), checked once
    (tmp / "alerts.toml").write_text(
        '[notify]\nstdout = false\nfile = "alerts.jsonl"\n\n'
        '[[rule]]\nname = "tool-success-rate"\nmetric = "tool_success_rate"\nop = "<"\n'
        'threshold = 0.9\nby = "tool"\ngrain = "day"\nseverity = "critical"\n\n'
        '[[rule]]\nname = "cost-per-hour"\nmetric = "cost_usd"\nop = ">"\n'
        'threshold = 2.0\ngrain = "hour"\nseverity = "warning"\n')
    subprocess.run([sys.executable, "-m", "agentkpi", "alerts", "check", "--rules",
                    str(tmp / "alerts.toml"), "--store", str(tmp / "store.duckdb")],
                   check=False, capture_output=True)
    return str(tmp / "store.duckdb")


def main() -> None:
    import uvicorn
    from playwright.sync_api import sync_playwright

    from agentkpi.web import create_app

    store = sys.argv[1] if len(sys.argv) > 1 else demo_store()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(create_app(store, poll=60), host="127.0.0.1",
                                        port=port, log_level="warning"))
    threading.Thread(target=srv.run, daemon=True).start()
    while not srv.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = b.new_page(viewport={"width": 1300, "height": 1000})
        shots = [("overview", "/"), ("models", "/breakdown/model"), ("tools", "/breakdown/tool"),
                 ("costs", "/costs"), ("sources", "/sources"), ("alerts", "/alerts"),
                 ("session", f"/session/{CLAUDE_SESSION}")]
        for name, path in shots:
            page.goto(url + path)
            page.wait_for_function("document.body.dataset.loaded === '1'")
            page.screenshot(path=str(OUT / f"{name}.png"), full_page=True)
        b.close()
    srv.should_exit = True
    print(f"wrote {len(shots)} screenshots to {OUT}")


if __name__ == "__main__":
    main()
