"""Normal (-oN) and screen output: Nmap 7.93's layout, checked against transcripts of real
Nmap runs and, where nmap is installed, against nmap itself scanning listeners on 127.0.0.x."""
from __future__ import annotations

import io
import re
from dataclasses import replace
from functools import partial

import pytest
from conftest import scan_listeners_with_nmap
from hypothesis import given, settings
from hypothesis import strategies as st
from output_support import T0, host_maker, make_info, make_port, nmap_named_ports, render_report

from coordinator.errors import UserError
from coordinator.output import InteractiveWriter, NormalWriter, OutputSet, open_writers
from coordinator.output.model import RunStats, ScanInfo
from coordinator.output.normal import (
    escape_script_text,
    format_latency,
    is_ignored_state,
    script_lines,
    split_ports,
)
from worker.protocol import HostResult, PortResult, PortRun, ScriptResult, Service, merge_ranges

pytestmark = pytest.mark.usefixtures("utc")

SERVICES = {20: "ftp-data", 21: "ftp", 22: "ssh", 23: "telnet", 24: "priv-mail", 25: "smtp",
            26: "rsftp", 27: "nsw-fe", 28: "unknown", 29: "msg-icp", 80: "http",
            8080: "http-proxy"}

info = partial(make_info, command_line="nsecluster -sT 127.0.0.1")
host = host_maker("127.0.0.2", reason="conn-refused", srtt_us=51, rttvar_us=36,
                  timeout_us=100000)


def port(n, state="closed", reason=None, proto="tcp", ttl=0, service="default", scripts=()):
    """make_port, with the service named from SERVICES unless ``service`` is given."""
    if service == "default":
        service = Service(SERVICES[n]) if n in SERVICES else None
    return make_port(n, state, reason, proto, ttl, service, scripts)


def render(scan: ScanInfo, hosts, stats=None, writer=NormalWriter, pre=(), post=()) -> str:
    return render_report(writer, scan, hosts, stats, pre, post)


def body(text: str) -> str:
    """Everything between the header line and the footer line."""
    return "".join(text.splitlines(keepends=True)[1:-1])


def closed_range(ports, opened, **kw):
    return [port(n, "open") if n in opened else port(n, **kw) for n in ports]


# --------------------------------------------------------------------------------------------
# Small rules


@pytest.mark.parametrize("srtt_us, text", [
    (47, "0.000047s"), (2, "0.0000020s"), (1, "0.0000010s"), (110, "0.00011s"),
    (1000, "0.0010s"), (120000, "0.12s"), (1_500_000, "1.5s"), (12_300_000, "12s"),
])
def test_latency_has_two_significant_digits(srtt_us, text):
    assert format_latency(srtt_us) == text


# Thresholds measured with nmap 7.93 (effective verbosity: each -d adds one).
@pytest.mark.parametrize("verbosity, debugging, shown_up_to", [
    (0, 0, 25), (1, 0, 50), (2, 0, 75), (3, 0, 100), (1, 1, 550), (2, 1, 575), (2, 2, 1075),
])
def test_ignored_state_thresholds(verbosity, debugging, shown_up_to):
    scan = info(verbosity=verbosity, debugging=debugging)
    assert not is_ignored_state("closed", shown_up_to, scan)
    assert is_ignored_state("closed", shown_up_to + 1, scan)


def test_ignored_state_special_cases():
    assert not is_ignored_state("open", 10_000, info())
    assert not is_ignored_state("closed", 10_000, info(verbosity=3, debugging=3))
    assert is_ignored_state("open|filtered", 30, info())
    assert not is_ignored_state("open|filtered", 120, info(verbosity=3))
    assert is_ignored_state("closed", 1, info(open_only=True))
    assert not is_ignored_state("open|filtered", 1, info(open_only=True))
    assert not is_ignored_state("unfiltered", 1, info(open_only=True))


