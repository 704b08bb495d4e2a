"""Packet capture on the event loop (nse-spec §6.2): an AF_PACKET socket per (device,
snaplen, promiscuous, filter), shared by every script socket that opened the same, with the
BPF filter compiled by libpcap (through scapy) and run by the kernel. Each subscriber gets
every captured packet in order; reads never block the loop.
"""
from __future__ import annotations

import socket
import struct
import time
from collections import deque
from collections.abc import Callable

from worker.nsock.raw import ETH_P_ALL, RawError

SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_OUTGOING = 4
# Link types whose frames start with a 14-byte Ethernet header (the loopback device's too).
_ETHERNET_HEADER = {1: 14, 772: 14}  # ARPHRD_ETHER, ARPHRD_LOOPBACK
QUEUE_LIMIT = 4096  # packets kept per subscriber that is not reading; the oldest go first


def _link_header_length(device: str) -> int:
    try:
        with open(f"/sys/class/net/{device}/type") as f:
            return _ETHERNET_HEADER.get(int(f.read().strip()), 0)
    except (OSError, ValueError):
        return 0


class Subscriber:
    """One script socket's view of a capture: a queue and at most one waiting read."""

    def __init__(self, capture: "Capture", accept: Callable | None = None):
        self.capture = capture
        self.accept = accept  # (length, l2, l3) -> bool: the seed's hash match
        self.queue: deque = deque(maxlen=QUEUE_LIMIT)
        self.waiter: Callable | None = None

    def deliver(self, packet: tuple) -> None:
        if self.accept is not None and not self.accept(*packet[:3]):
            return
        if self.waiter is not None:
            waiter, self.waiter = self.waiter, None
            waiter(packet)
        else:
            self.queue.append(packet)

    def next(self, waiter: Callable) -> tuple | None:
        """The next packet now, or None after arranging ``waiter(packet)``."""
        if self.queue:
            return self.queue.popleft()
        self.waiter = waiter
        return None

    def close(self) -> None:
        self.waiter = None
        self.capture.unsubscribe(self)


class Capture:
    def __init__(self, loop, device: str, snaplen: int, promisc: bool, bpf: str,
                 on_empty: Callable[["Capture"], None]):
        self.loop, self.device, self.snaplen = loop, device, snaplen
        self.subscribers: set[Subscriber] = set()
        self._on_empty = on_empty
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        except OSError as exc:
            raise RawError(exc.strerror or str(exc), exc.errno or 0) from None
        try:
            if device != "any":
                sock.bind((device, 0))
                if promisc:
                    index = socket.if_nametoindex(device)
                    sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP,
                                    struct.pack("iHH8s", index, PACKET_MR_PROMISC, 0, b""))
            if bpf:
                _attach_filter(sock, bpf, device)
            sock.setblocking(False)
            if bpf:
                _drain(sock)  # what arrived before the filter was attached (as libpcap does)
        except OSError as exc:
            sock.close()
            raise RawError(exc.strerror or str(exc), exc.errno or 0) from None
        self.sock = sock
        self.header_length = _link_header_length(device) if device != "any" else 14
        self.loopback = device != "any" and self.header_length and _is_loopback(device)
        loop.watch(sock.fileno(), on_read=self._readable)

    def subscribe(self, accept: Callable | None = None) -> Subscriber:
        subscriber = Subscriber(self, accept)
        self.subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)
        if not self.subscribers:
            self.loop.forget(self.sock.fileno())
            self.sock.close()
            self._on_empty(self)

    def _readable(self) -> None:
        for _ in range(256):  # a burst, then give the loop back
            try:
                data, address = self.sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if self.loopback and address[2] == PACKET_OUTGOING:
                continue  # loopback shows each packet twice; libpcap keeps one
            data = data[:self.snaplen]
            packet = (len(data), data[:self.header_length], data[self.header_length:],
                      time.time())
            for subscriber in list(self.subscribers):
                subscriber.deliver(packet)


def _drain(sock: socket.socket) -> None:
    for _ in range(100_000):
        try:
            sock.recv(65535)
        except OSError:  # BlockingIOError: empty
            return


def _is_loopback(device: str) -> bool:
    try:
        with open(f"/sys/class/net/{device}/type") as f:
            return f.read().strip() == "772"
    except OSError:
        return False


def _attach_filter(sock: socket.socket, bpf: str, device: str) -> None:
    """libpcap compiles ``bpf`` for the device's link type; the kernel runs it."""
    from scapy.arch.linux import attach_filter  # scapy loads only for filtered captures
    from scapy.error import Scapy_Exception

    try:
        attach_filter(sock, bpf, None if device == "any" else device)
    except Scapy_Exception as exc:
        raise RawError(f"failed to compile the filter '{bpf}': {exc}") from None


class Captures:
    """The open captures of one process, shared by identical pcap_open calls."""

    def __init__(self, loop):
        self.loop = loop
        self._open: dict[tuple, Capture] = {}

    def open(self, device: str, snaplen: int, promisc: bool, bpf: str,
             accept: Callable | None = None) -> Subscriber:
        key = (device, snaplen, promisc, bpf)
        capture = self._open.get(key)
        if capture is None:
            capture = self._open[key] = Capture(self.loop, device, snaplen, promisc, bpf,
                                                on_empty=lambda c, key=key: self._open.pop(key))
        return capture.subscribe(accept)
