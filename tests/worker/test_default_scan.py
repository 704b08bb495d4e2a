"""The default TCP scan is Nmap's: without -sS/-sT, a SYN scan when privileged (root here,
as in CI) and a connect scan when told otherwise (--unprivileged, $NMAP_UNPRIVILEGED) or when
raw sockets cannot be opened. Each run is compared with nmap's default under the same
conditions, on a loopback listener."""
from __future__ import annotations

import os
import subprocess
import xml.etree.ElementTree as ET

import pytest
from conftest import NMAP_SERVICES, loopback_address, run_nsecluster

from coordinator.cli import build_scan_parser
from coordinator.plan import build_plan

def scan_facts(xml_text: str) -> dict:
    """What the scan type decides: scaninfo type, host reason, every listed port's state,
    reason and reason TTL, and the summarized ports with their reasons."""
    root = ET.fromstring(xml_text)
    (host,) = root.findall("host")
    return {
        "scaninfo": [(s.get("type"), s.get("protocol")) for s in root.findall("scaninfo")],
        "status": (host.find("status").get("state"), host.find("status").get("reason")),
        "ports": {int(p.get("portid")): (p.find("state").get("state"),
                                         p.find("state").get("reason"),
                                         p.find("state").get("reason_ttl"))
                  for p in host.iter("port")},
        "extraports": [(e.get("state"), e.get("count"),
                        [(r.get("reason"), r.get("count"), r.get("ports"))
                         for r in e.findall("extrareasons")])
                       for e in host.iter("extraports")],
    }


def report_lines(text: str) -> list[str]:
    """The screen's host report ("Not shown", PORT lines), latency masked."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Nmap scan report"))
    end = next(i for i, line in enumerate(lines) if line.startswith("Nmap done"))
    return [line.split(" (")[0] if line.startswith("Host is up") else line
            for line in lines[start:end]]


@pytest.fixture
def target(listeners):
    """(address, port list, open ports) on a fresh loopback address: two listeners, and
    enough closed ports (nothing else listens there) to be summarized as "Not shown"."""
    address = loopback_address()
    opened = sorted({listeners.listen(address), listeners.listen(address)})
    return address, ",".join(["1-60", *map(str, opened)]), opened


def run_both(nmap_path, address, ports, *flags, env=None, fmt="-oX"):
    common = [*flags, "-n", "--reason", "-p", ports, address, *([fmt, "-"] if fmt else [])]
    ours = run_nsecluster("scan", *common, env=env, timeout=60)
    theirs = subprocess.run([nmap_path, *common], capture_output=True, text=True, timeout=60,
                            env={**os.environ, **(env or {})})
    assert ours.returncode == 0 and ours.stderr == "", ours.stderr
    assert theirs.returncode == 0, theirs.stderr
    return ours.stdout, theirs.stdout


def test_as_root_the_default_is_a_syn_scan_as_nmaps(target, nmap_path):
    address, ports, opened = target
    ours, theirs = run_both(nmap_path, address, ports)
    assert scan_facts(ours) == scan_facts(theirs)
    facts = scan_facts(ours)
    assert facts["scaninfo"] == [("syn", "tcp")]
    assert {p for p, (state, reason, ttl) in facts["ports"].items()
            if (state, reason, ttl) == ("open", "syn-ack", "64")} == set(opened)
    assert [reasons[0][0] for _, _, reasons in facts["extraports"]] == ["reset"]
    normal, nmap_normal = run_both(nmap_path, address, ports, fmt=None)  # the screen
    assert report_lines(normal) == report_lines(nmap_normal)
    assert any(line.startswith("Not shown: ") and line.endswith(" closed tcp ports (reset)")
               for line in report_lines(normal))


@pytest.mark.parametrize("how", ["--unprivileged", "NMAP_UNPRIVILEGED"])
def test_told_unprivileged_the_default_is_a_connect_scan_as_nmaps(target, nmap_path, how):
    address, ports, opened = target
    flags, env = ((how,), None) if how.startswith("--") else ((), {how: "1"})
    ours, theirs = run_both(nmap_path, address, ports, *flags, env=env)
    assert scan_facts(ours) == scan_facts(theirs)
    facts = scan_facts(ours)
    assert facts["scaninfo"] == [("connect", "tcp")]
    assert facts["status"] == ("up", "conn-refused")
    assert {p for p, (state, reason, _) in facts["ports"].items()
            if (state, reason) == ("open", "syn-ack")} == set(opened)
    assert [reasons[0][0] for _, _, reasons in facts["extraports"]] == ["conn-refused"]


def test_without_raw_sockets_the_default_is_a_connect_scan_not_an_error(target, nmap_path):
    address, ports, opened = target
    common = ["-n", "--reason", "-p", ports, address, "-oX", "-"]
    done = run_nsecluster("scan", *common, without_raw=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin"}, inherit_env=False)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    # Nmap itself, as root without the capability, would try raw sockets and fail; what it
    # does when it may not is its --unprivileged scan.
    theirs = subprocess.run([nmap_path, "--unprivileged", *common], capture_output=True,
                            text=True, timeout=60, check=True)
    assert scan_facts(done.stdout) == scan_facts(theirs.stdout)
    assert scan_facts(done.stdout)["scaninfo"] == [("connect", "tcp")]
    assert {p for p, (state, _, _) in scan_facts(done.stdout)["ports"].items()
            if state == "open"} == set(opened)


def plan_scan_type(*flags: str) -> str:
    target = "::1" if "-6" in flags else "127.0.0.1"
    args = build_scan_parser().parse_args([*flags, "-n", target])
    environ = {"NSECLUSTER_NMAP_PREFIXES": str(NMAP_SERVICES.parent)}
    return build_plan(args, "nsecluster scan", environ).options.scan_type


@pytest.mark.parametrize("flags, expected", [
    ((), "syn"),
    (("-sT",), "connect"),
    (("-sS",), "syn"),
    (("--unprivileged",), "connect"),
    (("--unprivileged", "--privileged"), "syn"),  # the last one given counts
    (("-sU",), "none"),  # UDP only, as Nmap
    (("-sU", "--top-ports", "5"), "none"),
    (("-6",), "connect"),  # our SYN prober is IPv4-only
    # A cluster: the coordinator does not know which workers run the groups.
    (("--broker", "redis://127.0.0.1:6379/9"), "connect"),
    (("--broker", "redis://127.0.0.1:6379/9", "-sS"), "syn"),
])
def test_the_planned_tcp_scan_type_as_root(flags, expected):
    assert os.geteuid() == 0, "the suite runs as root (CI too)"
    assert plan_scan_type(*flags) == expected


def test_nmap_unprivileged_in_the_environment_plans_a_connect_scan(monkeypatch):
    monkeypatch.setenv("NMAP_UNPRIVILEGED", "1")
    assert plan_scan_type() == "connect"
    assert plan_scan_type("--privileged") == "syn"