# --------------------------------------------------------------------------------------------
# Whole reports, compared with Nmap 7.93 transcripts


def test_two_hosts_match_nmap_normal_output():
    scan = info(command_line="nsecluster --unprivileged -sT -p 1-100,8080 --reason -v -oA x "
                             "127.0.0.1 127.0.0.2",
                tcp_ranges=((1, 100), (8080, 8080)), verbosity=1, show_reason=True)
    ports = list(range(1, 101)) + [8080]
    hosts = [
        host("127.0.0.1", closed_range(ports, {22, 80, 8080}), reason="syn-ack", srtt_us=47,
             hostnames=[("localhost", "PTR")]),
        host("127.0.0.2", closed_range(ports, {25}), srtt_us=51),
    ]
    text = render(scan, hosts, RunStats(T0, 0.02, 2, 2, 0))
    assert text == """\
# nsecluster 0.1.0 scan initiated Thu Nov 26 21:57:21 2026 as: nsecluster --unprivileged -sT -p 1-100,8080 --reason -v -oA x 127.0.0.1 127.0.0.2
Nmap scan report for localhost (127.0.0.1)
Host is up, received syn-ack (0.000047s latency).
Not shown: 98 closed tcp ports (conn-refused)
PORT     STATE SERVICE    REASON
22/tcp   open  ssh        syn-ack
80/tcp   open  http       syn-ack
8080/tcp open  http-proxy syn-ack

Nmap scan report for 127.0.0.2
Host is up, received conn-refused (0.000051s latency).
Not shown: 100 closed tcp ports (conn-refused)
PORT   STATE SERVICE REASON
25/tcp open  smtp    syn-ack

# Nmap done at Thu Nov 26 21:57:21 2026 -- 2 IP addresses (2 hosts up) scanned in 0.02 seconds
"""


def test_interactive_header_and_footer():
    text = render(info(), [host(ports=closed_range(range(20, 23), {22}))],
                  RunStats(T0 + 1, 1.2345, 1, 1, 0), writer=InteractiveWriter)
    lines = text.splitlines()
    assert lines[0] == "Starting nsecluster 0.1.0 at 2026-11-26 21:57 UTC"
    assert lines[-1] == "Nmap done: 1 IP address (1 host up) scanned in 1.23 seconds"
    assert "# Nmap done" not in text


def test_interactive_notes_a_single_down_host_but_files_do_not():
    stats = RunStats(T0, 3.02, 1, 0, 1)
    screen = render(info(), [host(status="down", reason="no-response")], stats,
                    writer=InteractiveWriter)
    assert screen.splitlines()[-2:] == [
        "Note: Host seems down. If it is really up, but blocking our ping probes, try -Pn",
        "Nmap done: 1 IP address (0 hosts up) scanned in 3.02 seconds"]
    assert "Nmap scan report" not in screen  # down hosts need -v
    normal = render(info(), [host(status="down", reason="no-response")], stats)
    assert normal.splitlines()[1:] == [
        "# Nmap done at Thu Nov 26 21:57:21 2026 -- 1 IP address (0 hosts up) scanned in "
        "3.02 seconds"]


def test_no_ignored_ports_gives_blank_line_before_table_and_widths_follow_cells():
    scan = info(verbosity=1, show_reason=True, tcp_ranges=((20, 30),))
    ports = closed_range(range(20, 31), set())
    ports[5] = port(25, "filtered", "no-response")
    assert body(render(scan, [host(ports=ports, srtt_us=32)])) == """\
Nmap scan report for 127.0.0.2
Host is up, received conn-refused (0.000032s latency).

PORT   STATE    SERVICE   REASON
20/tcp closed   ftp-data  conn-refused
21/tcp closed   ftp       conn-refused
22/tcp closed   ssh       conn-refused
23/tcp closed   telnet    conn-refused
24/tcp closed   priv-mail conn-refused
25/tcp filtered smtp      no-response
26/tcp closed   rsftp     conn-refused
27/tcp closed   nsw-fe    conn-refused
28/tcp closed   unknown   conn-refused
29/tcp closed   msg-icp   conn-refused
30/tcp closed   unknown   conn-refused

"""


