"""-sU in the scan plan: which protocols and ports a scan asks for, as Nmap decides them."""
from __future__ import annotations

import pytest
from conftest import NMAP_SERVICES, nmap_scaninfo

from coordinator.cli import build_scan_parser
from coordinator.errors import UserError
from coordinator.plan import build_plan
from worker.protocol import needs_raw_sockets, scans_ports

ENVIRON = {"NSECLUSTER_NMAP_PREFIXES": str(NMAP_SERVICES.parent)}


def plan(*flags):
    args = build_scan_parser().parse_args([*flags, "-n", "127.0.0.1"])
    return build_plan(args, "nsecluster scan", ENVIRON)


def scanned(options) -> dict[str, set[int]]:
    ports = options.ports
    return {proto: set(ports.ports(proto)) for proto in ("tcp", "udp") if ports.count(proto)}


@pytest.mark.parametrize("flags", [
    ["-sU"], ["-sU", "-sS"], ["-sU", "-F"], ["-sU", "-sT", "-p", "U:53,T:80,443"],
    ["-sU", "-p", "53,161"], ["-sU", "-sS", "-p", "U:53,111,T:22"], ["-sU", "--top-ports", "30"],
    ["-sU", "-sS", "-p", "domain"],
])
def test_udp_ports_match_nmap(nmap_path, flags):
    ours = plan(*flags)
    assert scanned(ours.options) == nmap_scaninfo(nmap_path, *flags)
    assert ours.options.udp_scan and needs_raw_sockets(ours.options)
    assert ours.options.scan_type == ("syn" if "-sS" in flags else
                                      "connect" if "-sT" in flags else "none")
    assert scans_ports(ours.options)


def test_udp_scan_warnings_and_errors():
    only_udp = plan("-sU", "-p", "U:53,T:80")
    assert set(only_udp.options.ports.ports("udp")) == {53} and not only_udp.options.ports.tcp
    assert only_udp.warnings == ('WARNING: Your ports include "T:" but you haven\'t specified '
                                 'any TCP scan type.',)
    with pytest.raises(UserError, match="-sn .* not valid .*-sU"):
        plan("-sU", "-sn")
    with pytest.raises(UserError, match="No UDP ports to scan"):
        plan("-sU", "-p", "T:80")
    tcp_only = plan("-sS", "-p", "53")
    assert not tcp_only.options.udp_scan and not tcp_only.options.ports.udp


def test_udp_scan_travels_in_jobs():
    from worker.protocol import GroupJob, ScanOptions, Target, decode, encode, to_wire

    job = GroupJob("scan-1", 0, (Target("192.0.2.2"),),
                   plan("-sU", "-sS", "-p", "U:53,T:80").options)
    assert decode(encode(job)) == job and job.options.udp_scan
    assert to_wire(GroupJob("s", 0, (), ScanOptions()))["options"]["udp_scan"] is False
