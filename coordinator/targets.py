"""Target specifications, expanded lazily: a /8 is 16,777,216 addresses and is never held in
memory, and exclusions are tested without expanding them either.

Forms, as Nmap accepts them (checked against ``nmap -sL -n``):

* IPv4 octet ranges: each of the four octets is a comma list of ``n``, ``a-b``, ``-b`` (0-b),
  ``a-`` (a-255), ``-`` or ``*`` (0-255); addresses come out in numeric order, once each.
* ``/n`` after any of them: an IPv4 CIDR block. On an octet range Nmap widens every octet to
  the netmask (``10.1-2.3.4/15`` covers 10.0-3.*.*), so the result is still a product of octets.
* IPv6 addresses and ``addr/n`` networks (a zone ``%eth0`` is kept for link-local use).
* Host names; ``name/n`` is the network around the name's address. Only one address of a name
  is scanned; the rest are reported as "Other addresses" (see ``ResolvedHostname``).
* The legacy inet_aton forms ``127.1``, ``2130706433`` and ``0x7f.0.0.1``, which Nmap hands
  to the system resolver; they are decoded here so they never become a DNS query.

Name resolution is injected: ``resolve(name) -> list[str]`` raising ``LookupError`` on failure.
No I/O happens here except reading target and exclude files.
"""
from __future__ import annotations

import bisect
import ipaddress
import itertools
import math
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from coordinator.errors import UserError
from worker.protocol import Target

TYPE_CHECKING = False  # importing typing costs start-up time; type checkers read this
if TYPE_CHECKING:
    from typing import TextIO