def test_reason_column_shows_ttl_and_appears_with_vv_or_d():
    ports = [port(22, "open", ttl=64), port(46, "filtered", "admin-prohibited", ttl=64)]
    for scan in (info(verbosity=2), info(verbosity=1, debugging=1)):
        text = render(scan, [host(ports=ports)])
        assert "22/tcp open     ssh     syn-ack ttl 64\n" in text
        assert "46/tcp filtered unknown admin-prohibited ttl 64\n" in text
    assert "REASON" not in render(info(verbosity=1), [host(ports=ports)])


def mixed_filtered_host():
    """ports 1-182 as in an nmap -sS run against iptables rules (c.xml in the notes)."""
    ports = [port(22, "open", ttl=64), port(80, "open", ttl=64)]
    ports += [port(n, "closed", "reset", ttl=64) for n in range(1, 100) if n not in (22, 80)]
    ports += [port(n, "filtered", "no-response") for n in range(100, 103)]
    ports += [port(n, "filtered", "admin-prohibited", ttl=64) for n in range(103, 141)]
    ports += [port(n, "filtered", "host-unreach", ttl=64) for n in range(141, 183)]
    return host("127.0.0.1", ports, reason="localhost-response", srtt_us=2,
                hostnames=[("localhost", "PTR")])


def test_not_shown_lists_each_state_and_reason_by_count():
    text = render(info(show_reason=True), [mixed_filtered_host()])
    assert ("Not shown: 97 closed tcp ports (reset), 42 filtered tcp ports (host-unreach), "
            "38 filtered tcp ports (admin-prohibited), 3 filtered tcp ports (no-response)\n"
            "PORT   STATE SERVICE REASON\n"
            "22/tcp open  ssh     syn-ack ttl 64\n") in text


def test_not_shown_orders_states_by_count_and_ties_like_nmap():
    # filtered (83) before closed (29); a one-port reason still says "ports" (state total 83)
    ports = [port(80, "open")] + [port(n, "closed", "reset") for n in range(70, 100) if n != 80]
    ports += [port(n, "filtered", "no-response") for n in range(100, 141)]
    ports += [port(n, "filtered", "host-unreach") for n in range(141, 182)]
    ports += [port(182, "filtered", "admin-prohibited")]
    text = render(info(), [host(ports=ports)])
    assert ("Not shown: 41 filtered tcp ports (host-unreach), 41 filtered tcp ports "
            "(no-response), 1 filtered tcp ports (admin-prohibited), 29 closed tcp ports "
            "(reset)\n") in text
    # equal counts of states: closed first, wherever its ports are
    for closed_at, filtered_at in ((range(50, 80), range(100, 130)),
                                   (range(281, 311), range(100, 130))):
        ports = [port(n, "closed", "reset") for n in closed_at]
        ports += [port(n, "filtered", "no-response") for n in filtered_at]
        assert ("Not shown: 30 closed tcp ports (reset), 30 filtered tcp ports (no-response)"
                in render(info(), [host(ports=ports)]))
    # equal counts of reasons: the reason first met at a higher port comes first
    ports = [port(n, "filtered", "no-response") for n in list(range(100, 130)) + [200]]
    ports += [port(n, "filtered", "host-unreach") for n in range(130, 161)]
    assert ("Not shown: 31 filtered tcp ports (host-unreach), 31 filtered tcp ports "
            "(no-response)") in render(info(), [host(ports=ports)])


