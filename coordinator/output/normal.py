"""Nmap's human-readable output: the screen ("interactive") and ``-oN`` files.

How this works: every writer gets ``begin(info)``, then ``prescript``/``host``/``postscript`` as
results arrive, then ``end(stats)``; each call renders its whole block, writes it in one go and
flushes, so a killed scan leaves every finished host on disk. The helpers at the top (ignored port
states, latency, names, script escaping, service columns) are Nmap 7.93's rules as observed by
running it, and are shared by the XML, grepable and JSON writers.
"""
from __future__ import annotations

import math
import re
import time
from collections import Counter
from dataclasses import dataclass, field

from worker.protocol import (
    HostResult,
    PortResult,
    ScriptResult,
    Service,
    merge_intervals,
    shown_ports_limit,
)

from .model import RunStats, ScanInfo

TYPE_CHECKING = False  # importing typing costs start-up time; type checkers read this
if TYPE_CHECKING:
    from typing import TextIO

SCANNER = "nsecluster"

# Nmap's internal state numbers order states that tie on count (closed before filtered, ...).
_STATE_RANK = {"closed": 1, "open": 2, "filtered": 3, "unfiltered": 6, "open|filtered": 7,
               "closed|filtered": 8}
_PROTO_RANK = {"tcp": 0, "udp": 1, "sctp": 2}
# States that count as "open" for --open: a host without any of these is not reported.
OPENISH_STATES = ("open", "open|filtered", "unfiltered")


class Writer:
    """One output format. Subclasses render; this base keeps the scan info and the stream."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.info: ScanInfo | None = None

    def begin(self, info: ScanInfo) -> None:
        self.info = info

    def prescript(self, results: list[ScriptResult]) -> None:
        pass

    def host(self, host: HostResult) -> None:
        pass

    def postscript(self, results: list[ScriptResult]) -> None:
        pass

    def end(self, stats: RunStats) -> None:
        pass

    def _emit(self, text: str) -> None:
        if text:
            self.stream.write(text)
        self.stream.flush()


# --------------------------------------------------------------------------------------------
# Shared rules


def show_reasons(info: ScanInfo) -> bool:
    """The REASON column and "received ..." appear with --reason, -vv or -d."""
    return info.show_reason or info.verbosity >= 2 or info.debugging >= 1


def host_is_reported(host: HostResult, info: ScanInfo) -> bool:
    """Whether Nmap writes this host at all (same rule for normal, XML and grepable).

    Down hosts only at verbosity >= 1; with --open, hosts of a port scan without a port in an
    open-ish state are left out."""
    if host.status == "down":
        return info.verbosity >= 1
    if info.open_only and info.scan_type != "none" and not is_timed_out(host):
        return any(p.state in OPENISH_STATES for p in host.ports)
    return True


def is_timed_out(host: HostResult) -> bool:
    return host.status == "skipped" or host.timed_out


def host_is_timed(info: ScanInfo) -> bool:
    """Hosts get start/end times (XML starttime, "Scanned at") unless a bare ping scan."""
    return info.scan_type != "none" or info.script_scan


def max_per_state(info: ScanInfo) -> int | None:
    """More ports than this in one state (all protocols together) collapse into "Not shown"."""
    return shown_ports_limit(info.verbosity, info.debugging)


def is_ignored_state(state: str, count: int, info: ScanInfo) -> bool:
    limit = max_per_state(info)
    if limit is None or count == 0:
        return False
    if state == "open":
        return False
    if state == "open|filtered" and info.verbosity > 2:
        return False
    if info.open_only and state not in ("open|filtered", "unfiltered"):
        return True
    return count > limit


@dataclass(slots=True)
class ReasonGroup:
    """Ignored ports of one state sharing protocol and reason (an XML ``extrareasons``)."""

    protocol: str
    reason: str
    count: int = 0
    by_ttl: dict[int, list[tuple[int, int]]] = field(default_factory=dict)  # ttl -> ranges

    def add(self, ranges, ttl: int, count: int) -> None:
        self.by_ttl.setdefault(ttl, []).extend(ranges)
        self.count += count

    @property
    def ranges(self) -> tuple[tuple[int, int], ...]:
        return merge_intervals(r for ranges in self.by_ttl.values() for r in ranges)


@dataclass(slots=True)
class IgnoredState:
    state: str
    count: int
    groups: list[ReasonGroup]


def sort_ports(ports) -> list[PortResult]:
    """Nmap's table order: all TCP ports, then UDP, then SCTP, each by number."""
    return sorted(ports, key=lambda p: (_PROTO_RANK.get(p.protocol, 9), p.portid))


