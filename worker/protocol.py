"""The worker's contract: what a host-group job asks for and what it reports.

Both sides exchange these as versioned plain data (msgpack in a cluster; the embedded default
round-trips through the same encoding so it runs exactly the cluster's path). Nothing here does
I/O. ``from_wire`` rejects anything malformed with ``ProtocolError`` instead of trusting it.
"""
from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

TYPE_CHECKING = False  # importing typing costs start-up time; type checkers read this
if TYPE_CHECKING:
    from typing import Any

PROTOCOL_VERSION = 1

PORT_STATES = (
    "open", "closed", "filtered", "unfiltered", "open|filtered", "closed|filtered",
)
PROTOCOLS = ("tcp", "udp", "sctp")
SCAN_TYPES = ("connect", "syn", "none")
RAW_SCAN_TYPES = ("syn",)  # need raw sockets: privileged workers only
# --privileged / --unprivileged, or "auto": the worker's own raw-socket ability decides.
PRIVILEGE_MODES = ("auto", "privileged", "unprivileged")


class ProtocolError(ValueError):
    """A message that does not follow this module's schema (a peer's fault, never ours)."""


# --------------------------------------------------------------------------------------------
# Configuration carried inside jobs


@dataclass(frozen=True, slots=True)
class Timing:
    """Timing knobs, Nmap's names; every duration in milliseconds (0 means "not set")."""

    level: int = 3
    initial_rtt_timeout_ms: int = 1000
    min_rtt_timeout_ms: int = 100
    max_rtt_timeout_ms: int = 10000
    max_retries: int = 10
    scan_delay_ms: int = 0
    max_scan_delay_ms: int = 1000
    host_timeout_ms: int = 0
    min_rate: float = 0.0
    max_rate: float = 0.0
    min_parallelism: int = 0
    max_parallelism: int = 0


@dataclass(frozen=True, slots=True)
class PortSet:
    """Ports to scan per protocol, as sorted, merged, inclusive ranges."""

    tcp: tuple[tuple[int, int], ...] = ()
    udp: tuple[tuple[int, int], ...] = ()

    def ranges(self, protocol: str) -> tuple[tuple[int, int], ...]:
        return self.tcp if protocol == "tcp" else self.udp if protocol == "udp" else ()

    def ports(self, protocol: str) -> Iterator[int]:
        for low, high in self.ranges(protocol):
            yield from range(low, high + 1)

    def count(self, protocol: str) -> int:
        return sum(high - low + 1 for low, high in self.ranges(protocol))

    @staticmethod
    def from_ports(tcp=(), udp=()) -> "PortSet":
        return PortSet(tcp=merge_ranges(tcp), udp=merge_ranges(udp))


def merge_ranges(ports) -> tuple[tuple[int, int], ...]:
    """Sorted, merged inclusive ranges from an iterable of port numbers."""
    unique = ports if isinstance(ports, (set, frozenset)) else set(ports)
    if not unique:
        return ()
    low, high = min(unique), max(unique)
    if high - low + 1 == len(unique):  # one block, e.g. -p-: no need to walk 65,535 ports
        return ((low, high),)
    out: list[list[int]] = []
    for port in sorted(unique):
        if out and port == out[-1][1] + 1:
            out[-1][1] = port
        else:
            out.append([port, port])
    return tuple((low, high) for low, high in out)


def merge_intervals(ranges) -> tuple[tuple[int, int], ...]:
    """Sorted, merged inclusive ranges from possibly overlapping or adjacent ones."""
    out: list[list[int]] = []
    for low, high in sorted(ranges):
        if out and low <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], high)
        else:
            out.append([low, high])
    return tuple((low, high) for low, high in out)


def shown_ports_limit(verbosity: int, debugging: int) -> int | None:
    """Nmap's rule for how many ports of one state (all protocols together) a report lists one
    by one; a state with more is summarized ("Not shown: ..."). None: no limit (-ddd)."""
    if debugging > 2:
        return None
    limit = 25
    if verbosity or debugging:
        limit *= (verbosity + 1) + 20 * debugging
    return limit


