"""Cluster benchmark: the script-engine farm scan (bench/nse.py) with Nmap, with nsecluster
in one process, and with nsecluster on a cluster of worker processes over Redis, in the
same run.

    python -m bench.cluster [--threads 2000] [--runs 3] [--workers 2] [--concurrency 1]
                            [--broker redis://127.0.0.1:6379/13] [--json FILE]

The cluster's workers are started here, each with a data directory holding the benchmark
script, and stopped at the end; the broker's database is emptied before and after (use a
database of its own). Host groups are the tools' defaults. Reported per tool: median wall
time and threads per second, and the ratio to Nmap's wall time. Every run must give every
port the farm's banner.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.farm import Farm, raise_nofile_limit
from bench.nse import SCRIPT, banners, farm_spec, scan_args
from bench.portscan import REPO_ROOT, install_for_benchmark, machine_facts, run_measured


def start_workers(command: list[str], broker: str, datadir: Path, workers: int,
                  concurrency: int, logs: Path) -> list[subprocess.Popen]:
    started = []
    for index in range(workers):
        log = open(logs / f"worker{index}.log", "w")
        started.append(subprocess.Popen(
            [*command, "worker", "--broker", broker, "--concurrency", str(concurrency),
             "--datadir", str(datadir), "--hostname", f"bench{index}@%h"], stdout=log, stderr=subprocess.STDOUT, cwd=str(REPO_ROOT),
            start_new_session=True))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if all("ready." in (logs / f"worker{i}.log").read_text() for i in range(workers)):
            return started
        if any(p.poll() is not None for p in started):
            break
        time.sleep(0.2)
    stop_workers(started)
    raise RuntimeError("workers did not start: " + (logs / "worker0.log").read_text()[-2000:])


def stop_workers(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def flush(broker: str) -> None:
    import redis

    client = redis.Redis.from_url(broker)
    client.flushdb()
    client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__)
    parser.add_argument("--threads", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args(argv)
    raise_nofile_limit()
    nmap = shutil.which("nmap")
    if nmap is None:
        print("bench.cluster: nmap is not installed", file=sys.stderr)
        return 2
    ours = install_for_benchmark()
    spec = farm_spec(args.threads)
    base = scan_args(spec, args.threads, scripts=False, layout="grouped")
    tools = {
        "nmap": [nmap, "--unprivileged", *base, "--script", str(SCRIPT)],
        "embedded": [*ours, "scan", "--unprivileged", *base, "--script", str(SCRIPT)],
        "cluster": [*ours, "scan", "--unprivileged", *base, "--script", SCRIPT.stem,
                    "--broker", args.broker],
    }
    flush(args.broker)
    rows, failed = {}, False
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as scratch, Farm(spec) as farm:
        scratch_path = Path(scratch)
        (scratch_path / "datadir" / "scripts").mkdir(parents=True)
        shutil.copy(SCRIPT, scratch_path / "datadir" / "scripts" / SCRIPT.name)
        workers = start_workers(ours, args.broker, scratch_path / "datadir", args.workers,
                                args.concurrency, scratch_path)
        try:
            expected = {(ip, port) for ip, ports in farm.expected_open().items()
                        for port in ports}
            walls = {tool: [] for tool in tools}
            ok = dict.fromkeys(tools, 0)
            for _ in range(args.runs):
                for tool, command in tools.items():  # alternate: same conditions for all
                    run = run_measured(command, args.timeout, cwd=str(REPO_ROOT))
                    walls[tool].append(run.wall_s)
                    if run.returncode == 0:
                        found = banners(run.stdout)
                        if set(found) == expected and all(
                                re.fullmatch(r"farm \S+", t) for t in found.values()):
                            ok[tool] += 1
                    print(f"  {tool:<9} {run.wall_s:7.2f} s", file=sys.stderr, flush=True)
        finally:
            stop_workers(workers)
            flush(args.broker)
    for tool in tools:
        wall = statistics.median(walls[tool])
        rows[tool] = {"wall_s": wall, "threads_per_s": args.threads / wall,
                      "ok_runs": ok[tool]}
        failed |= ok[tool] != args.runs
    report = {"machine": machine_facts(), "threads": args.threads, "runs": args.runs,
              "workers": args.workers, "concurrency": args.concurrency, "tools": rows}
    print(f"nsecluster cluster benchmark: {args.threads} script threads (connect, read banner,"
          f" close), default host groups, {args.workers} workers x {args.concurrency} "
          f"processes, median of {args.runs}")
    for tool, row in rows.items():
        ratio = row["wall_s"] / rows["nmap"]["wall_s"]
        print(f"  {tool:<9} {row['wall_s']:7.2f} s  {row['threads_per_s']:8.0f} threads/s  "
              f"{ratio:5.2f}x nmap's wall time  ({row['ok_runs']}/{args.runs} runs complete)")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
