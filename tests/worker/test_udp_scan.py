"""UDP scan (-sU) between two network namespaces made here, side by side with `nmap -sU`.

Namespace b runs UDP services (tests/udp_peer.py), iptables rules that drop or reject some
ports, and closed ports; each test compares our states and reasons with Nmap's on the same
ports. Most tests turn b's ICMP rate limit off to stay fast; one keeps Linux's default."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import pytest

from conftest import NMAP_SERVICES, REPO, run_nsecluster
from worker.scan.udp_payloads import BUILTIN

PEER = REPO / "tests" / "udp_peer.py"


@pytest.fixture
def no_payloads(tmp_path_factory):
    """An environment whose Nmap data has nmap-services but no nmap-payloads: our built-in
    payloads are used."""
    directory = tmp_path_factory.mktemp("services-only")
    (directory / "nmap-services").symlink_to(NMAP_SERVICES)
    return {"NSECLUSTER_NMAP_PREFIXES": "", "NMAPDIR": str(directory)}


def port_outcomes(xml_text: str) -> dict[tuple[str, int], tuple[str, str, str]]:
    """(protocol, port) -> (state, reason, reason_ttl) of every port listed."""
    outcomes = {}
    for port in ET.fromstring(xml_text).iter("port"):
        state = port.find("state")
        outcomes[(port.get("protocol"), int(port.get("portid")))] = (
            state.get("state"), state.get("reason"), state.get("reason_ttl"))
    return outcomes


class Target:
    """Namespace b's services and firewall rules; stops its peer at the end."""

    def __init__(self, b, specs, rules=(), ratelimit_off=True, address="192.0.2.2"):
        v6 = ":" in address
        if ratelimit_off:
            b.run("sysctl", "-qw", "net.ipv6.icmp.ratelimit=0" if v6 else
                  "net.ipv4.icmp_ratelimit=0")
        for rule in rules:
            b.run("ip6tables" if v6 else "iptables", "-A", "INPUT", "-p", "udp", *rule.split())
        self.peer = b.popen(sys.executable, str(PEER), address, *specs,
                            stdout=subprocess.PIPE, text=True)
        assert self.peer.stdout.readline().strip() == "ready"

    def close(self):
        self.peer.kill()
        self.peer.wait(timeout=10)


@pytest.fixture
def target_factory(veth_pair):
    made = []

    def make(*args, **kwargs):
        made.append(Target(veth_pair[1], *args, **kwargs))
        return made[-1]

    yield make
    for target in made:
        target.close()


def nmap_in(a, *args) -> str:
    done = a.run(shutil.which("nmap"), "-n", "-Pn", *args, "192.0.2.2", "-oX", "-",
                 timeout=120)
    return done.stdout


def ours_in(a, *args, env=None, outputs=("-oX", "-")):
    done = run_nsecluster("scan", "-n", "-Pn", *args, "192.0.2.2", *outputs, netns=a.name,
                          env=env)
    assert done.returncode == 0, done.stderr
    return done


MIXED = ("echo:7", "echo:1000", "dns:53")
MIXED_RULES = ("--dport 2000 -j DROP",
               "--dport 2001 -j REJECT --reject-with icmp-host-prohibited",
               "--dport 2002 -j REJECT --reject-with icmp-admin-prohibited",
               "--dport 2003 -j REJECT --reject-with icmp-net-unreachable")
MIXED_PORTS = "7,53,1000,2000-2003,3000-3004"


def test_states_and_reasons_match_nmap(veth_pair, target_factory, no_payloads):
    a, _ = veth_pair
    target_factory(MIXED, MIXED_RULES)
    nmap = port_outcomes(nmap_in(a, "-sU", "--reason", "-p", MIXED_PORTS))
    ours = port_outcomes(ours_in(a, "-sU", "--reason", "-p", MIXED_PORTS).stdout)
    expected_states = {7: "open", 53: "open", 1000: "open", 2000: "open|filtered",
                       2001: "filtered", 2002: "filtered", 2003: "filtered",
                       **{port: "closed" for port in range(3000, 3005)}}
    assert {port: outcome[0] for (_, port), outcome in ours.items()} == expected_states
    assert ours[("udp", 2001)][1] == "host-prohibited"
    assert ours[("udp", 2002)][1] == "admin-prohibited"
    assert ours == nmap  # states, reasons and reason TTLs
    # Our own payloads, not nmap-payloads: the DNS responder still answers.
    builtin = port_outcomes(ours_in(a, "-sU", "-p", MIXED_PORTS, env=no_payloads).stdout)
    assert builtin == ours


