"""Reverse DNS for scanned hosts, on the event loop.

Names come from the hosts file first, then from PTR queries sent in parallel over UDP to the
configured servers (``--dns-servers``, else the system's resolv.conf), each query retried on the
next server after its timeout. ``--system-dns`` instead asks the C library from a few threads.
Nothing here blocks the loop. The message code is sans-IO: ``ptr_query`` and ``parse_ptr_reply``.
"""
from __future__ import annotations

import ipaddress
import random
import socket
import struct
from collections.abc import Callable

from worker.nsock.loop import EventLoop

HOSTS_PATH = "/etc/hosts"
RESOLV_CONF_PATH = "/etc/resolv.conf"
_TYPE_PTR = 12
_CLASS_IN = 1


class DnsFormatError(ValueError):
    """A reply that is not a well-formed DNS message."""


# -- messages (sans-IO) ----------------------------------------------------------------------

def ptr_name(address: str) -> str:
    return ipaddress.ip_address(address).reverse_pointer


def ptr_query(query_id: int, address: str) -> bytes:
    header = struct.pack("!HHHHHH", query_id, 0x0100, 1, 0, 0, 0)  # recursion desired
    labels = b"".join(bytes([len(p)]) + p.encode("ascii") for p in ptr_name(address).split("."))
    return header + labels + b"\x00" + struct.pack("!HH", _TYPE_PTR, _CLASS_IN)


def _read_name(data: bytes, offset: int) -> tuple[str, int]:
    """Decode a possibly compressed name at ``offset``; returns (name, offset after it)."""
    labels: list[str] = []
    end = None
    jumps = 0
    while True:
        if offset >= len(data):
            raise DnsFormatError("name runs past the end of the message")
        length = data[offset]
        if length & 0xC0 == 0xC0:
            if offset + 1 >= len(data):
                raise DnsFormatError("truncated compression pointer")
            if end is None:
                end = offset + 2
            offset = ((length & 0x3F) << 8) | data[offset + 1]
            jumps += 1
            if jumps > 64:
                raise DnsFormatError("compression loop")
            continue
        if length & 0xC0:
            raise DnsFormatError("unsupported label type")
        offset += 1
        if length == 0:
            break
        if offset + length > len(data):
            raise DnsFormatError("label runs past the end of the message")
        labels.append(data[offset:offset + length].decode("ascii", "replace"))
        offset += length
    return ".".join(labels), (end if end is not None else offset)


def parse_ptr_reply(data: bytes) -> tuple[int, int, list[str]]:
    """(query id, rcode, PTR names in the answer section)."""
    if len(data) < 12:
        raise DnsFormatError("message shorter than a header")
    query_id, flags, qdcount, ancount, _, _ = struct.unpack_from("!HHHHHH", data)
    if not flags & 0x8000:
        raise DnsFormatError("not a response")
    offset = 12
    for _ in range(qdcount):
        _, offset = _read_name(data, offset)
        offset += 4
    names = []
    for _ in range(ancount):
        _, offset = _read_name(data, offset)
        if offset + 10 > len(data):
            raise DnsFormatError("truncated resource record")
        rtype, _, _, rdlength = struct.unpack_from("!HHIH", data, offset)
        offset += 10
        if offset + rdlength > len(data):
            raise DnsFormatError("record data runs past the end of the message")
        if rtype == _TYPE_PTR:
            names.append(_read_name(data, offset)[0])
        offset += rdlength
    return query_id, flags & 0x000F, names


def parse_hosts(text: str) -> dict[str, str]:
    """Address -> first name, from hosts-file text."""
    names: dict[str, str] = {}
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2:
            continue
        try:
            address = str(ipaddress.ip_address(fields[0]))
        except ValueError:
            continue
        names.setdefault(address, fields[1])
    return names


def parse_resolv_conf(text: str) -> list[str]:
    servers = []
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            try:
                servers.append(str(ipaddress.ip_address(fields[1])))
            except ValueError:
                continue
    return servers


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


# -- resolvers (I/O) -------------------------------------------------------------------------

class _Query:
    __slots__ = ("address", "query_id", "tries", "timer")

    def __init__(self, address: str, query_id: int):
        self.address = address
        self.query_id = query_id
        self.tries = 0
        self.timer = None


