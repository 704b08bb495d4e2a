"""The service table: port number <-> service name, and how often each port is found open.

Loaded from Nmap's ``nmap-services`` when the data path has one (``name<TAB>port/proto<TAB>
frequency``), else from the system's ``/etc/services`` (``name port/proto [aliases] [# ...]``),
which has no frequencies, so ``--top-ports`` cannot work from it.
"""
from __future__ import annotations

import marshal
import os
import re
import sys
import zlib
from functools import lru_cache
from pathlib import Path

from worker.datadir import DataPath, cached_data
from worker.errors import UserError
from worker.protocol import PROTOCOLS, HostResult, Service

NMAP_SERVICES = "nmap-services"

NO_FREQUENCIES_MESSAGE = (
    "{option} needs Nmap's nmap-services file (it has port frequencies), but the service "
    "table came from {source}; install Nmap's data files or point --datadir at a directory "
    "containing nmap-services")


class ServiceTable:
    """Names and frequencies by (protocol, port). Each protocol's table is built from the text
    the first time it is asked for (a TCP scan never parses the 19,000 UDP lines), and the
    index of every name and alias (for ``-p http*``) only when a pattern needs it."""

    def __init__(self, text: str | None, source: str = "", has_frequencies: bool = False,
                 warnings: tuple[str, ...] = (), cache: "TableCache | None" = None):
        self._text = text  # None: read ``source`` when a table is not in the cache
        self._lines: list[str] | None = None
        self.source = source  # the file the table was read from; "" when there was none
        self.has_frequencies = has_frequencies
        self.warnings = warnings  # for the user, e.g. the fallback to /etc/services
        self._cache = cache
        self._by_port: dict[str, dict[int, tuple[str, float]]] = {}
        self._names: list[tuple[str, str, int]] | None = None

    @property
    def lines(self) -> list[str]:
        if self._lines is None:
            text = self._text if self._text is not None else _read(Path(self.source))
            self._lines = text.split("\n")
        return self._lines

    # ---------------------------------------------------------------------------------- parsing

    @staticmethod
    def parse_nmap_services(text: str, source: str = "") -> "ServiceTable":
        return ServiceTable(text, source, has_frequencies=True)

    @staticmethod
    def parse_system_services(text: str, source: str = "") -> "ServiceTable":
        return ServiceTable(text, source, has_frequencies=False)

    def _entries(self, marker: str = ""):
        """(name, port, protocol, frequency, aliases) of each well-formed line containing
        ``marker``; a malformed line costs its one entry, not the whole table."""
        for line in self.lines:
            if marker not in line or not line or line[0] == "#":
                continue
            fields = line.split("#", 1)[0].split()
            if len(fields) < 2:
                continue
            port_proto = _parse_port_proto(fields[1])
            if port_proto is None:
                continue
            if not self.has_frequencies:
                yield fields[0], port_proto[0], port_proto[1], 0.0, fields[2:]
                continue
            frequency = _parse_frequency(fields[2]) if len(fields) > 2 else 0.0
            if frequency is not None:
                yield fields[0], port_proto[0], port_proto[1], frequency, ()

    def _table(self, protocol: str) -> dict[int, tuple[str, float]]:
        table = self._by_port.get(protocol)
        if table is None:
            table = self._cache.load(protocol) if self._cache is not None else None
            if table is None:
                table = self._parse_table(protocol)
                if self._cache is not None:
                    self._cache.store(protocol, table)
            self._by_port[protocol] = table
        return table

    def _parse_table(self, protocol: str) -> dict[int, tuple[str, float]]:
        # The hot path of a scan's start without a cache: one cheap substring test per line,
        # full parsing only for this protocol's lines (same rules as _entries).
        table: dict[int, tuple[str, float]] = {}
        marker = "/" + protocol
        frequencies = self.has_frequencies
        for line in self.lines:
            if marker not in line or line[0] == "#":
                continue
            fields = line.split("#", 1)[0].split(None, 3) if "#" in line else line.split(None, 3)
            if len(fields) < 2:
                continue
            port, slash, proto = fields[1].partition("/")
            if proto.lower() != protocol or not (port.isascii() and port.isdigit()) \
                    or len(port) > 5:
                continue
            number = int(port)
            if number > 65535:
                continue
            frequency = 0.0
            if frequencies and len(fields) > 2:
                frequency = _parse_frequency(fields[2])
                if frequency is None:
                    continue
            current = table.get(number)
            # Several names on one port: the most frequently open one names it (ties: first).
            if current is None or frequency > current[1]:
                table[number] = (fields[0], frequency)
        return table

    # ---------------------------------------------------------------------------------- queries

    def __len__(self) -> int:
        return sum(len(self._table(protocol)) for protocol in PROTOCOLS)

    def name(self, protocol: str, port: int) -> str | None:
        if protocol not in PROTOCOLS:
            return None
        entry = self._table(protocol).get(port)
        return entry[0] if entry else None

    def known_ports(self, protocol: str) -> frozenset[int]:
        return frozenset(self._table(protocol)) if protocol in PROTOCOLS else frozenset()

    def ports_matching(self, pattern: str, protocol: str) -> set[int]:
        """Ports whose name (or alias) matches ``pattern``: ``*`` any run, ``?`` one character,
        case-insensitive (Nmap matches ``hTTP`` and ``h*P`` against ``http``)."""
        matcher = _compile_pattern(pattern)
        if self._names is None:
            self._names = [(alias, proto, port) for name, port, proto, _, aliases
                           in self._entries() for alias in (name, *aliases)]
        return {port for name, proto, port in self._names
                if proto == protocol and matcher(name)}

    def top(self, count: int, protocol: str) -> list[int]:
        """The ``count`` most frequently open ports, most frequent first; ties by port number,
        which is the order Nmap breaks them in (checked against ``nmap --top-ports``)."""
        if not self.has_frequencies:
            raise UserError(NO_FREQUENCIES_MESSAGE.format(option="--top-ports",
                                                          source=self.source or "nowhere"))
        table = self._table(protocol) if protocol in PROTOCOLS else {}
        ranked = sorted(((frequency, port) for port, (_, frequency) in table.items()),
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


def load_service_table(datapath: DataPath, system_services_path: str = "/etc/services",
                       cache_dir: str | None = None) -> ServiceTable:
    """Nmap's nmap-services from the data path, else the system's services database, else an
    empty table (port numbers still work; names and --top-ports do not). With ``cache_dir``,
    each protocol's parsed table is kept there for the next scan."""
    nmap_services = datapath.find(NMAP_SERVICES)
    if nmap_services is not None:
        return ServiceTable(None, str(nmap_services), True,
                            cache=TableCache.for_file(cache_dir, nmap_services, True))
    fallback = Path(system_services_path)
    warning = f"Unable to find {NMAP_SERVICES}!  Resorting to {fallback}"
    if not fallback.is_file():
        return ServiceTable("", "", False, (f"Unable to find {NMAP_SERVICES} or {fallback}; "
                                            f"ports can only be given by number",))
    return ServiceTable(None, str(fallback), False, (warning,),
                        cache=TableCache.for_file(cache_dir, fallback, False))


class TableCache:
    """Parsed protocol tables of one services file, kept across scans: every scan needs the
    TCP table and parsing 27,000 lines costs more than the scan of a few hosts. Entries are
    named by the file's path, size and modification time, so an edited file is parsed again.
    ``marshal``: fast, and it loads only plain data (never code, unlike pickle)."""

    FORMAT = 1

    def __init__(self, directory: Path, identity: str):
        self.directory = directory
        self.identity = identity  # stored in each entry and checked on load
        self.key = f"{zlib.crc32(identity.encode('utf-8', 'surrogateescape')):08x}"

    @staticmethod
    def for_file(cache_dir: str | None, path: Path, frequencies: bool) -> "TableCache | None":
        if not cache_dir:
            return None
        try:
            stat = path.stat()
        except OSError:
            return None
        identity = (f"{TableCache.FORMAT}|{sys.version_info[:2]}|{path.resolve()}|"
                    f"{stat.st_size}|{stat.st_mtime_ns}|{frequencies}")
        return TableCache(Path(cache_dir), identity)

    def _path(self, protocol: str) -> Path:
        return self.directory / f"services-{self.key}-{protocol}.marshal"

    def load(self, protocol: str) -> dict[int, tuple[str, float]] | None:
        try:
            data = marshal.loads(self._path(protocol).read_bytes())
        except (OSError, EOFError, ValueError, TypeError):
            return None
        if not (isinstance(data, tuple) and len(data) == 2 and data[0] == self.identity
                and isinstance(data[1], dict)):
            return None  # another file's entry under the same short name, or damaged
        return data[1]

    def store(self, protocol: str, table: dict[int, tuple[str, float]]) -> None:
        target = self._path(protocol)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            temporary = target.with_suffix(f".{os.getpid()}.tmp")
            temporary.write_bytes(marshal.dumps((self.identity, table)))
            os.replace(temporary, target)
        except OSError:
            pass  # a read-only or full cache only costs the next scan a parse


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise UserError(f"Failed to read service table {path}: {exc.strerror or exc}") from None


class TableGuesses:
    """Nmap's services-table guess for ports the scan did not identify otherwise. One Service
    per (protocol, port) for the whole scan: a guess is shared, never modified."""

    def __init__(self, services):
        self.services = services
        self._cache: dict[tuple[str, int], Service | None] = {}

    def name_ports(self, host: HostResult) -> None:
        for port in host.ports:
            if port.service is None:
                key = (port.protocol, port.portid)
                if key not in self._cache:
                    name = self.services.name(port.protocol, port.portid)
                    self._cache[key] = (Service(name=name, method="table", conf=3)
                                        if name is not None else None)
                port.service = self._cache[key]


def service_table_for(datadir: str | None, environ=None) -> ServiceTable:
    """This process's table for scans with ``datadir`` (loaded once, cached between scans)."""
    return cached_data("nmap-services", datadir, _load_for_process, environ)


def _load_for_process(datapath: DataPath, environ) -> ServiceTable:
    base = environ.get("XDG_CACHE_HOME") or (
        os.path.join(environ["HOME"], ".cache") if environ.get("HOME") else None)
    return load_service_table(datapath,
                              cache_dir=os.path.join(base, "nsecluster") if base else None)
