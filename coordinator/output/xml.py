"""Nmap's XML output (``-oX``), valid against Nmap's ``nmap.dtd`` (xmloutputversion 1.05).

The document is written as the scan goes: the prologue at ``begin``, one ``<host>`` per host
(flushed at once), ``<prescript>``/``<postscript>`` when they come, and ``<runstats>`` plus the
closing tag at ``end``, which the coordinator also calls after Ctrl-C so the file stays
well-formed. Layout (where newlines go) follows what Nmap 7.93 writes, so line-oriented tools
that read Nmap's files keep working.
"""
from __future__ import annotations

import re
import time
from functools import lru_cache

from worker.protocol import HostResult, PortResult, ScriptResult, Service, format_ranges

from . import DEFAULT_STYLESHEET
from .model import RunStats, ScanInfo
from .normal import (
    SCANNER,
    Writer,
    done_summary,
    host_is_reported,
    host_is_timed,
    interruption_message,
    is_timed_out,
    protect_xml,
    split_ports,
    to_bytes,
    user_name,
)

TYPE_CHECKING = False  # importing typing costs start-up time; type checkers read this
if TYPE_CHECKING:
    from typing import TextIO

XML_OUTPUT_VERSION = "1.05"

_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;",
            "\t": "&#x9;", "\n": "&#xa;", "\r": "&#xd;"}
_ESCAPE_RE = re.compile(r"[&<>\"'\t\n\r]")
# Characters XML 1.0 forbids (and lone surrogates from undecodable bytes).
_INVALID_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _hex_bytes(match: re.Match) -> str:
    return "".join(f"\\x{b:02X}" for b in to_bytes(match.group()))


_NEEDS_WORK_RE = re.compile(_ESCAPE_RE.pattern[:-1] + _INVALID_RE.pattern[1:])


def escape(text) -> str:
    """Escape for an attribute value or text node; forbidden characters become ``\\xHH``."""
    text = str(text)
    if _NEEDS_WORK_RE.search(text) is None:  # the common case: nothing to do
        return text
    text = _INVALID_RE.sub(_hex_bytes, text)
    return _ESCAPE_RE.sub(lambda m: _ESCAPES[m.group()], text)


def escape_script(text: str) -> str:
    """Script output and structured values: ``protect_xml`` then XML escaping (nse-spec §9.4)."""
    return escape(protect_xml(text))


def _attrs(pairs) -> str:
    return "".join(f' {name}="{escape(value)}"' for name, value in pairs if value is not None)


def _comment_safe(text: str) -> str:
    # Nmap writes "--" as "-&#45;" in the args attribute and the opening comment.
    return _INVALID_RE.sub(_hex_bytes, text).replace("--", "-&#45;")


def structured_xml(tree) -> str:
    """``<elem>``/``<table>`` children: array items first, then keyed items, one per line."""
    items = [(k, v) for k, v in tree if k is None] + [(k, v) for k, v in tree if k is not None]
    out = []
    for key, value in items:
        key_attr = "" if key is None else f' key="{escape_script(key)}"'
        if isinstance(value, str):
            out.append(f"<elem{key_attr}>{escape_script(value)}</elem>\n")
        else:
            out.append(f"<table{key_attr}>\n{structured_xml(value)}</table>\n")
    return "".join(out)


def script_xml(result: ScriptResult) -> str:
    head = f'<script id="{escape(result.id)}" output="{escape_script(result.output)}"'
    if result.structured is None:
        return head + "/>"
    if isinstance(result.structured, str):  # a scalar structured value: the element's text
        return f"{head}>{escape_script(result.structured)}</script>"
    return f"{head}>{structured_xml(result.structured)}</script>"


def service_xml(service: Service) -> str:
    attrs = _attrs([
        ("name", service.name or "unknown"), ("product", service.product),
        ("version", service.version), ("extrainfo", service.extrainfo),
        ("hostname", service.hostname), ("ostype", service.ostype),
        ("devicetype", service.devicetype), ("servicefp", service.servicefp),
        ("tunnel", service.tunnel), ("method", service.method), ("conf", service.conf),
    ])
    if not service.cpe:
        return f"<service{attrs}/>"
    cpes = "".join(f"<cpe>{escape(c)}</cpe>" for c in service.cpe)
    return f"<service{attrs}>{cpes}</service>"