def format_ranges(ranges) -> str:
    """Nmap's compact port list: ``1-21,23,80-100``."""
    return ",".join(str(low) if low == high else f"{low}-{high}" for low, high in ranges)


@dataclass(frozen=True, slots=True)
class ScriptOptions:
    """The script scan (nse-spec §2-§4): what to select, with which arguments. Each worker
    selects and loads the scripts itself, from the directories it is configured with."""

    rules: tuple[str, ...] = ()  # --script items as given (after -sC / -sV defaults)
    args: str = ""  # --script-args-file content joined with --script-args, unparsed
    timeout_ms: int = 0  # --script-timeout; 0: none
    trace: bool = False  # --script-trace
    script_scan: bool = True  # False with -sV alone: no pre/post phases (nse-spec §2.3)
    version_scan: bool = False  # -sV: "version" is selected and may match nothing


@dataclass(frozen=True, slots=True)
class VersionOptions:
    """Version detection (-sV): which probes (by rarity) and whether to trace them."""

    intensity: int = 7  # --version-intensity; --version-light 2, --version-all 9
    trace: bool = False  # --version-trace


@dataclass(frozen=True, slots=True)
class ScanOptions:
    """Everything a worker needs to scan a host group; frozen, validated by the coordinator."""

    ports: PortSet = PortSet()
    scan_type: str = "connect"  # TCP: "connect", "syn" (-sS), or "none" (-sn, or -sU alone)
    udp_scan: bool = False  # -sU: the UDP ports too, with raw packets
    randomize_ports: bool = True
    host_discovery: bool = True  # False with -Pn
    discovery_ports: tuple[int, ...] = (80, 443)
    reverse_dns: str = "up"  # "never" (-n), "up" (default) or "always" (-R)
    dns_servers: tuple[str, ...] = ()  # empty: the system's resolv.conf servers
    system_dns: bool = False
    timing: Timing = Timing()
    verbosity: int = 0
    debugging: int = 0
    datadir: str | None = None  # --datadir: this worker's Nmap data searched there first
    scripts: ScriptOptions | None = None  # None: no script scan
    privilege: str = "auto"  # one of PRIVILEGE_MODES: what nmap.is_privileged() answers
    interface: str | None = None  # -e: raw packets leave through this device
    spoof_mac: str | None = None  # --spoof-mac, resolved: "02:11:22:33:44:55"
    version: VersionOptions | None = None  # None: no version detection (-sV)


def needs_raw_sockets(options: ScanOptions) -> bool:
    """Whether this scan's port probes need raw sockets (root or CAP_NET_RAW): a cluster sends
    such groups to privileged workers, the embedded default quits without the privilege."""
    return options.scan_type in RAW_SCAN_TYPES or options.udp_scan


def scans_ports(options: ScanOptions) -> bool:
    """Whether any port is probed (not a ping-only scan)."""
    return options.scan_type != "none" or options.udp_scan


@dataclass(frozen=True, slots=True)
class Target:
    address: str
    targetname: str | None = None  # the name the user gave, when the target was a name
    other_addresses: tuple[str, ...] = ()  # the name's addresses that are not scanned

    @property
    def family(self) -> int:
        return 6 if ":" in self.address else 4


@dataclass(frozen=True, slots=True)
class GroupJob:
    scan_id: str
    group_index: int
    targets: tuple[Target, ...]
    options: ScanOptions


@dataclass(frozen=True, slots=True)
class PhaseJob:
    """The scan-wide script phases around the host groups: "prerule" or "postrule"."""

    scan_id: str
    phase: str
    options: ScanOptions


PHASES = ("prerule", "postrule")


# --------------------------------------------------------------------------------------------
# Results


@dataclass(slots=True)
class Service:
    name: str
    method: str = "table"  # "table" or "probed"
    conf: int = 3
    product: str | None = None
    version: str | None = None
    extrainfo: str | None = None
    hostname: str | None = None
    ostype: str | None = None
    devicetype: str | None = None
    tunnel: str | None = None
    servicefp: str | None = None
    cpe: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ScriptResult:
    """One script's result. ``structured`` is the plain-data tree of nse-spec §9.4:
    a list of ``[key_or_None, value]`` pairs, where value is a string or another such list;
    or a plain string when the script's structured value was not a table."""

    id: str
    output: str
    structured: list | None = None