def test_not_shown_counts_a_state_over_all_protocols():
    # 49 closed tcp + 20 closed udp = 69 > 25: both collapse, udp ones too
    ports = [port(80, "open")] + [port(n, "closed", "reset") for n in range(50, 100) if n != 80]
    ports += [port(n, "closed", "port-unreach", "udp") for n in
              list(range(150, 160)) + list(range(190, 200))]
    ports += [port(n, "open|filtered", "no-response", "udp") for n in range(160, 190)]
    text = render(info(udp_ranges=((150, 199),)), [host(ports=ports)])
    assert ("Not shown: 49 closed tcp ports (reset), 20 closed udp ports (port-unreach), "
            "30 open|filtered udp ports (no-response)\nPORT   STATE SERVICE\n"
            "80/tcp open  http\n") in text


def test_all_ports_ignored():
    ports = [port(n, "filtered", r) for r, lo in (("no-response", 100), ("host-unreach", 130))
             for n in range(lo, lo + 30)]
    h = host("127.0.0.1", ports, hostnames=[("localhost", "PTR")])
    assert body(render(info(), [h])).splitlines()[2:] == [
        "All 60 scanned ports on localhost (127.0.0.1) are in ignored states.",
        "Not shown: 30 filtered tcp ports (host-unreach), 30 filtered tcp ports (no-response)",
        ""]


def test_open_only_hides_other_states_and_hosts_without_open_ports():
    scan = info(open_only=True)
    with_open = host("127.0.0.1", closed_range(range(21, 23), {22}),
                     hostnames=[("localhost", "PTR")])
    without = host("127.0.0.2", closed_range(range(21, 23), set()))
    text = render(scan, [with_open, without], RunStats(T0, 0.02, 2, 2, 0))
    assert body(text) == """\
Nmap scan report for localhost (127.0.0.1)
Host is up (0.000051s latency).
Not shown: 1 closed tcp port (conn-refused)
PORT   STATE SERVICE
22/tcp open  ssh

"""


def test_down_hosts_are_reported_only_when_verbose():
    down = host("127.0.0.9", status="down", reason="no-response", srtt_us=None)
    up = host("127.0.0.2", closed_range(range(25, 27), {25}))
    stats = RunStats(T0, 2.42, 2, 1, 1)
    assert "127.0.0.9" not in render(info(), [down, up], stats)
    text = render(info(verbosity=1), [down, up], stats)
    assert body(text).startswith("Nmap scan report for 127.0.0.9 [host down]\n"
                                 "Nmap scan report for 127.0.0.2\n")
    text = render(info(verbosity=1, show_reason=True), [down], stats)
    assert "Nmap scan report for 127.0.0.9 [host down, received no-response]\n" in text


def test_skipped_host_timeout():
    skipped = host("127.0.0.9", status="skipped", timed_out=True, reason="user-set",
                   srtt_us=None, ports=[port(1, "filtered")])
    after = host("127.0.0.2", closed_range(range(24, 26), {25}))
    assert body(render(info(), [skipped, after])).splitlines()[:4] == [
        "Nmap scan report for 127.0.0.9", "Host is up.",
        "Skipping host 127.0.0.9 due to host timeout", "Nmap scan report for 127.0.0.2"]
    assert "Host is up, received user-set.\n" in render(info(show_reason=True), [skipped])


def test_ping_scan_has_no_port_table_and_no_blank_lines():
    scan = info(scan_type="none", tcp_ranges=())
    hosts = [host("127.0.0.1", hostnames=[("localhost", "PTR")], srtt_us=33),
             host("127.0.0.2", srtt_us=50),
             host("127.0.0.1", targetname="localhost",
                  hostnames=[("localhost", "user"), ("localhost", "PTR")], srtt_us=327)]
    assert body(render(scan, hosts, RunStats(T0, 0.0, 3, 3, 0))) == """\
Nmap scan report for localhost (127.0.0.1)
Host is up (0.000033s latency).
Nmap scan report for 127.0.0.2
Host is up (0.000050s latency).
Nmap scan report for localhost (127.0.0.1)
Host is up (0.00033s latency).
"""
    # with a script scan each host block ends with a blank line, scripts or not
    assert body(render(replace(scan, script_scan=True), hosts[1:2])) == (
        "Nmap scan report for 127.0.0.2\nHost is up (0.000050s latency).\n\n")