@lru_cache(maxsize=1024)
def _port_head_xml(protocol: str, state: str, reason: str, ttl: int) -> str:
    return (f'<port protocol="{escape(protocol)}" portid="%d"><state state="{escape(state)}" '
            f'reason="{escape(reason)}" reason_ttl="{ttl}"/>')


class _ServiceXmlMemo:
    """service_xml per Service object: the scan shares one table guess per port among all
    hosts, so a big scan writes the same few elements thousands of times."""

    def __init__(self):
        self._memo: dict[int, tuple[Service, str]] = {}

    def __call__(self, service: Service) -> str:
        if service.method != "table":  # a detected service: its own element, written once
            return service_xml(service)
        hit = self._memo.get(id(service))
        if hit is not None and hit[0] is service:
            return hit[1]
        text = service_xml(service)
        if len(self._memo) < 4096:
            self._memo[id(service)] = (service, text)  # holding it keeps its id unique
        return text


def port_xml(port: PortResult, service_text=service_xml) -> str:
    out = [_port_head_xml(port.protocol, port.state, port.reason, port.reason_ttl)
           % port.portid]
    if port.service is not None:
        out.append(service_text(port.service))
    out.extend(script_xml(s) for s in port.scripts)
    out.append("</port>\n")
    return "".join(out)


def hostnames_xml(host: HostResult) -> list[tuple[str, str]]:
    """(name, type) pairs, the user's name first as Nmap writes them."""
    names: list[tuple[str, str]] = []
    user = user_name(host)
    if user:
        names.append((user, "user"))
    for entry in host.hostnames:
        if entry[1] == "user":
            continue
        if (entry[0], entry[1]) not in names:
            names.append((entry[0], entry[1]))
    return names


def _address_xml(host: HostResult) -> str:
    kind = "ipv6" if host.family == 6 else "ipv4"
    return f'<address addr="{escape(host.address)}" addrtype="{kind}"/>\n' + _mac_xml(host)


def _mac_xml(host: HostResult) -> str:
    """Nmap's second <address>: the hardware address, with a vendor attribute when known."""
    if host.mac_address is None:
        return ""
    vendor = f' vendor="{escape(host.mac_vendor)}"' if host.mac_vendor else ""
    return f'<address addr="{escape(host.mac_address)}" addrtype="mac"{vendor}/>\n'


def _hostnames_block(names) -> str:
    inner = "".join(f'<hostname name="{escape(n)}" type="{t}"/>\n' for n, t in names)
    return f"<hostnames>\n{inner}</hostnames>\n"


def host_xml(host: HostResult, info: ScanInfo, service_text=service_xml) -> str:
    status = (f'<status state="{"down" if host.status == "down" else "up"}" '
              f'reason="{escape(host.reason)}" reason_ttl="{host.reason_ttl}"/>\n')
    names = hostnames_xml(host)
    if host.status == "down":
        return ("<host>" + status + _address_xml(host)
                + (_hostnames_block(names) if names else "") + "</host>\n")
    attrs = []
    if host_is_timed(info) or is_timed_out(host):
        attrs += [("starttime", int(host.start_time)), ("endtime", int(host.end_time))]
    if is_timed_out(host):
        attrs.append(("timedout", "true"))
    out = [f"<host{_attrs(attrs)}>", status, _address_xml(host), _hostnames_block(names)]
    if is_timed_out(host):
        out.append("</host>\n")
        return "".join(out)
    if info.scan_type != "none":
        shown, ignored = split_ports(host, info)
        out.append("<ports>")
        for state in ignored:
            out.append(f'<extraports state="{escape(state.state)}" count="{state.count}">\n')
            for g in state.groups:
                out.append(f'<extrareasons reason="{escape(g.reason)}" count="{g.count}" '
                           f'proto="{g.protocol}" ports="{format_ranges(g.ranges)}"/>\n')
            out.append("</extraports>\n")
        out.extend(port_xml(p, service_text) for p in shown)
        out.append("</ports>\n")
    if host.scripts:
        out.append("<hostscript>" + "".join(script_xml(s) for s in host.scripts)
                   + "</hostscript>")
    if host.srtt_us is not None:
        rttvar = host.rttvar_us if host.rttvar_us is not None else -1
        timeout = host.timeout_us if host.timeout_us is not None else -1
        out.append(f'<times srtt="{host.srtt_us}" rttvar="{rttvar}" to="{timeout}"/>\n')
    out.append("</host>\n")
    return "".join(out)


