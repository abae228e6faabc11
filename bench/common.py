"""Shared helpers for benchmarks: timing whole processes, medians, tables, JSON results."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
MODEL_DIR = (ROOT.parent / "shared" / "models" / "all-MiniLM-L6-v2-onnx").resolve()
SOUL = str(Path(sys.executable).with_name("soul"))


def machine() -> dict[str, Any]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg_1m": round(load[0], 2),
    }


def summarize(samples_s: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in samples_s]
    return {
        "median_ms": round(statistics.median(ms), 3),
        "min_ms": round(min(ms), 3),
        "max_ms": round(max(ms), 3),
        "n": len(ms),
    }


def time_call(fn: Callable[[], object], repeat: int) -> dict[str, float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return summarize(samples)


def time_process(
    cmd: list[str], repeat: int, env: dict[str, str] | None = None, cwd: Path | None = None
) -> dict[str, float]:
    full_env = {**os.environ, **(env or {})}

    def once() -> None:
        subprocess.run(cmd, check=True, capture_output=True, env=full_env, cwd=cwd)

    return time_call(once, repeat)


def print_table(title: str, rows: list[tuple[str, dict[str, float], str]]) -> None:
    print(f"\n{title}")
    print(f"{'measure':<48} {'median ms':>10} {'min':>9} {'max':>9}  target")
    for name, stats, target in rows:
        print(f"{name:<48} {stats['median_ms']:>10.2f} {stats['min_ms']:>9.2f} {stats['max_ms']:>9.2f}  {target}")


def write_results(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {
        "benchmark": name,
        "machine": machine(),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **data,
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path
