"""nsecluster's own JSON output (``-oJ``): JSON Lines, one record per line.

Records: ``scan`` (first), ``prescript``, one ``host`` per reported host, ``postscript``, and
``done`` (last). Each line is written and flushed when its event happens, so a killed scan keeps
every finished host and every complete line parses on its own. The schema, field by field, and
its versioning rule are in docs/json-schema.md; ``SCHEMA`` names the version written here.
"""
from __future__ import annotations

import json
import re
import time

from worker.protocol import HostResult, PortResult, ScriptResult, Service, merge_intervals

from .model import RunStats, ScanInfo
from .normal import (
    SCANNER,
    Writer,
    done_summary,
    host_is_reported,
    interruption_message,
    is_timed_out,
    other_addresses,
    split_ports,
    to_bytes,
    user_name,
)

TYPE_CHECKING = False  # importing typing costs start-up time; type checkers read this
if TYPE_CHECKING:
    from typing import Any, TextIO

SCHEMA = "nsecluster/1"

_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def text(value: str | None) -> str | None:
    """Strings as valid Unicode: bytes that were not UTF-8 (carried as lone surrogates) become
    ``\\xHH``."""
    if value is None:
        return None
    return _SURROGATE_RE.sub(
        lambda m: "".join(f"\\x{b:02X}" for b in to_bytes(m.group())),
        value)


def structured_json(tree) -> Any:
    """nse-spec §9.4 tree to JSON: only array items -> array; otherwise an object holding the
    array items under "1", "2", ... (Lua's indices) and then the string keys in order. A string
    key equal to an index already used is dropped (the ``output`` string still shows it)."""
    if tree is None:
        return None
    if isinstance(tree, str):  # a scalar structured value
        return text(tree)
    positional = [v for k, v in tree if k is None]
    keyed = [(k, v) for k, v in tree if k is not None]

    def convert(value):
        return text(value) if isinstance(value, str) else structured_json(value)

    if not keyed:
        return [convert(v) for v in positional]
    obj: dict[str, Any] = {}
    for index, value in enumerate(positional, 1):
        obj[str(index)] = convert(value)
    for key, value in keyed:
        key = text(key)
        if key not in obj:
            obj[key] = convert(value)
    return obj


def script_json(result: ScriptResult) -> dict:
    return {"id": text(result.id), "output": text(result.output),
            "structured": structured_json(result.structured)}


def service_json(service: Service | None) -> dict | None:
    if service is None:
        return None
    return {
        "name": text(service.name), "method": service.method, "conf": service.conf,
        "product": text(service.product), "version": text(service.version),
        "extrainfo": text(service.extrainfo), "hostname": text(service.hostname),
        "ostype": text(service.ostype), "devicetype": text(service.devicetype),
        "tunnel": text(service.tunnel), "servicefp": text(service.servicefp),
        "cpe": [text(c) for c in service.cpe],
    }


def port_json(port: PortResult) -> dict:
    return {"protocol": port.protocol, "portid": port.portid, "state": port.state,
            "reason": text(port.reason), "reason_ttl": port.reason_ttl,
            "service": service_json(port.service),
            "scripts": [script_json(s) for s in port.scripts]}


def mac_json(host: HostResult) -> dict | None:
    if host.mac_address is None:
        return None
    return {"address": host.mac_address, "vendor": text(host.mac_vendor)}


def host_json(host: HostResult, info: ScanInfo) -> dict:
    record: dict[str, Any] = {
        "type": "host",
        "address": host.address,
        "family": host.family,
        "targetname": text(user_name(host)),
        "status": host.status,
        "reason": text(host.reason),
        "reason_ttl": host.reason_ttl,
        "hostnames": [{"name": text(n), "type": t} for n, t in host.hostnames],
        "other_addresses": other_addresses(host),
        "mac": mac_json(host),
        "start_time": host.start_time,
        "end_time": host.end_time,
        "timed_out": is_timed_out(host),
        "times": {"srtt_us": host.srtt_us, "rttvar_us": host.rttvar_us,
                  "timeout_us": host.timeout_us},
        "ports": [],
        "extraports": [],
        "scripts": [script_json(s) for s in host.scripts],
    }
    if host.status != "down" and not is_timed_out(host) and info.scan_type != "none":
        shown, ignored = split_ports(host, info)
        record["ports"] = [port_json(p) for p in shown]
        for state in ignored:
            reasons = []
            for g in state.groups:
                for ttl, ranges in g.by_ttl.items():
                    merged = merge_intervals(ranges)
                    reasons.append({"reason": text(g.reason), "reason_ttl": ttl,
                                    "protocol": g.protocol,
                                    "count": sum(high - low + 1 for low, high in merged),
                                    "ports": [list(r) for r in merged]})
            record["extraports"].append({"state": state.state, "count": state.count,
                                         "reasons": reasons})
    return record


class JsonWriter(Writer):
    def __init__(self, stream: TextIO):
        super().__init__(stream)
        self._ended = False

    def _record(self, record: dict) -> None:
        self._emit(json.dumps(record, ensure_ascii=True, separators=(",", ":")) + "\n")

    def begin(self, info: ScanInfo) -> None:
        super().begin(info)
        self._record({
            "type": "scan", "schema": SCHEMA, "scanner": SCANNER, "version": info.version,
            "args": text(info.command_line), "start_time": info.start_time,
            "startstr": time.ctime(info.start_time), "scan_type": info.scan_type,
            "ports": {"tcp": [list(r) for r in info.tcp_ranges],
                      "udp": [list(r) for r in info.udp_ranges]},
            "verbosity": info.verbosity, "debugging": info.debugging,
            "show_reason": info.show_reason, "open_only": info.open_only,
            "version_scan": info.version_scan, "script_scan": info.script_scan,
        })

    def prescript(self, results: list[ScriptResult]) -> None:
        if results and not self._ended:
            self._record({"type": "prescript", "scripts": [script_json(s) for s in results]})

    def postscript(self, results: list[ScriptResult]) -> None:
        if results and not self._ended:
            self._record({"type": "postscript", "scripts": [script_json(s) for s in results]})

    def host(self, host: HostResult) -> None:
        if not self._ended and host_is_reported(host, self.info):
            self._record(host_json(host, self.info))

    def end(self, stats: RunStats) -> None:
        if self._ended:
            return
        self._ended = True
        message = interruption_message(stats)
        self._record({
            "type": "done", "end_time": stats.end_time, "elapsed_s": stats.elapsed_s,
            "hosts": {"up": stats.hosts_up, "down": stats.hosts_down,
                      "total": stats.hosts_total},
            "exit": "error" if message else "success",
            "interrupted": stats.interrupted, "error": text(stats.error),
            "summary": f"Nmap done at {time.ctime(stats.end_time)}; {done_summary(stats)}",
        })