class XmlWriter(Writer):
    def __init__(self, stream: TextIO, stylesheet: str | None = DEFAULT_STYLESHEET):
        super().__init__(stream)
        self.stylesheet = stylesheet
        self._ended = False
        self._service_text = _ServiceXmlMemo()

    def begin(self, info: ScanInfo) -> None:
        super().begin(info)
        started = time.ctime(info.start_time)
        out = ['<?xml version="1.0" encoding="UTF-8"?>\n', "<!DOCTYPE nmaprun>\n"]
        if self.stylesheet:
            out.append(f'<?xml-stylesheet href="{escape(self.stylesheet)}" type="text/xsl"?>\n')
        out.append(f"<!-- {SCANNER} {escape(info.version)} scan initiated {started} as: "
                   f"{_comment_safe(info.command_line)} -->\n")
        args = escape(info.command_line).replace("--", "-&#45;")
        out.append(f'<nmaprun scanner="nmap" args="{args}"'
                   f' start="{int(info.start_time)}" startstr="{started}"'
                   f' version="{escape(info.version)}" xmloutputversion="{XML_OUTPUT_VERSION}">\n')
        if info.scan_type != "none":
            # A requested scan type is listed even when it has no ports left, as Nmap does.
            for proto, ranges, kind, asked in (
                    ("tcp", info.tcp_ranges, info.scan_type, info.scan_type in ("connect", "syn")),
                    ("udp", info.udp_ranges, "udp", info.udp_scan)):
                if ranges or asked:
                    count = sum(high - low + 1 for low, high in ranges)
                    out.append(f'<scaninfo type="{escape(kind)}" protocol="{proto}" '
                               f'numservices="{count}" services="{format_ranges(ranges)}"/>\n')
        out.append(f'<verbose level="{info.verbosity}"/>\n')
        out.append(f'<debugging level="{info.debugging}"/>\n')
        self._emit("".join(out))

    def _scripts(self, tag: str, results: list[ScriptResult]) -> None:
        if results and not self._ended:
            self._emit(f"<{tag}>" + "".join(script_xml(s) for s in results) + f"</{tag}>")

    def prescript(self, results: list[ScriptResult]) -> None:
        self._scripts("prescript", results)

    def postscript(self, results: list[ScriptResult]) -> None:
        self._scripts("postscript", results)

    def host(self, host: HostResult) -> None:
        if not self._ended and host_is_reported(host, self.info):
            self._emit(host_xml(host, self.info, self._service_text))

    def end(self, stats: RunStats) -> None:
        if self._ended:
            return
        self._ended = True
        when = time.ctime(stats.end_time)
        message = interruption_message(stats)
        attrs = _attrs([
            ("time", int(stats.end_time)), ("timestr", when),
            ("summary", f"Nmap done at {when}; {done_summary(stats)}"),
            ("elapsed", f"{stats.elapsed_s:.2f}"),
            ("exit", "error" if message else "success"), ("errormsg", message),
        ])
        self._emit(f"<runstats><finished{attrs}/>"
                   f'<hosts up="{stats.hosts_up}" down="{stats.hosts_down}" '
                   f'total="{stats.hosts_total}"/>\n</runstats>\n</nmaprun>\n')
