"""Stream and datagram sockets on the event loop, in the manner of nsock's iods.

How this works: an ``NsockSocket`` is one connection's lifetime (nsock's iod). Every operation
(connect, send, sendto, the receives, reconnect_ssl) takes a callback and returns an ``Op`` at
once; the callback runs later, from the loop, exactly once, as ``callback(status, value)``
(never from inside the call that started the operation, even when it completes at once):
``status`` is None on success (``value`` is the data read, or None), one of TIMEOUT, ERROR,
EOF, CANCELLED, KILL on failure (``value`` None), or RESOLVE when a name did not resolve
(``value`` is the resolver's message, such as "Name or service not known"). ``Op.cancel()``
(the waiting script thread died) drops an operation silently: its callback never runs.

- Nothing blocks: sockets are non-blocking and watched level-triggered; numeric addresses are
  parsed inline (and connected on the loop's next pass, in one batch with the others: that
  measured faster than connecting inside the call), names are resolved by getaddrinfo in a
  small thread pool whose answers come back through ``loop.call_soon_threadsafe``; TLS
  handshakes and records are driven by readiness (a TLS read may need the fd writable and a
  write may need it readable). A read first tries the socket: data that has arrived already
  costs no epoll registration and no timer.
- Every wait honours the socket's timeout (``timeout_ms``, read when the operation starts;
  -1 means none), one timer per operation covering all of it (connect plus TLS handshake).
- Reads: ``receive`` completes with whatever one read returns (a TCP chunk, one datagram);
  ``receive_bytes(n)``/``receive_lines(n)`` keep reading until the data holds n bytes / n
  newlines and return all of it. On TIMEOUT or EOF after partial data, ``partial_reads_succeed``
  (Nmap 7) makes them succeed with the partial data; otherwise (the seed) they fail and the
  partial data stays in the socket for the next read, so nothing the peer sent is lost.
- ``close`` fails pending operations with CANCELLED.
"""
from __future__ import annotations

import _socket
import errno
import os
import socket
import ssl
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from worker.nsock.loop import EventLoop

AF_INET, AF_INET6 = socket.AF_INET, socket.AF_INET6
_STREAM, _DGRAM = _socket.SOCK_STREAM, _socket.SOCK_DGRAM
_NO_TIMER = object()  # _resolved: the connect needs no timer started there
_NONBLOCK_CLOEXEC = _socket.SOCK_NONBLOCK | _socket.SOCK_CLOEXEC
HAVE_SSL = True  # Python's ssl module is always there; Nmap's no-OpenSSL answers exist anyway
TIMEOUT, ERROR, EOF, CANCELLED, KILL = "TIMEOUT", "ERROR", "EOF", "CANCELLED", "KILL"
RESOLVE = "RESOLVE"  # status of a name that did not resolve; value: the resolver's message
UNKNOWN_PROTOCOL = "unknown protocol"  # get_info's text for an endpoint it cannot tell
DEFAULT_TIMEOUT_MS = 30000
CHUNK = 8192  # bytes asked of the kernel at a time
DRAIN_LIMIT = 1 << 20  # most bytes one satisfied read returns
_DATAGRAM = 65535

Callback = Callable[[str | None, object], None]


class NotConnected(Exception):
    """The operation needs an open socket (Nmap: "socket must be connected")."""


class ImmediateFailure(OSError):
    """The socket could not even be created (Nmap: "Nsock connect failed immediately")."""


# -- name resolution off the loop --------------------------------------------------------------

_pool: ThreadPoolExecutor | None = None
_pool_pid = 0
_pool_lock = threading.Lock()


def _resolver_pool() -> ThreadPoolExecutor:
    global _pool, _pool_pid
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid():
            _pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="nsock-resolve")
            _pool_pid = os.getpid()
        return _pool


