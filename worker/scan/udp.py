"""UDP probes on the event loop (``-sU``): the raw-socket half of UltraScan for UDP ports.

Each probe is one UDP datagram from a fixed source port, sent through a raw IPv4 socket (we
write the UDP header, the kernel adds the IP header), carrying the port's payload
(udp_payloads.py). Why raw rather than a UDP socket bound to that port: the answers that tell a
port's state are ICMP errors, which an unconnected UDP socket does not receive (it would need
IP_RECVERR's error queue, one per socket), while a raw ICMP socket sees them all; and with no
UDP socket bound to our source port, the kernel's UDP layer does not compete for the answers.
Sending needs the same privilege as receiving, so the two raw sockets come as a pair.
IPv6 hosts get the same with IPv6 raw sockets and ICMPv6 (Udp6Prober).

Answers, as Nmap reads them:
- a UDP datagram from the probed (address, port) to our source port: ``open/udp-response``;
- ICMP port unreachable (type 3 code 3) quoting our datagram: ``closed/port-unreach``;
- other ICMP unreachables (codes 0, 1, 2, 9, 10, 13): ``filtered`` with the code's reason;
- silence after the retries: ``open|filtered/no-response`` (UltraScan's ``silence``).

Linux sends ICMP port unreachable about once a second per peer (net.ipv4.icmp_ratelimit), so
a closed port's answer is often dropped: the scan runs UltraScan in ``answers_rate_limited``
mode, which gives silent ports the retries the host turns out to need and slows the host
down, rather than call a closed port ``open|filtered``.
"""
from __future__ import annotations

import functools
import random
import socket
import struct
import sys

from worker.nsock.loop import EventLoop
from worker.scan.packets import UNREACH_REASONS, checksum
from worker.scan.prober import received
from worker.scan.syn import SynProber
from worker.scan.udp_payloads import PayloadTable, payloads_for
from worker.scan.ultra import Probe, UltraScan

SILENCE = ("open|filtered", "no-response")
_ICMP_UNREACHABLE = 3
_PORT_UNREACHABLE = 3
# ICMP destination unreachable code -> (port state, Nmap's reason): only "port unreachable"
# says the port is closed; the others, that something filters it.
UNREACHABLE_OUTCOMES = {code: ("closed" if code == _PORT_UNREACHABLE else "filtered", reason)
                        for code, reason in UNREACH_REASONS.items()}


def raw_udp_sockets() -> tuple[socket.socket, socket.socket]:
    """(UDP, ICMP) raw sockets: probes go out and answers come in on the first, ICMP errors
    on the second. OSError without the privilege."""
    sockets = []
    try:
        for protocol in (socket.IPPROTO_UDP, socket.IPPROTO_ICMP):
            sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, protocol)
            sockets.append(sock)
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets[0], sockets[1]


def udp_datagram(source: bytes, destination: bytes, source_port: int, port: int,
                 payload: bytes) -> bytes:
    """UDP header (RFC 768) with its checksum over the IPv4 pseudo-header, then the payload."""
    length = 8 + len(payload)
    pseudo = source + destination + struct.pack("!BBH", 0, socket.IPPROTO_UDP, length)
    header = struct.pack("!HHHH", source_port, port, length, 0)
    total = checksum(pseudo + header + payload) or 0xFFFF  # 0 would mean "no checksum"
    return header[:6] + struct.pack("!H", total) + payload


def unreachable_outcome(packet: bytes, our_ports) -> tuple[bytes, int, int] | None:
    """(their address, their port, ICMP code) when ``packet`` (IPv4 with ICMP) is a destination
    unreachable quoting a UDP datagram from one of ``our_ports``; else None."""
    outer = (packet[0] & 0x0F) * 4
    if len(packet) < outer + 8 + 20 or packet[outer] != _ICMP_UNREACHABLE:
        return None
    quoted = outer + 8
    inner = (packet[quoted] & 0x0F) * 4
    if packet[quoted + 9] != socket.IPPROTO_UDP or len(packet) < quoted + inner + 4:
        return None
    source_port, port = struct.unpack_from("!HH", packet, quoted + inner)
    if source_port not in our_ports:
        return None
    return packet[quoted + 16:quoted + 20], port, packet[outer + 1]


