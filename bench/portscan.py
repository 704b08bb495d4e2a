"""Port-scan benchmark: the same TCP connect scan with nmap and with nsecluster.

    python -m bench.portscan [--runs 5] [--workload one-host|many-hosts|all]
                             [--tools nmap,nsecluster] [--json out.json]

Starts a loopback target farm (:mod:`bench.farm`) in a subprocess, then for
each workload runs the scan with each tool alternately (nmap, nsecluster,
nmap, nsecluster, ...), measuring each run's wall time and peak resident
memory (``ru_maxrss`` of that very child, from ``os.wait4``).  Prints a table
of medians and the ratio nsecluster/nmap, and checks that every run found
exactly the open ports the farm has (plus any port that another program on
this machine listens on with a wildcard address, which answers on every
127.x address).  Exits 1 if any run's open ports differ from those or from
the other tool's, or a run failed; 2 on a setup error.

This is a benchmark, not a timed test: nothing here asserts on speed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from bench.farm import (
    REPO_ROOT,
    Farm,
    FarmError,
    FarmSpec,
    foreign_open_ports,
    many_hosts,
    many_hosts_targets,
    one_host_many_ports,
    raise_nofile_limit,
)

WORKLOADS = ("one-host", "many-hosts")
TOOLS = ("nmap", "nsecluster")


# --------------------------------------------------------------------------
# Output parsers


@dataclass
class ScanResult:
    """Open TCP ports by address (only addresses with one or more), and the
    addresses reported up."""

    open: dict[str, set[int]] = field(default_factory=dict)
    up: set[str] = field(default_factory=set)


def parse_grepable(text: str) -> ScanResult:
    """Parse Nmap grepable output (``-oG``)."""
    res = ScanResult()
    for line in text.splitlines():
        if not line.startswith("Host: "):
            continue
        head, *fields = line.split("\t")
        words = head.split()
        if len(words) < 2:
            continue
        ip = words[1]
        for fld in fields:
            if fld.startswith("Status: "):
                if fld[len("Status: "):].strip().lower() == "up":
                    res.up.add(ip)
            elif fld.startswith("Ports: "):
                res.up.add(ip)
                for entry in fld[len("Ports: "):].split(","):
                    parts = entry.strip().split("/")
                    if len(parts) >= 3 and parts[1] == "open" and parts[2] == "tcp" and parts[0].isdigit():
                        res.open.setdefault(ip, set()).add(int(parts[0]))
    return res


def parse_xml(text: str) -> ScanResult:
    """Parse Nmap XML output (``-oX``); anything before the XML is ignored."""
    start = text.find("<?xml")
    if start < 0:
        start = text.find("<nmaprun")
    if start < 0:
        raise ValueError("no Nmap XML in output")
    root = ET.fromstring(text[start:].strip())
    res = ScanResult()
    for host in root.iter("host"):
        ip = None
        for addr in host.findall("address"):
            if addr.get("addrtype") in ("ipv4", "ipv6"):
                ip = addr.get("addr")
                break
        if ip is None:
            continue
        status = host.find("status")
        if status is not None and status.get("state") == "up":
            res.up.add(ip)
        for port in host.iter("port"):
            state = port.find("state")
            if port.get("protocol") == "tcp" and state is not None and state.get("state") == "open":
                res.open.setdefault(ip, set()).add(int(port.get("portid")))
    return res


def parse_output(text: str) -> ScanResult:
    """Parse XML if the text holds ``<nmaprun``, else grepable output."""
    return parse_xml(text) if "<nmaprun" in text else parse_grepable(text)


def diff_open(found: dict[str, set[int]], expected: dict[str, set[int]], limit: int = 5) -> dict:
    """Missing and extra (ip, port) pairs, counted, with a few examples."""
    missing = sorted((ip, p) for ip, ps in expected.items() for p in ps - found.get(ip, set()))
    extra = sorted((ip, p) for ip, ps in found.items() for p in ps - expected.get(ip, set()))
    return {
        "missing": len(missing), "extra": len(extra),
        "missing_examples": [f"{ip}:{p}" for ip, p in missing[:limit]],
        "extra_examples": [f"{ip}:{p}" for ip, p in extra[:limit]],
    }


# --------------------------------------------------------------------------
# Measured runs


@dataclass
class Run:
    tool: str
    argv: list[str]
    wall_s: float
    maxrss_kb: int
    returncode: int | None
    timed_out: bool
    stdout: str
    stderr: str
    result: ScanResult | None = None
    parse_error: str | None = None

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and self.result is not None


GNU_TIME = "/usr/bin/time"


def rss_method() -> str:
    """How peak RSS is measured: GNU time's ``%M`` if installed, else wait4."""
    return "gnu-time" if os.access(GNU_TIME, os.X_OK) else "wait4"