def split_ports(host: HostResult, info: ScanInfo) -> tuple[list[PortResult], list[IgnoredState]]:
    """The ports shown in the table, and the collapsed ("Not shown") states in Nmap's order.

    States: most ports first, ties in Nmap's state order. Within a state, (protocol, reason)
    groups: most ports first; on a tie the group first met later (ports walked TCP..SCTP, low to
    high) comes first, as Nmap 7.93 prints them."""
    counts: Counter = Counter(p.state for p in host.ports)
    for run in host.port_runs:
        counts[run.state] += run.count
    ignored = {s for s, c in counts.items() if is_ignored_state(s, c, info)}
    # A bulk run is only ever listed port by port when its state is shown after all.
    listed = list(host.ports)
    for run in host.port_runs:
        if run.state not in ignored:
            listed.extend(PortResult(run.protocol, port, run.state, run.reason, run.reason_ttl)
                          for low, high in run.ranges for port in range(low, high + 1))
    shown = sort_ports(p for p in listed if p.state not in ignored)
    # (first port, protocol rank, ranges, ttl, count) of every ignored piece, walked in order
    pieces = [(p.portid, _PROTO_RANK.get(p.protocol, 9), p, ((p.portid, p.portid),),
               p.reason_ttl, 1) for p in listed if p.state in ignored]
    pieces += [(run.ranges[0][0], _PROTO_RANK.get(run.protocol, 9), run, run.ranges,
                run.reason_ttl, run.count) for run in host.port_runs if run.state in ignored]
    pieces.sort(key=lambda piece: (piece[1], piece[0]))
    by_state: dict[str, dict[tuple[str, str], ReasonGroup]] = {}
    for _, _, item, ranges, ttl, count in pieces:
        groups = by_state.setdefault(item.state, {})
        key = (item.protocol, item.reason)
        group = groups.get(key)
        if group is None:
            group = groups[key] = ReasonGroup(item.protocol, item.reason)
        group.add(ranges, ttl, count)
    states = []
    for state, groups in by_state.items():
        ordered = list(groups.values())[::-1]  # later first-seen first ...
        ordered.sort(key=lambda g: -g.count)  # ... then by count (stable)
        states.append(IgnoredState(state, counts[state], ordered))
    states.sort(key=lambda s: (-s.count, _STATE_RANK.get(s.state, 9)))
    return shown, states


def format_latency(srtt_us: int) -> str:
    """Seconds with two significant digits, never in exponent form: 0.000047s, 0.0010s, 0.12s."""
    seconds = srtt_us / 1_000_000
    if seconds <= 0:
        return "0.0s"
    decimals = max(0, 1 - math.floor(math.log10(seconds)))
    return f"{seconds:.{decimals}f}s"


def hosts_summary(total: int, up: int) -> str:
    return (f"{total} IP address{'' if total == 1 else 'es'} "
            f"({up} host{'' if up == 1 else 's'} up)")


def done_summary(stats: RunStats) -> str:
    return (f"{hosts_summary(stats.hosts_total, stats.hosts_up)} scanned in "
            f"{stats.elapsed_s:.2f} seconds")


