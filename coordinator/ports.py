"""Port selection: ``-p``, ``--top-ports``, ``-F`` and the default ports, with Nmap's semantics.

``-p`` items are comma-separated; ``T:``, ``U:`` and ``S:`` set the protocol for the items that
follow. An item without a prefix applies to every scanned protocol, so it is kept apart (``any``)
until the caller says which protocols it scans. Scan order is not decided here.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from coordinator.errors import UserError
from worker.protocol import PROTOCOLS, PortSet
from worker.services import NO_FREQUENCIES_MESSAGE, ServiceTable

MAX_PORT = 65535
DEFAULT_TOP = 1000
FAST_TOP = 100

ILLEGAL_SPEC = ('Your port specifications are illegal.  Example of proper form: '
                '"-100,200-1024,T:3000-4000,U:60000-"')
DUPLICATE_WARNING = ("WARNING: Duplicate port number(s) specified.  Are you alert enough to be "
                     "using Nmap?  Have some coffee or Jolt(tm).")

_PREFIX_PROTOCOL = {"T": "tcp", "U": "udp", "S": "sctp"}
# Nmap's wording for a prefix whose protocol is not scanned, and for a scanned protocol that
# ends up with no ports.
_UNSCANNED_PREFIX_WARNING = {
    "tcp": 'WARNING: Your ports include "T:" but you haven\'t specified any TCP scan type.',
    "udp": 'WARNING: Your ports include "U:" but you haven\'t specified UDP scan with -sU.',
    "sctp": 'WARNING: Your ports include "S:" but you haven\'t specified any SCTP scan type.',
}
_NO_PORTS_WARNING = {
    "tcp": "WARNING: a TCP scan type was requested, but no tcp ports were specified.  "
           "Skipping this scan type.",
    "udp": "WARNING: UDP scan was requested, but no udp ports were specified.  "
           "Skipping this scan type.",
    "sctp": "WARNING: a SCTP scan type was requested, but no sctp ports were specified.  "
            "Skipping this scan type.",
}

_NUMERIC_RANGE = re.compile(r"(?P<low>[0-9]*)(?P<dash>-?)(?P<high>[0-9]*)", re.ASCII)
# A service name or wildcard mask starts with a lowercase letter, "*" or "?" (Nmap rejects
# "HTTP" as illegal but matches "hTTP" case-insensitively).
_SERVICE_MASK = re.compile(r"[a-z*?][^\s,\[\]:]*", re.ASCII)

_EMPTY: frozenset[int] = frozenset()


@dataclass(frozen=True)
class PortSelection:
    """Ports chosen per protocol. ``tcp``/``udp``/``sctp`` come from items under a ``T:``/
    ``U:``/``S:`` prefix; ``any`` holds unprefixed numbers, which apply to every scanned
    protocol; ``named`` holds unprefixed service names and ``[...]`` items, already looked up in
    each protocol's table."""

    tcp: frozenset[int] = _EMPTY
    udp: frozenset[int] = _EMPTY
    sctp: frozenset[int] = _EMPTY
    any: frozenset[int] = _EMPTY
    named: tuple[tuple[str, frozenset[int]], ...] = ()
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def ports(self, protocol: str) -> frozenset[int]:
        explicit = getattr(self, protocol) if protocol in PROTOCOLS else _EMPTY
        named = dict(self.named).get(protocol, _EMPTY)
        parts = [part for part in (explicit, self.any, named) if part]
        if len(parts) == 1:
            return parts[0]  # frozen already: no copy of a 65,535-port set
        return frozenset().union(*parts)

    def count(self, protocol: str) -> int:
        return len(self.ports(protocol))

    def for_protocols(self, protocols: Iterable[str]) -> PortSet:
        """The worker's PortSet for the scanned protocols (PortSet carries TCP and UDP only)."""
        wanted = set(protocols)
        return PortSet.from_ports(tcp=self.ports("tcp") if "tcp" in wanted else (),
                                  udp=self.ports("udp") if "udp" in wanted else ())

    @staticmethod
    def of(ports_by_protocol: dict[str, Iterable[int]],
           warnings: Sequence[str] = ()) -> "PortSelection":
        return PortSelection(**{proto: frozenset(ports_by_protocol.get(proto, ()))
                                for proto in PROTOCOLS}, warnings=tuple(warnings))


