"""Grepable output (-oG), checked against transcripts of nmap 7.93 runs and nmap itself."""
from __future__ import annotations

from functools import partial

import pytest
from conftest import scan_listeners_with_nmap
from output_support import T0, host_maker, make_info, make_port, nmap_named_ports, render_report

from coordinator.output import GrepableWriter, open_writers
from coordinator.output.model import RunStats
from worker.protocol import ScriptResult, Service

pytestmark = pytest.mark.usefixtures("utc")

info = partial(make_info, command_line="nsecluster -sT -p 1-100 127.0.0.1")
port = make_port
host = host_maker(srtt_us=40)
render = partial(render_report, GrepableWriter)

NAMES = {22: "ssh", 25: "smtp", 80: "http", 8080: "http-proxy"}


def scanned(opened, ports):
    return [port(n, "open", service=Service(NAMES[n])) if n in opened
            else port(n, service=Service("x")) for n in ports]


def test_matches_nmap_grepable_output():
    scan = info(command_line="nsecluster --unprivileged -sT -p 1-100,8080 --reason -v "
                             "127.0.0.1 127.0.0.2",
                tcp_ranges=((1, 100), (8080, 8080)), verbosity=1, show_reason=True)
    ports = list(range(1, 101)) + [8080]
    hosts = [host("127.0.0.1", scanned({22, 80, 8080}, ports), hostnames=[("localhost", "PTR")],
                  scripts=[ScriptResult("hs", "should not appear")]),
             host("127.0.0.2", scanned({25}, ports))]
    assert render(scan, hosts) == """\
# nsecluster 0.1.0 scan initiated Thu Nov 26 21:57:21 2026 as: nsecluster --unprivileged -sT -p 1-100,8080 --reason -v 127.0.0.1 127.0.0.2
# Ports scanned: TCP(101;1-100,8080) UDP(0;) SCTP(0;) PROTOCOLS(0;)
Host: 127.0.0.1 (localhost)\tStatus: Up
Host: 127.0.0.1 (localhost)\tPorts: 22/open/tcp//ssh///, 80/open/tcp//http///, 8080/open/tcp//http-proxy///\tIgnored State: closed (98)
Host: 127.0.0.2 ()\tStatus: Up
Host: 127.0.0.2 ()\tPorts: 25/open/tcp//smtp///\tIgnored State: closed (100)
# Nmap done at Thu Nov 26 21:57:21 2026 -- 2 IP addresses (2 hosts up) scanned in 0.02 seconds
"""


def test_ignored_state_only_when_exactly_one_state_is_collapsed():
    two = [port(n, "closed", "reset") for n in range(50, 80)]
    two += [port(n, "filtered") for n in range(100, 130)]
    lines = render(info(), [host(ports=two)]).splitlines()
    assert lines[2] == "Host: 127.0.0.1 ()\tPorts: "
    one = [port(n, "closed", "reset", service=Service("x")) for n in range(50, 53)]
    one += [port(n, "filtered") for n in range(100, 130)]
    assert render(info(), [host(ports=one)]).splitlines()[2] == (
        "Host: 127.0.0.1 ()\tPorts: 50/closed/tcp//x///, 51/closed/tcp//x///, "
        "52/closed/tcp//x///\tIgnored State: filtered (30)")


def test_down_timed_out_and_ping_only_hosts():
    down = host("127.0.0.9", status="down", reason="no-response")
    up = host("127.0.0.2", scanned({25}, [24, 25]))
    assert "127.0.0.9" not in render(info(), [down, up])
    lines = render(info(verbosity=1), [down, up]).splitlines()
    assert lines[2] == "Host: 127.0.0.9 ()\tStatus: Down"
    skipped = host("127.0.0.9", status="skipped", timed_out=True, ports=[port(1)])
    assert render(info(), [skipped]).splitlines()[1:3] == [
        "Host: 127.0.0.9 ()\tStatus: Up", "Host: 127.0.0.9 ()\tStatus: Timeout"]
    ping = render(info(scan_type="none", tcp_ranges=(), verbosity=1),
                  [host("127.0.0.1", hostnames=[("localhost", "PTR")])]).splitlines()
    assert ping[1:3] == ["# Ports scanned: TCP(0;) UDP(0;) SCTP(0;) PROTOCOLS(0;)",
                         "Host: 127.0.0.1 (localhost)\tStatus: Up"]
    assert len(ping) == 4


def test_host_name_is_the_ptr_name_only():
    h = host(ports=[port(22, "open", service=Service("ssh"))], targetname="vm",
             hostnames=[("vm", "user"), ("localhost", "PTR")])
    assert "Host: 127.0.0.1 (localhost)\tStatus: Up" in render(info(), [h])
    h = host(ports=[port(22, "open", service=Service("ssh"))], targetname="vm",
             hostnames=[("vm", "user")])
    assert "Host: 127.0.0.1 ()\tStatus: Up" in render(info(), [h])


def test_version_fields_guesses_tunnels_and_unnamed_ports():
    ports = [
        port(36),  # no service name at all
        port(1234, "open", service=Service("hotline")),
        port(2222, "open", service=Service("ssh", "probed", 10, "OpenSSH", "8.4p1 Debian 5",
                                           "protocol 2.0")),
        port(4443, "open", service=Service("http", "probed", 10, "Apache httpd", "2.4.1",
                                           "(Unix)", tunnel="ssl")),
        port(5000, "open", service=Service("http", "probed", 10, "a/b")),
    ]
    line = render(info(version_scan=True), [host(ports=ports)]).splitlines()[2]
    assert line == ("Host: 127.0.0.1 ()\tPorts: 36/closed/tcp/////, 1234/open/tcp//hotline?///, "
                    "2222/open/tcp//ssh//OpenSSH 8.4p1 Debian 5 (protocol 2.0)/, "
                    "4443/open/tcp//ssl|http//Apache httpd 2.4.1 ((Unix))/, "
                    "5000/open/tcp//http//a|b/")


def test_open_only_and_interruption():
    text = render(info(open_only=True), [host("127.0.0.2", [port(21)]),
                                         host("127.0.0.1", [port(21), port(22, "open")])])
    assert "127.0.0.2" not in text
    assert "Ports: 22/open/tcp/////\tIgnored State: closed (1)" in text
    lines = render(info(), [], RunStats(T0, 1.0, 9, 0, 0, interrupted=True)).splitlines()
    assert lines[-2].startswith("# ") and "interrupted" in lines[-2]
    assert lines[-1].startswith("# Nmap done at")


def test_each_host_is_flushed(tmp_path):
    path = tmp_path / "scan.gnmap"
    outputs = open_writers([("grepable", str(path))], info(), interactive=False)
    outputs.begin()
    outputs.host(host(ports=[port(22, "open", service=Service("ssh"))]))
    assert "Ports: 22/open/tcp//ssh///" in path.read_text()
    outputs.close()


def test_same_lines_as_nmap_for_listeners_on_loopback(tmp_path, listeners, nmap_path):
    opened = {40002, 40003, 40050}
    address = scan_listeners_with_nmap(nmap_path, listeners, opened, "-sT", "-Pn", "-v", "-p",
                                       "40000-40060", "-oG", str(tmp_path / "n.gnmap"))
    ports = nmap_named_ports(range(40000, 40061), opened)
    ours = render(info(verbosity=1, tcp_ranges=((40000, 40060),)), [host(address, ports)])
    theirs = (tmp_path / "n.gnmap").read_text()
    assert ours.splitlines()[1:-1] == theirs.splitlines()[1:-1]