def test_ipv6_states_and_reasons_match_nmap(veth_pair, target_factory):
    a, b = veth_pair
    for space, device, address in ((a, "vA", "2001:db8::1/64"), (b, "vB", "2001:db8::2/64")):
        space.run("ip", "addr", "add", address, "dev", device, "nodad")
    target_factory(("echo:7", "dns:53"), (
        "--dport 2000 -j DROP",
        "--dport 2001 -j REJECT --reject-with icmp6-adm-prohibited",
        "--dport 2002 -j REJECT --reject-with icmp6-addr-unreachable",
        "--dport 2003 -j REJECT --reject-with icmp6-no-route"), address="2001:db8::2")
    args = ["-6", "-n", "-Pn", "-sU", "--reason", "-p", "7,53,2000-2003,3000", "2001:db8::2",
            "-oX", "-"]
    nmap = port_outcomes(a.run(shutil.which("nmap"), *args, timeout=120).stdout)
    done = run_nsecluster("scan", *args, netns=a.name)
    assert done.returncode == 0, done.stderr
    ours = port_outcomes(done.stdout)
    assert {p: o[:2] for (_, p), o in ours.items()} == {
        7: ("open", "udp-response"), 53: ("open", "udp-response"),
        2000: ("open|filtered", "no-response"), 2001: ("filtered", "admin-prohibited"),
        2002: ("filtered", "host-unreach"), 2003: ("filtered", "no-route"),
        3000: ("closed", "port-unreach")}
    assert ours == nmap


def test_the_dns_payload_matters(veth_pair, target_factory):
    """An empty datagram gets no answer from the DNS responder; our query does."""
    a, _ = veth_pair
    target_factory(("dns:53",))
    probe = ("import socket, sys\n"
             "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.5)\n"
             "s.sendto(bytes.fromhex(sys.argv[1]), ('192.0.2.2', 53))\n"
             "try:\n    print(len(s.recv(512)))\nexcept socket.timeout:\n    print('silent')")
    assert a.run(sys.executable, "-c", probe, "").stdout.strip() == "silent"
    answer = a.run(sys.executable, "-c", probe, BUILTIN[53][0].data.hex()).stdout.strip()
    assert answer.isdigit() and int(answer) > 12


def table_lines(normal: str) -> list[str]:
    """The "Not shown" line and the port table of a normal output's only host."""
    lines = normal.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("Not shown"))
    last = next(i for i in range(first + 2, len(lines))
                if not lines[i] or lines[i].startswith("MAC Address"))
    return lines[first:last]


def test_every_output_reports_udp_ports(veth_pair, target_factory, no_payloads, tmp_path):
    a, _ = veth_pair
    target_factory(MIXED, MIXED_RULES)
    ports = MIXED_PORTS + ",3005-3030"  # 31 closed ports: more than a report lists
    base = tmp_path / "scan"
    ours_in(a, "-sU", "--reason", "-p", ports, env=no_payloads,
            outputs=("-oA", str(base), "-oJ", str(tmp_path / "scan.json")))
    normal = (tmp_path / "scan.nmap").read_text()
    nmap_normal = a.run(shutil.which("nmap"), "-n", "-Pn", "-sU", "--reason", "-p", ports,
                        "192.0.2.2", timeout=120).stdout
    assert table_lines(normal) == table_lines(nmap_normal)
    assert "Not shown: 31 closed udp ports (port-unreach)" in normal
    rows = {line.split()[0]: line.split()[1:] for line in table_lines(normal)[2:]}
    assert rows["53/udp"] == ["open", "domain", "udp-response", "ttl", "64"]
    assert rows["2000/udp"] == ["open|filtered", "cisco-sccp", "no-response"]
    grepable = (tmp_path / "scan.gnmap").read_text()
    assert "53/open/udp//domain///" in grepable
    assert "2000/open|filtered/udp//cisco-sccp///" in grepable
    assert "Ignored State: closed (31)" in grepable
    xml_text = (tmp_path / "scan.xml").read_text()
    assert '<scaninfo type="udp" protocol="udp" numservices="38"' in xml_text
    assert ('<extrareasons reason="port-unreach" count="31" proto="udp" ports="3000-3030"/>'
            in xml_text)
    records = [json.loads(line) for line in (tmp_path / "scan.json").read_text().splitlines()]
    host = next(r for r in records if r.get("type") == "host")
    assert {(p["protocol"], p["portid"], p["state"]) for p in host["ports"]} >= {
        ("udp", 53, "open"), ("udp", 7, "open"), ("udp", 2000, "open|filtered")}
    assert host["extraports"][0]["reasons"][0]["protocol"] == "udp"