@dataclass(slots=True)
class PortResult:
    protocol: str
    portid: int
    state: str
    reason: str
    reason_ttl: int = 0
    service: Service | None = None
    scripts: list[ScriptResult] = field(default_factory=list)


@dataclass(slots=True)
class PortRun:
    """Many ports sharing protocol, state, reason and TTL, with no per-port detail. Workers
    report a state this way when it has more ports than any report lists one by one (see
    ``shown_ports_limit``), so a 65,535-port host is a few runs, not 65,535 objects."""

    protocol: str
    state: str
    reason: str
    reason_ttl: int
    ranges: tuple[tuple[int, int], ...]

    @property
    def count(self) -> int:
        return sum(high - low + 1 for low, high in self.ranges)


@dataclass(slots=True)
class HostResult:
    address: str
    targetname: str | None = None
    status: str = "up"  # "up", "down" or "skipped" (host timeout)
    reason: str = "user-set"
    reason_ttl: int = 0
    hostnames: list[tuple[str, str]] = field(default_factory=list)  # (name, "user"|"PTR")
    other_addresses: list[str] = field(default_factory=list)  # of the user's name, unscanned
    ports: list[PortResult] = field(default_factory=list)  # ports reported one by one
    port_runs: list[PortRun] = field(default_factory=list)  # the rest, in bulk
    start_time: float = 0.0  # epoch seconds
    end_time: float = 0.0
    srtt_us: int | None = None
    rttvar_us: int | None = None
    timeout_us: int | None = None
    timed_out: bool = False
    scripts: list[ScriptResult] = field(default_factory=list)
    mac_address: str | None = None  # "02:00:00:AA:BB:CC", a directly connected host's
    mac_vendor: str | None = None  # from nmap-mac-prefixes; None: unknown

    @property
    def family(self) -> int:
        return 6 if ":" in self.address else 4

    @property
    def port_count(self) -> int:
        return len(self.ports) + sum(run.count for run in self.port_runs)

    @property
    def ptr_name(self) -> str | None:
        for name, kind in self.hostnames:
            if kind == "PTR":
                return name
        return None


@dataclass(slots=True)
class GroupResult:
    scan_id: str
    group_index: int
    hosts: list[HostResult]
    interrupted: bool = False  # stopped early; hosts holds only the hosts that finished
    new_targets: list[str] = field(default_factory=list)  # nmap.add_targets: join the scan


@dataclass(slots=True)
class PhaseResult:
    scan_id: str
    phase: str
    scripts: list[ScriptResult]
    new_targets: list[str] = field(default_factory=list)  # added by pre-scan scripts
    error: str | None = None  # the user's error that stopped the phase (e.g. no such script)
    raw_scripts: list[str] = field(default_factory=list)  # selected scripts that open pcap/dnet


# --------------------------------------------------------------------------------------------
# Wire encoding

_SERVICE_FIELDS = ("product", "version", "extrainfo", "hostname", "ostype", "devicetype",
                   "tunnel", "servicefp")


def encode(message) -> bytes:
    import msgpack  # only the cluster's wire needs it

    return msgpack.packb(to_wire(message), use_bin_type=True)


def decode(data: bytes):
    import msgpack

    try:
        wire = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types on garbage
        raise ProtocolError(f"message is not msgpack: {exc}") from None
    return from_wire(wire)


