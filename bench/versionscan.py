"""Version-detection benchmark: the same `-sV` scan with nmap and with nsecluster.

    python -m bench.versionscan [--runs 3] [--hosts 4] [--intensity 7] [--silent]
                                [--banners N] [--tools nmap,nsecluster] [--json out.json]

Starts the real-service farm of tests/version_peers.py (OpenSSH, Redis, memcached, http.server
in clear and in TLS, FTP and SMTP greeters, a tcpwrapped port, an unknown service; with
``--silent`` also a port that never answers and TLS that never says a word, which cost both
tools every probe's full wait, about 150 s at intensity 7)
on ``--hosts`` loopback addresses, then runs ``-sT -Pn -n -sV`` over all of them with each tool
alternately (nmap, nsecluster, nmap, ...). Prints the median wall time and peak RSS of each
tool and their ratio, and checks that every run reports the same services (name, product,
version, extrainfo, tunnel) as nmap's first successful run (and says so when no nmap run
succeeded: then nothing is compared). Exits 1 when they differ or a run fails.

Version detection is mostly waiting for services (every probe that gets no answer waits its
``totalwaitms``), so the tools should be close; the ratio shows our CPU overhead on top.
This is a benchmark, not a timed test: nothing here asserts on speed.
"""
from __future__ import annotations

import argparse
import json
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

from bench.farm import REPO_ROOT, Farm, one_host_many_ports
from bench.portscan import find_nsecluster, machine_facts, run_measured, tool_version

PEERS = REPO_ROOT / "tests" / "version_peers.py"
BASE_ADDRESS = "127.78.0."
FIELDS = ("name", "product", "version", "extrainfo", "tunnel", "method")
# Ports whose every probe waits out its time (or a second): ~150 s a scan at intensity 7.
SLOW_ROLES = ("silent", "tls-quiet")


def services(xml_text: str) -> dict[tuple[str, int], tuple]:
    start = xml_text.find("<nmaprun")
    root = ET.fromstring(xml_text[xml_text.rfind("<?xml", 0, start) if start > 0 else 0:])
    found = {}
    for host in root.iter("host"):
        address = host.find("address").get("addr")
        for port in host.iter("port"):
            service = port.find("service")
            found[(address, int(port.get("portid")))] = tuple(
                None if service is None else service.get(f) for f in FIELDS)
    return found


