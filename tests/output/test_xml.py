"""XML output (-oX): valid against Nmap's own DTD, readable by python-libnmap and ndiff, and
shaped like what nmap 7.93 writes for the same scan."""
from __future__ import annotations

import os
import shutil
import subprocess
from functools import partial

import pytest
from conftest import scan_listeners_with_nmap
from lxml import etree
from output_support import T0, host_maker, make_info, make_port, nmap_named_ports, render_report

from coordinator.output import XmlWriter, open_writers
from coordinator.output.model import RunStats
from worker.protocol import ScriptResult, Service

DTD_PATH = "/usr/share/nmap/nmap.dtd"  # from Debian's nmap-common, read at test time
NDIFF = shutil.which("ndiff")

needs_dtd = pytest.mark.skipif(not os.path.exists(DTD_PATH), reason="nmap.dtd not installed")
pytestmark = pytest.mark.usefixtures("utc")

info = partial(make_info, command_line="nsecluster -sT --reason -p 1-100 127.0.0.1")
port = make_port
host = host_maker(end_time=T0 + 1, srtt_us=47, rttvar_us=36, timeout_us=100000)
render = partial(render_report, XmlWriter, end_time=T0 + 1, elapsed_s=0.5)


def validate(text: str):
    dtd = etree.DTD(DTD_PATH)
    tree = etree.fromstring(text.encode())
    assert dtd.validate(tree), dtd.error_log.filter_from_errors()
    return tree


TPORT = ScriptResult(
    "tport",
    "\n  first\n  name: x<y>&\"z'\n  list: \n    a\n    b\x01\r\n    \n      c\n      d\n"
    "  sub: \n    k: v",
    [["name", "x<y>&\"z'"], ["list", [[None, "a"], [None, "b\x01\r"],
                                       [None, [[None, "c"], [None, "d"]]]]],
     ["sub", [["k", "v"]]], [None, "first"]])


def rich_hosts():
    ssh = Service("ssh", "probed", 10, "OpenSSH", "8.4p1 Debian 5", "protocol 2.0",
                  ostype="Linux", cpe=["cpe:/a:openbsd:openssh:8.4p1", "cpe:/o:linux:linux_kernel"])
    ports = [port(22, "open", service=ssh, scripts=[TPORT]),
             port(80, "open", service=Service("http", tunnel="ssl")),
             port(36, "closed")]
    ports += [port(n, "closed", service=Service("x")) for n in range(40, 100)]
    ports += [port(n, "open|filtered", proto="udp", service=Service("snmp"))
              for n in range(160, 190)]
    up = host("127.0.0.1", ports, hostnames=[("localhost", "PTR")], targetname="vm",
              scripts=[ScriptResult("tbin", "a\xfe\x1b\t\r<\n\nb\n\n",
                                    [["k", "\xfe\x1b\t\n\r<"]]),
                       ScriptResult("tempty", "")])
    down = host("127.0.0.9", status="down", reason="no-response", srtt_us=None,
                targetname="downname")
    skipped = host("127.0.0.10", status="skipped", timed_out=True, reason="user-set")
    six = host("::1", [port(22, "open", service=Service("ssh"))])
    return [up, down, skipped, six]


# --------------------------------------------------------------------------------------------


@needs_dtd
def test_rich_document_validates_against_nmap_dtd():
    text = render(info(verbosity=1, udp_ranges=((160, 189),), script_scan=True), rich_hosts(),
                  RunStats(T0 + 2, 2.0, 4, 3, 1),
                  pre=[ScriptResult("tpre", "\n  p1\n  p2", [[None, "p1"], [None, "p2"]])],
                  post=[ScriptResult("tpost", "done")])
    tree = validate(text)
    assert [h.find("address").get("addr") for h in tree.findall("host")] == [
        "127.0.0.1", "127.0.0.9", "127.0.0.10", "::1"]
    assert tree.find("host[4]/address").get("addrtype") == "ipv6"
    assert [s.get("type") for s in tree.findall("scaninfo")] == ["connect", "udp"]