def test_udp_beside_syn_scan_matches_nmap(veth_pair, target_factory):
    a, b = veth_pair
    target_factory(("echo:7", "dns:53"))
    listener = b.popen(sys.executable, "-c",
                       "import socket, time\ns = socket.socket(); s.bind(('192.0.2.2', 22)); "
                       "s.listen(); print('ready', flush=True); time.sleep(120)",
                       stdout=subprocess.PIPE, text=True)
    try:
        assert listener.stdout.readline().strip() == "ready"
        spec = "U:7,53,3000,T:22,80"
        nmap = port_outcomes(nmap_in(a, "-sS", "-sU", "--reason", "-p", spec))
        ours = port_outcomes(ours_in(a, "-sU", "-sS", "--reason", "-p", spec).stdout)
        connect = port_outcomes(ours_in(a, "-sT", "-sU", "-p", spec).stdout)
    finally:
        listener.kill()
        listener.wait(timeout=10)
    assert {key: outcome[0] for key, outcome in ours.items()} == {
        ("tcp", 22): "open", ("tcp", 80): "closed", ("udp", 7): "open", ("udp", 53): "open",
        ("udp", 3000): "closed"}
    # SYN answers carry no TTL in our reports yet (worker/scan/syn.py): compare the rest.
    assert {k: v[:2] for k, v in ours.items()} == {k: v[:2] for k, v in nmap.items()}
    assert {k: v[0] for k, v in connect.items()} == {k: v[0] for k, v in ours.items()}


def test_scaninfo_lists_each_requested_scan_type_as_nmap_does(veth_pair):
    a, _ = veth_pair

    def scaninfo(xml_text):
        return [dict(e.attrib) for e in ET.fromstring(xml_text).iter("scaninfo")]

    for flags in (["-sU", "-sT", "-p", "U:53"], ["-sU", "-sS", "-p", "T:80"], ["-sU", "-p", "9"]):
        assert scaninfo(ours_in(a, *flags).stdout) == scaninfo(nmap_in(a, *flags)), flags


def test_default_icmp_rate_limit_still_agrees_with_nmap(veth_pair, target_factory):
    """Linux answers about one closed port a second (after a burst of six): silence must not
    make a closed port open|filtered."""
    a, _ = veth_pair
    target_factory(("echo:7", "echo:1000"), ratelimit_off=False)
    ports = "7,1000,3001-3018"
    started = time.monotonic()
    ours = port_outcomes(ours_in(a, "-sU", "-p", ports, ).stdout)
    elapsed = time.monotonic() - started
    time.sleep(6.5)  # the target's ICMP allowance refills for Nmap's turn
    nmap = port_outcomes(nmap_in(a, "-sU", "-p", ports))
    assert {p: o[0] for (_, p), o in ours.items()} == {
        7: "open", 1000: "open", **{p: "closed" for p in range(3001, 3019)}}
    assert ours == nmap
    assert elapsed > 8  # it had to slow down to about one closed port a second