def interruption_message(stats: RunStats) -> str | None:
    if stats.error:
        return stats.error
    if stats.interrupted:
        return "Scan interrupted by user; only finished hosts are reported"
    return None


def user_name(host: HostResult) -> str | None:
    if host.targetname:
        return host.targetname
    for name, kind in host.hostnames:
        if kind == "user":
            return name
    return None


def display_name(host: HostResult) -> str:
    """``name (ip)`` with the name the user gave, else the PTR name; or the bare address."""
    name = user_name(host) or host.ptr_name
    return f"{name} ({host.address})" if name else host.address


def other_addresses(host: HostResult) -> list[str]:
    # Not in worker.protocol yet; rendered as soon as HostResult carries it.
    return list(host.other_addresses)


def _hex_escape(data: bytes, keep: frozenset) -> str:
    return "".join(chr(b) if b in keep else f"\\x{b:02X}" for b in data)


_PRINTABLE = frozenset(range(0x20, 0x7F))
_NORMAL_KEEP = _PRINTABLE | {0x09, 0x0A}
XML_KEEP = _PRINTABLE | {0x09, 0x0A, 0x0D}


def to_bytes(text: str) -> bytes:
    """Text as the bytes it stands for: raw bytes may arrive surrogate-escaped (U+DC80-U+DCFF);
    any other lone surrogate is kept as its (invalid) UTF-8 form rather than failing."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return b"".join(c.encode("utf-8", "surrogateescape") if not "\ud800" <= c <= "\udfff"
                        or "\udc80" <= c <= "\udcff" else c.encode("utf-8", "surrogatepass")
                        for c in text)


_NORMAL_OTHER = re.compile(r"[^\t\n\x20-\x7e]")
_XML_OTHER = re.compile(r"[^\t\r\n\x20-\x7e]")


def escape_script_text(text: str) -> str:
    """nse-spec §9.3: every byte except \\t, \\n and 0x20-0x7E becomes ``\\xHH``."""
    if _NORMAL_OTHER.search(text) is None:  # the usual case: plain text, nothing to do
        return text
    return _hex_escape(to_bytes(text), _NORMAL_KEEP)


def protect_xml(text: str) -> str:
    """nse-spec §9.4: every byte except \\t, \\r, \\n and 0x20-0x7E becomes ``\\xHH``."""
    if _XML_OTHER.search(text) is None:
        return text
    return _hex_escape(to_bytes(text), XML_KEEP)


def script_lines(result: ScriptResult) -> list[str]:
    if result.output == "":
        return [f"Bug in {result.id}: no string output."]
    text = escape_script_text(result.output)
    if text.endswith("\n"):
        text = text[:-1]
    lines = text.split("\n")
    if len(lines) == 1:
        return [f"|_{result.id}: {lines[0]}"]
    return ([f"| {result.id}: {lines[0]}"] + [f"| {line}" for line in lines[1:-1]]
            + [f"|_{lines[-1]}"])


def scripts_block(results: list[ScriptResult]) -> list[str]:
    lines: list[str] = []
    for result in results:
        lines.extend(script_lines(result))
    return lines


def version_string(service: Service | None) -> str:
    """The VERSION column: ``product version (extrainfo)``."""
    if service is None:
        return ""
    parts = [service.product, service.version,
             f"({service.extrainfo})" if service.extrainfo else None]
    return " ".join(p for p in parts if p)


def service_label(port: PortResult, info: ScanInfo, sep: str = "/",
                  missing: str = "unknown") -> str:
    """SERVICE column text: ``ssl/http``, ``hotline?`` (a -sV table guess on an open port)."""
    service = port.service
    if service is None:
        return missing
    name = service.name or "unknown"
    if service.tunnel == "ssl":
        name = f"ssl{sep}{name}"
    if (info.version_scan and service.method == "table" and port.state == "open"
            and service.name != "unknown"):  # Nmap never writes "unknown?"
        name += "?"
    return name


def reason_text(reason: str, ttl: int) -> str:
    return f"{reason} ttl {ttl}" if ttl else reason


def service_info_line(ports: list[PortResult]) -> str | None:
    hosts, oss, devices, cpes = [], [], [], []
    for port in ports:
        s = port.service
        if s is None:
            continue
        for value, bucket in ((s.hostname, hosts), (s.ostype, oss), (s.devicetype, devices)):
            if value and value not in bucket:
                bucket.append(value)
        for cpe in s.cpe:
            if cpe.startswith("cpe:/o:") and cpe not in cpes:
                cpes.append(cpe)
    parts = []
    for one, many, values in (("Host", "Hosts", hosts), ("OS", "OSs", oss),
                              ("Device", "Devices", devices), ("CPE", "CPEs", cpes)):
        if values:
            parts.append(f"{one if len(values) == 1 else many}: {', '.join(values)}")
    return "Service Info: " + "; ".join(parts) if parts else None


def fingerprint_lines(ports: list[PortResult]) -> list[str]:
    fps = [p.service.servicefp for p in ports if p.service is not None and p.service.servicefp]
    if not fps:
        return []
    n = len(fps)
    lines = [f"{n} service{'' if n == 1 else 's'} unrecognized despite returning data. If you "
             f"know the service/version, please submit the following "
             f"fingerprint{'' if n == 1 else 's'} at "
             f"https://nmap.org/cgi-bin/submit.cgi?new-service :"]
    for fp in fps:
        if n > 1:
            lines.append("==============NEXT SERVICE FINGERPRINT (SUBMIT INDIVIDUALLY)"
                         "==============")
        lines.append(fp[:74])
        lines.extend("SF:" + fp[i:i + 71] for i in range(74, len(fp), 71))
    return lines


def not_shown_line(ignored: list[IgnoredState]) -> str:
    parts = []
    for state in ignored:
        noun = "port" if state.count == 1 else "ports"
        for g in state.groups:
            parts.append(f"{g.count} {state.state} {g.protocol} {noun} ({g.reason})")
    return "Not shown: " + ", ".join(parts)


def port_table(ports: list[PortResult], info: ScanInfo) -> list[str]:
    """PORT/STATE/SERVICE[/REASON][/VERSION] rows, each column as wide as its widest cell plus
    one space, the last one unpadded; each port's script results follow its row."""
    reasons, versions = show_reasons(info), info.version_scan
    header = ["PORT", "STATE", "SERVICE"] + (["REASON"] if reasons else []) + \
        (["VERSION"] if versions else [])
    rows = []
    for p in ports:
        row = [f"{p.portid}/{p.protocol}", p.state, service_label(p, info)]
        if reasons:
            row.append(reason_text(p.reason, p.reason_ttl))
        if versions:
            row.append(version_string(p.service))
        rows.append(row)
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]

    def line(cells):
        return " ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    out = [line(header)]
    for port, row in zip(ports, rows):
        out.append(line(row))
        out.extend(scripts_block(port.scripts))
    return out