class UdpProber(SynProber):
    """Drives one UltraScan of IPv4 hosts to completion with UDP probes on ``loop``; shares
    SynProber's raw-socket bookkeeping (sources, probes waiting by (address, port), timers)."""

    def __init__(self, loop: EventLoop, scan: UltraScan,
                 sockets: tuple[socket.socket, socket.socket] | None = None,
                 payloads: PayloadTable | None = None, datadir: str | None = None):
        udp, icmp = sockets or raw_udp_sockets()
        super().__init__(loop, scan, udp)
        self.icmp = icmp
        self.payloads = payloads if payloads is not None else payloads_for(datadir)
        self.source_port = _source_port(scan)
        self.our_ports = frozenset({self.source_port} | self.payloads.source_ports)

    def run(self) -> None:
        self.loop.watch(self.icmp.fileno(), on_read=self._icmp_readable)
        super().run()

    def abandon_all(self) -> None:
        super().abandon_all()
        self.loop.forget(self.icmp.fileno())
        self.icmp.close()

    def _packet(self, probe: Probe, ours: bytes, theirs: bytes) -> bytes:
        payload = self.payloads.for_try(probe.port, probe.tryno)
        return udp_datagram(ours, theirs, payload.source_port or self.source_port, probe.port,
                            payload.data)

    # -- answers ----------------------------------------------------------------------------
    def _readable(self) -> None:
        """UDP datagrams: one from a probed (address, port) to our port opens that port."""
        if self._closed:
            return
        our_ports = self.our_ports
        answered = False
        for packet in received(functools.partial(self.sock.recv, 2048)):
            header_length = (packet[0] & 0x0F) * 4
            if len(packet) < header_length + 8:
                continue
            source_port, destination_port = struct.unpack_from("!HH", packet, header_length)
            if destination_port in our_ports and not self._own_probe(packet, header_length):
                answered |= self._answer((packet[12:16], source_port), ("open", "udp-response"),
                                         packet[8])
        if answered:
            self._queue_pump()

    def _own_probe(self, packet: bytes, header_length: int) -> bool:
        """On loopback a probe sent from port P to port P (a payload's source port) arrives
        looking like an answer from P: same addresses both ways, same ports, our payload."""
        ports = packet[header_length:header_length + 4]
        if packet[12:16] != packet[16:20] or ports[:2] != ports[2:]:
            return False
        return self._is_our_payload((packet[12:16], int.from_bytes(ports[:2], "big")),
                                    packet[header_length + 8:])

    def _is_our_payload(self, key: tuple[bytes, int], data: bytes) -> bool:
        probe = self._waiting.get(key)
        return probe is not None and data == self.payloads.for_try(probe.port,
                                                                   probe.tryno).data

    def _icmp_readable(self) -> None:
        if self._closed:
            return
        answered = False
        for packet in received(functools.partial(self.icmp.recv, 2048)):
            found = unreachable_outcome(packet, self.our_ports)
            if found is None:
                continue
            theirs, port, code = found
            outcome = UNREACHABLE_OUTCOMES.get(code)
            if outcome is not None:  # e.g. "fragmentation needed" says nothing of the port
                answered |= self._answer((theirs, port), outcome, packet[8])
        if answered:
            self._queue_pump()


def _source_port(scan: UltraScan) -> int:
    """A random high source port, not one of the scanned ports when that can be helped: on
    loopback our own probe to that port would arrive looking like its answer."""
    scanned = set()
    for host in scan.hosts:
        scanned.update(host.pending)
        break  # every host is asked the same ports
    for _ in range(64):
        port = random.randint(33000, 60999)
        if port not in scanned:
            return port
    return port


