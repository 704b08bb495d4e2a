"""Builders shared by the output-format tests: scan info, ports, hosts, a whole report from
one writer.

Each test module keeps its own defaults (command line, host timings, run statistics) on
top of these, because its expected texts were written for them."""
from __future__ import annotations

import io

from conftest import nmap_tcp_service_names

from coordinator.output.model import RunStats, ScanInfo
from worker.protocol import HostResult, PortResult, Service

T0 = 1795730241  # Thu Nov 26 21:57:21 2026 UTC


def make_info(**kw) -> ScanInfo:
    """A connect scan of ports 1-100 started at T0; ``kw`` sets or overrides any field."""
    return ScanInfo(**{"start_time": T0, "scan_type": "connect", "tcp_ranges": ((1, 100),),
                       **kw})


def make_port(n, state="closed", reason=None, proto="tcp", ttl=0, service=None, scripts=()):
    """A port whose reason, unless given, is what a connect scan reports for its state."""
    reason = reason or {"open": "syn-ack", "closed": "conn-refused"}.get(state, "no-response")
    return PortResult(proto, n, state, reason, ttl, service, list(scripts))


def make_host(address="127.0.0.1", ports=(), **kw) -> HostResult:
    """An up host scanned at T0; ``kw`` sets or overrides any other field."""
    return HostResult(address, ports=list(ports),
                      **{"status": "up", "reason": "syn-ack", "start_time": T0, "end_time": T0,
                         **kw})


def host_maker(address="127.0.0.1", **defaults):
    """``host(address, ports, **kw)``: make_host with one test module's defaults."""
    def host(address=address, ports=(), **kw) -> HostResult:
        return make_host(address, ports, **{**defaults, **kw})
    return host


def render_report(writer_class, scan: ScanInfo, hosts, stats=None, pre=(), post=(), *,
                  end_time=T0, elapsed_s=0.02) -> str:
    """The whole report one writer gives for ``hosts``; without ``stats``, every host was up
    and the scan ended at ``end_time`` after ``elapsed_s``."""
    out = io.StringIO()
    w = writer_class(out)
    w.begin(scan)
    if pre:
        w.prescript(list(pre))
    for h in hosts:
        w.host(h)
    if post:
        w.postscript(list(post))
    w.end(stats or RunStats(end_time, elapsed_s, len(hosts), len(hosts), 0))
    return out.getvalue()


def nmap_named_ports(numbers, opened) -> list[PortResult]:
    """What a connect scan finds on ``numbers``: ``opened`` open, the rest closed, named
    as Nmap names them."""
    names = nmap_tcp_service_names()
    return [make_port(n, "open" if n in opened else "closed",
                      service=Service(names[n]) if n in names else None) for n in numbers]