# ------------------------------------------------------------------------------------- -p


def parse_port_spec(spec: str, services: ServiceTable,
                    protocols: Sequence[str] | None = None) -> PortSelection:
    """Parse a ``-p`` value. ``protocols`` are the scanned protocols when known; they decide,
    as in Nmap, where an unprefixed service name must match and which warnings apply. None
    means "not known yet": names may match in any protocol and no protocol warnings are given."""
    return _PortSpecParser(spec, services, protocols).parse()


class _PortSpecParser:
    def __init__(self, spec: str, services: ServiceTable, protocols: Sequence[str] | None):
        self.spec = spec
        self.services = services
        self.protocols_known = protocols is not None
        self.scanned = tuple(protocols) if protocols is not None else PROTOCOLS
        self.explicit: dict[str, set[int]] = {proto: set() for proto in PROTOCOLS}
        self.named: dict[str, set[int]] = {proto: set() for proto in PROTOCOLS}
        self.unprefixed: set[int] = set()
        self.seen: dict[str, set[int]] = {proto: set() for proto in PROTOCOLS}
        self.prefixes_used: set[str] = set()
        self.duplicate = False
        self.current: str | None = None  # the protocol of the last prefix
        self.in_brackets = False

    def parse(self) -> PortSelection:
        items = self.spec.split(",")
        if len(items) > 1 and not items[-1].strip():
            items.pop()  # Nmap accepts one trailing comma ("80,")
        for position, item in enumerate(items):
            self._item(item.strip(), last=position == len(items) - 1)
        if self.in_brackets:
            raise UserError(f'Missing "]" in port specification {shown(self.spec)}')
        if not self.unprefixed and not any(self.explicit.values()) \
                and not any(self.named.values()):
            raise UserError("No ports specified -- If you really don't want to scan any ports "
                            "use ping scan...")
        selection = PortSelection(
            **{proto: frozenset(self.explicit[proto]) for proto in PROTOCOLS},
            any=frozenset(self.unprefixed),
            named=tuple((proto, frozenset(ports)) for proto, ports in self.named.items()
                        if ports))
        warnings = [DUPLICATE_WARNING] if self.duplicate else []
        if self.protocols_known:
            warnings += [_UNSCANNED_PREFIX_WARNING[proto] for proto in PROTOCOLS
                         if proto in self.prefixes_used and proto not in self.scanned]
            warnings += [_NO_PORTS_WARNING[proto] for proto in PROTOCOLS
                         if proto in self.scanned and not selection.ports(proto)]
        return replace(selection, warnings=tuple(warnings))

    def _item(self, item: str, last: bool) -> None:
        if not item:
            raise _illegal(self.spec)
        while True:  # protocol prefixes and an opening "[", in any order
            if len(item) >= 2 and item[1] == ":":
                if item[0] not in _PREFIX_PROTOCOL:
                    raise UserError(f"Error parsing port list: Unknown protocol specifier "
                                    f"{shown(item[0])} (use T:, U: or S:).")
                self.current = _PREFIX_PROTOCOL[item[0]]
                self.prefixes_used.add(self.current)
                item = item[2:].lstrip()
            elif item.startswith("["):
                if self.in_brackets:
                    raise UserError(f'Nested "[" in port specification {shown(self.spec)}')
                self.in_brackets = True
                item = item[1:].lstrip()
            else:
                break
        closes_brackets = item.endswith("]")
        if closes_brackets:
            if not self.in_brackets:
                raise UserError(f"Unexpected ] character in port/protocol specification "
                                f"{shown(self.spec)}")
            item = item[:-1].rstrip()
        if "[" in item or "]" in item:
            raise UserError(f"Misplaced bracket in port specification {shown(self.spec)}")
        if item:
            self._add(item)
        elif not (last and not self.in_brackets):
            raise _illegal(self.spec)
        # else: a prefix with nothing after it ends the list ("T:22,U:"), as Nmap allows
        if closes_brackets:
            self.in_brackets = False

    def _add(self, item: str) -> None:
        protocols = (self.current,) if self.current else PROTOCOLS
        number_range = _NUMERIC_RANGE.fullmatch(item)
        if number_range and not self.in_brackets and not self.current:
            ports = _range_ports(number_range)
            self.unprefixed |= ports
            self._note_duplicates({proto: ports for proto in PROTOCOLS})
            return
        if number_range:
            ports = _range_ports(number_range)
            if self.in_brackets:  # [a-b]: only the ports the service table names
                found = {proto: ports & self.services.known_ports(proto) for proto in protocols}
            else:
                found = {self.current: ports}
        elif _SERVICE_MASK.fullmatch(item):
            found = {proto: self.services.ports_matching(item, proto) for proto in protocols}
            searched = protocols if self.current else self.scanned
            if not any(found[proto] for proto in searched):
                raise UserError(f"Found no matches for the service mask {shown(item)} and your "
                                f"specified protocols")
        else:
            raise _illegal(self.spec)
        for proto, ports in found.items():
            (self.explicit if self.current else self.named)[proto] |= ports
        self._note_duplicates(found)

    def _note_duplicates(self, found: dict[str, set[int]]) -> None:
        # Counted per scanned protocol: Nmap files an unprefixed item only under the protocols
        # it scans, so "80,U:80" with only TCP scanned is no duplicate.
        for proto, ports in found.items():
            if self.current is None and proto not in self.scanned:
                continue
            if not self.duplicate and not self.seen[proto].isdisjoint(ports):
                self.duplicate = True
            self.seen[proto] |= ports


