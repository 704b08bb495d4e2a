"""Service probe files (the ``nmap-service-probes`` format) parsed into probes and match rules.

How this works: the file is a list of ``Probe`` sections. Each names a protocol, a name and the
bytes to send, followed by directives (``ports``, ``sslports``, ``rarity``, ``totalwaitms``,
``tcpwrappedms``, ``fallback``) and ``match``/``softmatch`` lines. A match line is
``match <service> m<d><pattern><d>[flags] <template>``; the template's fields (``p/../``,
``v/../``, ``i/../``, ``h/../``, ``o/../``, ``d/../``, ``cpe:/../``) may refer to the
pattern's groups with ``$1``, ``$P(1)``, ``$SUBST(1,"a","b")`` and ``$I(1,">")``.

Patterns are PCRE: they are compiled with libpcre2 (the ``pcre2`` binding) in byte mode, so
possessive quantifiers, ``\\Z``, inline flags, octal and hex escapes and ``(?|`` behave as the
file's authors wrote them. A file is parsed once per worker process; each pattern is compiled
the first time a response is checked against it, so a scan pays only for the patterns of the
probes it sends.

Parsing is sans-IO: ``parse_probe_file(text)``; ``probe_database(path)`` adds the file read and
the per-process cache.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import pcre2

from worker.errors import UserError

DEFAULT_TOTALWAIT_MS = 5000
DEFAULT_TCPWRAPPED_MS = 2000
DEFAULT_RARITY = 5
FILE_NAME = "nmap-service-probes"
OWN_PROBE_FILE = Path(__file__).with_name("nsecluster-service-probes")

_TEMPLATE_FIELDS = "pvihod"
_FIELD_NAMES = {"p": "product", "v": "version", "i": "extrainfo", "h": "hostname",
                "o": "ostype", "d": "devicetype"}


class ProbeFileError(UserError):
    pass


class Rule:
    """One match or softmatch line. The pattern compiles on first use (most never are)."""

    __slots__ = ("service", "source", "flags", "soft", "template", "line", "_compiled",
                 "first_bytes", "probe")

    def __init__(self, service: str, source: bytes, flags: str, soft: bool,
                 template: dict[str, str], cpes: list[str], line: int):
        self.service = service
        self.source = source
        self.flags = flags
        self.soft = soft
        self.template = (template, cpes)
        self.line = line
        self.probe = ""  # the name of the probe whose line this is (set by the parser)
        self._compiled = None
        # The bytes a match must start with, when the pattern says (``^SSH-``: {S}); None
        # when it may start anywhere. Lets a response skip most lines without a regex call.
        self.first_bytes = anchored_first_bytes(source, "i" in flags)

    def compiled(self):
        """The compiled pattern, or False when libpcre2 refuses it (the rule never matches)."""
        if self._compiled is None:
            self._compiled = compile_pattern(self.source, self.flags)
        return self._compiled

    def search(self, data: bytes):
        pattern = self.compiled()
        if pattern is False:
            return None
        try:
            return pattern.search(data)
        except pcre2.LibraryError:  # e.g. the match limit: Nmap counts that as no match
            return None


_SIMPLE_ESCAPES = {ord("r"): 13, ord("n"): 10, ord("t"): 9, ord("0"): 0, ord("a"): 7,
                   ord("e"): 27, ord("f"): 12}
_META = frozenset(b".[()|*+?{^$")


def anchored_first_bytes(source: bytes, caseless: bool) -> frozenset[int] | None:
    """For ``^`` followed by one literal byte (plain, ``\\xHH``, ``\\r``-style or an escaped
    punctuation mark) that is not made optional, with no top-level ``|``: the bytes a
    response must start with to match. None when that cannot be told this simply."""
    if source[:1] != b"^" or b"\\Q" in source or _has_top_level_bar(source):
        return None
    i = 1
    if i >= len(source):
        return None
    byte = source[i]
    if byte == 0x5C:  # backslash
        if i + 1 >= len(source):
            return None
        code = source[i + 1]
        if code == ord("x") and _HEX2.fullmatch(source[i + 2:i + 4]):
            byte, i = int(source[i + 2:i + 4], 16), i + 4
        elif code in _SIMPLE_ESCAPES and not (code == ord("0") and source[i + 2:i + 3].isdigit()):
            byte, i = _SIMPLE_ESCAPES[code], i + 2
        elif not (0x30 <= code <= 0x39 or 0x41 <= code <= 0x5A or 0x61 <= code <= 0x7A):
            byte, i = code, i + 2  # an escaped punctuation mark stands for itself
        else:
            return None  # \d, \w, \s, back-references, octal...
    elif byte in _META:
        return None
    else:
        i += 1
    if source[i:i + 1] in (b"?", b"*", b"{"):  # the byte may be absent
        return None
    if caseless and 0x41 <= (byte | 0x20) - 0x20 <= 0x5A:
        return frozenset((byte | 0x20, byte & ~0x20))
    return frozenset((byte,))


def _has_top_level_bar(source: bytes) -> bool:
    depth, i, size, in_class = 0, 0, len(source), False
    while i < size:
        byte = source[i]
        if byte == 0x5C:
            i += 2
            continue
        if in_class:
            if byte == 0x5B and source[i + 1:i + 2] == b":":  # [:alpha:] inside a class
                end = source.find(b":]", i + 2)
                i = end + 2 if end >= 0 else i + 1
                continue
            if byte == 0x5D:
                in_class = False
        elif byte == 0x5B:
            in_class = True
            if source[i + 1:i + 2] == b"^":
                i += 1
            if source[i + 1:i + 2] == b"]":  # a ] first in a class is literal
                i += 1
        elif byte == 0x28:
            depth += 1
        elif byte == 0x29:
            depth -= 1
        elif byte == 0x7C and depth == 0:
            return True
        i += 1
    return False


def compile_pattern(source: bytes, flags: str):
    options = 0
    if "i" in flags:
        options |= pcre2.IGNORECASE
    if "s" in flags:
        options |= pcre2.DOTALL
    try:
        return pcre2.compile(source, options, jit=False)
    except (pcre2.PatternError, pcre2.LibraryError, ValueError):
        return False


@dataclass(slots=True)
class Probe:
    protocol: str  # "TCP" or "UDP"
    name: str
    payload: bytes
    line: int
    ports: frozenset[int] = frozenset()
    sslports: frozenset[int] = frozenset()
    rarity: int = DEFAULT_RARITY
    totalwait_ms: int = DEFAULT_TOTALWAIT_MS
    tcpwrapped_ms: int = DEFAULT_TCPWRAPPED_MS
    fallback_names: tuple[str, ...] = ()
    rules: list[Rule] = field(default_factory=list)
    fallbacks: tuple["Probe", ...] = ()  # resolved after parsing: whose rules come after ours
    # The version scan's per-first-byte candidate lines: {(id(null), byte): (null, lines)}.
    candidates: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_null(self) -> bool:
        return not self.payload and self.name == "NULL"


@dataclass(slots=True)
class ProbeDatabase:
    source: str
    probes: list[Probe]
    excluded: frozenset[tuple[str, int]] = frozenset()  # (protocol, port) never probed
    null: Probe | None = field(init=False, default=None)  # the TCP NULL probe, if any

    def __post_init__(self) -> None:
        self.null = self.probe("NULL")

    def probe(self, name: str, protocol: str = "TCP") -> Probe | None:
        return next((p for p in self.probes if p.name == name and p.protocol == protocol), None)

    def count_rules(self) -> int:
        return sum(len(p.rules) for p in self.probes)


# ---------------------------------------------------------------------------------- parsing

def parse_probe_file(text: str | bytes, source: str = "") -> ProbeDatabase:
    data = text.encode("latin-1") if isinstance(text, str) else text
    probes: list[Probe] = []
    excluded: set[tuple[str, int]] = set()
    current: Probe | None = None
    for number, raw in enumerate(data.split(b"\n"), 1):
        line = raw.rstrip(b"\r").strip()
        if not line or line.startswith(b"#"):
            continue
        word, _, rest = line.partition(b" ")
        word = word.decode("latin-1")
        rest = rest.strip()
        where = f"{source or 'probe file'} line {number}"
        if word == "Exclude":
            excluded |= _parse_port_spec(rest.decode("latin-1"), where, exclude=True)
            continue
        if word == "Probe":
            current = _parse_probe(rest, number, where)
            probes.append(current)
            continue
        if current is None:
            raise ProbeFileError(f"{where}: '{word}' before any Probe line")
        if word in ("match", "softmatch"):
            rule = _parse_rule(rest, word == "softmatch", number, where)
            rule.probe = current.name
            current.rules.append(rule)
        elif word == "ports":
            current.ports = frozenset(p for _, p in _parse_port_spec(rest.decode(), where))
        elif word == "sslports":
            current.sslports = frozenset(p for _, p in _parse_port_spec(rest.decode(), where))
        elif word in ("rarity", "totalwaitms", "tcpwrappedms"):
            try:
                value = int(rest)
            except ValueError:
                raise ProbeFileError(f"{where}: bad {word} value {rest.decode(errors='replace')!r}")
            if word == "rarity":
                current.rarity = value
            elif word == "totalwaitms":
                current.totalwait_ms = value
            else:
                current.tcpwrapped_ms = value
        elif word == "fallback":
            current.fallback_names = tuple(n.strip() for n in rest.decode().split(",") if n.strip())
        else:
            raise ProbeFileError(f"{where}: unknown directive '{word}'")
    _resolve_fallbacks(probes, source)
    return ProbeDatabase(source, probes, frozenset(excluded))


def _parse_probe(rest: bytes, number: int, where: str) -> Probe:
    protocol, _, rest = rest.partition(b" ")
    name, _, rest = rest.strip().partition(b" ")
    rest = rest.strip()
    protocol = protocol.decode("latin-1").upper()
    if protocol not in ("TCP", "UDP") or not name or len(rest) < 3 or rest[:1] != b"q":
        raise ProbeFileError(f"{where}: malformed Probe line")
    delimiter = rest[1:2]
    end = rest.find(delimiter, 2)
    if end < 0:
        raise ProbeFileError(f"{where}: Probe string has no closing delimiter")
    return Probe(protocol, name.decode("latin-1"), unescape(rest[2:end]), number)


def _parse_rule(rest: bytes, soft: bool, number: int, where: str) -> Rule:
    service, _, rest = rest.partition(b" ")
    rest = rest.lstrip()
    if len(rest) < 3 or rest[:1] != b"m":
        raise ProbeFileError(f"{where}: match line needs m<delimiter>pattern<delimiter>")
    delimiter = rest[1:2]
    end = rest.find(delimiter, 2)
    if end < 0:
        raise ProbeFileError(f"{where}: pattern has no closing delimiter")
    pattern = rest[2:end]
    position = end + 1
    flags_end = position
    while flags_end < len(rest) and rest[flags_end:flags_end + 1] in (b"i", b"s"):
        flags_end += 1
    flags = rest[position:flags_end].decode()
    template, cpes = _parse_template(rest[flags_end:], where)
    return Rule(service.decode("latin-1"), pattern, flags, soft, template, cpes, number)


def _parse_template(text: bytes, where: str) -> tuple[dict[str, str], list[str]]:
    fields: dict[str, str] = {}
    cpes: list[str] = []
    position, size = 0, len(text)
    while position < size:
        char = text[position:position + 1]
        if char in (b" ", b"\t"):
            position += 1
            continue
        if text.startswith(b"cpe:", position):
            delimiter_at = position + 4
            key = "cpe"
        elif char.decode("latin-1") in _TEMPLATE_FIELDS:
            delimiter_at = position + 1
            key = char.decode()
        else:
            raise ProbeFileError(f"{where}: unknown version field at "
                                 f"'{text[position:position + 12].decode('latin-1')}'")
        delimiter = text[delimiter_at:delimiter_at + 1]
        end = text.find(delimiter, delimiter_at + 1) if delimiter else -1
        if end < 0:
            raise ProbeFileError(f"{where}: version field '{key}' has no closing delimiter")
        value = text[delimiter_at + 1:end].decode("latin-1")
        position = end + 1
        if key == "cpe":
            while text[position:position + 1] == b"a":  # the "a" flag: the CPE is an application
                position += 1
            cpes.append(value)
        else:
            fields[key] = value
    return fields, cpes


_ESCAPES = {ord("\\"): b"\\", ord("0"): b"\0", ord("a"): b"\a", ord("b"): b"\b",
            ord("f"): b"\f", ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t",
            ord("v"): b"\v"}


_HEX2 = re.compile(rb"[0-9a-fA-F]{2}")


def unescape(text: bytes) -> bytes:
    """A probe string's C-style escapes (``\\r``, ``\\0``, ``\\xHH``, ``\\\\``) as bytes."""
    if b"\\" not in text:
        return text
    out = bytearray()
    i, size = 0, len(text)
    while i < size:
        byte = text[i]
        if byte != 0x5C or i + 1 >= size:
            out.append(byte)
            i += 1
            continue
        code = text[i + 1]
        if code == ord("x") and _HEX2.fullmatch(text[i + 2:i + 4]):
            out.append(int(text[i + 2:i + 4], 16))
            i += 4
        elif code in _ESCAPES:
            out += _ESCAPES[code]
            i += 2
        else:  # an unknown escape stands for the character itself
            out.append(code)
            i += 2
    return bytes(out)