def to_wire(message) -> dict:
    if isinstance(message, GroupJob):
        return {"v": PROTOCOL_VERSION, "kind": "group-job", "scan_id": message.scan_id,
                "group": message.group_index,
                "targets": [[t.address, t.targetname, list(t.other_addresses)]
                            for t in message.targets],
                "options": _options_to_wire(message.options)}
    if isinstance(message, GroupResult):
        return {"v": PROTOCOL_VERSION, "kind": "group-result", "scan_id": message.scan_id,
                "group": message.group_index, "interrupted": message.interrupted,
                "hosts": [_host_to_wire(h) for h in message.hosts],
                "new_targets": list(message.new_targets)}
    if isinstance(message, PhaseJob):
        return {"v": PROTOCOL_VERSION, "kind": "phase-job", "scan_id": message.scan_id,
                "phase": message.phase, "options": _options_to_wire(message.options)}
    if isinstance(message, PhaseResult):
        return {"v": PROTOCOL_VERSION, "kind": "phase-result", "scan_id": message.scan_id,
                "phase": message.phase, "scripts": _scripts_to_wire(message.scripts),
                "new_targets": list(message.new_targets), "error": message.error,
                "raw_scripts": list(message.raw_scripts)}
    raise TypeError(f"not a protocol message: {type(message).__name__}")


def from_wire(wire: Any):
    reader = _Reader(wire, "message")
    version = reader.int("v")
    if version != PROTOCOL_VERSION:
        raise ProtocolError(f"unsupported message version {version} (this side speaks "
                            f"{PROTOCOL_VERSION})")
    kind = reader.str("kind")
    if kind == "group-job":
        return GroupJob(
            scan_id=reader.str("scan_id"),
            group_index=reader.int("group"),
            targets=tuple(_target_from_wire(item) for item in reader.list("targets")),
            options=_options_from_wire(reader.sub("options")),
        )
    if kind == "group-result":
        return GroupResult(
            scan_id=reader.str("scan_id"),
            group_index=reader.int("group"),
            interrupted=reader.bool("interrupted"),
            hosts=[_host_from_wire(_Reader(h, "host")) for h in reader.list("hosts")],
            new_targets=_strings(reader.list("new_targets"), "new_targets"),
        )
    if kind in ("phase-job", "phase-result"):
        scan_id, phase = reader.str("scan_id"), reader.str("phase")
        if phase not in PHASES:
            raise ProtocolError(f"message.phase: unknown phase {phase!r}")
        if kind == "phase-job":
            return PhaseJob(scan_id, phase, _options_from_wire(reader.sub("options")))
        return PhaseResult(scan_id, phase, _scripts_from_wire(reader.list("scripts"), "scripts"),
                           _strings(reader.list("new_targets"), "new_targets"),
                           reader.str("error", optional=True),
                           _strings(reader.list("raw_scripts"), "raw_scripts"))
    raise ProtocolError(f"unknown message kind {kind!r}")


class _Reader:
    """Typed field access on a decoded dict; every failure is a ProtocolError naming the field."""

    __slots__ = ("data", "where")

    def __init__(self, data, where: str):
        if not isinstance(data, dict):
            raise ProtocolError(f"{where}: expected a map, got {type(data).__name__}")
        self.data, self.where = data, where

    def _get(self, key, types, optional=False):
        value = self.data.get(key)
        if value is None and optional:
            return None
        if isinstance(value, bool) and bool not in types:
            raise ProtocolError(f"{self.where}.{key}: expected {types[0].__name__}")
        if not isinstance(value, types):
            raise ProtocolError(f"{self.where}.{key}: expected {types[0].__name__}, got "
                                f"{type(value).__name__}")
        return value

    def int(self, key, optional=False):
        return self._get(key, (int,), optional)

    def num(self, key, optional=False):
        return self._get(key, (float, int), optional)

    def str(self, key, optional=False):
        return self._get(key, (str,), optional)

    def bool(self, key):
        return self._get(key, (bool,))

    def list(self, key):
        return self._get(key, (list, tuple))

    def sub(self, key):
        return _Reader(self._get(key, (dict,)), f"{self.where}.{key}")


def _strings(values, where) -> list[str]:
    if not all(isinstance(v, str) for v in values):
        raise ProtocolError(f"{where}: expected strings")
    return list(values)


def _list(value, where) -> list:
    if not isinstance(value, (list, tuple)):
        raise ProtocolError(f"{where}: expected a list, got {type(value).__name__}")
    return value


