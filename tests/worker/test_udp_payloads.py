"""UDP payloads: our built-in requests are well-formed for their protocols, and a user's
nmap-payloads file is read as Nmap's documentation describes it."""
from __future__ import annotations

import struct

import pytest

from udp_peer import dns_answer
from worker.errors import UserError
from worker.scan.udp import udp_datagram, unreachable_outcome
from worker.scan.udp_payloads import BUILTIN, Payload, PayloadTable, parse_nmap_payloads


def ber(data: bytes, offset: int = 0) -> tuple[int, bytes, int]:
    """(tag, content, next offset) of the TLV at ``offset``."""
    tag, length = data[offset], data[offset + 1]
    offset += 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(data[offset:offset + count], "big")
        offset += count
    return tag, data[offset:offset + length], offset + length


def test_builtin_requests_are_well_formed():
    assert set(BUILTIN) >= {53, 123, 137, 161, 500, 1900, 5353, 11211}
    for port in (53, 5353, 137):  # DNS-shaped: our strict test responder answers them
        assert dns_answer(BUILTIN[port][0].data) is not None, port
    tag, message, end = ber(BUILTIN[161][0].data)
    assert (tag, end) == (0x30, len(BUILTIN[161][0].data))
    version = ber(message)
    assert version[:2] == (0x02, b"\x00")
    community = ber(message, version[2])
    assert community[:2] == (0x04, b"public")
    assert ber(message, community[2])[0] == 0xA0  # GetRequest-PDU
    ntp = BUILTIN[123][0].data
    assert len(ntp) == 48 and ntp[0] & 0x07 == 3 and ntp[0] >> 3 & 0x07 == 4
    ike = BUILTIN[500][0].data
    assert struct.unpack_from("!I", ike, 24)[0] == len(ike) and ike[17] == 0x10
    assert BUILTIN[1900][0].data.startswith(b"M-SEARCH * HTTP/1.1\r\n")
    assert BUILTIN[1900][0].data.endswith(b"\r\n\r\n")


def test_nmap_payloads_format():
    table = parse_nmap_payloads(
        "# comment\n"
        'udp 7,9-10 "\\x0d\\x0A" "\\r\\n\\t\\\\\\"" # trailing comment\n'
        '   "\\0\\101"\n'
        "udp 53 \"first\"\n"
        "udp 53 \"second\" source 53\n")
    assert table.by_port[7] == table.by_port[10] == (Payload(b'\r\n\r\n\t\\"\x00A'),)
    assert table.for_try(53, 0) == Payload(b"first")
    assert table.for_try(53, 1) == Payload(b"second", 53)
    assert table.for_try(53, 2) == Payload(b"first")
    assert table.for_try(8, 0) == Payload(b"")
    assert table.source_ports == {53}


@pytest.mark.parametrize("text, message", [
    ('tcp 80 "x"', 'line 1: expected "udp"'),
    ('udp "x"', "expected a port list"),
    ("udp 80", "expected a quoted payload"),
    ('udp 80-70 "x"', "bad port list"),
    ('udp 80 "x\ny"', "line 1: unterminated string"),
    ('\n\nudp 80 "\\xZZ"', "line 3: bad \\x escape"),
    ('udp 80 "x" source', "bad source port"),
])
def test_bad_nmap_payloads_are_one_clear_line(text, message):
    with pytest.raises(UserError, match=message.replace("\\", "\\\\")):
        parse_nmap_payloads(text, "nmap-payloads")


def test_datagram_checksum_and_icmp_parsing():
    ours, theirs = bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2])
    datagram = udp_datagram(ours, theirs, 40000, 53, b"abc")
    pseudo = ours + theirs + struct.pack("!BBH", 0, 17, len(datagram))
    total = sum(struct.unpack("!" + "H" * ((len(pseudo + datagram) + 1) // 2),
                              pseudo + datagram + b"\0" * (len(datagram) % 2)))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    assert total == 0xFFFF  # a correct checksum sums to all ones
    quoted = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28 + 3, 0, 0, 64, 17, 0, ours, theirs)
    icmp = struct.pack("!BBHI", 3, 10, 0, 0) + quoted + datagram[:8]
    packet = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 0, 0, 64, 1, 0, theirs,
                         ours) + icmp
    assert unreachable_outcome(packet, {40000}) == (theirs, 53, 10)
    assert unreachable_outcome(packet, {40001}) is None
    assert PayloadTable({}).for_try(1, 0).data == b""