def test_user_name_rdns_other_addresses_and_scanned_at():
    h = HostResult("127.0.0.1", targetname="vm", hostnames=[("vm", "user"), ("localhost", "PTR")],
                   other_addresses=["::1", "127.0.0.6"],
                   ports=[port(22, "open")], start_time=T0, end_time=T0 + 3, srtt_us=280,
                   reason="syn-ack")
    text = render(info(verbosity=2), [h])
    assert body(text).splitlines()[:6] == [
        "Nmap scan report for vm (127.0.0.1)",
        "Host is up, received syn-ack (0.00028s latency).",
        "Other addresses for vm (not scanned): ::1 127.0.0.6",
        "rDNS record for 127.0.0.1: localhost",
        "Scanned at 2026-11-26 21:57:21 UTC for 3s",
        ""]
    same = host("127.0.0.5", [port(22)], targetname="multi", hostnames=[("multi", "PTR")])
    assert "rDNS" not in render(info(), [same])
    assert "Scanned at" not in render(info(verbosity=1), [same])


def test_ipv6_host():
    h = host("::1", [port(22, "open"), port(23)], reason="syn-ack")
    assert body(render(info(), [h])).startswith("Nmap scan report for ::1\n")


# --------------------------------------------------------------------------------------------
# Script output (nse-spec §9.3)

TPORT_OUTPUT = ("\n  first\n  name: x<y>&\"z'\n  list: \n    a\n    b\x01\r\n    \n      c\n"
                "      d\n  sub: \n    k: v")


def test_script_blocks_under_ports_and_host_as_nmap_prints_them():
    scripts_host = [ScriptResult("tempty", ""), ScriptResult("thost", "line1\nline2\x01\tx\n"),
                    ScriptResult("tone", "single")]
    h = host("127.0.0.1", [port(22, "open", scripts=[ScriptResult("tport", TPORT_OUTPUT)]),
                           port(23)], hostnames=[("localhost", "PTR")], srtt_us=158,
             scripts=scripts_host)
    text = render(info(script_scan=True), [h],
                  pre=[ScriptResult("tpre", "\n  p1\n  p2")],
                  post=[ScriptResult("tpost", "done")])
    assert body(text) == """\
Pre-scan script results:
| tpre: 
|   p1
|_  p2
Nmap scan report for localhost (127.0.0.1)
Host is up (0.00016s latency).

PORT   STATE  SERVICE
22/tcp open   ssh
| tport: 
|   first
|   name: x<y>&"z'
|   list: 
|     a
|     b\\x01\\x0D
|     
|       c
|       d
|   sub: 
|_    k: v
23/tcp closed telnet

Host script results:
Bug in tempty: no string output.
| thost: line1
|_line2\\x01\tx
|_tone: single

Post-scan script results:
|_tpost: done
"""


def test_script_escapes_bytes_and_keeps_inner_blank_lines():
    out = ScriptResult("tbin", "a\xfe\x1b\t\r<\n\nb\n\n")
    assert script_lines(out) == ["| tbin: a\\xC3\\xBE\\x1B\t\\x0D<", "| ", "| b", "|_"]
    raw = ScriptResult("raw", b"\xfe\xff".decode("utf-8", "surrogateescape"))
    assert script_lines(raw) == ["|_raw: \\xFE\\xFF"]


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_script_lines_property(text):
    lines = script_lines(ScriptResult("x", text))
    for line in lines:
        assert all(c == "\t" or " " <= c <= "~" for c in line)
    if text == "":
        assert lines == ["Bug in x: no string output."]
        return
    assert lines[-1].startswith("|_")
    assert all(line.startswith("| ") for line in lines[:-1])
    stripped = [line[2:] for line in lines]
    stripped[0] = stripped[0].removeprefix("x: ")
    escaped = escape_script_text(text)
    assert "\n".join(stripped) == (escaped[:-1] if escaped.endswith("\n") else escaped)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["tcp", "udp"]), st.integers(1, 400),
                          st.sampled_from(["open", "closed", "filtered", "open|filtered"]),
                          st.sampled_from(["syn-ack", "reset", "no-response", "port-unreach"])),
                max_size=300),
       st.integers(0, 3), st.booleans())