def _ranges_from_wire(items, where):
    out = []
    for item in _list(items, where):
        if (not isinstance(item, (list, tuple)) or len(item) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in item)
                or not 0 <= item[0] <= item[1] <= 65535):
            raise ProtocolError(f"{where}: bad port range {item!r}")
        out.append((item[0], item[1]))
    return tuple(out)


def _options_to_wire(o: ScanOptions) -> dict:
    t = o.timing
    return {
        "ports": {"tcp": [list(r) for r in o.ports.tcp], "udp": [list(r) for r in o.ports.udp]},
        "scan_type": o.scan_type, "udp_scan": o.udp_scan, "randomize_ports": o.randomize_ports,
        "host_discovery": o.host_discovery, "discovery_ports": list(o.discovery_ports),
        "reverse_dns": o.reverse_dns, "dns_servers": list(o.dns_servers),
        "system_dns": o.system_dns, "verbosity": o.verbosity, "debugging": o.debugging,
        "timing": {name: getattr(t, name) for name in Timing.__slots__},
        "scripts": None if o.scripts is None else {
            "rules": list(o.scripts.rules), "args": o.scripts.args,
            "timeout_ms": o.scripts.timeout_ms, "trace": o.scripts.trace,
            "script_scan": o.scripts.script_scan, "version_scan": o.scripts.version_scan},
        "datadir": o.datadir,
        "privilege": o.privilege,
        "interface": o.interface, "spoof_mac": o.spoof_mac,
        "version": None if o.version is None else {
            "intensity": o.version.intensity, "trace": o.version.trace},
    }


def _version_options_from_wire(data) -> VersionOptions | None:
    if data is None:
        return None
    r = _Reader(data, "options.version")
    intensity = r.int("intensity")
    if not 0 <= intensity <= 9:
        raise ProtocolError(f"options.version.intensity: {intensity} is not 0-9")
    return VersionOptions(intensity=intensity, trace=r.bool("trace"))


def _script_options_from_wire(data) -> ScriptOptions | None:
    if data is None:
        return None
    r = _Reader(data, "options.scripts")
    rules = _strings(r.list("rules"), "options.scripts.rules")
    return ScriptOptions(rules=tuple(rules), args=r.str("args"), timeout_ms=r.int("timeout_ms"),
                         trace=r.bool("trace"), script_scan=r.bool("script_scan"),
                         version_scan=r.bool("version_scan"))


def _options_from_wire(r: _Reader) -> ScanOptions:
    ports = r.sub("ports")
    timing = r.sub("timing")
    timing_values = {}
    for name in Timing.__slots__:
        default = getattr(Timing(), name)
        value = timing.num(name) if isinstance(default, float) else timing.int(name)
        timing_values[name] = value
    scan_type = r.str("scan_type")
    if scan_type not in SCAN_TYPES:
        raise ProtocolError(f"options.scan_type: unknown scan type {scan_type!r}")
    reverse_dns = r.str("reverse_dns")
    if reverse_dns not in ("never", "up", "always"):
        raise ProtocolError(f"options.reverse_dns: unknown mode {reverse_dns!r}")
    discovery_ports = tuple(_ranges_from_wire([[p, p] for p in r.list("discovery_ports")],
                                              "options.discovery_ports"))
    privilege = r.str("privilege", optional=True) or "auto"
    if privilege not in PRIVILEGE_MODES:
        raise ProtocolError(f"options.privilege: unknown mode {privilege!r}")
    return ScanOptions(
        ports=PortSet(tcp=_ranges_from_wire(ports.list("tcp"), "options.ports.tcp"),
                      udp=_ranges_from_wire(ports.list("udp"), "options.ports.udp")),
        scan_type=scan_type,
        udp_scan=r.bool("udp_scan"),
        randomize_ports=r.bool("randomize_ports"),
        host_discovery=r.bool("host_discovery"),
        discovery_ports=tuple(low for low, _ in discovery_ports),
        reverse_dns=reverse_dns,
        dns_servers=tuple(_checked_address(s, "options.dns_servers")
                          for s in r.list("dns_servers")),
        system_dns=r.bool("system_dns"),
        timing=Timing(**timing_values),
        verbosity=r.int("verbosity"),
        debugging=r.int("debugging"),
        datadir=r.str("datadir", optional=True),
        scripts=_script_options_from_wire(r.data.get("scripts")),
        privilege=privilege,
        interface=r.str("interface", optional=True),
        spoof_mac=_checked_mac(r.data.get("spoof_mac"), "options.spoof_mac"),
        version=_version_options_from_wire(r.data.get("version")),
    )


