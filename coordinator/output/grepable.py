"""Nmap's grepable output (``-oG``): one ``Host:`` line per fact, no script results."""
from __future__ import annotations

import time

from worker.protocol import HostResult, PortResult, format_ranges

from .model import RunStats, ScanInfo
from .normal import (
    SCANNER,
    Writer,
    done_summary,
    host_is_reported,
    interruption_message,
    is_timed_out,
    service_label,
    split_ports,
    version_string,
)


def ports_scanned_line(info: ScanInfo) -> str:
    """The ``# Ports scanned:`` comment written at verbosity >= 1."""
    tcp = info.tcp_ranges if info.scan_type != "none" else ()
    udp = info.udp_ranges if info.scan_type != "none" else ()

    def count(ranges):
        return sum(high - low + 1 for low, high in ranges)

    return (f"# Ports scanned: TCP({count(tcp)};{format_ranges(tcp)}) "
            f"UDP({count(udp)};{format_ranges(udp)}) SCTP(0;) PROTOCOLS(0;)")


def _field(text: str) -> str:
    # Fields are separated by "/" and entries by ", ": keep a value from splitting its field.
    return text.replace("/", "|")


def port_entry(port: PortResult, info: ScanInfo) -> str:
    """``port/state/protocol/owner/service/rpc-info/version/``."""
    service = _field(service_label(port, info, sep="|", missing=""))
    return (f"{port.portid}/{port.state}/{port.protocol}//{service}//"
            f"{_field(version_string(port.service))}/")


def host_lines(host: HostResult, info: ScanInfo) -> list[str]:
    prefix = f"Host: {host.address} ({host.ptr_name or ''})\t"
    if host.status == "down":
        return [prefix + "Status: Down"]
    lines = [prefix + "Status: Up"]
    if is_timed_out(host):
        lines.append(prefix + "Status: Timeout")
        return lines
    if info.scan_type != "none":
        shown, ignored = split_ports(host, info)
        line = prefix + "Ports: " + ", ".join(port_entry(p, info) for p in shown)
        if len(ignored) == 1:
            line += f"\tIgnored State: {ignored[0].state} ({ignored[0].count})"
        lines.append(line)
    return lines


class GrepableWriter(Writer):
    def begin(self, info: ScanInfo) -> None:
        super().begin(info)
        lines = [f"# {SCANNER} {info.version} scan initiated {time.ctime(info.start_time)} as: "
                 f"{info.command_line}"]
        if info.verbosity >= 1:
            lines.append(ports_scanned_line(info))
        self._emit("\n".join(lines) + "\n")

    def host(self, host: HostResult) -> None:
        if host_is_reported(host, self.info):
            self._emit("\n".join(host_lines(host, self.info)) + "\n")

    def end(self, stats: RunStats) -> None:
        lines = []
        message = interruption_message(stats)
        if message:
            lines.append(f"# {message}")
        lines.append(f"# Nmap done at {time.ctime(stats.end_time)} -- {done_summary(stats)}")
        self._emit("\n".join(lines) + "\n")
