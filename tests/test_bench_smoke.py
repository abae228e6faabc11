"""Smoke run of `make bench`: `bench/run_all.py --quick` end to end (slow: several minutes).

It runs every per-area script with small sizes, then checks that the one results file, the plots and
the report exist and carry what the report promises (machine, noise, medians with min/max), and that
the committed numbers of a full run in bench/results/ were left as they were (it runs in a sandbox).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_run_all_quick_writes_results_plots_and_report(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("a smoke run of every benchmark takes many minutes: run with -m slow (make test-long)")
    before = {p.name: p.read_bytes() for p in RESULTS.glob("*.json")} if RESULTS.exists() else {}
    out = tmp_path / "bench"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run_all.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=3600,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    full = json.loads((out / "results.json").read_text())
    assert full["quick"] is True
    assert full["machine"]["cpus"] and len(full["noise"]["load_before"]) == 3
    steps = full["steps"]
    for name in ("floors", "peers", "scale"):
        assert steps[name]["status"] == "ok", (name, steps[name])
    scale = full["results"]["scale"]["sizes"]
    assert [row["memories"] for row in scale] == [200, 500]
    for row in scale:
        for key in ("remember", "recall_warm_in_process", "recall_cold_process", "sync_noop", "rebuild"):
            stats = row[key]
            assert stats["min_ms"] <= stats["median_ms"] <= stats["max_ms"], (key, stats)
        assert row["disk"]["git_bytes"] > 0 and row["daemon_rss_bytes"] > 0
    peers = full["results"]["peers"]
    assert peers["soul"]["keyword"]["hit@5"] > 0 and "server-memory" in peers
    for png in ("scale_latency.png", "sync_latency.png", "peers.png"):
        assert (out / "img" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "benchmarks.md").read_text()
    assert "Load average" in report and "server-memory" in report and "img/scale_latency.png" in report
    after = {p.name: p.read_bytes() for p in RESULTS.glob("*.json")}
    # A quick run works in a sandbox: the full run's numbers stay as they were.
    assert {n: after.get(n) for n in before if n[:-5] in steps} == {n: before[n] for n in before if n[:-5] in steps}
