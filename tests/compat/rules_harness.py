"""Rules only: load every script of an Nmap data directory under the Nmap 7 profile and ask
each of its rules on realistic host and port tables, on the real engine, without running a
single action. Run as a program (in a network namespace with only loopback, so no rule can
reach a real network); prints one JSON report on stdout:

    python tests/compat/rules_harness.py /usr/share/nmap

How: each loaded script's closure generator is wrapped so that once the file has run in a
thread's environment, its ``action`` is replaced by one returning a marker. The engine's three
passes (pre-scan, the host group, post-scan) then run as in a scan: a rule that is true gives
the marker as the result, a false one gives nothing, a rule that raises is logged at -d with
its traceback.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from worker.datadir import DataPath  # noqa: E402
from worker.nse.engine import Engine, EngineOptions  # noqa: E402
from worker.nse.hosts import HostContext, HostIndex  # noqa: E402
from worker.nse.profile import NMAP7  # noqa: E402
from worker.nse.scripts import ScriptLoadError, load_script  # noqa: E402
from worker.nse.stage import BUNDLED_NSELIB  # noqa: E402
from worker.nsock.loop import EventLoop  # noqa: E402
from worker.protocol import HostResult, PortResult, Service  # noqa: E402
from worker.services import service_table_for  # noqa: E402

MARKER = "rule matched"

# (protocol, port, service name, product): what a -sV scan of a busy host would report.
PORTS = (
    ("tcp", 21, "ftp", "vsftpd"), ("tcp", 22, "ssh", "OpenSSH"), ("tcp", 23, "telnet", None),
    ("tcp", 25, "smtp", "Postfix smtpd"), ("tcp", 53, "domain", None),
    ("tcp", 80, "http", "Apache httpd"), ("tcp", 110, "pop3", None),
    ("tcp", 111, "rpcbind", None), ("tcp", 139, "netbios-ssn", None),
    ("tcp", 143, "imap", None), ("tcp", 389, "ldap", None),
    ("tcp", 443, "https", "nginx"), ("tcp", 445, "microsoft-ds", None),
    ("tcp", 993, "imaps", None), ("tcp", 1433, "ms-sql-s", None),
    ("tcp", 1521, "oracle-tns", None), ("tcp", 2049, "nfs", None),
    ("tcp", 3306, "mysql", "MySQL"), ("tcp", 3389, "ms-wbt-server", None),
    ("tcp", 5432, "postgresql", None), ("tcp", 5900, "vnc", None),
    ("tcp", 6379, "redis", None), ("tcp", 8080, "http-proxy", None),
    ("tcp", 11211, "memcache", None), ("tcp", 27017, "mongodb", None),
    ("udp", 53, "domain", None), ("udp", 67, "dhcps", None), ("udp", 69, "tftp", None),
    ("udp", 123, "ntp", None), ("udp", 137, "netbios-ns", None),
    ("udp", 161, "snmp", None), ("udp", 500, "isakmp", None),
    ("udp", 1900, "upnp", None), ("udp", 5353, "zeroconf", None),
)


def host_result(address: str) -> HostResult:
    ports = [PortResult(protocol, number, "open",
                        "syn-ack" if protocol == "tcp" else "udp-response", 64,
                        Service(name, "probed" if product else "table", 10 if product else 3,
                                product=product))
             for protocol, number, name, product in PORTS]
    return HostResult(address, status="up", reason="syn-ack", ports=ports, srtt_us=100,
                      rttvar_us=50, timeout_us=100_000)


def _without_actions(engine: Engine):
    """gen(env) -> main; the wrapped main runs the file, then swaps its action for one that
    returns the marker."""
    return engine.runtime.lua.eval('''function(gen, marker)
      return function(env)
        local main = gen(env)
        return function(...)
          local results = table.pack(main(...))
          rawset(env, "action", function() return marker end)
          return table.unpack(results, 1, results.n)
        end
      end
    end''')


def main(datadir: str) -> int:
    data = Path(datadir)
    log: list[str] = []
    engine = Engine(EventLoop(), log=log.append,
                    datapath=DataPath.from_environment(datadir, {}, None),
                    nselib_dirs=[data / "nselib", BUNDLED_NSELIB],
                    services=service_table_for(datadir, {}))
    engine.configure(EngineOptions(debugging=1, script_timeout_ms=30_000))
    wrap = _without_actions(engine)
    scripts, skipped, failed = [], [], {}
    paths = sorted((data / "scripts").glob("*.nse"))
    for path in paths:
        before = len(log)
        try:
            script = load_script(engine.runtime, str(path), NMAP7, log.append, verbose=True)
        except ScriptLoadError as exc:
            failed[path.stem] = "\n".join([str(exc), *log[before:]])
            continue
        if script is None:
            skipped.append(path.stem)
            continue
        script.generator = wrap(script.generator, MARKER.encode())
        scripts.append(script)
    metadata_problems = {}
    for script in scripts:
        problems = []
        if not script.categories:
            problems.append("no categories")
        if not script.description.strip():
            problems.append("no description")
        if not script.rules:
            problems.append("no rule")
        if problems:
            metadata_problems[script.id] = problems
    log.clear()
    matched: dict[str, list[str]] = {}

    def note(script_id: str, where: str) -> None:
        matched.setdefault(script_id, []).append(where)

    rule_pass_results = []  # the prerule and postrule passes' results
    for result in engine.run_pass("prerule", [s for s in scripts if "prerule" in s.rules]):
        note(result.id, "prerule")
        rule_pass_results.append(result)
    hosts = [host_result("127.0.0.1")]
    index = HostIndex([HostContext(1, hosts[0], engine.runtime)])
    engine.run_pass("scan", [s for s in scripts if s.rules & {"hostrule", "portrule"}], index)
    for host in hosts:
        for result in host.scripts:
            note(result.id, "hostrule")
        for port in host.ports:
            for result in port.scripts:
                note(result.id, f"{port.protocol}/{port.portid}")
    for result in engine.run_pass("postrule", [s for s in scripts if "postrule" in s.rules]):
        note(result.id, "postrule")
        rule_pass_results.append(result)
    rule_errors = [line for line in log if "threw an error!" in line or "Reason:" in line
                   or "timed out" in line or "yielded unexpectedly" in line]
    not_marker = {script_id: where for script_id, where in matched.items()
                  if any(r.output != MARKER
                         for r in [*_all_results(hosts), *rule_pass_results]
                         if r.id == script_id)}
    rules = {rule: sum(rule in s.rules for s in scripts)
             for rule in ("prerule", "hostrule", "portrule", "postrule")}
    json.dump({"files": len(paths), "loaded": len(scripts), "skipped": skipped,
               "failed": failed, "metadata_problems": metadata_problems, "rules": rules,
               "matched": matched, "rule_errors": rule_errors,
               "actions_ran": sorted(not_marker)}, sys.stdout, indent=1, sort_keys=True)
    return 0


def _all_results(hosts):
    for host in hosts:
        yield from host.scripts
        for port in host.ports:
            yield from port.scripts


if __name__ == "__main__":
    os.environ.pop("NMAPDIR", None)
    sys.exit(main(sys.argv[1]))