Resolver = Callable[[str], Sequence[str]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_IPV4_MAX = (1 << 32) - 1
_IPV4_CHARACTERS = re.compile(r"[0-9.,*-]+", re.ASCII)
_OCTET_ITEM = re.compile(r"(?P<low>[0-9]*)(?P<dash>-?)(?P<high>[0-9]*)", re.ASCII)
_INET_ATON_PART = re.compile(r"0[xX][0-9a-fA-F]{1,8}|0[0-7]{0,11}|[1-9][0-9]{0,9}", re.ASCII)
# RFC 1123 labels, plus "_": DNS allows it (RFC 2181) and Nmap hands any name to the resolver.
_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?", re.ASCII)


class TargetNotScanned(UserError):
    """A target that cannot be scanned but does not stop the scan (Nmap reports it and goes on):
    a name that does not resolve, or an address of the wrong family."""


def shown(text: str) -> str:
    """``text`` in double quotes, control characters escaped and length capped, so a message
    stays one readable line whatever the input."""
    clipped = text if len(text) <= 120 else text[:117] + "..."
    return '"' + "".join(c if c.isprintable() else repr(c)[1:-1] for c in clipped) + '"'


def _invalid(token: str, reason: str = "") -> UserError:
    return UserError(f"Invalid target specification {shown(token)}" + (f": {reason}"
                                                                         if reason else ""))


# --------------------------------------------------------------------------------------------
# Specifications


class TargetSpec:
    """One parsed token. ``count()`` is None while a name is unresolved."""

    text: str

    def count(self) -> int | None:
        raise NotImplementedError

    def contains(self, address: IPAddress | str) -> bool:
        raise NotImplementedError

    def expand(self, resolve: Resolver | None = None, family: int | None = None
               ) -> Iterator[Target]:
        raise NotImplementedError


class _AddressBlock(TargetSpec):
    """Addresses as integers of one family, so exclusions can be skipped over in a jump."""

    version: int

    def first_at_or_after(self, value: int) -> int | None:
        raise NotImplementedError

    def contains_value(self, value: int) -> bool:
        raise NotImplementedError

    def interval(self) -> tuple[int, int] | None:
        """(first, last) when the block is one contiguous run of addresses."""
        raise NotImplementedError

    def run_end(self, value: int) -> int:
        """The last address of the unbroken run of members that starts at member ``value``."""
        raise NotImplementedError

    def address_text(self, value: int) -> str:
        raise NotImplementedError

    def contains(self, address: IPAddress | str) -> bool:
        address = _as_address(address)
        return address is not None and address.version == self.version \
            and self.contains_value(int(address))

    def values(self) -> Iterator[int]:
        value = self.first_at_or_after(0)
        while value is not None:
            yield value
            value = self.first_at_or_after(value + 1)

    def expand(self, resolve: Resolver | None = None, family: int | None = None
               ) -> Iterator[Target]:
        return (Target(self.address_text(value)) for value in self.values())


@dataclass(frozen=True, slots=True)
class IPv4RangeSpec(_AddressBlock):
    """Every address whose four octets are each in their (sorted, distinct) value list."""

    text: str
    octets: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]]
    version = 4

    def count(self) -> int:
        return math.prod(len(values) for values in self.octets)

    def contains_value(self, value: int) -> bool:
        if not 0 <= value <= _IPV4_MAX:
            return False
        for values, octet in zip(self.octets, value.to_bytes(4, "big")):
            index = bisect.bisect_left(values, octet)
            if index == len(values) or values[index] != octet:
                return False
        return True

    def first_at_or_after(self, value: int) -> int | None:
        if value > _IPV4_MAX:
            return None
        value = max(value, 0)
        prefix = 0
        fallback: tuple[int, int] | None = None  # deepest octet where a larger member exists
        for position, (values, octet) in enumerate(zip(self.octets, value.to_bytes(4, "big"))):
            above = bisect.bisect_right(values, octet)
            if above < len(values):
                fallback = (position, (prefix << 8) | values[above])
            if above and values[above - 1] == octet:
                prefix = (prefix << 8) | octet
            else:
                break
        else:
            return value
        if fallback is None:
            return None
        position, head = fallback
        for values in self.octets[position + 1:]:
            head = (head << 8) | values[0]
        return head

    def interval(self) -> tuple[int, int] | None:
        # Contiguous when some octet is one run, every octet before it is a single value
        # and every octet after it is complete (0-255).
        for position, values in enumerate(self.octets):
            if len(values) > 1:
                break
        else:
            position = 3
        single_before = all(len(v) == 1 for v in self.octets[:position])
        run = self.octets[position]
        full_after = all(len(v) == 256 for v in self.octets[position + 1:])
        if single_before and full_after and run[-1] - run[0] + 1 == len(run):
            first = int.from_bytes(bytes(v[0] for v in self.octets), "big")
            last = int.from_bytes(bytes(v[-1] for v in self.octets), "big")
            return first, last
        return None

    def run_end(self, value: int) -> int:
        # The run can only carry past the last incomplete octet's contiguous stretch.
        incomplete = [i for i, values in enumerate(self.octets) if len(values) < 256]
        if not incomplete:
            return _IPV4_MAX
        position = incomplete[-1]
        values = self.octets[position]
        digits = bytearray(value.to_bytes(4, "big"))
        index = bisect.bisect_left(values, digits[position])
        while index + 1 < len(values) and values[index + 1] == values[index] + 1:
            index += 1
        digits[position] = values[index]
        digits[position + 1:] = b"\xff" * (3 - position)
        return int.from_bytes(digits, "big")

    def address_text(self, value: int) -> str:
        return ".".join(str(octet) for octet in value.to_bytes(4, "big"))

    def expand(self, resolve: Resolver | None = None, family: int | None = None
               ) -> Iterator[Target]:
        # Nested loops are several times faster than first_at_or_after per address.
        for a, b, c, d in itertools.product(*self.octets):
            yield Target(f"{a}.{b}.{c}.{d}")