def run_measured(argv: list[str], timeout: float, env: dict | None = None, cwd: str | None = None,
                 method: str | None = None) -> Run:
    """Run ``argv`` and measure it.

    Wall time: ``perf_counter`` around spawn and ``os.wait4``.  Peak RSS: the
    ``ru_maxrss`` of the measured command, which Linux reports as the largest
    of that process and its reaped descendants.  It is taken through
    ``/usr/bin/time -f %M`` (``method="gnu-time"``), because the kernel carries
    a process's pre-exec high-water mark across exec: a command forked
    straight from this (bigger) Python process would be charged our own RSS.
    ``method="wait4"`` (used when GNU time is absent) reads ``ru_maxrss`` from
    ``os.wait4`` directly; it is then only an upper bound.  Output goes to
    temporary files, so no pipe can stall; the command runs in a session of
    its own which is killed as a whole after ``timeout`` seconds.
    """
    method = method or rss_method()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile(prefix="bench-rss-") as rss:
        full = [GNU_TIME, "-f", "%M", "-o", rss.name, "--", *argv] if method == "gnu-time" else list(argv)
        t0 = time.perf_counter()
        proc = subprocess.Popen(full, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                env=env, cwd=cwd, start_new_session=True)
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # its own session: only what we started
            except ProcessLookupError:
                pass

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            while True:
                try:
                    _pid, status, usage = os.wait4(proc.pid, 0)
                    break
                except InterruptedError:
                    continue
        finally:
            timer.cancel()
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if timed_out.is_set():  # the session may hold leftovers: end them too
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        maxrss_kb = usage.ru_maxrss
        if method == "gnu-time":
            lines = [ln.strip() for ln in Path(rss.name).read_text(errors="replace").splitlines() if ln.strip()]
            maxrss_kb = int(lines[-1]) if lines and lines[-1].isdigit() else 0
        out.seek(0)
        err.seek(0)
        return Run(tool="", argv=list(argv), wall_s=wall, maxrss_kb=maxrss_kb,
                   returncode=proc.returncode, timed_out=timed_out.is_set(),
                   stdout=out.read().decode(errors="replace"), stderr=err.read().decode(errors="replace"))


# --------------------------------------------------------------------------
# Tools, workloads, machine


def find_nsecluster() -> list[str] | None:
    """``<venv>/bin/nsecluster`` next to ``sys.executable``, else
    ``python -m coordinator.cli`` if the source is there."""
    exe = Path(sys.executable).parent / "nsecluster"  # not resolved: keep the venv's bin/
    if exe.is_file() and os.access(exe, os.X_OK):
        return [str(exe)]
    if (REPO_ROOT / "coordinator" / "cli.py").is_file():
        return [sys.executable, "-m", "coordinator.cli"]
    return None


BENCH_VENV = REPO_ROOT / "bench" / ".venv"


