"""UDP scan benchmark: ports 1-1000 of one host in a network namespace, with `nmap -sU` and
`nsecluster scan -sU` in the same run, alternating (root needed).

    sudo python -m bench.udpscan [--runs 7] [--json FILE] [--no-global-limit]

Two namespaces made here are joined by a veth pair; the target (192.0.2.2) answers UDP on a
few ports (an echo service) and its per-peer ICMP rate limit is off (net.ipv4.icmp_ratelimit=0
in its namespace). Linux still sends at most net.ipv4.icmp_msgs_per_sec (1000) ICMP errors a
second in bursts of icmp_msgs_burst (50); --no-global-limit lifts that too, so every closed
port answers at once. Both tools must report exactly the open ports, and every other port
closed, in every run. Reported: median wall time per tool and the ratio.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

from bench.portscan import install_for_benchmark
from bench.synscan import delete_namespaces, make_namespaces, report, run_alternating

OPEN_PORTS = (7, 53, 123, 161, 500, 999)
PORTS = "1-1000"
ECHO = ("import selectors, socket, sys\n"
        "sel = selectors.DefaultSelector()\n"
        "for port in map(int, sys.argv[1:]):\n"
        "    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "    s.bind(('192.0.2.2', port)); sel.register(s, selectors.EVENT_READ)\n"
        "print('ready', flush=True)\n"
        "while True:\n"
        "    for key, _ in sel.select():\n"
        "        data, peer = key.fileobj.recvfrom(65535)\n"
        "        key.fileobj.sendto(data or b'x', peer)\n")


def port_states(xml_text: str) -> tuple[list[int], int]:
    """(open ports, how many closed), listed and collapsed ports together."""
    root = ET.fromstring(xml_text)
    opened = sorted(int(p.get("portid")) for p in root.iter("port")
                    if p.find("state").get("state") == "open")
    closed = sum(1 for p in root.iter("port") if p.find("state").get("state") == "closed")
    closed += sum(int(e.get("count")) for e in root.iter("extraports")
                  if e.get("state") == "closed")
    return opened, closed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.udpscan", description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--no-global-limit", action="store_true",
                        help="also lift the target's limit on ICMP errors per second")
    args = parser.parse_args(argv)
    nmap = shutil.which("nmap")
    if os.geteuid() != 0 or nmap is None:
        print("bench.udpscan: needs root and nmap", file=sys.stderr)
        return 2
    ours = install_for_benchmark()
    near, far = make_namespaces()
    try:  # run_alternating deletes them too; this covers a failure before it starts
        limits = ["net.ipv4.icmp_ratelimit=0"]
        if args.no_global_limit:
            limits += ["net.ipv4.icmp_msgs_per_sec=1000000", "net.ipv4.icmp_msgs_burst=1000000"]
        subprocess.run(["ip", "netns", "exec", far, "sysctl", "-qw", *limits], check=True)
        server = subprocess.Popen(["ip", "netns", "exec", far, sys.executable, "-c", ECHO,
                                   *map(str, OPEN_PORTS)], stdout=subprocess.PIPE, text=True)
        scan = ["-n", "-Pn", "-sU", "-p", PORTS, "192.0.2.2", "-oX", "-"]
        tools = {"nmap": [nmap, *scan], "nsecluster": [*ours, "scan", *scan]}
        expected = (list(OPEN_PORTS), 1000 - len(OPEN_PORTS))

        def check(out: str):
            found = port_states(out)
            return found == expected, str(found)

        walls, ok = run_alternating(tools, near, far, server, args.runs, args.timeout, check)
    finally:
        delete_namespaces(near, far)
    limit = "no ICMP limits" if args.no_global_limit else "per-peer ICMP limit off"
    return report(f"UDP scan of ports {PORTS}, one host in a namespace ({limit}), "
                  f"median of {args.runs}:", walls, ok, args.runs,
                  "exactly the open and closed ports", "", args.json)


if __name__ == "__main__":
    sys.exit(main())
