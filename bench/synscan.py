"""SYN scan benchmark: all 65,535 ports of one host in a network namespace, with
`nmap -sS` and `nsecluster scan -sS` in the same run, alternating (root needed).

    sudo python -m bench.synscan [--runs 7] [--json FILE]

Two namespaces made here are joined by a veth pair; the target (192.0.2.2) listens on a few
ports and resets the rest. Both tools must find exactly those open ports in every run.
Reported: median wall time per tool and the ratio (goal: at most 2x Nmap's).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

from bench.portscan import REPO_ROOT, install_for_benchmark, machine_facts, run_measured

OPEN_PORTS = (22, 80, 443, 3306, 8080, 31337, 65535)
LISTEN = ("import socket, sys, time\n"
          "held = []\n"
          "for port in map(int, sys.argv[1:]):\n"
          "    s = socket.socket(); s.bind(('192.0.2.2', port)); s.listen(); held.append(s)\n"
          "print('ready', flush=True); time.sleep(3600)")


def open_ports(xml_text: str) -> list[int]:
    return sorted(int(p.get("portid")) for p in ET.fromstring(xml_text).iter("port")
                  if p.find("state").get("state") == "open")


def make_namespaces() -> tuple[str, str]:
    """Two namespaces joined by a veth pair; when a step fails, the ones made are deleted."""
    tag = uuid.uuid4().hex[:8]
    near, far = f"bench-a-{tag}", f"bench-b-{tag}"
    try:
        for name in (near, far):
            subprocess.run(["ip", "netns", "add", name], check=True)
        subprocess.run(["ip", "link", "add", "vA", "netns", near, "type", "veth", "peer",
                        "name", "vB", "netns", far], check=True)
        for name, device, address in ((near, "vA", "192.0.2.1/24"),
                                      (far, "vB", "192.0.2.2/24")):
            for command in (["ip", "link", "set", "lo", "up"],
                            ["ip", "addr", "add", address, "dev", device],
                            ["ip", "link", "set", device, "up"]):
                subprocess.run(["ip", "netns", "exec", name, *command], check=True)
    except BaseException:
        delete_namespaces(near, far)
        raise
    return near, far


def delete_namespaces(*names: str) -> None:
    """Delete these namespaces; one already gone (or never made) is no error."""
    for name in names:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.synscan", description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args(argv)
    nmap = shutil.which("nmap")
    if os.geteuid() != 0 or nmap is None:
        print("bench.synscan: needs root and nmap", file=sys.stderr)
        return 2
    ours = install_for_benchmark()
    near, far = make_namespaces()
    try:  # run_alternating deletes them too; this covers a failure before it starts
        server = subprocess.Popen(["ip", "netns", "exec", far, sys.executable, "-c", LISTEN,
                                   *map(str, OPEN_PORTS)], stdout=subprocess.PIPE, text=True)
        scan = ["-n", "-Pn", "-sS", "-p-", "192.0.2.2", "-oX", "-"]
        tools = {"nmap": [nmap, *scan], "nsecluster": [*ours, "scan", *scan]}
        walls, ok = run_alternating(tools, near, far, server, args.runs, args.timeout,
                                    lambda out: (open_ports(out) == list(OPEN_PORTS), ""))
    finally:
        delete_namespaces(near, far)
    return report(f"SYN scan of 65,535 ports, one host in a namespace, median of {args.runs}:",
                  walls, ok, args.runs, "exactly the open ports", " (goal: at most 2x)",
                  args.json)


def run_alternating(tools: dict, near: str, far: str, server: subprocess.Popen, runs: int,
                    timeout: float, check) -> tuple[dict, dict]:
    """Each tool's command in the near namespace, in turn, ``runs`` times, once ``server``
    (in the far one) says ready; ``check(stdout) -> (right, shown)`` judges a run. Returns
    (wall times, right runs) per tool; the server and both namespaces are gone after."""
    walls = {tool: [] for tool in tools}
    ok = dict.fromkeys(tools, 0)
    try:
        if server.stdout.readline().strip() != "ready":
            raise RuntimeError("the target did not start")
        for _ in range(runs):
            for tool, command in tools.items():
                run = run_measured(["ip", "netns", "exec", near, *command], timeout,
                                   cwd=str(REPO_ROOT))
                walls[tool].append(run.wall_s)
                right, shown = check(run.stdout) if run.returncode == 0 else (False, "failed")
                ok[tool] += right
                print(f"  {tool:<10} {run.wall_s:6.2f} s  {shown}", file=sys.stderr,
                      flush=True)
    finally:
        server.kill()
        server.wait(timeout=10)
        delete_namespaces(near, far)
    return walls, ok


def report(title: str, walls: dict, ok: dict, runs: int, correct: str, goal: str,
           json_path: str | None) -> int:
    """Medians per tool, the ratio, and the JSON record of an alternating benchmark; exit
    status 0 only when every run of both tools found what it should (``correct``)."""
    rows = {tool: {"wall_s": statistics.median(walls[tool]), "ok_runs": ok[tool]}
            for tool in walls}
    ratio = rows["nsecluster"]["wall_s"] / rows["nmap"]["wall_s"]
    print(title)
    for tool, row in rows.items():
        print(f"  {tool:<10} {row['wall_s']:6.2f} s  ({row['ok_runs']}/{runs} runs found "
              f"{correct})")
    print(f"  nsecluster / nmap: {ratio:.2f}x wall time{goal}")
    if json_path:
        Path(json_path).write_text(json.dumps({"machine": machine_facts(), "runs": runs,
                                               "tools": rows, "ratio": ratio}, indent=2))
    return 0 if all(row["ok_runs"] == runs for row in rows.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