@needs_dtd
def test_interrupted_and_failed_scans_close_well_formed():
    for stats, message in ((RunStats(T0, 1.0, 5, 1, 0, interrupted=True), "interrupted"),
                           (RunStats(T0, 1.0, 5, 1, 0, error="boom: disk full"), "boom")):
        text = render(info(), [host(ports=[port(22, "open")])], stats)
        finished = validate(text).find("runstats/finished")
        assert finished.get("exit") == "error"
        assert message in finished.get("errormsg")
    ok = validate(render(info(), [])).find("runstats/finished")
    assert ok.get("exit") == "success" and ok.get("errormsg") is None


def test_matches_nmap_layout_for_a_port_scan():
    ports = [port(n, "open", service=Service({22: "ssh", 80: "http", 8080: "http-proxy"}[n]))
             if n in (22, 80, 8080) else port(n) for n in list(range(1, 101)) + [8080]]
    scan = info(command_line="nmap --unprivileged -sT -p 1-100,8080 --reason -v 127.0.0.1",
                tcp_ranges=((1, 100), (8080, 8080)), verbosity=1, show_reason=True)
    text = render(scan, [host(ports=ports, end_time=T0, hostnames=[("localhost", "PTR")])],
                  RunStats(T0, 0.02, 1, 1, 0))
    assert text == """\
<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE nmaprun>
<?xml-stylesheet href="https://svn.nmap.org/nmap/docs/nmap.xsl" type="text/xsl"?>
<!-- nsecluster 0.1.0 scan initiated Thu Nov 26 21:57:21 2026 as: nmap -&#45;unprivileged -sT -p 1-100,8080 -&#45;reason -v 127.0.0.1 -->
<nmaprun scanner="nmap" args="nmap -&#45;unprivileged -sT -p 1-100,8080 -&#45;reason -v 127.0.0.1" start="1795730241" startstr="Thu Nov 26 21:57:21 2026" version="0.1.0" xmloutputversion="1.05">
<scaninfo type="connect" protocol="tcp" numservices="101" services="1-100,8080"/>
<verbose level="1"/>
<debugging level="0"/>
<host starttime="1795730241" endtime="1795730241"><status state="up" reason="syn-ack" reason_ttl="0"/>
<address addr="127.0.0.1" addrtype="ipv4"/>
<hostnames>
<hostname name="localhost" type="PTR"/>
</hostnames>
<ports><extraports state="closed" count="98">
<extrareasons reason="conn-refused" count="98" proto="tcp" ports="1-21,23-79,81-100"/>
</extraports>
<port protocol="tcp" portid="22"><state state="open" reason="syn-ack" reason_ttl="0"/><service name="ssh" method="table" conf="3"/></port>
<port protocol="tcp" portid="80"><state state="open" reason="syn-ack" reason_ttl="0"/><service name="http" method="table" conf="3"/></port>
<port protocol="tcp" portid="8080"><state state="open" reason="syn-ack" reason_ttl="0"/><service name="http-proxy" method="table" conf="3"/></port>
</ports>
<times srtt="47" rttvar="36" to="100000"/>
</host>
<runstats><finished time="1795730241" timestr="Thu Nov 26 21:57:21 2026" summary="Nmap done at Thu Nov 26 21:57:21 2026; 1 IP address (1 host up) scanned in 0.02 seconds" elapsed="0.02" exit="success"/><hosts up="1" down="0" total="1"/>
</runstats>
</nmaprun>
"""


def test_extraports_per_state_and_reason_in_nmap_order():
    ports = [port(80, "open")] + [port(n, "closed", "reset") for n in range(70, 100) if n != 80]
    ports += [port(n, "filtered", "no-response") for n in range(100, 141)]
    ports += [port(n, "filtered", "host-unreach") for n in range(141, 182)]
    ports += [port(182, "filtered", "admin-prohibited")]
    text = render(info(), [host(ports=ports)])
    assert """<ports><extraports state="filtered" count="83">
<extrareasons reason="host-unreach" count="41" proto="tcp" ports="141-181"/>
<extrareasons reason="no-response" count="41" proto="tcp" ports="100-140"/>
<extrareasons reason="admin-prohibited" count="1" proto="tcp" ports="182"/>
</extraports>
<extraports state="closed" count="29">
<extrareasons reason="reset" count="29" proto="tcp" ports="70-79,81-99"/>
</extraports>
<port protocol="tcp" portid="80">""" in text