def _illegal(spec: str) -> UserError:
    return UserError(f"Invalid port specification {shown(spec)}. {ILLEGAL_SPEC}")


def shown(text: str) -> str:
    """``text`` in double quotes, control characters escaped and length capped, so a message
    stays one readable line whatever the input."""
    clipped = text if len(text) <= 120 else text[:117] + "..."
    return '"' + "".join(c if c.isprintable() else repr(c)[1:-1] for c in clipped) + '"'


def _range_ports(match: re.Match) -> set[int]:
    low_text, dash, high_text = match["low"], match["dash"], match["high"]
    if not dash:
        low = high = _port_number(low_text)
    else:
        # "-b" starts at 1, not 0: port 0 is scanned only when asked for by number.
        low = _port_number(low_text) if low_text else 1
        high = _port_number(high_text) if high_text else MAX_PORT
    if low > high:
        raise UserError(f"Your port range {low}-{high} is backwards. Did you mean {high}-{low}?")
    return set(range(low, high + 1))


def _port_number(text: str) -> int:
    digits = text.lstrip("0") or "0"
    if len(digits) > 5 or int(digits) > MAX_PORT:
        raise UserError(f"Ports specified must be between 0 and 65535 inclusive; "
                        f"got {shown(text)}")
    return int(digits)


# -------------------------------------------------------------------- --top-ports, -F, default


def top_ports(count: int, services: ServiceTable, protocols: Iterable[str],
              within: PortSelection | None = None) -> PortSelection:
    """The ``count`` most frequently open ports of each protocol; with ``within`` (a ``-p``
    selection given too) the most frequent among those ports, as Nmap does."""
    if count < 1:
        raise UserError("--top-ports should be an integer 1 or greater")
    if not services.has_frequencies:
        raise UserError(NO_FREQUENCIES_MESSAGE.format(option="--top-ports",
                                                      source=services.source or "nowhere"))
    chosen = {}
    for proto in protocols:
        ranked = services.top(MAX_PORT + 1, proto)
        if within is not None:
            allowed = within.ports(proto)
            ranked = [port for port in ranked if port in allowed]
        chosen[proto] = ranked[:count]
    return PortSelection.of(chosen)


def fast_ports(services: ServiceTable, protocols: Iterable[str]) -> PortSelection:
    """``-F``: the top 100. Without frequencies Nmap scans every port the table names, which is
    fewer than the default scan; so do we."""
    if services.has_frequencies:
        return top_ports(FAST_TOP, services, protocols)
    return PortSelection.of({proto: services.known_ports(proto) for proto in protocols})


def default_ports(services: ServiceTable, protocols: Iterable[str]) -> PortSelection:
    """No port option: the top 1000. Without frequencies there is no "top", so Nmap's older
    documented rule applies: ports 1-1024 plus every higher port the services table names."""
    if services.has_frequencies:
        return top_ports(DEFAULT_TOP, services, protocols)
    return PortSelection.of({proto: set(range(1, 1025)) | services.known_ports(proto)
                             for proto in protocols})