def mac_lines(host: HostResult) -> list[str]:
    """A directly connected host's hardware address, after its port table as Nmap puts it."""
    if host.mac_address is None:
        return []
    return [f"MAC Address: {host.mac_address} ({host.mac_vendor or 'Unknown'})"]


def host_status_line(host: HostResult, info: ScanInfo) -> str:
    text = "Host is up"
    if show_reasons(info):
        text += f", received {reason_text(host.reason, host.reason_ttl)}"
    if host.srtt_us is not None and not is_timed_out(host):
        text += f" ({format_latency(host.srtt_us)} latency)"
    return text + "."


def host_lines(host: HostResult, info: ScanInfo) -> list[str]:
    """One host's report as Nmap prints it (normal and screen output share it)."""
    name = display_name(host)
    if host.status == "down":
        suffix = (f", received {reason_text(host.reason, host.reason_ttl)}"
                  if show_reasons(info) else "")
        return [f"Nmap scan report for {name} [host down{suffix}]"]
    lines = [f"Nmap scan report for {name}", host_status_line(host, info)]
    if is_timed_out(host):
        lines.append(f"Skipping host {name} due to host timeout")
        return lines
    user, ptr = user_name(host), host.ptr_name
    others = other_addresses(host)
    if user and others:
        lines.append(f"Other addresses for {user} (not scanned): {' '.join(others)}")
    if user and ptr and user.lower() != ptr.lower():
        lines.append(f"rDNS record for {host.address}: {ptr}")
    if (info.verbosity >= 2 or info.debugging) and host_is_timed(info):
        when = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(host.start_time))
        lines.append(f"Scanned at {when} for {int(host.end_time) - int(host.start_time)}s")
    ended_blank = False
    if info.scan_type == "none":
        lines.extend(mac_lines(host))
    else:
        shown, ignored = split_ports(host, info)
        if shown and ignored:
            lines.append(not_shown_line(ignored))
        elif ignored:
            lines.append(f"All {host.port_count} scanned ports on {name} are in ignored "
                         f"states.")
            lines.append(not_shown_line(ignored))
        else:
            lines.append("")
        if shown:
            lines.extend(port_table(shown, info))
        lines.extend(fingerprint_lines(shown))
        lines.extend(mac_lines(host))
        info_line = service_info_line(shown)
        if info_line:
            lines.append(info_line)
        ended_blank = True
    if host.scripts:
        lines.append("")
        lines.append("Host script results:")
        lines.extend(scripts_block(host.scripts))
        ended_blank = True
    if ended_blank or info.script_scan:
        lines.append("")
    return lines


