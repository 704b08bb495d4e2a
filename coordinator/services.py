"""The service table: port number <-> service name, and how often each port is found open.

Loaded from Nmap's ``nmap-services`` when the data path has one (``name<TAB>port/proto<TAB>
frequency``), else from the system's ``/etc/services`` (``name port/proto [aliases] [# ...]``),
which has no frequencies, so ``--top-ports`` cannot work from it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from coordinator.errors import UserError
from worker.datadir import DataPath
from worker.protocol import PROTOCOLS

NMAP_SERVICES = "nmap-services"

NO_FREQUENCIES_MESSAGE = (
    "{option} needs Nmap's nmap-services file (it has port frequencies), but the service "
    "table came from {source}; install Nmap's data files or point --datadir at a directory "
    "containing nmap-services")


@dataclass(frozen=True, slots=True)
class ServiceEntry:
    name: str
    port: int
    protocol: str
    frequency: float | None = None  # None: the source has no frequencies (/etc/services)
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServiceTable:
    entries: tuple[ServiceEntry, ...]
    source: str = ""  # the file the table was read from; "" when there was none
    has_frequencies: bool = False
    warnings: tuple[str, ...] = ()  # for the user, e.g. the fallback to /etc/services
    _by_port: dict = field(init=False, repr=False, compare=False)
    _ports: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_port: dict[tuple[str, int], ServiceEntry] = {}
        for entry in self.entries:
            key = (entry.protocol, entry.port)
            current = by_port.get(key)
            # Several names on one port: the most frequently open one names it (ties: first).
            if current is None or (entry.frequency or 0.0) > (current.frequency or 0.0):
                by_port[key] = entry
        ports = {proto: frozenset(p for (pr, p) in by_port if pr == proto) for proto in PROTOCOLS}
        object.__setattr__(self, "_by_port", by_port)
        object.__setattr__(self, "_ports", ports)

    # ---------------------------------------------------------------------------------- parsing

    @staticmethod
    def parse_nmap_services(text: str, source: str = "") -> "ServiceTable":
        entries = []
        for line in text.splitlines():
            fields = line.split("#", 1)[0].split()
            if len(fields) < 2:
                continue
            port_proto = _parse_port_proto(fields[1])
            if port_proto is None:
                continue  # a malformed line costs its one entry, not the whole table
            frequency = _parse_frequency(fields[2]) if len(fields) > 2 else 0.0
            if frequency is None:
                continue
            entries.append(ServiceEntry(fields[0], port_proto[0], port_proto[1], frequency))
        return ServiceTable(tuple(entries), source, has_frequencies=True)

    @staticmethod
    def parse_system_services(text: str, source: str = "") -> "ServiceTable":
        entries = []
        for line in text.splitlines():
            fields = line.split("#", 1)[0].split()
            if len(fields) < 2:
                continue
            port_proto = _parse_port_proto(fields[1])
            if port_proto is None:
                continue
            entries.append(ServiceEntry(fields[0], port_proto[0], port_proto[1], None,
                                        tuple(fields[2:])))
        return ServiceTable(tuple(entries), source, has_frequencies=False)

    # ---------------------------------------------------------------------------------- queries

    def name(self, protocol: str, port: int) -> str | None:
        entry = self._by_port.get((protocol, port))
        return entry.name if entry else None

    def known_ports(self, protocol: str) -> frozenset[int]:
        return self._ports.get(protocol, frozenset())

    def ports_matching(self, pattern: str, protocol: str) -> set[int]:
        """Ports whose name (or alias) matches ``pattern``: ``*`` any run, ``?`` one character,
        case-insensitive (Nmap matches ``hTTP`` and ``h*P`` against ``http``)."""
        matcher = _compile_pattern(pattern)
        return {entry.port for entry in self.entries
                if entry.protocol == protocol
                and any(matcher(name) for name in (entry.name, *entry.aliases))}

    def top(self, count: int, protocol: str) -> list[int]:
        """The ``count`` most frequently open ports, most frequent first; ties by port number,
        which is the order Nmap breaks them in (checked against ``nmap --top-ports``)."""
        if not self.has_frequencies:
            raise UserError(NO_FREQUENCIES_MESSAGE.format(option="--top-ports",
                                                          source=self.source or "nowhere"))
        ranked = sorted(((entry.frequency or 0.0, port) for (proto, port), entry
                         in self._by_port.items() if proto == protocol),
                        key=lambda item: (-item[0], item[1]))
        return [port for _, port in ranked[:max(count, 0)]]


@lru_cache(maxsize=256)
def _compile_pattern(pattern: str):
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(regex, re.IGNORECASE | re.DOTALL).fullmatch


def _parse_port_proto(text: str) -> tuple[int, str] | None:
    port, slash, protocol = text.partition("/")
    protocol = protocol.lower()
    if not slash or protocol not in PROTOCOLS or not port.isascii() or not port.isdigit() \
            or len(port) > 5 or int(port) > 65535:
        return None
    return int(port), protocol


def _parse_frequency(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if 0.0 <= value <= 1.0 else None


def load_service_table(datapath: DataPath,
                       system_services_path: str = "/etc/services") -> ServiceTable:
    """Nmap's nmap-services from the data path, else the system's services database, else an
    empty table (port numbers still work; names and --top-ports do not)."""
    nmap_services = datapath.find(NMAP_SERVICES)
    if nmap_services is not None:
        return ServiceTable.parse_nmap_services(_read(nmap_services), str(nmap_services))
    fallback = Path(system_services_path)
    warning = f"Unable to find {NMAP_SERVICES}!  Resorting to {fallback}"
    if not fallback.is_file():
        return ServiceTable((), "", False, (f"Unable to find {NMAP_SERVICES} or {fallback}; "
                                            f"ports can only be given by number",))
    table = ServiceTable.parse_system_services(_read(fallback), str(fallback))
    return ServiceTable(table.entries, table.source, False, (warning,))


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise UserError(f"Failed to read service table {path}: {exc.strerror or exc}") from None
