"""`make bench`: run every benchmark in one go on one machine, then print one table and write
bench/results.json (everything, with machine info and noise), docs/img/*.png and docs/benchmarks.md.

Each per-area script runs as its own process with a time limit (its JSON lands in bench/results/);
a script that fails or times out is recorded as such and its previous JSON, if any, is reported as
stale rather than silently mixed in. Load average is sampled before and after every step: on a shared
machine it is the honest measure of how noisy the numbers are.

    python bench/run_all.py            # the full run (aim: < 30 min on 2 cores)
    python bench/run_all.py --quick    # small sizes, few repeats: a smoke run; writes to a temp dir
    python bench/run_all.py --only scale,peers --report-only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE))

# name -> (script, full args, quick args, time limit in seconds for the full run)
STEPS: dict[str, tuple[str, list[str], list[str], int]] = {
    "floors": ("bench_floors.py", ["--repeat", "10"], ["--repeat", "3", "--sizes", "1000,10000"], 300),
    "cli": ("bench_cli.py", ["--repeat", "8"], ["--repeat", "3"], 240),
    "recall": ("bench_recall.py", ["--sizes", "300", "--runs", "3"], ["--sizes", "100", "--runs", "1"], 420),
    "sync": (
        "bench_sync.py",
        ["--repeat", "5", "--latency-samples", "3"],
        ["--repeat", "2", "--latency-samples", "1"],
        360,
    ),
    "mcp": (
        "bench_mcp.py",
        ["--memories", "300", "--rounds", "30", "--spawns", "3", "--broadcasts", "3"],
        ["--memories", "50", "--rounds", "5", "--spawns", "1", "--broadcasts", "1", "--lexical"],
        360,
    ),
    "import": ("bench_import.py", ["--n", "10000", "--runs", "1"], ["--n", "300", "--runs", "1"], 240),
    "purge": ("bench_purge.py", ["--sizes", "1000,5000", "--repeat", "3"], ["--sizes", "200", "--repeat", "1"], 600),
    "peers": ("bench_peers.py", ["--repeat", "2"], ["--quick"], 600),
    "scale": (
        "bench_scale.py",
        ["--sizes", "1000,10000,100000", "--repeat", "4", "--cold-runs", "2"],
        ["--quick"],
        1500,
    ),
}


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict[str, Any]:
    cpu = "?"
    mem_kb = 0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass

    def version(cmd: list[str]) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return "missing"

    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "git": version(["git", "--version"]),
        "node": version(["node", "--version"]),
    }


def run_step(name: str, quick: bool, logs: Path, bench: Path = HERE) -> dict[str, Any]:
    script, full, small, limit = STEPS[name]
    path = bench / script
    results_dir = bench / "results"
    record: dict[str, Any] = {"script": f"bench/{script}", "load_before": loadavg()}
    if not path.exists():
        return {**record, "status": "missing", "load_after": loadavg()}
    args = small if quick else full
    record["args"] = args
    before = (results_dir / f"{name}.json").stat().st_mtime if (results_dir / f"{name}.json").exists() else 0.0
    start = time.perf_counter()
    with (logs / f"{name}.log").open("w") as log:
        # Own session: on timeout the whole group goes (a script may have started daemons or servers).
        proc = subprocess.Popen(
            [sys.executable, str(path), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=bench.parent,
            start_new_session=True,
        )
        try:
            code = proc.wait(timeout=limit if not quick else 600)
            record["status"] = "ok" if code == 0 else f"failed (exit {code})"
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            record["status"] = f"timed out after {limit if not quick else 600} s"
    record["seconds"] = round(time.perf_counter() - start, 1)
    record["load_after"] = loadavg()
    out = results_dir / f"{name}.json"
    if out.exists() and out.stat().st_mtime > before:
        record["fresh"] = True
    elif out.exists():
        record["fresh"] = False  # an older run's numbers: the report marks them stale
    return record


def collect(steps: dict[str, dict[str, Any]], results_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for name in STEPS:
        path = results_dir / f"{name}.json"
        if path.exists():
            try:
                data[name] = json.loads(path.read_text())
            except json.JSONDecodeError:
                data[name] = {"error": "unreadable JSON"}
    return data


def summary_rows(res: dict[str, Any]) -> list[tuple[str, str]]:
    """The one table: a few headline figures per area, as 'median (min-max)'."""

    def fmt(s: dict[str, Any] | None) -> str:
        if not s or "median_ms" not in s:
            return "n/a"
        return f"{s['median_ms']:.1f} ms ({s['min_ms']:.1f}-{s['max_ms']:.1f})"

    rows: list[tuple[str, str]] = []
    fl = res.get("floors", {}).get("results", {})
    for key in ("python -c pass", "git add + commit one line", "fastembed query embedding (model loaded)"):
        rows.append((f"floor: {key}", fmt(fl.get(key))))
    cli = res.get("cli", {}).get("results", {})
    rows.append(("soul remember (process)", fmt(cli.get("soul remember (with local commit)"))))
    rows.append(("soul get (process)", fmt(cli.get("soul get"))))
    for row in res.get("scale", {}).get("sizes", []):
        n = f"{row['memories']:,}"
        rows.append((f"[{n}] recall warm, in process", fmt(row.get("recall_warm_in_process"))))
        rows.append((f"[{n}] numpy floor, same vectors", fmt(row.get("numpy_floor_same_vectors"))))
        rows.append((f"[{n}] soul recall process, daemon warm", fmt(row.get("recall_warm_process"))))
        rows.append((f"[{n}] soul recall process, cold", fmt(row.get("recall_cold_process"))))
        if row.get("recall_cold_catch_up"):
            rows.append((f"[{n}] soul recall process, cold + catch-up", fmt(row.get("recall_cold_catch_up"))))
        rows.append((f"[{n}] soul sync, nothing to do", fmt(row.get("sync_noop"))))
        rows.append((f"[{n}] A remember -> B has it (two syncs)", fmt(row.get("a_to_b", {}).get("total"))))
    peers = res.get("peers", {})
    for name in ("soul", "mcp-memory-service", "server-memory", "server-memory per word"):
        if name in peers:
            p = peers[name]
            rows.append((f"peer {name}: search", fmt(p.get("search"))))
            rows.append(
                (
                    f"peer {name}: paraphrase / keyword hit@5",
                    f"{p['paraphrase']['hit@5']:.2f} / {p['keyword']['hit@5']:.2f}",
                )
            )
    return rows


def print_summary(rows: list[tuple[str, str]], meta: dict[str, Any]) -> None:
    print(
        f"\nsoul benchmarks on {meta['machine']['cpu']} ({meta['machine']['cpus']} cpus),"
        f" load {meta['noise']['load_before']} -> {meta['noise']['load_after']}"
    )
    width = max(len(r[0]) for r in rows) if rows else 10
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    for name, step in meta["steps"].items():
        if step.get("status") != "ok":
            print(f"  ! {name}: {step.get('status')}")


def sandbox(out: Path) -> Path:
    """A copy of bench/ beside links to tests/ and shared/, so a quick run's scripts write their JSON
    into `out` and never over the full run's numbers in bench/results/ (their paths are relative to
    their own file)."""
    work = out / "ws" / ROOT.name
    (work / "bench" / "results").mkdir(parents=True, exist_ok=True)
    for script in HERE.glob("*.py"):
        shutil.copy(script, work / "bench" / script.name)
    links = {
        work / "tests": ROOT / "tests",
        work.parent / "shared": ROOT.parent / "shared",
        work / "bench" / ".peers": HERE / ".peers",
    }
    for link, target in links.items():
        if target.exists() and not link.exists():
            link.symlink_to(target, target_is_directory=True)
    return work / "bench"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes and few repeats (a smoke run)")
    parser.add_argument("--only", default="", help="comma-separated steps to run: " + ",".join(STEPS))
    parser.add_argument("--report-only", action="store_true", help="run nothing; rebuild the report from JSON")
    parser.add_argument("--out", default="", help="where results.json, plots and the report go (quick: a temp dir)")
    args = parser.parse_args()
    quick_out = Path(args.out or tempfile.mkdtemp(prefix="soul-bench-quick-")) if args.quick else None
    out_json = (quick_out or HERE) / "results.json"
    img_dir = (quick_out / "img") if quick_out else ROOT / "docs" / "img"
    report = (quick_out / "benchmarks.md") if quick_out else ROOT / "docs" / "benchmarks.md"
    chosen = [s for s in (args.only.split(",") if args.only else STEPS) if s]
    RESULTS.mkdir(parents=True, exist_ok=True)
    bench = sandbox(quick_out) if quick_out else HERE
    logs = (quick_out / "logs") if quick_out else HERE / ".logs"
    logs.mkdir(parents=True, exist_ok=True)
    started = time.time()
    load_before = loadavg()
    steps: dict[str, dict[str, Any]] = {}
    previous = json.loads(out_json.read_text()) if out_json.exists() and (args.report_only or args.only) else {}
    if not args.report_only:
        for name in chosen:
            print(f"[{time.strftime('%H:%M:%S')}] {name} ...", flush=True)
            steps[name] = run_step(name, args.quick, logs, bench)
            print(
                f"    {steps[name]['status']} in {steps[name].get('seconds', 0)} s,"
                f" load {steps[name]['load_after'][0]}",
                flush=True,
            )
    steps = {**previous.get("steps", {}), **steps}
    results = collect(steps, bench / "results")
    meta = {
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "wall_s": round(time.time() - started, 1) if not args.report_only else previous.get("wall_s"),
        "quick": args.quick,
        "machine": machine(),
        "noise": {
            "load_before": load_before,
            "load_after": loadavg(),
            "note": "1/5/15-minute load averages; above the cpu count means work waited for a cpu",
        },
        "steps": steps,
    }
    if args.report_only and previous:
        meta.update({k: previous[k] for k in ("at", "machine", "noise", "wall_s", "rerun") if k in previous})
    elif args.only and previous:
        # Some steps run again on top of an earlier full run: one report, spanning both runs.
        meta["at"] = previous.get("at", meta["at"])
        meta["noise"]["load_before"] = previous.get("noise", {}).get("load_before", load_before)
        meta["wall_s"] = round((previous.get("wall_s") or 0) + (meta["wall_s"] or 0), 1)
        meta["rerun"] = [*previous.get("rerun", []), {"steps": chosen, "at": time.strftime("%H:%M:%SZ", time.gmtime())}]
    full = {**meta, "results": results}
    out_json.write_text(json.dumps(full, indent=2) + "\n")
    import report as report_mod

    report_mod.write(full, img_dir, report)
    print_summary(summary_rows(results), meta)
    print(f"\nwritten {out_json}, {report} and plots in {img_dir}")
    if quick_out and not args.out:
        print(f"(quick run: nothing under bench/ or docs/ was changed; remove {quick_out} when done)")


if __name__ == "__main__":
    main()