# --------------------------------------------------------------------------------------------
# Writers


class NormalWriter(Writer):
    """``-oN``: Nmap's normal output file."""

    def begin(self, info: ScanInfo) -> None:
        super().begin(info)
        self._emit(self._header(info) + "\n")

    def _header(self, info: ScanInfo) -> str:
        return (f"# {SCANNER} {info.version} scan initiated {time.ctime(info.start_time)} as: "
                f"{info.command_line}")

    def _footer(self, stats: RunStats) -> str:
        return f"# Nmap done at {time.ctime(stats.end_time)} -- {done_summary(stats)}"

    def _notes(self, stats: RunStats) -> list[str]:
        return []

    def prescript(self, results: list[ScriptResult]) -> None:
        if results:
            self._emit("\n".join(["Pre-scan script results:"] + scripts_block(results)) + "\n")

    def postscript(self, results: list[ScriptResult]) -> None:
        if results:
            self._emit("\n".join(["Post-scan script results:"] + scripts_block(results)) + "\n")

    def host(self, host: HostResult) -> None:
        if host_is_reported(host, self.info):
            self._emit("\n".join(host_lines(host, self.info)) + "\n")

    def end(self, stats: RunStats) -> None:
        lines = self._notes(stats)
        if self.info.version_scan:
            lines.append("Service detection performed. Please report any incorrect results at "
                         "https://nmap.org/submit/ .")
        message = interruption_message(stats)
        if message:
            lines.append(message)
        lines.append(self._footer(stats))
        self._emit("\n".join(lines) + "\n")


class InteractiveWriter(NormalWriter):
    """The screen: like ``-oN`` but with Nmap's ``Starting ...`` / ``Nmap done:`` lines."""

    def _header(self, info: ScanInfo) -> str:
        when = time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(info.start_time))
        return f"Starting {SCANNER} {info.version} at {when}"

    def _footer(self, stats: RunStats) -> str:
        return f"Nmap done: {done_summary(stats)}"

    def _notes(self, stats: RunStats) -> list[str]:
        if (stats.hosts_total == 1 and stats.hosts_up == 0 and not stats.interrupted
                and not stats.error):
            return ["Note: Host seems down. If it is really up, but blocking our ping probes, "
                    "try -Pn"]
        return []