def test_script_structure_and_escaping_as_nmap_writes_them():
    h = host(ports=[port(22, "open", service=Service("ssh"), scripts=[TPORT]), port(23)],
             scripts=[ScriptResult("tempty", ""),
                      ScriptResult("thost", "line1\nline2\x01\tx\n"),
                      ScriptResult("tbin", "a\xfe\x1b\t\r<\n\nb\n\n", [["k", "\x1b\t\n\r<"]])])
    text = render(info(), [h], pre=[ScriptResult("tpre", "\n  p1\n  p2",
                                                 [[None, "p1"], [None, "p2"]])],
                  post=[ScriptResult("tpost", "done", [])])
    assert ("""<script id="tport" output="&#xa;  first&#xa;  name: x&lt;y&gt;&amp;&quot;z&apos;&#xa;  list: &#xa;    a&#xa;    b\\x01&#xd;&#xa;    &#xa;      c&#xa;      d&#xa;  sub: &#xa;    k: v"><elem>first</elem>
<elem key="name">x&lt;y&gt;&amp;&quot;z&apos;</elem>
<table key="list">
<elem>a</elem>
<elem>b\\x01&#xd;</elem>
<table>
<elem>c</elem>
<elem>d</elem>
</table>
</table>
<table key="sub">
<elem key="k">v</elem>
</table>
</script></port>
""") in text
    assert ('<hostscript><script id="tempty" output=""/><script id="thost" '
            'output="line1&#xa;line2\\x01&#x9;x&#xa;"/><script id="tbin" '
            'output="a\\xC3\\xBE\\x1B&#x9;&#xd;&lt;&#xa;&#xa;b&#xa;&#xa;">'
            '<elem key="k">\\x1B&#x9;&#xa;&#xd;&lt;</elem>\n</script></hostscript>'
            '<times ') in text
    assert ('<debugging level="0"/>\n<prescript><script id="tpre" output="&#xa;  p1&#xa;  p2">'
            '<elem>p1</elem>\n<elem>p2</elem>\n</script></prescript><host ') in text
    assert ('</host>\n<postscript><script id="tpost" output="done"></script></postscript>'
            '<runstats>') in text


def test_down_timed_out_and_ping_only_hosts():
    down = host("127.0.0.9", status="down", reason="no-response", srtt_us=None)
    named = host("127.0.0.9", status="down", reason="no-response", targetname="downname")
    skipped = host("127.0.0.9", status="skipped", timed_out=True, reason="user-set",
                   ports=[port(1)], end_time=T0 + 2)
    assert "<host>" not in render(info(), [down])  # down hosts need -v, as in Nmap
    text = render(info(verbosity=1), [down, named, skipped])
    assert ('<host><status state="down" reason="no-response" reason_ttl="0"/>\n'
            '<address addr="127.0.0.9" addrtype="ipv4"/>\n</host>\n') in text
    assert ('<address addr="127.0.0.9" addrtype="ipv4"/>\n<hostnames>\n'
            '<hostname name="downname" type="user"/>\n</hostnames>\n</host>\n') in text
    assert ('<host starttime="1795730241" endtime="1795730243" timedout="true">'
            '<status state="up" reason="user-set" reason_ttl="0"/>\n'
            '<address addr="127.0.0.9" addrtype="ipv4"/>\n<hostnames>\n</hostnames>\n'
            '</host>\n') in text
    ping = render(info(scan_type="none", tcp_ranges=()),
                  [host("127.0.0.2", reason="conn-refused", srtt_us=50, rttvar_us=5000)])
    assert "<scaninfo" not in ping
    assert ('<host><status state="up" reason="conn-refused" reason_ttl="0"/>\n'
            '<address addr="127.0.0.2" addrtype="ipv4"/>\n<hostnames>\n</hostnames>\n'
            '<times srtt="50" rttvar="5000" to="100000"/>\n</host>\n') in ping
    # with a script scan the host is timed even in a ping scan
    assert '<host starttime="' in render(info(scan_type="none", tcp_ranges=(), script_scan=True),
                                         [host("127.0.0.2")])