def test_split_ports_shows_or_collapses_every_port_once(raw, verbosity, open_only):
    seen, ports = set(), []
    for proto, n, state, reason in raw:
        if (proto, n) not in seen:
            seen.add((proto, n))
            ports.append(PortResult(proto, n, state, reason))
    scan = info(verbosity=verbosity, open_only=open_only)
    shown, ignored = split_ports(host(ports=ports), scan)
    collapsed = {(g.protocol, n) for s in ignored for g in s.groups
                 for low, high in g.ranges for n in range(low, high + 1)}
    assert {(p.protocol, p.portid) for p in shown} | collapsed == seen
    assert len(shown) + sum(s.count for s in ignored) == len(ports)
    assert all(p.state != s.state for p in shown for s in ignored)
    assert [s.count for s in ignored] == sorted((s.count for s in ignored), reverse=True)


# --------------------------------------------------------------------------------------------
# Version detection columns (observed with nmap -sV against banner listeners)


def test_version_columns_guesses_tunnels_fingerprint_and_service_info():
    fp = ("SF-Port5555-TCP:V=7.93%I=7%D=11/26%Time=6B08AC06%P=x86_64-pc-linux-gnu%r(NULL,1B,"
          '"\\0\\x01zork")' + "%r(X," + "A" * 80 + ");")
    ports = [
        port(1234, "open", service=Service("hotline")),
        port(2121, "open", service=Service("ftp", "probed", 10, "vsftpd", "3.0.3",
                                           ostype="Unix")),
        port(2222, "open", service=Service("ssh", "probed", 10, "OpenSSH", "8.4p1 Debian 5",
                                           "protocol 2.0", ostype="Linux",
                                           cpe=["cpe:/a:openbsd:openssh:8.4p1",
                                                "cpe:/o:linux:linux_kernel"])),
        port(2525, "open", service=Service("smtp", "probed", 10, "Postfix smtpd",
                                           hostname=" mail.example.com")),
        port(4443, "open", service=Service("http", "probed", 10, "Apache httpd", "2.4.1",
                                           "(Unix)", tunnel="ssl")),
        port(5555, "open", service=Service("freeciv", servicefp=fp)),
        port(7, "closed", service=Service("echo")),
    ]
    text = render(info(version_scan=True), [host("127.0.0.3", ports, srtt_us=260)])
    lines = text.splitlines()
    start = lines.index("PORT     STATE  SERVICE  VERSION")
    assert lines[start + 1:start + 8] == [
        "7/tcp    closed echo",
        "1234/tcp open   hotline?",
        "2121/tcp open   ftp      vsftpd 3.0.3",
        "2222/tcp open   ssh      OpenSSH 8.4p1 Debian 5 (protocol 2.0)",
        "2525/tcp open   smtp     Postfix smtpd",
        "4443/tcp open   ssl/http Apache httpd 2.4.1 ((Unix))",
        "5555/tcp open   freeciv?",
    ]
    assert lines[start + 8].startswith("1 service unrecognized despite returning data.")
    end = start + 9
    while lines[end].startswith("SF"):
        end += 1
    sf = lines[start + 9:end]
    assert len(sf) == 3 and sf[0] == fp[:74] and all(len(line) <= 74 for line in sf)
    assert all(line.startswith("SF:") for line in sf[1:])
    assert "".join([sf[0]] + [line.removeprefix("SF:") for line in sf[1:]]) == fp
    assert lines[end] == ("Service Info: Host:  mail.example.com; OSs: Unix, Linux; "
                                 "CPE: cpe:/o:linux:linux_kernel")
    assert lines[-2] == ("Service detection performed. Please report any incorrect results at "
                         "https://nmap.org/submit/ .")


