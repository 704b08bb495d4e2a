"""TCP SYN probes on the event loop (``-sS``): the raw-socket half of UltraScan.

Each probe is one SYN segment from a fixed source port, sent through a raw IPv4 socket (the
kernel adds the IP header). The raw socket also receives every TCP segment that reaches the
host; one whose destination port is ours and whose source is a probed (address, port) is
the answer: SYN/ACK is ``open/syn-ack`` (the kernel, which knows no such connection, resets
it), RST is ``closed/reset``. Silence until the probe's timeout is left to UltraScan to retry
or call ``filtered/no-response``. IPv6 targets are not probed here (see group.py).
"""
from __future__ import annotations

import functools
import random
import socket
import struct

from worker.nse.netinfo import route_to
from worker.nsock.loop import EventLoop
from worker.scan.packets import ACK, RST, SYN, tcp_segment
from worker.scan.prober import RawProber, received
from worker.scan.ultra import Probe, UltraScan


def raw_tcp_socket() -> socket.socket:
    """The socket SYN probes go out and answers come in on; OSError without the privilege."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
    sock.setblocking(False)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    return sock


class SynProber(RawProber):
    """Drives one UltraScan of IPv4 hosts to completion with SYN probes on ``loop``."""

    def __init__(self, loop: EventLoop, scan: UltraScan, sock: socket.socket | None = None):
        super().__init__(loop, scan)
        self.sock = sock or raw_tcp_socket()
        self.source_port = random.randint(33000, 60999)
        self._sequence_key = random.getrandbits(32)
        self._sources: dict[str, tuple[bytes, bytes]] = {}  # address -> (ours, theirs) packed

    def run(self) -> None:
        self.loop.watch(self.sock.fileno(), on_read=self._readable)
        super().run()

    def abandon_all(self) -> None:
        super().abandon_all()
        self.loop.forget(self.sock.fileno())
        self.sock.close()

    def _addresses(self, address: str) -> tuple[bytes, bytes]:
        pair = self._sources.get(address)
        if pair is None:
            source = route_to(address).source or "0.0.0.0"
            pair = self._sources[address] = (socket.inet_aton(source),
                                             socket.inet_aton(address))
        return pair

    def _sequence(self, theirs: bytes, port: int) -> int:
        """The sequence number of every SYN to (``theirs``, ``port``): an answer acknowledges
        it, so a segment that does not is no answer to ours (Nmap checks it too). The same for
        each try, as an answer to an earlier try still counts."""
        return (self._sequence_key ^ hash((theirs, port))) & 0xFFFFFFFF

    def _packet(self, probe: Probe, ours: bytes, theirs: bytes) -> bytes:
        """The probe's transport header and data (the kernel adds the IP header)."""
        return tcp_segment(ours, theirs, self.source_port, probe.port, SYN,
                           self._sequence(theirs, probe.port), 0)

    def _launch(self, probe: Probe) -> None:
        address = probe.host.key
        ours, theirs = self._addresses(address)
        segment = self._packet(probe, ours, theirs)
        try:
            self.sock.sendto(segment, (address, 0))
        except (BlockingIOError, InterruptedError):
            self.scan.requeue(probe)  # the send queue is full: a moment later
            self.loop.call_later(1, self._queue_pump)
            return
        except OSError as exc:  # e.g. no route: as the connect scan reports it
            self.scan.on_reply(probe, self.loop.now_ms(), "filtered",
                               "net-unreach" if exc.errno == 101 else "host-unreach")
            return
        self._await_answer(probe)

    def _wait_key(self, probe: Probe) -> tuple[bytes, int]:
        return (self._addresses(probe.host.key)[1], probe.port)  # (their address, port)

    # -- answers ----------------------------------------------------------------------------
    def _readable(self) -> None:
        if self._closed:
            return
        answered = False
        for packet in received(functools.partial(self.sock.recv, 128)):
            header_length = (packet[0] & 0x0F) * 4
            if len(packet) < header_length + 14:
                continue
            source_port, destination_port = struct.unpack_from("!HH", packet, header_length)
            if destination_port != self.source_port:
                continue
            flags = packet[header_length + 13]
            theirs = packet[12:16]
            if flags & ACK and struct.unpack_from("!I", packet, header_length + 8)[0] != (
                    self._sequence(theirs, source_port) + 1) & 0xFFFFFFFF:
                continue  # acknowledges something else than our SYN
            if flags & SYN and flags & ACK:
                outcome = ("open", "syn-ack")
            elif flags & RST:
                outcome = ("closed", "reset")
            else:
                continue
            answered |= self._answer((theirs, source_port), outcome, packet[8])
        if answered:
            self._queue_pump()