# -- IPv6 ---------------------------------------------------------------------------------------
_ICMP6_UNREACHABLE = 1
# ICMPv6 destination unreachable code (RFC 4443 §3.1) -> outcome, with Nmap's reason names
UNREACHABLE6_OUTCOMES = {
    0: ("filtered", "no-route"),
    1: ("filtered", "admin-prohibited"),
    3: ("filtered", "host-unreach"),
    4: ("closed", "port-unreach"),
}
_HOPLIMIT_SPACE = socket.CMSG_SPACE(4)


def raw_udp6_sockets() -> tuple[socket.socket, socket.socket]:
    """(UDP, ICMPv6) raw IPv6 sockets. The kernel fills in the UDP checksum (IPV6_CHECKSUM)
    and, as IPv6 raw sockets do, hands over packets without their IPv6 header; the hop limit
    comes as ancillary data."""
    sockets = []
    try:
        for protocol in (socket.IPPROTO_UDP, socket.IPPROTO_ICMPV6):
            sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, protocol)
            sockets.append(sock)
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
        sockets[0].setsockopt(socket.IPPROTO_IPV6, socket.IPV6_CHECKSUM, 6)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets[0], sockets[1]


def unreachable6_outcome(message: bytes, our_ports) -> tuple[bytes, int, int] | None:
    """(their address, their port, code) when an ICMPv6 ``message`` is a destination
    unreachable quoting a UDP datagram from one of ``our_ports`` (no extension headers)."""
    if len(message) < 8 + 40 + 4 or message[0] != _ICMP6_UNREACHABLE or message[8 + 6] != 17:
        return None
    source_port, port = struct.unpack_from("!HH", message, 48)
    if source_port not in our_ports:
        return None
    return message[8 + 24:8 + 40], port, message[1]


class Udp6Prober(UdpProber):
    """UdpProber for IPv6 hosts."""

    def __init__(self, loop: EventLoop, scan: UltraScan, payloads: PayloadTable | None = None,
                 datadir: str | None = None):
        super().__init__(loop, scan, raw_udp6_sockets(), payloads, datadir)

    def _addresses(self, address: str) -> tuple[bytes, bytes]:
        pair = self._sources.get(address)
        if pair is None:
            pair = self._sources[address] = (b"", socket.inet_pton(socket.AF_INET6, address))
        return pair

    def _packet(self, probe: Probe, ours: bytes, theirs: bytes) -> bytes:
        payload = self.payloads.for_try(probe.port, probe.tryno)
        length = 8 + len(payload.data)
        return struct.pack("!HHHH", payload.source_port or self.source_port, probe.port,
                           length, 0) + payload.data  # the kernel writes the checksum

    def _readable(self) -> None:
        if self._closed:
            return
        answered = False
        for datagram, hops, sender in self._drain6(self.sock):
            if len(datagram) >= 8:
                source_port, destination_port = struct.unpack_from("!HH", datagram)
                if destination_port in self.our_ports and not (
                        source_port == destination_port  # our own probe, on loopback
                        and self._is_our_payload((sender, source_port), datagram[8:])):
                    answered |= self._answer((sender, source_port), ("open", "udp-response"),
                                             hops)
        if answered:
            self._queue_pump()

    def _icmp_readable(self) -> None:
        if self._closed:
            return
        answered = False
        for message, hops, _ in self._drain6(self.icmp):
            found = unreachable6_outcome(message, self.our_ports)
            if found is not None and found[2] in UNREACHABLE6_OUTCOMES:
                answered |= self._answer(found[:2], UNREACHABLE6_OUTCOMES[found[2]], hops)
        if answered:
            self._queue_pump()

    def _drain6(self, sock: socket.socket):
        """(data, hop limit, sender's packed address) of each waiting packet."""
        for data, ancillary, _, sender in received(
                functools.partial(sock.recvmsg, 2048, _HOPLIMIT_SPACE)):
            hops = 0
            for level, kind, value in ancillary:
                if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_HOPLIMIT:
                    hops = int.from_bytes(value[:4], sys.byteorder)
            yield data, hops, socket.inet_pton(socket.AF_INET6, sender[0].split("%")[0])