def test_unknown_service_with_a_fingerprint_has_no_question_mark():
    # As nmap -sV prints a port it could not name that answered (tests/worker/
    # test_version_scan.py compares the whole scan with nmap's).
    fp = 'SF-Port40109-TCP:V=7.93%I=2%D=11/27%Time=6B09043F%P=x86_64-pc-linux-gnu%r(NULL,1,"x");'
    ports = [port(40109, "open", service=Service("unknown", servicefp=fp)),
             port(40110, "open", service=Service("tcpwrapped", "probed", 8))]
    lines = render(info(version_scan=True), [host("127.0.0.3", ports)]).splitlines()
    start = lines.index("PORT      STATE SERVICE    VERSION")
    assert lines[start + 1:start + 3] == ["40109/tcp open  unknown", "40110/tcp open  tcpwrapped"]


# --------------------------------------------------------------------------------------------
# Streaming, interruption, factory


def test_each_host_is_on_disk_before_the_next_arrives(tmp_path):
    path = tmp_path / "scan.nmap"
    outputs = open_writers([("normal", str(path))], info(), interactive=False)
    outputs.begin()
    outputs.host(host("127.0.0.2", closed_range(range(24, 26), {25})))
    # a second reader sees the finished host although the writer is still open
    assert "25/tcp open   smtp\n" in path.read_text()
    outputs.close()


def test_interrupted_scan_says_so_before_the_footer():
    stats = RunStats(T0, 5.0, 3, 1, 0, interrupted=True)
    lines = render(info(), [host(ports=[port(22, "open")])], stats).splitlines()
    assert "interrupted" in lines[-2].lower()
    assert lines[-1].startswith("# Nmap done at ")
    err = render(info(), [], RunStats(T0, 1.0, 0, 0, 0, error="Out of memory")).splitlines()
    assert err[-2:] == ["Out of memory", "# Nmap done at Thu Nov 26 21:57:21 2026 -- "
                                          "0 IP addresses (0 hosts up) scanned in 1.00 seconds"]


def test_factory_opens_files_adds_screen_and_never_closes_stdout(tmp_path):
    stdout = io.StringIO()
    base = tmp_path / "all"
    outputs = open_writers([("all", str(base)), ("json", str(tmp_path / "x.json"))], info(),
                           stdout=stdout)
    assert isinstance(outputs, OutputSet)
    assert [type(w).__name__ for w in outputs.writers] == [
        "InteractiveWriter", "NormalWriter", "XmlWriter", "GrepableWriter", "JsonWriter"]
    with outputs:
        outputs.begin()
        outputs.host(host(ports=[port(22, "open")]))
        outputs.end(RunStats(T0, 0.1, 1, 1, 0))
    assert not stdout.closed and stdout.getvalue().startswith("Starting nsecluster")
    for suffix in (".nmap", ".xml", ".gnmap"):
        assert "127.0.0.2" in (tmp_path / f"all{suffix}").read_text()
    # a format writing to "-" replaces the screen output
    stdout = io.StringIO()
    outputs = open_writers([("grepable", "-")], info(), stdout=stdout)
    assert [type(w).__name__ for w in outputs.writers] == ["GrepableWriter"]
    outputs.close()
    assert not stdout.closed


def test_unwritable_path_is_a_one_line_user_error(tmp_path):
    ok = tmp_path / "ok.xml"
    with pytest.raises(UserError) as caught:
        open_writers([("xml", str(ok)), ("normal", "/nonexistent/dir/x")], info())
    message = str(caught.value)
    assert message.startswith("Failed to open normal output file /nonexistent/dir/x for writing")
    assert "\n" not in message
    with pytest.raises(UserError, match="^Failed to open machine output file"):
        open_writers([("grepable", str(tmp_path))], info())  # a directory