@dataclass(frozen=True, slots=True)
class IPv6NetworkSpec(_AddressBlock):
    text: str
    first: int
    prefix_length: int
    zone: str | None = None  # "%eth0" scope of a link-local address, kept on every address
    version = 6

    @property
    def last(self) -> int:
        return self.first | ((1 << (128 - self.prefix_length)) - 1)

    def count(self) -> int:
        return 1 << (128 - self.prefix_length)

    def contains_value(self, value: int) -> bool:
        return self.first <= value <= self.last

    def first_at_or_after(self, value: int) -> int | None:
        value = max(value, self.first)
        return value if value <= self.last else None

    def interval(self) -> tuple[int, int]:
        return self.first, self.last

    def run_end(self, value: int) -> int:
        return self.last

    def address_text(self, value: int) -> str:
        text = str(ipaddress.IPv6Address(value))
        return f"{text}%{self.zone}" if self.zone else text


@dataclass(frozen=True, slots=True)
class HostnameSpec(TargetSpec):
    """A name, or an inet_aton literal (``literal`` holds its IPv4 value; no resolver needed)."""

    text: str
    name: str
    prefix_length: int | None = None
    literal: int | None = None

    def count(self) -> int | None:
        if self.literal is None:
            return None
        return 1 << (32 - self.prefix_length) if self.prefix_length is not None else 1

    def contains(self, address: IPAddress | str) -> bool:
        raise ValueError(f"{self.name!r} must be resolved before testing membership; "
                         f"use resolve()")

    def addresses(self, resolve: Resolver | None) -> list[IPAddress]:
        """All addresses of the name, in the resolver's order, each once."""
        if self.literal is not None:
            return [ipaddress.IPv4Address(self.literal)]
        try:
            answers = resolve(self.name) if resolve is not None else []
        except (LookupError, OSError):  # socket.gaierror is an OSError
            answers = []
        unique: dict[IPAddress, None] = {}
        for answer in answers:
            address = _as_address(answer)
            if address is not None:
                unique.setdefault(address, None)
        if not unique:
            raise TargetNotScanned(f'Failed to resolve "{self.name}".')
        return list(unique)

    def resolve(self, resolve: Resolver | None, family: int | None = 4,
                on_warning: Callable[[str], None] | None = None) -> "ResolvedHostname":
        """The address Nmap would scan: the first of ``family`` (any family when None)."""
        found = self.addresses(resolve)
        chosen = next((a for a in found if family is None or a.version == family), None)
        if chosen is None:
            if on_warning is not None:
                advice = "with -6" if family == 4 else "without -6"
                on_warning(f"Warning: Hostname {self.name} resolves, but not to any "
                           f"IPv{family} address. Try scanning {advice}")
            raise TargetNotScanned(f'Failed to resolve "{self.name}".')
        bits = 32 if chosen.version == 4 else 128
        prefix = bits if self.prefix_length is None else self.prefix_length
        if prefix > bits:
            raise TargetNotScanned(_illegal_netmask(self.text, bits))
        block = _block_for(chosen, prefix, self.text)
        return ResolvedHostname(self.text, self.name, str(chosen),
                                tuple(str(a) for a in found if a != chosen), block)

    def expand(self, resolve: Resolver | None = None, family: int | None = 4
               ) -> Iterator[Target]:
        return self.resolve(resolve, family).expand()


@dataclass(frozen=True, slots=True)
class ResolvedHostname(TargetSpec):
    """A name with its scanned address; ``other_addresses`` are the ones Nmap reports as
    "Other addresses for NAME (not scanned): ...". With ``name/n`` only the name's own address
    carries the name (as in Nmap's output); the rest of the network is plain addresses."""

    text: str
    name: str
    address: str
    other_addresses: tuple[str, ...]
    block: _AddressBlock

    def count(self) -> int:
        return self.block.count()

    def contains(self, address: IPAddress | str) -> bool:
        return self.block.contains(address)

    def expand(self, resolve: Resolver | None = None, family: int | None = None
               ) -> Iterator[Target]:
        for target in self.block.expand():
            yield Target(target.address, self.name if target.address == self.address else None)