def test_hostnames_user_first_then_ptr_and_service_attribute_order():
    svc = Service("http", "probed", 10, "Apache httpd", "2.4.1", "(Unix)", hostname="h",
                  ostype="Unix", devicetype="router", tunnel="ssl",
                  cpe=["cpe:/a:apache:http_server:2.4.1"])
    text = render(info(), [host(ports=[port(4443, "open", service=svc)], targetname="vm",
                                hostnames=[("localhost", "PTR"), ("vm", "user")])])
    assert ('<hostnames>\n<hostname name="vm" type="user"/>\n'
            '<hostname name="localhost" type="PTR"/>\n</hostnames>\n') in text
    assert ('<service name="http" product="Apache httpd" version="2.4.1" extrainfo="(Unix)" '
            'hostname="h" ostype="Unix" devicetype="router" tunnel="ssl" method="probed" '
            'conf="10"><cpe>cpe:/a:apache:http_server:2.4.1</cpe></service>') in text
    assert '<port protocol="tcp" portid="4443">' in text


def test_open_only_leaves_out_hosts_without_open_ports():
    text = render(info(open_only=True), [host("127.0.0.2", [port(21)]),
                                         host("127.0.0.1", [port(21), port(22, "open")])])
    assert "127.0.0.2" not in text
    assert ('<extraports state="closed" count="1">\n<extrareasons reason="conn-refused" '
            'count="1" proto="tcp" ports="21"/>\n</extraports>') in text


def test_each_host_is_flushed_and_a_killed_scan_keeps_it(tmp_path):
    path = tmp_path / "scan.xml"
    outputs = open_writers([("xml", str(path))], info(), interactive=False)
    outputs.begin()
    outputs.host(host("127.0.0.1", [port(22, "open")]))
    partial = path.read_text()  # as left by a process killed now
    assert partial.rstrip().endswith("</host>")
    assert etree.fromstring((partial + "</nmaprun>").encode()).find("host") is not None
    outputs.end(RunStats(T0, 1.0, 1, 1, 0))
    outputs.close()
    assert path.read_text().endswith("</runstats>\n</nmaprun>\n")


def test_control_characters_anywhere_stay_well_formed():
    nasty = "a\x00b\x1b\ud8ffc&\"<>"
    h = host(ports=[port(22, "open", service=Service(nasty, product=nasty))],
             hostnames=[(nasty, "PTR")], scripts=[ScriptResult(nasty, nasty, [[nasty, nasty]])])
    tree = etree.fromstring(render(info(command_line=f"x -- {nasty}"), [h]).encode())
    assert tree.find("host/ports/port/service").get("product") == "a\\x00b\\x1B\\xED\\xA3\\xBFc&\"<>"
    assert tree.get("args") == "x -- a\\x00b\\x1B\\xED\\xA3\\xBFc&\"<>"


# --------------------------------------------------------------------------------------------
# Readers: python-libnmap and ndiff


def test_python_libnmap_reads_hosts_ports_services_and_names():
    from libnmap.parser import NmapParser

    report = NmapParser.parse_fromstring(
        render(info(verbosity=1, udp_ranges=((160, 189),)), rich_hosts(),
               RunStats(T0 + 2, 2.0, 4, 3, 1)))
    assert report.hosts_total == 4 and report.hosts_up == 3
    by_addr = {h.address: h for h in report.hosts}
    up = by_addr["127.0.0.1"]
    assert up.status == "up" and up.hostnames == ["vm", "localhost"]
    assert up.get_open_ports() == [(22, "tcp"), (80, "tcp")]
    ssh = up.get_service(22, "tcp")
    assert (ssh.state, ssh.reason, ssh.service) == ("open", "syn-ack", "ssh")
    assert ssh.banner == "product: OpenSSH version: 8.4p1 Debian 5 extrainfo: protocol 2.0 ostype: Linux"
    assert ssh.tunnel == "" and up.get_service(80, "tcp").tunnel == "ssl"
    assert [s["id"] for s in ssh.scripts_results] == ["tport"]
    assert up.get_service(36, "tcp") is None  # collapsed into <extraports>
    assert {"state": "closed", "count": "61"} in up.extraports_state.values()
    assert by_addr["127.0.0.9"].status == "down"
    assert by_addr["::1"].ipv6 == "::1"
    assert report.summary.startswith("Nmap done at")