def numeric_address(host: str, port: int, socktype: int):
    """(family, sockaddr) when ``host`` is a numeric address of any family, else None."""
    try:  # the common cases without getaddrinfo: a script connects per thread
        socket.inet_pton(socket.AF_INET, host)
        return socket.AF_INET, (host, port)
    except (OSError, ValueError):
        pass
    try:
        socket.inet_pton(socket.AF_INET6, host)
        return socket.AF_INET6, (host, port, 0, 0)
    except (OSError, ValueError):
        pass
    try:
        infos = socket.getaddrinfo(host, port, socket.AF_UNSPEC, socktype, 0,
                                   socket.AI_NUMERICHOST)
    except (socket.gaierror, UnicodeError, ValueError):
        return None
    return infos[0][0], infos[0][4]


def _lookup(host: str, port: int, family: int, socktype: int):
    """getaddrinfo in a pool thread: (family, sockaddr) or the resolver's message."""
    try:
        infos = socket.getaddrinfo(host, port, family, socktype)
    except socket.gaierror as exc:
        return exc.strerror or str(exc)
    except (UnicodeError, ValueError):
        return "Name or service not known"
    if not infos:
        return "Name or service not known"
    return infos[0][0], infos[0][4]


def resolve(loop: EventLoop, host: str, port: int, family: int, socktype: int,
            answer: Callable[[object], None]) -> None:
    """``answer((family, sockaddr) | message)`` from the loop: inline (on the next turn) for
    numeric addresses, from a pool thread for names."""
    found = numeric_address(host, port, socktype)
    if found is not None:
        loop.call_soon(lambda: answer(found))
        return
    pool = _resolver_pool()
    pool.submit(lambda: loop.call_soon_threadsafe(
        lambda result=_lookup(host, port, family, socktype): answer(result)))


# -- TLS ---------------------------------------------------------------------------------------

_client_context: ssl.SSLContext | None = None


def client_context() -> ssl.SSLContext:
    """One client context for every connection: no verification (as Nmap), every protocol
    and cipher OpenSSL will still speak, so old servers answer as they do to Nmap."""
    global _client_context
    if _client_context is None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        try:
            context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        except (ValueError, OSError):
            pass
        try:
            context.set_ciphers("ALL:@SECLEVEL=0")
        except ssl.SSLError:
            pass
        context.options |= getattr(ssl, "OP_LEGACY_SERVER_CONNECT", 0x4)
        context.options |= getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
        _client_context = context
    return _client_context


def _sni(name: str | None) -> str | None:
    if not name or numeric_address(name, 0, socket.SOCK_STREAM) is not None:
        return None
    try:
        name.encode("idna")
    except UnicodeError:
        return None
    return name


# -- operations --------------------------------------------------------------------------------

class Op:
    """One pending operation. ``cancel()`` drops it: its callback never runs."""

    __slots__ = ("sock", "kind", "callback", "timer", "done", "want", "data", "payload",
                 "address", "sni")

    def __init__(self, sock: "NsockSocket", kind: str, callback: Callback):
        self.sock = sock
        self.kind = kind  # connect | handshake | read | write
        self.callback = callback
        self.timer = None
        self.done = False
        self.want = None  # reads: predicate over the data so far
        self.data = None  # reads: bytearray of what was read
        self.payload = None  # writes: memoryview of what is left to write
        self.address = None  # sendto: destination sockaddr
        self.sni = None

    def cancel(self) -> None:
        undelivered = self.done and self.callback is not None
        self.callback = None
        if not self.done:
            self.done = True
            self.sock._forget(self)
        elif undelivered and self.kind == "read" and self.data:
            self.sock._rbuf[:0] = self.data  # read at once, never handed out: keep it


def _deliver(op: Op, status: str | None, value) -> None:
    callback, op.callback = op.callback, None
    if callback is not None:  # None: cancelled after it completed, before delivery
        callback(status, value)


def _want_any(data: bytearray) -> bool:
    return len(data) > 0


