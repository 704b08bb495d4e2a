"""Where a directly connected host's MAC address goes in each format, as Nmap 7.93 writes it
(observed with root Nmap on a veth pair: tests/worker/test_raw_discovery.py compares whole
reports; these pin the places a namespace run does not reach: Service Info, down hosts,
vendors that need escaping, grepable, JSON)."""
from __future__ import annotations

import json
from functools import partial

from output_support import T0, make_port, render_report
from output_support import make_info as make_scan_info

from coordinator.output import GrepableWriter, JsonWriter, NormalWriter, XmlWriter
from worker.protocol import HostResult, Service

MAC = "00:0C:29:12:34:56"
make_info = partial(make_scan_info, command_line="nsecluster scan 192.0.2.2")


def host(**kw) -> HostResult:
    return HostResult("192.0.2.2", reason="arp-response", start_time=T0, end_time=T0,
                      mac_address=MAC, **kw)


def report_lines(writer, scan, hosts) -> list[str]:
    return render_report(writer, scan, hosts).splitlines()


def test_normal_mac_line_follows_the_port_table_and_precedes_service_info():
    ssh = Service("ssh", "probed", 10, "OpenSSH", "9.2", ostype="Linux")
    lines = report_lines(NormalWriter, make_info(version_scan=True),
                         [host(mac_vendor="VMware", ports=[make_port(22, "open", service=ssh)])])
    at = lines.index("22/tcp open  ssh     OpenSSH 9.2")
    assert lines[at + 1:at + 4] == [f"MAC Address: {MAC} (VMware)", "Service Info: OS: Linux",
                                    ""]


def test_normal_ping_scan_and_unknown_vendor():
    lines = report_lines(NormalWriter, make_info(scan_type="none", tcp_ranges=()),
                         [host(), HostResult("192.0.2.99", status="down",
                                             reason="no-response")])
    at = lines.index("Nmap scan report for 192.0.2.2")
    assert lines[at + 1:at + 3] == ["Host is up.", f"MAC Address: {MAC} (Unknown)"]
    assert not any("192.0.2.99" in line for line in lines)  # down, verbosity 0


def test_xml_second_address_with_the_vendor_only_when_known():
    text = render_report(XmlWriter, make_info(scan_type="none", tcp_ranges=()),
                         [host(mac_vendor='A&B "Networks"'), host()])
    assert (f'<address addr="192.0.2.2" addrtype="ipv4"/>\n<address addr="{MAC}" '
            f'addrtype="mac" vendor="A&amp;B &quot;Networks&quot;"/>\n<hostnames>') in text
    assert f'<address addr="{MAC}" addrtype="mac"/>\n' in text


def test_grepable_has_no_mac_and_json_has_it():
    scan = make_info(scan_type="none", tcp_ranges=())
    assert MAC not in render_report(GrepableWriter, scan, [host(mac_vendor="VMware")])
    records = [json.loads(line) for line in
               render_report(JsonWriter, scan, [host(mac_vendor="VMware"),
                                                HostResult("192.0.2.3")]).splitlines()]
    hosts = [r for r in records if r["type"] == "host"]
    assert [h["mac"] for h in hosts] == [{"address": MAC, "vendor": "VMware"}, None]