def _write(path, hosts):
    out = open_writers([("xml", str(path))], info(tcp_ranges=((22, 22), (80, 80), (443, 443))),
                       interactive=False)
    out.begin()
    for h in hosts:
        out.host(h)
    out.end(RunStats(T0 + 1, 1.0, len(hosts), len(hosts), 0))
    out.close()


@pytest.mark.skipif(NDIFF is None, reason="ndiff is not installed")
def test_ndiff_reports_the_one_port_that_changed(tmp_path):
    def scan(state80):
        return [host(ports=[port(22, "open", service=Service("ssh")),
                            port(80, state80, service=Service("http")),
                            port(443, service=Service("https"))],
                     hostnames=[("localhost", "PTR")])]

    _write(tmp_path / "a.xml", scan("open"))
    _write(tmp_path / "b.xml", scan("closed"))
    _write(tmp_path / "c.xml", scan("open"))
    same = subprocess.run([NDIFF, str(tmp_path / "a.xml"), str(tmp_path / "c.xml")],
                          capture_output=True, text=True, timeout=60)
    assert same.returncode == 0, same.stdout + same.stderr
    diff = subprocess.run([NDIFF, str(tmp_path / "a.xml"), str(tmp_path / "b.xml")],
                          capture_output=True, text=True, timeout=60)
    assert diff.returncode == 1, diff.stderr
    changed = [line for line in diff.stdout.splitlines() if line.startswith(("+", "-"))]
    assert changed == ["-80/tcp open   http", "+80/tcp closed http"], diff.stdout


# --------------------------------------------------------------------------------------------
# Against nmap itself

_VOLATILE = {"nmaprun": ("args", "start", "startstr", "version"),
             "host": ("starttime", "endtime"), "times": ("srtt", "rttvar", "to"),
             "finished": ("time", "timestr", "elapsed", "summary")}
_DROPPED = {"hosthint", "taskbegin", "taskend", "taskprogress", "output"}


def _shape(element) -> list:
    """Tag, attribute names and values in order (times and versions masked), text, tail and
    children: everything but the volatile values."""
    attrs = [(k, "*" if k in _VOLATILE.get(element.tag, ()) else v)
             for k, v in element.attrib.items()]
    children = [_shape(c) for c in element
                if isinstance(c.tag, str) and c.tag not in _DROPPED]
    return [element.tag, attrs, element.text, element.tail, children]


@needs_dtd
@pytest.mark.parametrize("mode", ["ports", "ping"])
def test_same_structure_as_nmap_for_an_equivalent_scan(tmp_path, mode, listeners, nmap_path):
    opened = {40001, 40010, 40044} if mode == "ports" else set()
    args = (["-sT", "-Pn", "-p", "40000-40060"] if mode == "ports" else ["-sn"])
    address = scan_listeners_with_nmap(nmap_path, listeners, opened, "--reason", *args,
                                       "-oX", str(tmp_path / "nmap.xml"))
    theirs = etree.parse(str(tmp_path / "nmap.xml"), etree.XMLParser(remove_comments=True,
                                                                     remove_pis=True))
    if mode == "ports":
        ports = nmap_named_ports(range(40000, 40061), opened)
        scan = info(show_reason=True, tcp_ranges=((40000, 40060),))
        ours_host = host(address, ports, reason="user-set")
    else:
        scan = info(show_reason=True, scan_type="none", tcp_ranges=())
        ours_host = host(address, reason="conn-refused")
    ours_text = render(scan, [ours_host], RunStats(T0 + 1, 0.1, 1, 1, 0))
    validate(ours_text)
    ours = etree.fromstring(ours_text.encode(), etree.XMLParser(remove_comments=True,
                                                                remove_pis=True))
    assert _shape(ours) == _shape(theirs.getroot())