class NsockSocket:
    """One socket on ``loop``; see the module docstring for the operation contract."""

    def __init__(self, loop: EventLoop, *, timeout_ms: int = DEFAULT_TIMEOUT_MS,
                 family: int = socket.AF_INET, partial_reads_succeed: bool = True):
        self.loop = loop
        self.timeout_ms = timeout_ms
        self.family = family  # names resolve in this family (the scan's)
        self.partial_reads_succeed = partial_reads_succeed
        self.proto: str | None = None  # tcp | udp once connected or set up
        self.state = "new"  # new | connecting | connected | failed | closed
        self.is_ssl = False
        self.ssl_session = None  # offered again by the next handshake
        self._sock: socket.socket | None = None
        self._fd = -1
        self._bind: tuple | None = None  # (address, port) numeric, applied at connect
        self._peer: tuple | None = None  # (address, port) of the last destination
        self._rbuf = bytearray()  # read but not handed out (a failed partial read)
        self._eof = False
        self._reader: Op | None = None
        self._writes: deque[Op] = deque()
        self._connecting: Op | None = None
        self._handshake: Op | None = None
        self._hs_wants = "w"
        self._read_wants = "r"
        self._write_wants = "w"
        self._watching = (False, False)
        self._starting = False  # inside a call that starts an operation: completions wait

    # -- setup ----------------------------------------------------------------------------
    def bind(self, address: str | None, port: int) -> str | None:
        """Use this local address (numeric only) for later connects; None: the unspecified
        address. Returns None, or the resolver's message on a bad address."""
        if address is None:
            address = "::" if self.family == socket.AF_INET6 else "0.0.0.0"
        try:
            infos = socket.getaddrinfo(address, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0,
                                       socket.AI_NUMERICHOST | socket.AI_PASSIVE)
        except socket.gaierror as exc:
            return exc.strerror or str(exc)
        except (UnicodeError, ValueError, OverflowError):
            return "Name or service not known"
        if not infos:
            return "no results found"
        self._bind = (infos[0][0], infos[0][4])
        return None

    def connect(self, host: str, port: int, proto: str, callback: Callback,
                timeout_ms: int | None = None, server_hostname: str | None = None) -> Op:
        """Connect with ``proto`` tcp, udp or ssl (TCP, then a TLS handshake with SNI
        ``server_hostname``, else ``host`` when it is a name). An open socket is closed first."""
        if proto not in ("tcp", "udp", "ssl"):
            raise ValueError(f"unknown protocol {proto!r}")
        if self.state in ("connecting", "connected", "failed") or self.proto == "udp":
            self._close_os_socket(CANCELLED)
        self.state = "connecting"
        self.proto = "udp" if proto == "udp" else "tcp"
        self.is_ssl = False
        self._eof = False
        self._rbuf.clear()
        op = Op(self, "connect", callback)
        if proto == "ssl":
            op.sni = _sni(server_hostname if server_hostname is not None else host)
        op.payload = proto
        self._connecting = op
        if not 0 <= port <= 65535:
            self.loop.call_soon(lambda: self._connect_failed(op, ERROR))
            return op
        socktype = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
        timer_ms = _NO_TIMER if proto == "udp" else timeout_ms
        resolve(self.loop, host, port, self.family, socktype,
                lambda answer: self._resolved(op, answer, timer_ms))
        return op

    def _resolved(self, op: Op, answer, timer_ms=None) -> None:
        """Start connecting to ``answer``. The connect's timer starts here, with the attempt,
        as in Nmap, where a name is resolved before the connect and I/O done in a turn beats
        a timer due in it: even a 0 ms timeout lets a loopback connect succeed.
        ``_NO_TIMER``: none is wanted (UDP)."""
        if op.done:
            return
        if isinstance(answer, str):
            self._connect_failed(op, RESOLVE, answer)
            return
        family, sockaddr = answer
        self._peer = (sockaddr[0], sockaddr[1])
        udp = op.payload == "udp"
        try:
            sock = _socket.socket(family, (_DGRAM if udp else _STREAM) | _NONBLOCK_CLOEXEC)
        except OSError:
            self._connect_failed(op, ERROR)
            return
        self._adopt(sock)
        self._apply_bind(sock, family)
        try:
            if udp:
                sock.connect(sockaddr)
            else:
                code = sock.connect_ex(sockaddr)
                if code not in (0, errno.EINPROGRESS):
                    self._connect_failed(op, ERROR)
                    return
                if timer_ms is not _NO_TIMER:
                    self._start_timer(op, timer_ms)
        except OSError:
            self._connect_failed(op, ERROR)
            return
        if udp:
            self.state = "connected"
            self._connecting = None
            self._finish(op, None)
            return
        self._update_watch()  # writable when the handshake ends

    def _on_connected(self) -> None:
        op = self._connecting
        code = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code != 0:
            self._connect_failed(op, ERROR)
            return
        if op.payload == "ssl":
            self._connecting = None
            self._start_tls(op)
            return
        self.state = "connected"
        self._connecting = None
        self._finish(op, None)

    def _connect_failed(self, op: Op, status: str, value=None) -> None:
        if op.done:
            return
        self.state = "failed"
        self._connecting = None
        self._handshake = None
        self._update_watch()
        self._finish(op, status, value)

    def setup_udp(self) -> None:
        """An unconnected UDP socket (for sendto and receive), created at once."""
        if self.state == "connected":
            return
        family = self._bind[0] if self._bind else self.family
        try:
            sock = _socket.socket(family, _DGRAM | _NONBLOCK_CLOEXEC)
        except OSError as exc:
            raise ImmediateFailure(exc.errno, exc.strerror) from exc
        self._adopt(sock)
        self._apply_bind(sock, family)
        self.proto = "udp"
        self.state = "connected"
        self._peer = None

    def _adopt(self, sock: socket.socket) -> None:
        self._sock = sock
        self._fd = sock.fileno()
        self._watching = (False, False)

    def _apply_bind(self, sock: socket.socket, family: int) -> None:
        if self._bind is None or self._bind[0] != family:
            return  # Nmap logs a failed bind and connects anyway
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(self._bind[1])
        except OSError:
            pass

    # -- TLS ------------------------------------------------------------------------------
    def reconnect_ssl(self, callback: Callback, timeout_ms: int | None = None,
                      server_hostname: str | None = None) -> Op:
        """Start TLS on this connected TCP socket. Data read but not handed out is lost."""
        if self.state != "connected" or self._sock is None:
            raise NotConnected("socket must be connected")
        op = Op(self, "handshake", callback)
        op.sni = _sni(server_hostname)
        if self.proto != "tcp":
            self.loop.call_soon(lambda: self._finish(op, ERROR))
            return op
        if self.is_ssl:  # already speaking TLS: nothing to start (Nmap answers true too)
            self.loop.call_soon(lambda: self._finish(op, None))
            return op
        self._rbuf.clear()
        self._start_timer(op, timeout_ms)
        self._start_tls(op)
        return op

    def _start_tls(self, op: Op) -> None:
        op.kind = "handshake"
        raw = self._sock
        if not isinstance(raw, socket.socket):  # ssl wraps only the socket module's class
            raw = socket.socket(fileno=raw.detach())
            raw.setblocking(False)
            self._sock = raw
        try:
            wrapped = client_context().wrap_socket(
                raw, server_hostname=op.sni, do_handshake_on_connect=False,
                session=self.ssl_session)
        except (ssl.SSLError, ValueError, OSError):
            try:
                wrapped = client_context().wrap_socket(
                    raw, server_hostname=None, do_handshake_on_connect=False)
            except (ssl.SSLError, ValueError, OSError):
                self._connect_failed(op, ERROR)
                return
        self._sock = wrapped  # wrap_socket detached ``raw``: same fd, new object
        self._handshake = op
        self._hs_wants = "w"
        self._do_handshake()

    def _do_handshake(self) -> None:
        op = self._handshake
        try:
            self._sock.do_handshake()
        except ssl.SSLWantReadError:
            self._hs_wants = "r"
            self._update_watch()
            return
        except ssl.SSLWantWriteError:
            self._hs_wants = "w"
            self._update_watch()
            return
        except (ssl.SSLError, OSError, ValueError):
            self._handshake = None
            self._connect_failed(op, ERROR)
            return
        self._handshake = None
        self.is_ssl = True
        self.state = "connected"
        try:
            self.ssl_session = self._sock.session
        except (AttributeError, ValueError):
            pass
        self._update_watch()
        self._finish(op, None)

    def peer_certificate_der(self) -> bytes | None:
        """The peer's certificate (DER) on a TLS socket, or None."""
        if not self.is_ssl or self._sock is None:
            return None
        try:
            return self._sock.getpeercert(binary_form=True)
        except (ValueError, OSError):
            return None

    # -- writing --------------------------------------------------------------------------
    def send(self, data: bytes, callback: Callback, timeout_ms: int | None = None) -> Op:
        """Write all of ``data`` (one datagram on UDP)."""
        return self._queue_write(data, None, callback, timeout_ms)

    def sendto(self, host: str, port: int, data: bytes, callback: Callback,
               timeout_ms: int | None = None) -> Op:
        """Send one datagram to ``host`` (resolved in any family) on an unconnected UDP socket
        (set up here if need be); on a connected socket the destination is ignored."""
        if self.state in ("new", "closed"):
            self.setup_udp()
        if self.proto != "udp":
            return self._queue_write(data, None, callback, timeout_ms)
        op = Op(self, "write", callback)
        op.payload = memoryview(bytes(data))
        self._start_timer(op, timeout_ms)

        def resolved(answer):
            if op.done:
                return
            if isinstance(answer, str):
                self._finish(op, RESOLVE, answer)
                return
            op.address = answer[1]
            self._peer = (answer[1][0], answer[1][1])
            self._writes.append(op)
            self._update_watch()

        if not 0 <= port <= 65535:
            self.loop.call_soon(lambda: self._finish(op, ERROR))
        else:
            resolve(self.loop, host, port, socket.AF_UNSPEC, socket.SOCK_DGRAM, resolved)
        return op

    def _queue_write(self, data, address, callback, timeout_ms) -> Op:
        op = Op(self, "write", callback)
        op.payload = memoryview(bytes(data))
        op.address = address
        if (self.state != "connected" or self._sock is None
                or (self.proto == "udp" and self._peer is None and address is None)):
            self.loop.call_soon(lambda: self._finish(op, ERROR))
            return op
        self._start_timer(op, timeout_ms)
        self._writes.append(op)
        self._update_watch()
        return op

    def _do_write(self) -> None:
        while self._writes:
            op = self._writes[0]
            try:
                if self.proto == "udp":
                    if op.address is not None:
                        self._sock.sendto(op.payload, op.address)
                    else:
                        self._sock.send(op.payload)
                    sent = len(op.payload)
                elif len(op.payload) == 0:
                    sent = 0
                else:
                    sent = self._sock.send(op.payload)
            except (BlockingIOError, InterruptedError):
                self._write_wants = "w"
                break
            except ssl.SSLWantReadError:
                self._write_wants = "r"
                break
            except ssl.SSLWantWriteError:
                self._write_wants = "w"
                break
            except (OSError, ValueError):
                self._writes.popleft()
                self._finish(op, ERROR)
                continue
            op.payload = op.payload[sent:]
            if len(op.payload) == 0:
                self._writes.popleft()
                self._finish(op, None)
        self._update_watch()

    # -- reading --------------------------------------------------------------------------
    def receive(self, callback: Callback, timeout_ms: int | None = None) -> Op:
        """What the next read returns: at least one byte, at most one chunk (one datagram)."""
        return self._start_read(_want_any, callback, timeout_ms, single=True)

    def receive_bytes(self, n: int, callback: Callback, timeout_ms: int | None = None) -> Op:
        return self._start_read(lambda data: len(data) >= max(n, 1), callback, timeout_ms)

    def receive_lines(self, n: int, callback: Callback, timeout_ms: int | None = None) -> Op:
        if n <= 0:
            return self._start_read(_want_any, callback, timeout_ms)
        return self._start_read(lambda data: data.count(b"\n") >= n, callback, timeout_ms)

    def _start_read(self, want, callback, timeout_ms, single=False) -> Op:
        if self._reader is not None:
            raise RuntimeError("a read is already pending on this socket")
        op = Op(self, "read", callback)
        op.want = want
        op.payload = single
        op.data = bytearray(self._rbuf)
        self._rbuf.clear()
        if op.data and want(op.data):
            self.loop.call_soon(lambda: self._read_done(op, None))
            return op
        if self.state == "failed" or self._eof:
            self.loop.call_soon(lambda: self._read_done(op, EOF))
            return op
        if self.state != "connected" or self._sock is None:
            self.loop.call_soon(lambda: self._read_done(op, ERROR))
            return op
        self._reader = op
        self._read_wants = "r"
        if not self.is_ssl:
            self._starting = True
            try:
                self._do_read()  # what has arrived already needs no wait
            finally:
                self._starting = False
            if op.done:
                return op
        self._start_timer(op, timeout_ms)
        self._update_watch()
        if self.is_ssl and self._sock.pending():
            self.loop.call_soon(self._do_read)  # decrypted data epoll cannot see
        return op

    def _do_read(self) -> None:
        op = self._reader
        while op is not None and not op.done:
            try:
                if self.proto == "udp":
                    chunk = self._sock.recv(_DATAGRAM)  # one datagram, possibly empty
                else:
                    chunk = self._sock.recv(CHUNK)
            except (BlockingIOError, InterruptedError):
                self._read_wants = "r"
                break
            except ssl.SSLWantReadError:
                self._read_wants = "r"
                break
            except ssl.SSLWantWriteError:
                self._read_wants = "w"
                break
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                self._eof = True
                self._read_done(op, EOF)
                break
            except (OSError, ValueError):
                self._read_done(op, ERROR)
                break
            if not chunk and self.proto != "udp":
                self._eof = True
                self._read_done(op, EOF)
                break
            op.data += chunk
            if op.want(op.data) or (self.proto == "udp" and op.payload):
                if len(chunk) == CHUNK and self.proto != "udp":
                    self._drain_into(op)
                self._read_done(op, None)
                break
            if not (self.is_ssl and self._sock.pending()):
                break  # wait for the next readiness
        self._update_watch()

    def _drain_into(self, op: Op) -> None:
        """A satisfied read also takes what has already arrived, up to DRAIN_LIMIT bytes, as
        Nmap's does: a burst larger than one chunk comes back in one piece."""
        while len(op.data) < DRAIN_LIMIT:
            try:
                chunk = self._sock.recv(CHUNK)
            except (BlockingIOError, InterruptedError, ssl.SSLWantReadError,
                    ssl.SSLWantWriteError, ssl.SSLZeroReturnError, ssl.SSLEOFError,
                    OSError, ValueError):
                return  # nothing more now; the next read meets any error itself
            if not chunk:
                self._eof = True
                return
            op.data += chunk

    def _read_done(self, op: Op, status: str | None) -> None:
        """End read ``op``: success, or ``status`` (TIMEOUT/EOF/ERROR) with partial data
        handled per ``partial_reads_succeed``."""
        if op.done:
            return
        if self._reader is op:
            self._reader = None
        data = bytes(op.data)
        if status is None:
            self._finish(op, None, data)
        elif data and status in (TIMEOUT, EOF) and self.partial_reads_succeed:
            self._finish(op, None, data)
        else:
            if data:
                self._rbuf[:0] = data  # kept for the next read
            op.data = None
            self._finish(op, status)
        self._update_watch()

    # -- common ---------------------------------------------------------------------------
    def _start_timer(self, op: Op, timeout_ms: int | None) -> None:
        timeout = self.timeout_ms if timeout_ms is None else timeout_ms
        if timeout is None or timeout < 0:
            return
        op.timer = self.loop.call_later(timeout, lambda: self._timed_out(op))

    def _timed_out(self, op: Op) -> None:
        op.timer = None
        if op.done:
            return
        if op.kind == "read":
            self._read_done(op, TIMEOUT)
        elif op.kind == "write":
            self._forget(op)
            self._finish(op, TIMEOUT)
        else:  # connect or handshake
            self._connect_failed(op, TIMEOUT)

    def _finish(self, op: Op, status: str | None, value=None) -> None:
        if op.done:
            return
        op.done = True
        if op.timer is not None:
            op.timer.cancel()
            op.timer = None
        if self._starting:
            self.loop.call_soon(lambda: _deliver(op, status, value))
            return
        _deliver(op, status, value)

    def _forget(self, op: Op) -> None:
        """Drop ``op`` from the socket's queues (cancelled, or timed out)."""
        if op.timer is not None:
            op.timer.cancel()
            op.timer = None
        if self._reader is op:
            if op.data:
                self._rbuf[:0] = op.data
            self._reader = None
        elif op in self._writes:
            self._writes.remove(op)
        elif self._connecting is op:
            self._connecting = None
            self.state = "failed"
        elif self._handshake is op:
            self._handshake = None
            self.state = "failed"
        self._update_watch()

    def _update_watch(self) -> None:
        if self._sock is None or self._fd < 0:
            return
        wants = []
        if self._connecting is not None and self.state == "connecting" and self._handshake is None:
            wants.append("w")
        if self._handshake is not None:
            wants.append(self._hs_wants)
        if self._reader is not None:
            wants.append(self._read_wants)
        if self._writes and self._handshake is None and self._connecting is None:
            wants.append(self._write_wants)
        watching = ("r" in wants, "w" in wants)
        if watching == self._watching:
            return
        self._watching = watching
        if watching == (False, False):
            self.loop.unwatch(self._fd)
        else:
            self.loop.watch(self._fd, self._on_readable if watching[0] else None,
                            self._on_writable if watching[1] else None)

    def _on_readable(self) -> None:
        self._dispatch("r")

    def _on_writable(self) -> None:
        if self._connecting is not None and self._handshake is None:
            self._on_connected()
            return
        self._dispatch("w")

    def _dispatch(self, ready: str) -> None:
        if self._handshake is not None:
            if self._hs_wants == ready:
                self._do_handshake()
            return
        if self._reader is not None and self._read_wants == ready:
            self._do_read()
        if self._writes and self._write_wants == ready and self._sock is not None:
            self._do_write()
        self._update_watch()

    # -- information and closing ----------------------------------------------------------
    def get_info(self) -> tuple:
        """(local address, local port, remote address, remote port); unknown endpoints are
        ("unknown protocol", 0)."""
        if self._sock is None or self.state in ("new", "closed"):
            raise NotConnected("socket must be connected")
        if self.proto == "udp" and self._peer is None:
            return UNKNOWN_PROTOCOL, 0, UNKNOWN_PROTOCOL, 0
        try:
            local = self._sock.getsockname()
            local = (local[0], local[1])
        except (OSError, IndexError, TypeError):
            local = (UNKNOWN_PROTOCOL, 0)
        remote = self._peer or (UNKNOWN_PROTOCOL, 0)
        if self.proto == "tcp" and self.state == "connected":
            try:
                peer = self._sock.getpeername()
                remote = (peer[0], peer[1])
            except (OSError, IndexError, TypeError):
                pass
        return local[0], local[1], remote[0], remote[1]

    @property
    def is_open(self) -> bool:
        return self.state in ("connecting", "connected", "failed")

    def close(self) -> None:
        """Close; pending operations fail with CANCELLED."""
        self._close_os_socket(CANCELLED)
        self.state = "closed"
        self._rbuf.clear()
        self._eof = False
        self._peer = None

    def abort(self, status: str = KILL) -> None:
        """Close, failing pending operations with ``status`` (the scan is being stopped)."""
        self._close_os_socket(status)
        self.state = "closed"

    def _close_os_socket(self, status: str) -> None:
        pending = []
        for op in (self._connecting, self._handshake, self._reader, *self._writes):
            if op is not None and not op.done:
                pending.append(op)
        self._connecting = self._handshake = self._reader = None
        self._writes.clear()
        for op in pending:
            if op.timer is not None:
                op.timer.cancel()
                op.timer = None
            self.loop.call_soon(lambda op=op: self._finish(op, status))
        if self._sock is not None:
            if self._fd >= 0:
                self.loop.forget(self._fd)  # closing takes the fd out of the epoll set
            try:
                self._sock.close()
            except OSError:
                pass
        self._sock = None
        self._fd = -1
        self._watching = (False, False)
        self.is_ssl = False
