"""LPeg benchmark: Nmap's own json library (LPeg grammars) parsing the same document under
`nmap` and under `nsecluster scan --datadir /usr/share/nmap`, alternating.

    python -m bench.lpeg [--runs 7] [--datadir /usr/share/nmap]

nsecluster loads Debian's LPeg C library into lupa's Lua 5.4, so the grammars run natively;
this measures that choice against Nmap's built-in LPeg. Reported: the median time the script
spent parsing (its own clock, so process start-up is left out) and the ratio to Nmap's.
No network traffic: the script is a prerule and the only target is skipped (-sn -Pn).
"""
from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys

from bench.portscan import REPO_ROOT

SCRIPT = REPO_ROOT / "bench" / "scripts" / "bench-json-lpeg.nse"
RESULT = re.compile(r"bench-json-lpeg: (\d+) items in ([\d.]+) ms")


def parse_ms(command: list[str]) -> float:
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    found = RESULT.search(done.stdout)
    if done.returncode != 0 or found is None or found.group(1) != "40000":
        raise SystemExit(f"benchmark run failed: {' '.join(command)}\n{done.stdout}{done.stderr}")
    return float(found.group(2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.lpeg", description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--datadir", default="/usr/share/nmap")
    args = parser.parse_args(argv)
    nmap = shutil.which("nmap")
    if nmap is None:
        raise SystemExit("nmap is not installed (Debian: apt-get install nmap)")
    common = ["-n", "-sn", "-Pn", "--script", str(SCRIPT), "127.0.0.1"]
    ours = [sys.executable, "-m", "coordinator.cli", "scan", "--datadir", args.datadir, *common]
    times: dict[str, list[float]] = {"nmap": [], "nsecluster": []}
    for _ in range(max(1, args.runs)):
        times["nmap"].append(parse_ms([nmap, "--datadir", args.datadir, *common]))
        times["nsecluster"].append(parse_ms(ours))
    medians = {tool: statistics.median(values) for tool, values in times.items()}
    for tool, value in medians.items():
        print(f"{tool:>10}: median {value:.1f} ms parsing (runs: "
              + ", ".join(f"{v:.0f}" for v in times[tool]) + ")")
    print(f"ratio nsecluster/nmap: {medians['nsecluster'] / medians['nmap']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