def _parse_port_spec(text: str, where: str, exclude: bool = False) -> set[tuple[str, int]]:
    """``1,2,10-20`` (and in Exclude, ``T:`` / ``U:`` prefixes) -> {(protocol, port)}."""
    result: set[tuple[str, int]] = set()
    protocols = ("TCP", "UDP")
    for item in text.replace(" ", "").split(","):
        if not item:
            continue
        if exclude and item[:2].upper() in ("T:", "U:"):
            protocols = ("TCP",) if item[0].upper() == "T" else ("UDP",)
            item = item[2:]
        low, dash, high = item.partition("-")
        try:
            first, last = int(low), int(high) if dash else int(low)
        except ValueError:
            raise ProbeFileError(f"{where}: bad port list item '{item}'")
        if not 0 <= first <= last <= 65535:
            raise ProbeFileError(f"{where}: bad port range '{item}'")
        for protocol in protocols:
            result.update((protocol, port) for port in range(first, last + 1))
    return result


def _resolve_fallbacks(probes: list[Probe], source: str) -> None:
    # A fallback may name a probe of the other protocol (a TCP probe falling back on the UDP
    # probe of the same service): the same protocol is preferred, then any.
    by_name: dict[str, Probe] = {}
    for probe in probes:
        by_name.setdefault(probe.name, probe)
    same = {(p.protocol, p.name): p for p in probes}
    for probe in probes:
        chain = []
        for name in probe.fallback_names:
            target = same.get((probe.protocol, name)) or by_name.get(name)
            if target is None:
                raise ProbeFileError(f"{source or 'probe file'} line {probe.line}: "
                                     f"fallback probe '{name}' is not defined")
            chain.append(target)
        probe.fallbacks = tuple(chain)


# ------------------------------------------------------------------------------ the database

def find_probe_file(datadir: str | None) -> Path:
    """Nmap's probe file from the data path (--datadir, $NMAPDIR, install prefixes), else the
    project's own small one."""
    from worker.datadir import DataPath

    found = DataPath.from_environment(datadir, home=os.environ.get("HOME")).find(FILE_NAME)
    return found if found is not None else OWN_PROBE_FILE


@lru_cache(maxsize=4)
def _load(path: str, mtime_ns: int) -> ProbeDatabase:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ProbeFileError(f"cannot read service probes from {path}: {exc.strerror}")
    return parse_probe_file(data, path)


def probe_database(datadir: str | None = None, path: Path | None = None) -> ProbeDatabase:
    """The probe database for this worker process (parsed once per file version)."""
    path = path or find_probe_file(datadir)
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as exc:
        raise ProbeFileError(f"cannot read service probes from {path}: {exc.strerror}")
    return _load(str(path), mtime)