def _block_for(address: IPAddress, prefix: int, text: str) -> _AddressBlock:
    bits = address.max_prefixlen
    host_mask = (1 << (bits - prefix)) - 1
    first = int(address) & ~host_mask
    if address.version == 6:
        return IPv6NetworkSpec(text, first, prefix, address.scope_id)
    last = first | host_mask
    octets = tuple(tuple(range(lo, hi + 1)) for lo, hi in
                   zip(first.to_bytes(4, "big"), last.to_bytes(4, "big")))
    return IPv4RangeSpec(text, octets)  # type: ignore[arg-type]


def _as_address(value: IPAddress | str) -> IPAddress | None:
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return value
    try:
        return ipaddress.ip_address(value)
    except (ValueError, TypeError):
        return None


# --------------------------------------------------------------------------------------------
# Parsing


def parse_target_spec(token: str, family: int | None = None) -> TargetSpec:
    """Parse one whitespace-free target token. ``family`` (4 or 6, when the scan's is known)
    bounds the netmask allowed after a host name."""
    if not token or any(c.isspace() for c in token):
        raise _invalid(token, "expected one address, range, network or host name")
    address_text, slash, netmask_text = token.partition("/")
    prefix_length = _parse_netmask(token, netmask_text) if slash else None
    if not address_text:
        raise _invalid(token)

    if ":" in address_text:
        return _parse_ipv6(token, address_text, prefix_length)
    if _IPV4_CHARACTERS.fullmatch(address_text):
        parts = address_text.split(".")
        problem = None
        if len(parts) == 4:
            try:
                octets = tuple(_parse_octet(token, part) for part in parts)
            except UserError as exc:
                problem = exc
            else:
                if prefix_length is not None:
                    if prefix_length > 32:
                        raise UserError(_illegal_netmask(token, 32))
                    octets = _widen_to_netmask(octets, prefix_length)
                return IPv4RangeSpec(token, octets)  # type: ignore[arg-type]
        literal = _parse_inet_aton(address_text)
        if literal is not None:
            return _literal_spec(token, address_text, literal, prefix_length)
        raise problem or _invalid(token, "not an IPv4 address or range")
    if address_text.lower().startswith("0x") or address_text[0].isdigit():
        literal = _parse_inet_aton(address_text)  # hexadecimal parts: "0x7f.0.0.1"
        if literal is not None:
            return _literal_spec(token, address_text, literal, prefix_length)
    _check_hostname(token, address_text)
    limit = {4: 32, 6: 128}.get(family, 128)
    if prefix_length is not None and prefix_length > limit:
        raise UserError(_illegal_netmask(token, limit))
    return HostnameSpec(token, address_text, prefix_length)


def _literal_spec(token: str, address_text: str, literal: int,
                  prefix_length: int | None) -> HostnameSpec:
    if prefix_length is not None and prefix_length > 32:
        raise UserError(_illegal_netmask(token, 32))
    return HostnameSpec(token, address_text, prefix_length, literal)