def install_for_benchmark() -> list[str]:
    """nsecluster installed as a user installs it: a regular (not editable) install in its own
    venv, bytecode compiled by pip. An editable checkout would add its import hook and, under
    PYTHONDONTWRITEBYTECODE, recompile every module on every run."""
    python = BENCH_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True)
        deps = ["-q", "--disable-pip-version-check"]
        subprocess.run([str(python), "-m", "pip", "install", *deps, str(REPO_ROOT)], check=True)
    else:  # refresh our own code, then add any dependency that is new since
        quiet = ["-q", "--disable-pip-version-check"]
        subprocess.run([str(python), "-m", "pip", "install", *quiet, "--no-deps",
                        "--force-reinstall", str(REPO_ROOT)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", *quiet, str(REPO_ROOT)],
                       check=True)
    return [str(BENCH_VENV / "bin" / "nsecluster")]


def tool_version(argv: list[str], env: dict | None = None) -> str:
    try:
        r = subprocess.run(argv + ["--version"], capture_output=True, text=True, timeout=30,
                           env=env, cwd=str(REPO_ROOT), stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    lines = [ln.strip() for ln in (r.stdout or r.stderr).splitlines() if ln.strip()]
    return lines[0] if lines else f"unknown (exit {r.returncode})"


def machine_facts() -> dict:
    facts = {
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": None,
        "mem_total_mb": None,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                facts["cpu_model"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                facts["mem_total_mb"] = int(line.split()[1]) // 1024
                break
    except OSError:
        pass
    return facts


@dataclass
class Workload:
    name: str
    description: str
    spec: FarmSpec
    targets: list[str]
    nmap_args: list[str]
    nsecluster_args: list[str]
    ports: list[int] | None  # scanned ports; None = all
    expected: dict[str, set[int]] = field(default_factory=dict)
    foreign: dict[str, set[int]] = field(default_factory=dict)


def build_workloads(names: list[str], args: argparse.Namespace) -> list[Workload]:
    out = []
    for name in names:
        if name == "one-host":
            spec = one_host_many_ports(args.one_host_ip, args.open_count, args.seed)
            common = ["-sT", "-n", "-Pn", "-p-", args.one_host_ip]
            out.append(Workload(
                name, f"all 65535 TCP ports of {args.one_host_ip}, {len(spec.listeners)} farm ports open",
                spec, [args.one_host_ip], ["--unprivileged", *common],
                ["scan", "--unprivileged", *common], None))
        elif name == "many-hosts":
            ports = [22, 80, 443]
            spec = many_hosts(args.hosts, ports, args.many_hosts_base, args.seed)
            targets = many_hosts_targets(args.hosts, args.many_hosts_base)
            common = ["-sT", "-n", "-p", ",".join(map(str, ports)), *targets]
            out.append(Workload(
                name, f"{args.hosts} hosts x {len(ports)} ports ({' '.join(targets)}), "
                f"{len(spec.listeners)} open, host discovery on",
                spec, targets, ["--unprivileged", *common], ["scan", "--unprivileged", *common],
                ports))
        else:
            raise ValueError(name)
    return out


def combined_spec(workloads: list[Workload]) -> FarmSpec:
    listeners: list[tuple[str, int]] = []
    hosts: list[str] = []
    for w in workloads:
        listeners.extend(w.spec.listeners)
        hosts.extend(w.spec.all_hosts())
    return FarmSpec(listeners=tuple(listeners), hosts=tuple(dict.fromkeys(hosts)))


# --------------------------------------------------------------------------
# Report


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _fmt(v: float | None, spec: str = ".2f") -> str:
    return "n/a" if v is None else format(v, spec)


def summarize(w: Workload, runs: list[Run], tools: list[str]) -> dict:
    by_tool: dict[str, dict] = {}
    for tool in tools:
        rs = [r for r in runs if r.tool == tool]
        good = [r for r in rs if r.ok]
        by_tool[tool] = {
            "runs": len(rs),
            "ok_runs": len(good),
            "median_wall_s": _median([r.wall_s for r in good]),
            "min_wall_s": min((r.wall_s for r in good), default=None),
            "max_wall_s": max((r.wall_s for r in good), default=None),
            "median_peak_rss_mb": _median([r.maxrss_kb / 1024 for r in good]),
            "matches_expected": sum(1 for r in good if r.result.open == w.expected),
            "hosts_up_median": _median([len(r.result.up) for r in good]),
        }
    s: dict = {"tools": by_tool}
    if "nmap" in by_tool and "nsecluster" in by_tool:
        n, o = by_tool["nmap"], by_tool["nsecluster"]
        s["ratio_wall"] = (o["median_wall_s"] / n["median_wall_s"]
                           if o["median_wall_s"] and n["median_wall_s"] else None)
        s["ratio_rss"] = (o["median_peak_rss_mb"] / n["median_peak_rss_mb"]
                          if o["median_peak_rss_mb"] and n["median_peak_rss_mb"] else None)
    # Did every run of every tool see exactly the same open ports?
    s["all_ok"] = all(r.ok for r in runs) and len(runs) > 0
    results = [r.result.open for r in runs if r.ok]
    s["all_runs_identical"] = s["all_ok"] and all(x == results[0] for x in results)
    s["all_match_expected"] = s["all_ok"] and all(r.result.open == w.expected for r in runs)
    return s


def print_report(meta: dict, workloads: list[Workload], summaries: dict, runs: dict, out=None) -> None:
    out = out or sys.stdout
    m = meta["machine"]
    p = lambda *a: print(*a, file=out)  # noqa: E731
    p("=" * 78)
    p("nsecluster port-scan benchmark (loopback farm; wall time and peak RSS per run)")
    p(f"machine : {m['cpus']} CPUs ({m['cpus_usable']} usable), {m['cpu_model'] or '?'}, "
      f"{m['mem_total_mb']} MB RAM")
    p(f"system  : {m['platform']}, Python {m['python']}")
    for tool, info in meta["tools"].items():
        p(f"{tool:<8}: {info['version']}  [{' '.join(info['command'])}]")
    p(f"runs    : {meta['runs']} per tool, alternating {' / '.join(meta['tool_order'])}")
    if meta["rss_method"] == "gnu-time":
        p("RSS     : peak resident set of the scan process (largest of it and its children), via /usr/bin/time %M")
    else:
        p("RSS     : /usr/bin/time missing: ru_maxrss from wait4, which includes this benchmark's own RSS "
          "(upper bound; apt-get install time)")
    for w in workloads:
        s = summaries[w.name]
        p("-" * 78)
        foreign_n = sum(len(v) for v in w.foreign.values())
        extra = ""
        if foreign_n:
            ex = ", ".join(f"{ip}:{pt}" for ip, ps in sorted(w.foreign.items()) for pt in sorted(ps))
            extra = f" (+{foreign_n} already open on this machine: {ex[:60]})"
        p(f"workload {w.name}: {w.description}{extra}")
        for tool, info in meta["tools"].items():
            p(f"  {tool:<10} $ {' '.join(info['command'] + (w.nmap_args if tool == 'nmap' else w.nsecluster_args))}"
              f" {' '.join(meta['output_flags'])}")
        p(f"  {'tool':<11} {'median wall s':>13} {'min-max s':>13} {'median RSS MB':>14} "
          f"{'ok runs':>8} {'=expected':>10} {'hosts up':>9}")
        for tool, t in s["tools"].items():
            rng = (f"{_fmt(t['min_wall_s'], '.3f')}-{_fmt(t['max_wall_s'], '.3f')}" if t["ok_runs"] else "n/a")
            p(f"  {tool:<11} {_fmt(t['median_wall_s'], '.3f'):>13} {rng:>13} "
              f"{_fmt(t['median_peak_rss_mb'], '.1f'):>14} {t['ok_runs']:>4}/{t['runs']:<3} "
              f"{t['matches_expected']:>6}/{t['ok_runs']:<3} {_fmt(t['hosts_up_median'], '.0f'):>9}")
        if "ratio_wall" in s:
            ratio = lambda v: "n/a" if v is None else f"{v:.2f}x"  # noqa: E731
            p(f"  ratio nsecluster/nmap: wall {ratio(s['ratio_wall'])}, peak RSS {ratio(s['ratio_rss'])}"
              "  (>1 = nsecluster slower / bigger)")
            p(f"  same open ports in every run of both tools (all runs ok): "
              f"{'YES' if s['all_runs_identical'] else 'NO'}")
        p(f"  open ports equal the farm's expected ({sum(len(v) for v in w.expected.values())} on "
          f"{len(w.expected)} hosts) in every run: {'YES' if s['all_match_expected'] else 'NO'}")
        for r in runs[w.name]:
            if not r.ok:
                why = ("timed out" if r.timed_out else r.parse_error or f"exit {r.returncode}")
                tail = (r.stderr.strip().splitlines() or [""])[-1][:200]
                p(f"  ! {r.tool} run failed: {why}: {tail}")
            elif r.result.open != w.expected:
                d = diff_open(r.result.open, w.expected)
                p(f"  ! {r.tool} differs from expected: {d['missing']} missing {d['missing_examples']}, "
                  f"{d['extra']} extra {d['extra_examples']}")
    p("=" * 78)


def _run_json(r: Run, w: Workload) -> dict:
    d = {"tool": r.tool, "argv": r.argv, "wall_s": r.wall_s, "peak_rss_mb": r.maxrss_kb / 1024,
         "returncode": r.returncode, "timed_out": r.timed_out, "ok": r.ok, "parse_error": r.parse_error}
    if r.result is not None:
        d["open_ports"] = sum(len(v) for v in r.result.open.values())
        d["hosts_up"] = len(r.result.up)
        d["diff_vs_expected"] = diff_open(r.result.open, w.expected)
    if not r.ok:
        d["stderr_tail"] = r.stderr[-2000:]
    return d


# --------------------------------------------------------------------------
# Main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.portscan", description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="runs per tool and workload (default %(default)s)")
    ap.add_argument("--workload", choices=[*WORKLOADS, "all"], default="all")
    ap.add_argument("--tools", default="nmap,nsecluster", help="comma list of nmap,nsecluster (default %(default)s)")
    ap.add_argument("--json", metavar="FILE", help="write all measurements as JSON here")
    ap.add_argument("--format", choices=["xml", "grepable"], default="xml",
                    help="output both tools write and we parse: -oX - or -oG - (default %(default)s)")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds before one run is killed (default %(default)s)")
    ap.add_argument("--nmap", default=shutil.which("nmap") or "/usr/bin/nmap", help="nmap binary")
    ap.add_argument("--nsecluster", help="nsecluster command (default: a regular install in "
                    "bench/.venv, see --no-install)")
    ap.add_argument("--no-install", dest="installed", action="store_false",
                    help="run the nsecluster of the current venv (editable checkout) instead of "
                         "installing it into bench/.venv")
    ap.add_argument("--one-host-ip", default="127.3.0.1")
    ap.add_argument("--open-count", type=int, default=200, help="open ports on the one host (default %(default)s)")
    ap.add_argument("--hosts", type=int, default=1000, help="many-hosts host count (default %(default)s)")
    ap.add_argument("--many-hosts-base", default="127.4.0.0")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)

    if args.runs < 1:
        ap.error("--runs must be >= 1")
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    for t in tools:
        if t not in TOOLS:
            ap.error(f"unknown tool {t!r}; choose from {', '.join(TOOLS)}")
    names = list(WORKLOADS) if args.workload == "all" else [args.workload]

    raise_nofile_limit()  # children (both tools) inherit the same limit
    env = dict(os.environ)
    commands: dict[str, list[str]] = {}
    if "nmap" in tools:
        if not (shutil.which(args.nmap) or os.access(args.nmap, os.X_OK)):
            print(f"bench.portscan: nmap not found at {args.nmap}", file=sys.stderr)
            return 2
        commands["nmap"] = [args.nmap]
    if "nsecluster" in tools:
        if args.nsecluster:
            cmd = shlex.split(args.nsecluster)
        elif args.installed:
            cmd = install_for_benchmark()
        else:
            cmd = find_nsecluster()
            # the checkout's own modules, for `python -m coordinator.cli`; never for an install
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT),
                                                              env.get("PYTHONPATH")]))
        if not cmd:
            print("bench.portscan: nsecluster not found (no <venv>/bin/nsecluster, no coordinator/cli.py); "
                  "use --tools nmap or --nsecluster CMD", file=sys.stderr)
            return 2
        commands["nsecluster"] = cmd
    output_flags = ["-oX", "-"] if args.format == "xml" else ["-oG", "-"]

    meta = {
        "machine": machine_facts(),
        "tools": {t: {"command": c, "version": tool_version(c, env)} for t, c in commands.items()},
        "runs": args.runs,
        "tool_order": tools,
        "output_flags": output_flags,
        "format": args.format,
        "rss_method": rss_method(),
    }

    try:
        workloads = build_workloads(names, args)
        farm = Farm(combined_spec(workloads))
        farm.start()
    except (FarmError, ValueError) as exc:
        print(f"bench.portscan: cannot start the farm: {exc}", file=sys.stderr)
        return 2

    all_runs: dict[str, list[Run]] = {}
    summaries: dict[str, dict] = {}
    try:
        farm_open = farm.expected_open()
        for w in workloads:
            w.foreign = foreign_open_ports(w.spec.all_hosts(), w.ports, exclude=farm_open)
            w.expected = {ip: set(ps) for ip, ps in w.spec.expected_open().items()}
            for ip, ps in w.foreign.items():
                w.expected.setdefault(ip, set()).update(ps)
            print(f"[{w.name}] {w.description}", file=sys.stderr, flush=True)
            runs: list[Run] = []
            for i in range(args.runs):
                for tool in tools:
                    tool_args = w.nmap_args if tool == "nmap" else w.nsecluster_args
                    r = run_measured(commands[tool] + tool_args + output_flags, args.timeout,
                                     env=env, cwd=str(REPO_ROOT))
                    r.tool = tool
                    if r.returncode == 0 and not r.timed_out:
                        try:
                            r.result = parse_output(r.stdout)
                        except (ValueError, ET.ParseError) as exc:
                            r.parse_error = f"cannot parse output: {exc}"
                    runs.append(r)
                    status = "ok" if r.ok else ("timeout" if r.timed_out else r.parse_error or f"exit {r.returncode}")
                    print(f"  run {i + 1}/{args.runs} {tool:<10} {r.wall_s:8.3f} s "
                          f"{r.maxrss_kb / 1024:8.1f} MB  {status}", file=sys.stderr, flush=True)
            all_runs[w.name] = runs
            summaries[w.name] = summarize(w, runs, tools)
    finally:
        farm.stop()

    print_report(meta, workloads, summaries, all_runs)
    if args.json:
        doc = {
            **meta,
            "workloads": [{
                "name": w.name, "description": w.description, "targets": w.targets,
                "nmap_args": w.nmap_args, "nsecluster_args": w.nsecluster_args,
                "expected_open_ports": sum(len(v) for v in w.expected.values()),
                "expected_hosts_with_open": len(w.expected),
                "foreign_open": {ip: sorted(ps) for ip, ps in w.foreign.items()},
                "summary": summaries[w.name],
                "runs": [_run_json(r, w) for r in all_runs[w.name]],
            } for w in workloads],
        }
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(doc, indent=2, default=lambda o: sorted(o) if isinstance(o, set) else str(o)))
    bad = any(not (s["all_ok"] and s["all_match_expected"] and s["all_runs_identical"]) for s in summaries.values())
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