class Farms:
    """One tests/version_peers.py process per address, each serving the whole set."""

    def __init__(self, addresses: list[str], silent: bool):
        self.addresses, self.silent = addresses, silent
        self.processes: list[subprocess.Popen] = []
        self.ports: dict[str, int] = {}
        self.directory = Path(tempfile.mkdtemp(prefix="bench-versionscan-"))

    def __enter__(self) -> "Farms":
        try:
            for address in self.addresses:
                process = subprocess.Popen(
                    [sys.executable, str(PEERS), address, str(self.directory / address)],
                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                    start_new_session=True)
                self.processes.append(process)
            for process in self.processes:
                line = process.stdout.readline()  # the ports, once every service answers
                if not line:
                    raise RuntimeError("a service farm did not start")
                self.ports = json.loads(line)
        except BaseException:
            self.__exit__()
            raise
        if not self.silent:
            for role in SLOW_ROLES:
                self.ports.pop(role, None)
        return self

    def __exit__(self, *exc) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        shutil.rmtree(self.directory, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.versionscan", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="runs per tool (default %(default)s)")
    ap.add_argument("--hosts", type=int, default=4, help="farm addresses (default %(default)s)")
    ap.add_argument("--intensity", type=int, default=7, help="--version-intensity")
    ap.add_argument("--silent", action="store_true",
                    help="include the ports that never answer (slow for both tools)")
    ap.add_argument("--banners", type=int, metavar="N",
                    help="instead: one host of bench.farm with N ports greeting with a banner "
                         "no probe matches (every probe's answer is matched and fingerprinted)")
    ap.add_argument("--tools", default="nmap,nsecluster")
    ap.add_argument("--nmap", default=shutil.which("nmap") or "/usr/bin/nmap")
    ap.add_argument("--json", help="write the figures here too")
    args = ap.parse_args(argv)
    if not 1 <= args.hosts <= 250:
        ap.error("--hosts must be 1-250")
    tools = [t for t in args.tools.split(",") if t]
    programs = {"nmap": [args.nmap], "nsecluster": find_nsecluster()}
    commands = {"nmap": [args.nmap, "--unprivileged"],
                "nsecluster": programs["nsecluster"] + ["scan", "--unprivileged"]}
    addresses = [f"{BASE_ADDRESS}{i}" for i in range(1, args.hosts + 1)]
    runs: dict[str, list] = {tool: [] for tool in tools}
    reference = None  # the services of nmap's first successful run
    found_by_run = []  # (tool, run index, services) of each successful run
    failures = []
    if args.banners:
        addresses = ["127.79.1.1"]
        farm = Farm(one_host_many_ports(ip=addresses[0], open_count=args.banners, seed=1))
    else:
        farm = Farms(addresses, args.silent)
    with farm:
        open_ports = (farm.expected_open()[addresses[0]] if args.banners
                      else farm.ports.values())
        ports = ",".join(str(p) for p in sorted(open_ports))
        scan_args = ["-sT", "-Pn", "-n", "-sV", "--version-intensity", str(args.intensity),
                     "-p", ports, "-oX", "-", *addresses]
        for index in range(args.runs):
            for tool in tools:
                run = run_measured(commands[tool] + scan_args, timeout=900, cwd="/tmp")
                run.tool = tool
                runs[tool].append(run)
                if run.returncode != 0:
                    failures.append(f"{tool} run {index + 1}: exit {run.returncode}: "
                                    f"{run.stderr.strip()[-300:]}")
                    continue
                found = services(run.stdout)
                found_by_run.append((tool, index, found))
                if reference is None and tool == "nmap":
                    reference = found  # the reference: nmap's first successful run
                print(f"{tool:<10} run {index + 1}: {run.wall_s:7.2f} s, "
                      f"{run.maxrss_kb / 1024:6.1f} MB", flush=True)
    # Every successful run, nsecluster's before nmap's first success included, against
    # the services nmap's first successful run found.
    for tool, index, found in found_by_run:
        if reference is None or found is reference:
            continue
        if found != reference:
            differ = sorted(k for k in set(found) | set(reference)
                            if found.get(k) != reference.get(k))[:5]
            failures.append(f"{tool} run {index + 1}: services differ from nmap's at {differ}: "
                            f"{[(found.get(k), reference.get(k)) for k in differ]}")
    summary = {tool: {"median_wall_s": statistics.median(r.wall_s for r in rs),
                      "median_rss_mb": statistics.median(r.maxrss_kb for r in rs) / 1024,
                      "version": tool_version(programs[tool])}
               for tool, rs in runs.items() if rs}
    ratio = None
    if "nmap" in summary and "nsecluster" in summary:
        ratio = summary["nsecluster"]["median_wall_s"] / summary["nmap"]["median_wall_s"]
    count = len(addresses) * len(list(open_ports))
    print(f"\n-sV on {len(addresses)} hosts, {count} ports, intensity "
          f"{args.intensity}, {args.runs} runs each")
    for tool, figures in summary.items():
        print(f"  {tool:<10} median wall {figures['median_wall_s']:.2f} s, peak RSS "
              f"{figures['median_rss_mb']:.1f} MB ({figures['version']})")
    if ratio is not None:
        print(f"  ratio nsecluster/nmap: wall {ratio:.2f}x")
    if reference is None:
        print("  services: not compared: no successful nmap run to take the reference from")
    else:
        print("  services: " + ("identical to nmap's in every run" if not failures
                                else "DIFFERENT"))
    for failure in failures:
        print(f"  ! {failure}")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine_facts(), "summary": summary,
                                               "ratio_wall": ratio, "failures": failures,
                                               "services_compared": reference is not None,
                                               "hosts": args.hosts, "intensity": args.intensity,
                                               "ports": count}, indent=2))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