def test_payload_comes_from_nmap_payloads_in_datadir(veth_pair, target_factory, no_payloads,
                                                    tmp_path):
    a, _ = veth_pair
    target_factory(("magic:4444:" + b"nsc-magic\r\n\x00".hex(), "from:4445:1234"))
    (tmp_path / "nmap-payloads").write_text(
        "# test payloads\n"
        'udp 4444 "nsc-" "magic\\x0d\\n"\n'
        '  "\\0"   # continued on the next line\n'
        'udp 4445,4446-4447 "anything" source 1234\n')
    with_file = port_outcomes(ours_in(a, "-sU", "-p", "4444-4445", "--datadir", tmp_path,
                                      env=no_payloads).stdout)
    without = port_outcomes(ours_in(a, "-sU", "-p", "4444-4445", env=no_payloads).stdout)
    assert {p: o[0] for (_, p), o in with_file.items()} == {4444: "open", 4445: "open"}
    assert {p: o[0] for (_, p), o in without.items()} == {4444: "open|filtered",
                                                          4445: "open|filtered"}
    # Nmap 7.93 uses the file's payload too; it does not send from a payload's source port
    # (observed), so only 4444 is compared.
    nmap = port_outcomes(nmap_in(a, "-sU", "-p", "4444", "--datadir", str(tmp_path)))
    assert nmap[("udp", 4444)][0] == with_file[("udp", 4444)][0] == "open"


def test_a_probe_from_the_probed_port_is_not_its_own_answer(veth_pair, tmp_path):
    """On loopback, a payload's source port equal to the probed port makes our probe arrive
    looking like the answer; it is not (Nmap: closed)."""
    a, _ = veth_pair
    (tmp_path / "nmap-payloads").write_text('udp 500 "probe" source 500\n')
    for target in ("127.0.0.1", "::1"):
        args = ["-n", "-Pn", "-sU", "-p", "500", "--datadir", tmp_path, target, "-oX", "-"]
        done = run_nsecluster("scan", *args, netns=a.name)
        assert done.returncode == 0, done.stderr
        ours = port_outcomes(done.stdout)
        assert ours[("udp", 500)][:2] == ("closed", "port-unreach"), target
    nmap = a.run(shutil.which("nmap"), *map(str, args[:-3]), "127.0.0.1", "-oX", "-",
                 timeout=60).stdout
    assert port_outcomes(nmap)[("udp", 500)][:2] == ("closed", "port-unreach")


def test_a_malformed_nmap_payloads_is_one_line(veth_pair, tmp_path):
    a, _ = veth_pair
    (tmp_path / "nmap-payloads").write_text('udp 53 "\\q"\n')
    done = run_nsecluster("scan", "-n", "-Pn", "-sU", "-p", "53", "--datadir", tmp_path,
                          "192.0.2.2", netns=a.name)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        f"nsecluster: {tmp_path}/nmap-payloads, line 1: unknown escape \\q")


def test_udp_portrule_scripts_see_protocol_udp(veth_pair, target_factory, no_payloads, tmp_path):
    a, _ = veth_pair
    target_factory(("dns:53",))
    script = tmp_path / "udp-proto.nse"
    script.write_text(
        'local shortport = require "shortport"\n'
        'description = "Says what the port table holds."\n'
        'categories = {"safe"}\n'
        'portrule = shortport.port_or_service(53, "domain", "udp")\n'
        'action = function(host, port)\n'
        '  return ("protocol=%s state=%s"):format(port.protocol, port.state)\n'
        'end\n')
    done = ours_in(a, "-sU", "-p", "53,3000", "--script", script, env=no_payloads,
                   outputs=("-oN", "-"))
    says = "53/udp   open   domain\n|_udp-proto: protocol=udp state=open\n3000/udp closed"
    assert says in done.stdout
    nmap = a.run(shutil.which("nmap"), "-n", "-Pn", "-sU", "-p", "53,3000", "--script",
                 script, "192.0.2.2", timeout=120).stdout
    assert says in nmap


def test_udp_scan_without_the_privilege_quits_with_one_line(veth_pair):
    a, _ = veth_pair
    for flags, says in ((["-sU"], "-sU needs raw sockets: run as root or with CAP_NET_RAW"),
                        (["-sS", "-sU"], "-sS and -sU need raw sockets: run as root or with "
                                         "CAP_NET_RAW, or use -sT")):
        done = run_nsecluster("scan", "-n", "-Pn", *flags, "-p", "53", "192.0.2.2",
                              netns=a.name, without_raw=True, timeout=60,
                              env={"PATH": "/usr/bin:/bin"}, inherit_env=False)
        assert done.returncode == 1
        assert done.stderr == ("nsecluster: You requested a scan type which requires root "
                               f"privileges ({says})\n")