def test_broken_stdout_does_not_stop_file_outputs(tmp_path):
    class Closed(io.StringIO):
        def write(self, s):
            raise BrokenPipeError(32, "Broken pipe")

    path = tmp_path / "n.nmap"
    outputs = open_writers([("normal", str(path))], info(), stdout=Closed())
    outputs.begin()
    outputs.host(host(ports=[port(22, "open")]))
    outputs.end(RunStats(T0, 0.1, 1, 1, 0))
    outputs.close()
    assert path.read_text().splitlines()[-1].startswith("# Nmap done at")


# --------------------------------------------------------------------------------------------
# Against nmap itself

@pytest.mark.parametrize("mode", ["ports", "ping"])
def test_same_body_as_nmap_for_listeners_on_loopback(tmp_path, mode, listeners, nmap_path):
    opened = {40001, 40010, 40044} if mode == "ports" else set()
    args = ["-sT", "-Pn", "-p", "40000-40060"] if mode == "ports" else ["-sn"]
    address = scan_listeners_with_nmap(nmap_path, listeners, opened, "--reason", *args,
                                       "-oN", str(tmp_path / "n.nmap"))
    theirs = (tmp_path / "n.nmap").read_text()
    latency = re.search(r"\((\S+)s latency\)", theirs).group(1)
    srtt_us = round(float(latency) * 1_000_000)
    if mode == "ports":
        ports = nmap_named_ports(range(40000, 40061), opened)
        scan = info(show_reason=True, tcp_ranges=((40000, 40060),))
        ours = render(scan, [host(address, ports, reason="user-set", srtt_us=srtt_us)])
    else:
        scan = info(show_reason=True, scan_type="none", tcp_ranges=())
        ours = render(scan, [host(address, reason="conn-refused", srtt_us=srtt_us)])
    their_body = [line for line in body(theirs).splitlines()
                  if not line.startswith(("Read data files", "Warning"))]
    assert body(ours).splitlines() == their_body


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["tcp", "udp"]), st.integers(1, 400),
                          st.sampled_from(["closed", "filtered", "open"]),
                          st.sampled_from(["conn-refused", "no-response"])), max_size=300),
       st.sets(st.sampled_from(["closed", "filtered"])), st.integers(0, 3), st.integers(0, 3))
def test_bulk_runs_split_exactly_like_the_same_ports_one_by_one(raw, bulk_states, verbosity,
                                                                  debugging):
    seen, ports = set(), []
    for proto, n, state, reason in raw:
        if (proto, n) not in seen:
            seen.add((proto, n))
            ports.append(PortResult(proto, n, state, reason))
    runs, single = {}, []
    for p in ports:
        if p.state in bulk_states:
            runs.setdefault((p.protocol, p.state, p.reason), []).append(p.portid)
        else:
            single.append(p)
    bulk = host(ports=single, port_runs=[PortRun(proto, state, reason, 0, merge_ranges(nums))
                                         for (proto, state, reason), nums in runs.items()])
    scan = info(verbosity=verbosity, debugging=debugging)
    expected_shown, expected_ignored = split_ports(host(ports=ports), scan)
    shown, ignored = split_ports(bulk, scan)
    assert bulk.port_count == len(ports)
    assert [(p.protocol, p.portid, p.state) for p in shown] == [
        (p.protocol, p.portid, p.state) for p in expected_shown]
    assert [(s.state, s.count, [(g.protocol, g.reason, g.count, g.ranges) for g in s.groups])
            for s in ignored] == [
        (s.state, s.count, [(g.protocol, g.reason, g.count, g.ranges) for g in s.groups])
        for s in expected_ignored]