def _parse_netmask(token: str, text: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise _invalid(token, 'expected a number of netmask bits after "/"')
    digits = text.lstrip("0") or "0"
    return int(digits) if len(digits) <= 3 else 1 << 16  # too long: illegal below, not a crash


def _illegal_netmask(token: str, bits: int) -> str:
    family = "IPv4" if bits == 32 else "IPv6"
    return f"Illegal netmask in {shown(token)}: must be 0 to {bits} for {family}"


def _parse_ipv6(token: str, address_text: str, prefix_length: int | None) -> IPv6NetworkSpec:
    try:
        address = ipaddress.IPv6Address(address_text)
    except ValueError:
        hint = " (ports are given with -p, not host:port)" if address_text.count(":") == 1 else ""
        raise _invalid(token, "not an IPv6 address" + hint) from None
    prefix = 128 if prefix_length is None else prefix_length
    if prefix > 128:
        raise UserError(_illegal_netmask(token, 128))
    block = _block_for(address, prefix, token)
    assert isinstance(block, IPv6NetworkSpec)
    return block


def _parse_octet(token: str, text: str) -> tuple[int, ...]:
    """One octet of a range: a comma list of ``n``, ``a-b``, ``-b``, ``a-``, ``-`` or ``*``."""
    values: set[int] = set()
    for item in text.split(","):
        if item == "*":
            values.update(range(256))
            continue
        match = _OCTET_ITEM.fullmatch(item)
        if not item or match is None:
            raise _invalid(token, f'bad octet "{text}"')
        low_text, dash, high_text = match["low"], match["dash"], match["high"]
        low = _octet_number(token, low_text) if low_text else 0
        high = low if not dash else _octet_number(token, high_text) if high_text else 255
        if low > high:
            raise _invalid(token, f"octet range {low}-{high} is backwards")
        values.update(range(low, high + 1))
    return tuple(sorted(values))


def _octet_number(token: str, text: str) -> int:
    digits = text.lstrip("0") or "0"  # Nmap reads "010" as ten, not octal eight
    if len(digits) > 3 or int(digits) > 255:
        raise _invalid(token, f"octet {text} is out of range (0-255)")
    return int(digits)


def _widen_to_netmask(octets, prefix_length: int):
    """Nmap applies a netmask to each octet of a range: the host bits of every listed value
    become wildcards (``127.0.0.1-2/31`` is 127.0.0.0-3)."""
    widened = []
    for position, values in enumerate(octets):
        host_bits = min(max(8 * (position + 1) - prefix_length, 0), 8)
        if host_bits == 0:
            widened.append(values)
            continue
        span = 1 << host_bits
        bases = sorted({value & ~(span - 1) for value in values})
        widened.append(tuple(v for base in bases for v in range(base, base + span)))
    return tuple(widened)


def _parse_inet_aton(text: str) -> int | None:
    """The classic inet_aton() forms (1 to 4 parts, decimal, 0-octal or 0x-hex; the last part
    fills the remaining bytes), which the system resolver accepts for Nmap."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4 or not all(_INET_ATON_PART.fullmatch(p) for p in parts):
        return None
    numbers = [int(p, 16) if p[:2] in ("0x", "0X") else int(p, 8) if p.startswith("0")
               else int(p) for p in parts]
    *leading, last = numbers
    if any(n > 255 for n in leading) or last >= 1 << (8 * (5 - len(parts))):
        return None
    value = last
    for position, number in enumerate(leading):
        value |= number << (8 * (3 - position))
    return value


def _check_hostname(token: str, name: str) -> None:
    if not name.isascii():
        raise _invalid(token, "host names must be ASCII")
    labels = name[:-1].split(".") if name.endswith(".") else name.split(".")
    if len(name.rstrip(".")) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise _invalid(token, "not an IP address, range or valid host name")


# --------------------------------------------------------------------------------------------
# Exclusions


class Exclusions:
    """Excluded addresses. Contiguous blocks become sorted intervals, so a target range skips
    an excluded /16 in one step; other ranges are tested by membership. Nothing is expanded."""

    def __init__(self, specs: Iterable[TargetSpec] = ()):
        self.specs = tuple(specs)
        self._starts: dict[int, list[int]] = {4: [], 6: []}
        self._ends: dict[int, list[int]] = {4: [], 6: []}
        self._others: list[_AddressBlock] = []
        intervals: dict[int, list[tuple[int, int]]] = {4: [], 6: []}
        for spec in self.specs:
            block = spec.block if isinstance(spec, ResolvedHostname) else spec
            if not isinstance(block, _AddressBlock):
                continue  # an unresolved name: see resolved()
            interval = block.interval()
            if interval is None:
                self._others.append(block)
            else:
                intervals[block.version].append(interval)
        for version, runs in intervals.items():
            for first, last in sorted(runs):
                if self._ends[version] and first <= self._ends[version][-1] + 1:
                    self._ends[version][-1] = max(self._ends[version][-1], last)
                else:
                    self._starts[version].append(first)
                    self._ends[version].append(last)

    @property
    def unresolved(self) -> tuple[HostnameSpec, ...]:
        return tuple(s for s in self.specs if isinstance(s, HostnameSpec))

    def resolved(self, resolve: Resolver | None) -> "Exclusions":
        """Names replaced by every address they resolve to (Nmap excludes them all)."""
        if not self.unresolved:
            return self
        specs: list[TargetSpec] = []
        for spec in self.specs:
            if not isinstance(spec, HostnameSpec):
                specs.append(spec)
                continue
            try:
                addresses = spec.addresses(resolve)
            except TargetNotScanned:
                raise UserError(f'Failed to resolve excluded host "{spec.name}".') from None
            for address in addresses:
                bits = address.max_prefixlen
                prefix = bits if spec.prefix_length is None else min(spec.prefix_length, bits)
                specs.append(_block_for(address, prefix, spec.text))
        return Exclusions(specs)

    def resume_at(self, version: int, value: int) -> int | None:
        """None when ``value`` is not excluded; else the next value worth trying."""
        ends = self._ends[version]
        index = bisect.bisect_right(self._starts[version], value) - 1
        if index >= 0 and ends[index] >= value:
            return ends[index] + 1
        for block in self._others:
            if block.version == version and block.contains_value(value):
                return block.run_end(value) + 1
        return None

    def contains(self, address: IPAddress | str) -> bool:
        if self.unresolved:
            raise ValueError("exclusions hold unresolved names; use resolved() first")
        parsed = _as_address(address)
        return parsed is not None and self.resume_at(parsed.version, int(parsed)) is not None

    def __bool__(self) -> bool:
        return bool(self.specs)


def _walk(block: _AddressBlock, exclusions: Exclusions) -> Iterator[int]:
    """The block's addresses that are not excluded, jumping over excluded intervals."""
    value = block.first_at_or_after(0)
    while value is not None:
        resume = exclusions.resume_at(block.version, value)
        if resume is None:
            yield value
            resume = value + 1
        value = block.first_at_or_after(resume)


def parse_excludes(text: str) -> list[str]:
    """``--exclude a,b,c``. Nmap splits on every comma, so an octet list cannot be used here
    (``--exclude 10.0.0.1,3`` excludes 10.0.0.1 and 0.0.0.3); put such ranges in a file."""
    tokens = [item.strip() for item in text.split(",")]
    if not any(tokens):
        raise UserError(f"Empty --exclude list {shown(text)}")
    if not all(tokens):
        raise UserError(f"Empty entry in --exclude list {shown(text)}")
    for token in tokens:
        parse_target_spec(token)
    return tokens


def read_exclude_file(path: str, stdin: TextIO | None = None) -> list[str]:
    """``--excludefile``: like -iL (whitespace-separated, ``#`` comments), commas stay octet
    lists."""
    tokens = list(_read_tokens(path, stdin, "exclude file"))
    for token in tokens:
        parse_target_spec(token)
    return tokens


# --------------------------------------------------------------------------------------------
# Target files and the stream


def read_target_file(path_or_dash: str, stdin: TextIO | None = None) -> Iterator[str]:
    """Tokens of an -iL file, lazily: whitespace-separated, ``#`` to end of line is a comment,
    ``-`` reads ``stdin``. The file is opened now, so a bad path fails before any scanning."""
    return _read_tokens(path_or_dash, stdin, "input file")


def _read_tokens(path: str, stdin: TextIO | None, what: str) -> Iterator[str]:
    if path == "-":
        return _tokens_of(stdin if stdin is not None else sys.stdin, "standard input", False)
    try:
        handle = open(path, encoding="utf-8", errors="replace")
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise UserError(f"Failed to open {what} {path} for reading: {reason}") from None
    return _tokens_of(handle, path, True)


def _tokens_of(handle, name: str, close: bool) -> Iterator[str]:
    try:
        for line in handle:
            if isinstance(line, bytes):
                line = line.decode("utf-8", errors="replace")
            yield from line.split("#", 1)[0].split()
    except OSError as exc:
        raise UserError(f"Failed to read {name}: {exc.strerror or exc}") from None
    finally:
        if close:
            handle.close()


def validate_tokens(tokens: Iterable[str], family: int | None = None) -> list[TargetSpec]:
    """Parse every token now, so command-line syntax errors stop the run before it starts."""
    return [parse_target_spec(token, family) for token in tokens]


class TargetStream:
    """The targets of a scan, one at a time, in command-line order.

    Each token is parsed when reached (a syntax error raises ``UserError``), names are resolved
    then (a failure calls ``on_error`` with Nmap's wording and the stream goes on), excluded
    addresses are skipped. ``family`` is 4 or 6 as with Nmap's -6; None accepts both.
    ``on_resolved(resolved_hostname)`` is called before a name's first target, so the caller
    can print "Other addresses for NAME (not scanned): ..." for it. The tokens are read once.
    """

    def __init__(self, tokens: Iterable[str], excludes: Iterable[str] = (),
                 resolve: Resolver | None = None,
                 on_error: Callable[[str], None] = lambda message: None,
                 *, family: int | None = 4,
                 on_resolved: Callable[[ResolvedHostname], None] | None = None,
                 on_warning: Callable[[str], None] | None = None):
        self.tokens = tokens
        self.exclusions = Exclusions(parse_target_spec(token) for token in excludes)
        self.resolve = resolve
        self.on_error = on_error
        self.on_warning = on_warning or on_error
        self.on_resolved = on_resolved
        self.family = family

    def __iter__(self) -> Iterator[Target]:
        exclusions = self.exclusions.resolved(self.resolve)
        for token in self.tokens:
            spec = parse_target_spec(token, self.family)
            try:
                block, named = self._block_of(spec)
            except TargetNotScanned as problem:
                self.on_error(str(problem))
                continue
            if named is not None and self.on_resolved is not None:
                self.on_resolved(named)
            if not exclusions and isinstance(spec, IPv4RangeSpec):
                yield from spec.expand()  # the fast path for the common case
                continue
            name = named.name if named else None
            own = int(ipaddress.ip_address(named.address)) if named else None
            others = named.other_addresses if named else ()
            for value in _walk(block, exclusions):
                if value == own:
                    yield Target(block.address_text(value), name, others)
                else:
                    yield Target(block.address_text(value))

    def _block_of(self, spec: TargetSpec) -> tuple[_AddressBlock, ResolvedHostname | None]:
        if isinstance(spec, HostnameSpec):
            named = spec.resolve(self.resolve, self.family, self.on_warning)
            return named.block, named
        assert isinstance(spec, _AddressBlock)
        if self.family == 4 and spec.version == 6:
            raise TargetNotScanned(f"{shown(spec.text)} looks like an IPv6 target "
                                   f"specification -- you have to use the -6 option.")
        if self.family == 6 and spec.version == 4:
            raise TargetNotScanned(f"{shown(spec.text)} is an IPv4 target specification, "
                                   f"but -6 scans IPv6 only.")
        return spec, None

    def estimated_count(self) -> int | None:
        """Addresses the tokens cover (exclusions not subtracted; a name counts as the size it
        will have once resolved). None when the tokens are a one-pass source such as a file."""
        if not isinstance(self.tokens, Sequence) or isinstance(self.tokens, str):
            return None
        total = 0
        for token in self.tokens:
            try:
                spec = parse_target_spec(token, self.family)
            except UserError:
                continue  # iteration will report it
            count = spec.count()
            if count is None:
                assert isinstance(spec, HostnameSpec)
                bits = 128 if self.family == 6 else 32
                count = 1 << (bits - spec.prefix_length) if spec.prefix_length is not None else 1
            total += count
        return total