def _checked_mac(value, where) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _MAC.fullmatch(value):
        raise ProtocolError(f"{where}: not a MAC address: {value!r}")
    return value


_MAC = re.compile(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}")


def _checked_address(value, where) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except (ValueError, TypeError):
        raise ProtocolError(f"{where}: not an IP address: {value!r}") from None


def _target_from_wire(item) -> Target:
    if not isinstance(item, (list, tuple)) or len(item) != 3:
        raise ProtocolError(f"targets: bad entry {item!r}")
    address, name, others = item
    if name is not None and not isinstance(name, str):
        raise ProtocolError(f"targets: bad target name {name!r}")
    if not isinstance(others, (list, tuple)):
        raise ProtocolError("targets: other addresses must be a list")
    return Target(_checked_address(address, "targets"), name,
                  tuple(_checked_address(a, "targets") for a in others))


def _service_to_wire(s: Service | None):
    if s is None:
        return None
    wire = {"name": s.name, "method": s.method, "conf": s.conf}
    for name in _SERVICE_FIELDS:
        value = getattr(s, name)
        if value is not None:
            wire[name] = value
    if s.cpe:
        wire["cpe"] = list(s.cpe)
    return wire


def _service_from_wire(data) -> Service | None:
    if data is None:
        return None
    r = _Reader(data, "service")
    cpe = data.get("cpe", [])
    if not isinstance(cpe, list) or not all(isinstance(c, str) for c in cpe):
        raise ProtocolError("service.cpe: expected a list of strings")
    return Service(name=r.str("name"), method=r.str("method"), conf=r.int("conf"),
                   cpe=list(cpe), **{name: r.str(name, optional=True)
                                     for name in _SERVICE_FIELDS})


_MAX_STRUCTURE_DEPTH = 64


def _structured_ok(tree, depth: int = 0) -> bool:
    """A structure as it arrives: its text may be bytes (see _text_to_wire)."""
    if tree is None or (depth == 0 and isinstance(tree, (str, bytes))):
        return True
    if not isinstance(tree, list) or depth > _MAX_STRUCTURE_DEPTH:
        return False
    for entry in tree:
        if not isinstance(entry, (list, tuple)) or len(entry) != 2:
            return False
        key, value = entry
        if key is not None and not isinstance(key, (str, bytes)):
            return False
        if not isinstance(value, (str, bytes)) and not _structured_ok(value, depth + 1):
            return False
    return True


def _scripts_to_wire(scripts):
    return [[s.id, _text_to_wire(s.output), _tree_to_wire(s.structured)] for s in scripts]


# Script output is Lua bytes read as UTF-8 with surrogateescape: text that is not UTF-8 (a
# server's binary reply, say) travels as its bytes, since msgpack strings must be UTF-8.
def _text_to_wire(value):
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "surrogateescape")
    return value


def _text_from_wire(value):
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value


def _tree_to_wire(tree):
    if not isinstance(tree, list):
        return _text_to_wire(tree)
    return [[_text_to_wire(key), _tree_to_wire(value)] for key, value in tree]


def _tree_from_wire(tree):
    if not isinstance(tree, (list, tuple)):
        return _text_from_wire(tree)
    return [[_text_from_wire(key), _tree_from_wire(value)] for key, value in tree]


def _scripts_from_wire(items, where):
    out = []
    for item in _list(items, where):
        if not isinstance(item, (list, tuple)) or len(item) != 3 \
                or not isinstance(item[0], str) or not isinstance(item[1], (str, bytes)) \
                or not _structured_ok(item[2]):
            raise ProtocolError(f"{where}: bad script result")
        out.append(ScriptResult(item[0], _text_from_wire(item[1]), _tree_from_wire(item[2])))
    return out