class ReverseResolver:
    """Parallel PTR lookups; ``on_name(address, name_or_None)`` is called once per address."""

    def __init__(self, loop: EventLoop, servers: list[str], hosts: dict[str, str],
                 on_name: Callable[[str, str | None], None], timeout_ms: float = 1500,
                 tries_per_server: int = 1, max_outstanding: int = 64, port: int = 53):
        self.loop = loop
        self.hosts = hosts
        self.on_name = on_name
        self.timeout_ms = timeout_ms
        self.max_tries = max(1, len(servers) * tries_per_server)
        self.max_outstanding = max_outstanding
        self._waiting: list[str] = []
        self._pending: dict[int, _Query] = {}
        self._sockets = []
        for server in servers:
            family = socket.AF_INET6 if ":" in server else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK)
            try:
                sock.connect((server, port))
            except OSError:
                sock.close()  # no route to this server: it can answer nothing
                continue
            self._sockets.append(sock)
            loop.watch(sock.fileno(), on_read=lambda s=sock: self._on_readable(s))

    @property
    def idle(self) -> bool:
        return not self._waiting and not self._pending

    def lookup(self, addresses) -> None:
        for address in addresses:
            name = self.hosts.get(address)
            if name is not None or not self._sockets:
                self.on_name(address, name)
            else:
                self._waiting.append(address)
        self._send_more()

    def close(self) -> None:
        for query in self._pending.values():
            if query.timer is not None:
                query.timer.cancel()
        self._pending.clear()
        self._waiting.clear()
        for sock in self._sockets:
            self.loop.forget(sock.fileno())  # closing takes it out of the epoll set
            sock.close()
        self._sockets = []

    def _send_more(self) -> None:
        while self._waiting and len(self._pending) < self.max_outstanding:
            address = self._waiting.pop()
            query_id = random.getrandbits(16)
            while query_id in self._pending:
                query_id = random.getrandbits(16)
            query = _Query(address, query_id)
            self._pending[query_id] = query
            self._send(query)

    def _send(self, query: _Query) -> None:
        sock = self._sockets[query.tries % len(self._sockets)]
        query.tries += 1
        try:
            sock.send(ptr_query(query.query_id, query.address))
        except OSError:
            pass  # unreachable server: the timeout moves on to the next one
        query.timer = self.loop.call_later(self.timeout_ms, lambda: self._on_timeout(query))

    def _on_timeout(self, query: _Query) -> None:
        if self._pending.get(query.query_id) is not query:
            return
        if query.tries < self.max_tries:
            self._send(query)
        else:
            self._done(query, None)

    def _on_readable(self, sock: socket.socket) -> None:
        for _ in range(64):  # bounded: leave the loop to others between bursts
            try:
                data = sock.recv(4096)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # ICMP error queued on the socket; the query's timeout handles it
            try:
                query_id, rcode, names = parse_ptr_reply(data)
            except DnsFormatError:
                continue
            query = self._pending.get(query_id)
            if query is None:
                continue
            if rcode in (0, 3):  # answer, or NXDOMAIN: a final "no name"
                self._done(query, names[0].rstrip(".") if names else None)
            # SERVFAIL and the like: let the timeout try the next server

    def _done(self, query: _Query, name: str | None) -> None:
        del self._pending[query.query_id]
        if query.timer is not None:
            query.timer.cancel()
        self.on_name(query.address, name)
        self._send_more()


class SystemReverseResolver:
    """``--system-dns``: the C library's resolver, from worker threads, results posted back."""

    def __init__(self, loop: EventLoop, on_name: Callable[[str, str | None], None],
                 threads: int = 8):
        self.loop = loop
        self.on_name = on_name
        self._outstanding = 0
        from concurrent.futures import ThreadPoolExecutor  # only --system-dns needs threads

        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="rdns")

    @property
    def idle(self) -> bool:
        return self._outstanding == 0

    def lookup(self, addresses) -> None:
        for address in addresses:
            self._outstanding += 1
            self._pool.submit(self._resolve, address)

    def _resolve(self, address: str) -> None:
        try:
            name = socket.gethostbyaddr(address)[0]
        except (OSError, UnicodeError):
            name = None
        self.loop.call_soon_threadsafe(lambda: self._deliver(address, name))

    def _deliver(self, address: str, name: str | None) -> None:
        self._outstanding -= 1
        self.on_name(address, name)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def make_resolver(loop: EventLoop, servers: tuple[str, ...], system_dns: bool,
                  on_name: Callable[[str, str | None], None]):
    if system_dns:
        return SystemReverseResolver(loop, on_name)
    server_list = list(servers) or parse_resolv_conf(_read_text(RESOLV_CONF_PATH))
    return ReverseResolver(loop, server_list, parse_hosts(_read_text(HOSTS_PATH)), on_name)
