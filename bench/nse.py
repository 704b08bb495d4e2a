"""Script-engine benchmark: N concurrent script threads, each connecting to a farm port,
reading its banner and closing, with nsecluster and with Nmap in the same run.

    python -m bench.nse [--threads 1000,10000] [--runs 3] [--json FILE]

Both tools run the same script file (bench/scripts/bench-banner.nse) over the same farm
(every port open, one thread per port), with the engine's concurrency and socket limits
raised to N (--min-parallelism N --max-parallelism N) and with -Pn so the comparison is
about the script phase. Two layouts per N:

* ``concurrent``: every host in one host group (--min-hostgroup), so all N threads exist
  and wait at once: the issue's measure, and the one the memory figure comes from;
* ``grouped``: the tools' default host groups (about 100 hosts, 1,000 threads at a time).

Reported per layout, tool and N: median wall time, script threads per second of wall time,
peak RSS, and for nsecluster the memory per 1,000 concurrent threads above its own baseline
(the same scan without scripts). Every run must give every port the farm's banner, for both
tools.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from bench.farm import Farm, FarmSpec, many_hosts_addresses, raise_nofile_limit
from bench.portscan import (
    REPO_ROOT,
    install_for_benchmark,
    machine_facts,
    run_measured,
    tool_version,
)

SCRIPT = Path(__file__).resolve().parent / "scripts" / "bench-banner.nse"
BASE = "127.8.0.0"
PORTS_PER_HOST = 10


def farm_spec(threads: int) -> FarmSpec:
    """``threads`` listeners: hosts of 10 open ports each (one script thread per port)."""
    hosts = many_hosts_addresses((threads + PORTS_PER_HOST - 1) // PORTS_PER_HOST, BASE)
    ports = list(range(20001, 20001 + PORTS_PER_HOST))
    listeners = [(ip, port) for ip in hosts for port in ports][:threads]
    return FarmSpec(listeners=tuple(listeners), hosts=tuple(hosts))


LAYOUTS = ("concurrent", "grouped")


def scan_args(spec: FarmSpec, threads: int, scripts: bool,
              layout: str = "concurrent") -> list[str]:
    ports = sorted({port for _, port in spec.listeners})
    args = ["-sT", "-n", "-Pn", "-p", ",".join(map(str, ports)), *spec.hosts,
            "--min-parallelism", str(threads), "--max-parallelism", str(threads),
            "-oX", "-"]
    if layout == "concurrent":
        args += ["--min-hostgroup", str(len(spec.hosts))]
    if scripts:
        args += ["--script", str(SCRIPT)]
    return args


def banners(xml_text: str) -> dict[tuple[str, int], str]:
    root = ET.fromstring(xml_text)
    found = {}
    for host in root.iter("host"):
        address = host.find("address").get("addr")
        for port in host.iter("port"):
            script = port.find("script")
            if script is not None:
                found[(address, int(port.get("portid")))] = script.get("output")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.nse", description=__doc__)
    parser.add_argument("--threads", default="1000,10000")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--layouts", default=",".join(LAYOUTS),
                        help="concurrent (one host group), grouped (default groups)")
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args(argv)
    sizes = [int(n) for n in args.threads.split(",")]
    layouts = args.layouts.split(",")
    if not set(layouts) <= set(LAYOUTS):
        parser.error(f"--layouts: choose from {', '.join(LAYOUTS)}")
    raise_nofile_limit()
    nmap = shutil.which("nmap")
    if nmap is None:
        print("bench.nse: nmap is not installed", file=sys.stderr)
        return 2
    commands = {"nmap": [nmap, "--unprivileged"], "nsecluster": install_for_benchmark()}
    report = {"machine": machine_facts(),
              "tools": {t: tool_version(c[:1]) for t, c in commands.items()}, "layouts": {}}
    failed = False
    for layout, threads in ((layout, threads) for threads in sizes for layout in layouts):
        spec = farm_spec(threads)
        with Farm(spec) as farm:
            expected = {(ip, port) for ip, ports in farm.expected_open().items()
                        for port in ports}
            rows = {}
            for tool, command in [*commands.items(), ("baseline", commands["nsecluster"])]:
                walls, peaks, ok = [], [], 0
                for _ in range(args.runs):
                    ours = ["scan", "--unprivileged"] if tool != "nmap" else []  # same flags
                    run = run_measured(command + ours
                                       + scan_args(spec, threads, tool != "baseline",
                                                   layout),
                                       args.timeout, cwd=str(REPO_ROOT))
                    walls.append(run.wall_s)
                    peaks.append(run.maxrss_kb / 1024)
                    if run.returncode == 0 and tool != "baseline":
                        found = banners(run.stdout)
                        if set(found) == expected and all(
                                re.fullmatch(r"farm \S+", text) for text in found.values()):
                            ok += 1
                    print(f"  {layout} N={threads} {tool:<10} {run.wall_s:7.2f} s "
                          f"{run.maxrss_kb / 1024:7.1f} MB", file=sys.stderr, flush=True)
                rows[tool] = {"wall_s": statistics.median(walls),
                              "peak_mb": statistics.median(peaks), "ok_runs": ok}
            for tool in ("nmap", "nsecluster"):
                rows[tool]["threads_per_s"] = threads / rows[tool]["wall_s"]
                failed |= rows[tool]["ok_runs"] != args.runs
            extra = rows["nsecluster"]["peak_mb"] - rows["baseline"]["peak_mb"]
            rows["nsecluster"]["mb_per_1000_threads"] = extra * 1000 / threads
            report["layouts"].setdefault(layout, {})[threads] = rows
    print_report(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 1 if failed else 0


def print_report(report: dict) -> None:
    print("nsecluster script-engine benchmark: connect, read banner, close per thread")
    print(f"machine: {report['machine'].get('cpus')} CPUs; tools: {report['tools']}")
    print(f"{'layout':<10} {'N':>6} {'tool':<11} {'wall s':>8} {'threads/s':>10} "
          f"{'peak MB':>8} {'MB/1000 thr':>11} {'all banners':>11}")
    for layout, sizes in report["layouts"].items():
        for threads, rows in sizes.items():
            for tool in ("nmap", "nsecluster", "baseline"):
                row = rows[tool]
                per = row.get("mb_per_1000_threads")
                print(f"{layout:<10} {threads:>6} {tool:<11} {row['wall_s']:8.2f} "
                      f"{row.get('threads_per_s', 0):10.0f} {row['peak_mb']:8.1f} "
                      f"{per if per is not None else float('nan'):11.1f} "
                      f"{row['ok_runs'] if tool != 'baseline' else '-':>11}")
            ratio = rows["nsecluster"]["threads_per_s"] / rows["nmap"]["threads_per_s"]
            print(f"{layout:<10} {threads:>6} throughput nsecluster/nmap: {ratio:.2f}x  "
                  f"(>= 1: at least Nmap's)")


if __name__ == "__main__":
    sys.exit(main())