def _host_to_wire(h: HostResult) -> dict:
    return {
        "address": h.address, "targetname": h.targetname, "status": h.status,
        "reason": h.reason, "reason_ttl": h.reason_ttl,
        "hostnames": [list(n) for n in h.hostnames],
        "other_addresses": list(h.other_addresses),
        "port_runs": [[r.protocol, r.state, r.reason, r.reason_ttl, [list(x) for x in r.ranges]]
                      for r in h.port_runs],
        "ports": [[p.protocol, p.portid, p.state, p.reason, p.reason_ttl,
                   _service_to_wire(p.service), _scripts_to_wire(p.scripts)] for p in h.ports],
        "start": h.start_time, "end": h.end_time,
        "srtt": h.srtt_us, "rttvar": h.rttvar_us, "to": h.timeout_us,
        "timed_out": h.timed_out, "scripts": _scripts_to_wire(h.scripts),
        "mac": None if h.mac_address is None else [h.mac_address, h.mac_vendor],
    }


def _port_fields_ok(proto, state, reason, ttl) -> bool:
    return (proto in PROTOCOLS and state in PORT_STATES and isinstance(reason, str)
            and isinstance(ttl, int) and not isinstance(ttl, bool))


def _host_from_wire(r: _Reader) -> HostResult:
    runs: list[PortRun] = []
    for run in r.list("port_runs"):
        if not isinstance(run, (list, tuple)) or len(run) != 5 or not _port_fields_ok(*run[:4]):
            raise ProtocolError("host.port_runs: bad entry")
        proto, state, reason, ttl, ranges = run
        runs.append(PortRun(proto, state, reason, ttl,
                            _ranges_from_wire(ranges, "host.port_runs")))
    ports: list[PortResult] = []
    for item in r.list("ports"):
        if (not isinstance(item, (list, tuple)) or len(item) != 7
                or not _port_fields_ok(item[0], item[2], item[3], item[4])
                or not isinstance(item[1], int) or not 0 <= item[1] <= 65535):
            raise ProtocolError("host.ports: bad entry")
        ports.append(PortResult(item[0], item[1], item[2], item[3], item[4],
                                _service_from_wire(item[5]),
                                _scripts_from_wire(item[6], "host.ports.scripts")))
    status = r.str("status")
    if status not in ("up", "down", "skipped"):
        raise ProtocolError(f"host.status: unknown status {status!r}")
    hostnames = []
    for entry in r.list("hostnames"):
        if (not isinstance(entry, (list, tuple)) or len(entry) != 2
                or not all(isinstance(v, str) for v in entry) or entry[1] not in ("user", "PTR")):
            raise ProtocolError("host.hostnames: bad entry")
        hostnames.append((entry[0], entry[1]))
    return HostResult(
        address=_checked_address(r.str("address"), "host.address"),
        targetname=r.str("targetname", optional=True),
        status=status, reason=r.str("reason"), reason_ttl=r.int("reason_ttl"),
        hostnames=hostnames, ports=ports, port_runs=runs,
        other_addresses=[_checked_address(a, "host.other_addresses")
                         for a in r.list("other_addresses")],
        start_time=float(r.num("start")), end_time=float(r.num("end")),
        srtt_us=r.int("srtt", optional=True), rttvar_us=r.int("rttvar", optional=True),
        timeout_us=r.int("to", optional=True), timed_out=r.bool("timed_out"),
        scripts=_scripts_from_wire(r.list("scripts"), "host.scripts"),
        **_mac_from_wire(r.data.get("mac")),
    )


def _mac_from_wire(value) -> dict:
    if value is None:
        return {}
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or _checked_mac(value[0], "host.mac") is None
            or not (value[1] is None or isinstance(value[1], str))):
        raise ProtocolError("host.mac: bad entry")
    return {"mac_address": value[0], "mac_vendor": value[1]}
