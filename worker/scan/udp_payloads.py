"""What a UDP probe carries, by destination port.

Most UDP services answer only a request they understand, so an empty datagram leaves an open
port silent (``open|filtered``). For well-known ports we send a small, harmless request that
makes the service answer. Our built-in requests are written here from each protocol's
specification. When the user's Nmap data directory has an ``nmap-payloads`` file, it is read at
run time and used instead of ours, as Nmap does (the file is the user's, never shipped here).

``nmap-payloads`` format (Nmap's documentation, "UDP payloads: nmap-payloads"): entries of
``udp PORTS "string" ["string" ...] [source PORT]``; PORTS is a comma-separated list (ranges
allowed), the C-style quoted strings are concatenated, ``source`` names the source port the
request must come from; ``#`` starts a comment. A port may have several entries: the first
try sends the first, each retry the next (wrapping round).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from worker.datadir import DataPath, cached_data
from worker.errors import UserError

NMAP_PAYLOADS = "nmap-payloads"


@dataclass(frozen=True, slots=True)
class Payload:
    data: bytes
    source_port: int | None = None  # None: the scan's own source port


# -------------------------------------------------------------------------------------------
# Built-in requests, each from its protocol's specification


def _dns_question(flags: int, name: str, qtype: int, qclass: int) -> bytes:
    """A DNS message with one question (RFC 1035 §4.1): header, QNAME labels, QTYPE, QCLASS."""
    header = struct.pack("!HHHHHH", 0x6e73, flags, 1, 0, 0, 0)
    labels = b"".join(bytes([len(part)]) + part.encode() for part in name.split(".") if part)
    return header + labels + b"\0" + struct.pack("!HH", qtype, qclass)


def _ber(tag: int, content: bytes) -> bytes:
    """One BER TLV (X.690 §8.1), definite length."""
    length = len(content)
    if length < 0x80:
        return bytes([tag, length]) + content
    encoded = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(encoded)]) + encoded + content


def _ber_oid(dotted: str) -> bytes:
    first, second, *rest = (int(n) for n in dotted.split("."))
    out = bytearray([40 * first + second])
    for arc in rest:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out.extend(reversed(chunk))
    return _ber(0x06, bytes(out))


def _snmp_v1_get(community: bytes, oid: str) -> bytes:
    """SNMPv1 GetRequest (RFC 1157 §4.1): Message{version 0, community, GetRequest-PDU{
    request-id, error-status 0, error-index 0, VarBindList{VarBind{name, NULL}}}}."""
    integer = lambda n: _ber(0x02, n.to_bytes(max(1, (n.bit_length() + 8) // 8), "big"))
    varbind = _ber(0x30, _ber_oid(oid) + _ber(0x05, b""))
    pdu = _ber(0xA0, integer(0x4e53) + integer(0) + integer(0) + _ber(0x30, varbind))
    return _ber(0x30, integer(0) + _ber(0x04, community) + pdu)


def _netbios_node_status() -> bytes:
    """NetBIOS NODE STATUS REQUEST for the wildcard name "*" (RFC 1002 §4.2.17): the 16-byte
    name, first-level encoded (each nibble + 'A', RFC 1001 §14.1), type NBSTAT, class IN."""
    name = b"*" + b"\0" * 15
    encoded = bytes(ord("A") + (c >> shift & 0x0F) for c in name for shift in (4, 0))
    header = struct.pack("!HHHHHH", 0x6e73, 0x0000, 1, 0, 0, 0)
    return header + bytes([32]) + encoded + b"\0" + struct.pack("!HH", 0x0021, 0x0001)


def _ike_main_mode() -> bytes:
    """IKEv1 Main Mode first message (RFC 2408 §3, RFC 2409 App. A): an SA payload with one
    proposal (PROTO_ISAKMP) of one KEY_IKE transform: 3DES, SHA, pre-shared key, MODP-1024,
    8 hours. A responder answers with its choice or a NO-PROPOSAL-CHOSEN notification."""
    attributes = b"".join(struct.pack("!HH", 0x8000 | kind, value) for kind, value in (
        (1, 5), (2, 2), (3, 1), (4, 2), (11, 1), (12, 28800)))
    transform = struct.pack("!BBHBBH", 0, 0, 8 + len(attributes), 1, 1, 0) + attributes
    proposal = struct.pack("!BBHBBBB", 0, 0, 8 + len(transform), 1, 1, 0, 1) + transform
    sa = struct.pack("!BBHII", 0, 0, 12 + len(proposal), 1, 1) + proposal
    cookie = b"nsclustr"
    header = struct.pack("!8s8sBBBBII", cookie, b"\0" * 8, 1, 0x10, 2, 0, 0, 28 + len(sa))
    return header + sa


def _ntp_client() -> bytes:
    """NTPv4 client request (RFC 5905 §7.3): LI 3 (unsynchronized), VN 4, mode 3 (client),
    poll 2^4 s, precision 2^-6; a transmit timestamp for the server to echo as origin."""
    return (struct.pack("!BBbb", 0xE3, 0, 4, -6) + b"\0" * 36
            + struct.pack("!II", 0xE8B2_0000, 0x6E736563))


def _portmap_null_call() -> bytes:
    """ONC RPC call (RFC 5531 §9) of procedure 0 (NULL) of portmapper (100000) version 2,
    AUTH_NULL credentials and verifier: any portmapper replies."""
    return struct.pack("!IIIIIIIIII", 0x6e736563, 0, 2, 100000, 2, 0, 0, 0, 0, 0)


BUILTIN: dict[int, tuple[Payload, ...]] = {
    # DNS: "version.bind" TXT in class CHAOS, no recursion; servers answer it or refuse it.
    53: (Payload(_dns_question(0x0000, "version.bind", 16, 3)),),
    111: (Payload(_portmap_null_call()),),
    123: (Payload(_ntp_client()),),
    137: (Payload(_netbios_node_status()),),
    161: (Payload(_snmp_v1_get(b"public", "1.3.6.1.2.1.1.1.0")),),  # sysDescr.0
    500: (Payload(_ike_main_mode()),),
    # MS-SQL Server Resolution Protocol CLNT_UCAST_EX ([MS-SQLR] §2.2.3): list instances.
    1434: (Payload(b"\x03"),),
    # SSDP search (UPnP Device Architecture 1.1 §1.3.2), sent to the device itself.
    1900: (Payload(b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n"
                   b"MAN: \"ssdp:discover\"\r\nMX: 1\r\nST: ssdp:all\r\n\r\n"),),
    # STUN Binding request (RFC 8489 §5): type 1, no attributes, magic cookie, transaction id.
    3478: (Payload(struct.pack("!HHI", 0x0001, 0, 0x2112A442) + b"nsecluster-1"),),
    # mDNS: DNS-SD service enumeration (RFC 6763 §9), unicast-response bit set (RFC 6762
    # §5.4); from a port other than 5353 a responder answers directly (RFC 6762 §6.7).
    5353: (Payload(_dns_question(0x0000, "_services._dns-sd._udp.local", 12, 0x8001)),),
    # memcached UDP frame header (request 1, datagram 0 of 1) and the "version" command.
    11211: (Payload(struct.pack("!HHHH", 1, 0, 1, 0) + b"version\r\n"),),
}
# Not TFTP (69): a server answers from a fresh port (RFC 1350 §4), which a port scan cannot
# tie to port 69.


# -------------------------------------------------------------------------------------------
# nmap-payloads


class PayloadTable:
    """Payloads by destination port; ports without one get an empty datagram."""

    def __init__(self, by_port: dict[int, tuple[Payload, ...]], source: str = "built-in"):
        self.by_port = by_port
        self.source = source
        self.source_ports = frozenset(p.source_port for payloads in by_port.values()
                                      for p in payloads if p.source_port is not None)

    def for_try(self, port: int, tryno: int) -> Payload:
        payloads = self.by_port.get(port)
        if not payloads:
            return _EMPTY
        return payloads[tryno % len(payloads)]


_EMPTY = Payload(b"")

_ESCAPES = {"n": 10, "r": 13, "t": 9, "a": 7, "b": 8, "f": 12, "v": 11, "\\": 92, '"': 34,
            "'": 39, "?": 63}


def parse_nmap_payloads(text: str, source: str = NMAP_PAYLOADS) -> PayloadTable:
    """Parse ``nmap-payloads`` text; a malformed entry is one clear line (UserError)."""
    entries: dict[int, list[Payload]] = {}
    tokens = list(_tokens(text, source))
    position = 0

    def fail(line: int, message: str):
        raise UserError(f"{source}, line {line}: {message}")

    while position < len(tokens):
        line, kind, value = tokens[position]
        if kind != "word" or value.lower() != "udp":
            fail(line, f"expected \"udp\" to start an entry, found {value!r}")
        position += 1
        if position >= len(tokens) or tokens[position][1] != "word":
            fail(line, "expected a port list after \"udp\"")
        ports = _port_list(tokens[position][2], lambda m: fail(tokens[position][0], m))
        position += 1
        data = bytearray()
        strings = 0
        while position < len(tokens) and tokens[position][1] == "string":
            data += tokens[position][2]
            strings += 1
            position += 1
        if not strings:
            fail(line, "expected a quoted payload after the port list")
        source_port = None
        if position < len(tokens) and tokens[position][1] == "word" \
                and tokens[position][2].lower() == "source":
            number = tokens[position + 1][2] if position + 1 < len(tokens) else ""
            if not (isinstance(number, str) and number.isdigit() and int(number) <= 65535):
                fail(tokens[position][0], f"bad source port {number!r}")
            source_port = int(number)
            position += 2
        for port in ports:
            entries.setdefault(port, []).append(Payload(bytes(data), source_port))
    return PayloadTable({port: tuple(p) for port, p in entries.items()}, source)


def _port_list(text: str, fail) -> list[int]:
    ports: list[int] = []
    for item in text.split(","):
        low, dash, high = item.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            fail(f"bad port list {text!r}")
        first, last = int(low), int(high) if dash else int(low)
        if not 0 <= first <= last <= 65535:
            fail(f"bad port list {text!r}")
        ports.extend(range(first, last + 1))
    return ports


def _tokens(text: str, source: str):
    """(line, "word" | "string", value) of each token; comments and blanks skipped."""
    i, line, n = 0, 1, len(text)
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
        elif c.isspace():
            i += 1
        elif c == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif c == '"':
            start_line = line
            out = bytearray()
            i += 1
            while True:
                if i >= n or text[i] == "\n":
                    raise UserError(f"{source}, line {start_line}: unterminated string")
                c = text[i]
                if c == '"':
                    i += 1
                    break
                if c != "\\":
                    out += c.encode("latin-1", "replace")
                    i += 1
                    continue
                escape = text[i + 1] if i + 1 < n else ""
                if escape == "x":
                    digits = text[i + 2:i + 4]
                    if len(digits) != 2 or not all(d in "0123456789abcdefABCDEF" for d in digits):
                        raise UserError(f"{source}, line {line}: bad \\x escape")
                    out.append(int(digits, 16))
                    i += 4
                elif escape in _ESCAPES:
                    out.append(_ESCAPES[escape])
                    i += 2
                elif escape.isdigit() and escape in "01234567":
                    j = i + 1
                    while j < n and j < i + 4 and text[j] in "01234567":
                        j += 1
                    out.append(int(text[i + 1:j], 8) & 0xFF)
                    i = j
                else:
                    raise UserError(f"{source}, line {line}: unknown escape \\{escape}")
            yield start_line, "string", bytes(out)
        else:
            start = i
            while i < n and not text[i].isspace() and text[i] not in '"#':
                i += 1
            yield line, "word", text[start:i]


def payloads_for(datadir: str | None, environ=None) -> PayloadTable:
    """This process's payloads for scans with ``datadir`` (the user's ``nmap-payloads`` when
    the data path has one, else ours), loaded once."""
    return cached_data(NMAP_PAYLOADS, datadir, _load_from, environ)


def _load_from(datapath: DataPath, environ) -> PayloadTable:
    path = datapath.find(NMAP_PAYLOADS)
    return _load(path) if path is not None else PayloadTable(BUILTIN)


def _load(path: Path) -> PayloadTable:
    try:
        text = path.read_text(encoding="latin-1")
    except OSError as exc:
        raise UserError(f"Failed to read {path}: {exc.strerror or exc}") from None
    return parse_nmap_payloads(text, str(path))
