"""What the raw-socket probers (ping.py, syn.py, udp.py) build and read alike (no I/O): the
Internet checksum, a TCP header, TCP flags, and ICMP unreachable codes' reason names."""
from __future__ import annotations

import socket
import struct

SYN, RST, ACK = 0x02, 0x04, 0x10
MSS_OPTION = struct.pack("!BBH", 2, 4, 1460)  # as Nmap's SYN probes carry
# ICMP destination unreachable codes -> Nmap's reason names
UNREACH_REASONS = {0: "net-unreach", 1: "host-unreach", 2: "proto-unreach", 3: "port-unreach",
                   9: "net-prohibited", 10: "host-prohibited", 13: "admin-prohibited"}


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def tcp_segment(source: bytes, destination: bytes, source_port: int, port: int, flags: int,
                sequence: int, acknowledgment: int) -> bytes:
    """A TCP header (a SYN carries Nmap's MSS option) with its checksum over the IPv4
    pseudo-header of packed ``source`` and ``destination``."""
    options = MSS_OPTION if flags & SYN else b""
    offset = (5 + len(options) // 4) << 4
    header = struct.pack("!HHIIBBHHH", source_port, port, sequence, acknowledgment, offset,
                         flags, 1024, 0, 0) + options
    pseudo = source + destination + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(header))
    total = checksum(pseudo + header)
    return header[:16] + struct.pack("!H", total) + header[18:]
