"""A TCP/IP stack of one address for IP ID tests, run inside a test's network namespace:
it answers ARP for ADDRESS, a SYN to OPEN_PORT with a SYN-ACK and any other SYN with a
RST, every reply carrying an IP ID from the chosen generator, so ipidseq (ours and Nmap's)
can be shown each class of IP ID sequence. The kernel's own stack never sees ADDRESS (it is
not configured on the device), so nothing else answers for it.

usage: python ipid_responder.py DEVICE ADDRESS OPEN_PORT MODE [SECONDS]
MODE: zero, constant, inc1, inc2, broken (incremental in the wrong byte order: +256),
random, or a comma-separated list of IDs given out in turn (then repeated; -1: no reply).
"""
from __future__ import annotations

import random
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
ETH_IP, ETH_ARP = 0x0800, 0x0806
SYN, RST, ACK = 0x02, 0x04, 0x10


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def id_generator(mode: str):
    start = random.randrange(1000, 60000)
    if mode == "zero":
        while True:
            yield 0
    if mode == "constant":
        while True:
            yield 0x1234
    if mode in ("inc1", "inc2", "broken"):
        step = {"inc1": 1, "inc2": 2, "broken": 256}[mode]
        value = start
        while True:
            yield value
            value = (value + step) & 0xFFFF
    if mode == "random":
        while True:
            yield random.randrange(0, 0x10000)
    values = [int(v, 0) for v in mode.split(",")]
    while True:
        yield from values


def tcp_reply(ip: bytes, tcp: bytes, open_port: int, ip_id: int) -> bytes | None:
    sport, dport, seq, _ack, offset_flags = struct.unpack("!HHIIH", tcp[:14])
    if not offset_flags & SYN or offset_flags & (ACK | RST):
        return None
    if dport == open_port:
        flags, reply_seq = SYN | ACK, random.randrange(1, 1 << 32)
    else:
        flags, reply_seq = RST | ACK, 0
    source, destination = ip[16:20], ip[12:16]
    header = struct.pack("!HHIIBBHHH", dport, sport, reply_seq, (seq + 1) & 0xFFFFFFFF,
                         5 << 4, flags, 29200 if flags & SYN else 0, 0, 0)
    pseudo = source + destination + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(header))
    header = header[:16] + struct.pack("!H", checksum(pseudo + header)) + header[18:]
    ip_header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(header), ip_id, 0x4000, 64,
                            socket.IPPROTO_TCP, 0, source, destination)
    ip_header = ip_header[:10] + struct.pack("!H", checksum(ip_header)) + ip_header[12:]
    return ip_header + header


def main() -> None:
    device, address, open_port, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    lifetime = float(sys.argv[5]) if len(sys.argv) > 5 else 60.0
    own_ip = socket.inet_aton(address)
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.bind((device, 0))
    sock.settimeout(0.2)
    own_mac = sock.getsockname()[4]
    ids = id_generator(mode)
    print("ready", flush=True)
    deadline = time.monotonic() + lifetime
    while time.monotonic() < deadline:
        try:
            frame, info = sock.recvfrom(65535)
        except socket.timeout:
            continue
        if info[2] == socket.PACKET_OUTGOING or len(frame) < 42:
            continue
        peer_mac, ethertype = frame[6:12], struct.unpack("!H", frame[12:14])[0]
        if ethertype == ETH_ARP and frame[20:22] == b"\x00\x01" and frame[38:42] == own_ip:
            arp = struct.pack("!HHBBH", 1, ETH_IP, 6, 4, 2) + own_mac + own_ip \
                + frame[22:28] + frame[28:32]
            sock.send(peer_mac + own_mac + struct.pack("!H", ETH_ARP) + arp)
        elif ethertype == ETH_IP and frame[14] >> 4 == 4 and frame[30:34] == own_ip \
                and frame[23] == socket.IPPROTO_TCP:
            header_length = (frame[14] & 0x0F) * 4
            ip = frame[14:14 + header_length]
            tcp = frame[14 + header_length:]
            if tcp_reply(ip, tcp, open_port, 0) is None:
                continue
            ip_id = next(ids)
            reply = tcp_reply(ip, tcp, open_port, ip_id) if ip_id >= 0 else None
            if reply is not None:
                sock.send(peer_mac + own_mac + struct.pack("!H", ETH_IP) + reply)


if __name__ == "__main__":
    main()
