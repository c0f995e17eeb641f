"""The layout keeps its layers: modules below the web never load the web framework.

Each check runs in a fresh interpreter, so modules imported by other tests do not
hide an import: the alerts and the plots are imported *and run* on a real store.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.test_web_api import make_store

WEB = {"starlette", "uvicorn"}

RUN_BELOW_THE_WEB = textwrap.dedent("""
    import json, sys
    from datetime import datetime
    from pathlib import Path
    import matplotlib
    matplotlib.use("svg")  # the host application's choice: plotting must not change it
    import agentkpi.alerts, agentkpi.plots
    from agentkpi.views import open_read_only
    store, tmp = sys.argv[1], Path(sys.argv[2])
    rules = tmp / "alerts.toml"
    rules.write_text('[notify]\\nstdout = false\\n[[rule]]\\nname = "busy"\\n'
                     'metric = "sessions"\\nop = ">"\\nthreshold = 0\\nby = "tool"\\n')
    st = open_read_only(store)
    try:
        res = agentkpi.alerts.check(rules, st, datetime(2026, 5, 20, 3), dry_run=True)
        pngs = agentkpi.plots.plot_store(st, tmp / "plots")
    finally:
        st.close()
    print(json.dumps({"modules": sorted({m.split(".")[0] for m in sys.modules}),
                      "firing": len(res.firing), "pngs": len(pngs),
                      "backend": matplotlib.get_backend()}))
""")


def _modules(code: str, *args: str) -> dict[str, object]:
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    return dict(json.loads(r.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("module", ["agentkpi.alerts", "agentkpi.plots", "agentkpi.views",
                                    "agentkpi.reports", "agentkpi.queries", "agentkpi.times",
                                    "agentkpi.kpis.dimensions", "agentkpi.cli.alerts"])
def test_importing_a_module_below_the_web_loads_no_web_framework(module: str) -> None:
    code = (f"import json, sys; import {module}; "
            "print(json.dumps({'modules': sorted({m.split('.')[0] for m in sys.modules})}))")
    loaded = set(_modules(code)["modules"])  # type: ignore[arg-type]
    assert "agentkpi" in loaded and not loaded & WEB, sorted(loaded & WEB)


def test_alerts_and_plots_run_on_a_store_without_the_web_framework(tmp_path: Path) -> None:
    store = make_store(tmp_path, n=40, hours=6)
    out = _modules(RUN_BELOW_THE_WEB, str(store), str(tmp_path))
    assert out["pngs"] == 8 and out["firing"] >= 2  # ran for real: tools busy at 02:00
    assert out["backend"] == "svg"  # no matplotlib.use() inside the library
    assert (tmp_path / "plots" / "overview.png").stat().st_size > 5_000
    loaded = set(out["modules"])  # type: ignore[arg-type]
    assert "matplotlib" in loaded and "duckdb" in loaded  # the probe sees what was used
    assert not loaded & WEB, sorted(loaded & WEB)
