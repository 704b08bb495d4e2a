"""NSE sockets, Python half (nse-spec §6, §4.6; the seed's "Network I/O API").

How this works: lua/socket.lua is the socket object scripts see; it validates arguments
(argument errors name the method the way luaL_argerror does, which only Lua can see), tracks
which coroutine owns a socket, and runs ``receive_buf``'s delimiter search. Everything else
is here: a socket handle (an integer) names a ``ScriptSocket``, whose connection is a
``worker.nsock.sockets.NsockSocket`` on the engine's loop. An operation that waits returns
``(PENDING, token)``; the NsockSocket's callback completes the token with NSE values
(``true[, data]``, ``nil, "TIMEOUT"``, ``false, "<resolver message>"``).

The calling script's profile (seed or Nmap 7, worker/nse/profile.py) decides every point
where the two documents differ: partial reads, the receive_buf buffer's life, raise vs return
on an unconnected socket, error strings, the timeout floor.

The socket lock (§4.6): a base thread takes it on its first connect; at most P+1 base threads
hold it (P: --max-parallelism, else 1 at -T0..-T2, else 20). A further connect waits; when a
holder has no open socket left it lets go and every waiter retries, in order.
"""
from __future__ import annotations

import hashlib
import itertools
import math

from worker.nse.api.base import PENDING, RAISE, ScriptError, lua_api, lua_number_text
from worker.nse.runtime import text
from worker.nsock import sockets as nsock

HAVE_SSL = nsock.HAVE_SSL
NOT_CONNECTED = "socket must be connected"
NOT_SSL = b"\x00nse-not-ssl"  # get_ssl_certificate: socket.lua raises the argument error
PCAP_MISUSE = "invalid operation on pcap socket"
CONNECT_FAILED = b"Nsock connect failed immediately"
DEFAULT_TIMEOUT_MS = nsock.DEFAULT_TIMEOUT_MS
_PRINTABLE = frozenset(range(0x20, 0x7F))


def trace_text(data: bytes) -> str:
    """--script-trace's rendering: the text when at least 95% of it is printable, else
    Nmap's hex dump (offset, 16 hex bytes, the printable characters)."""
    if not data or sum(b in _PRINTABLE for b in data) * 100 >= 95 * len(data):
        return data.decode("latin-1")
    lines = []
    for offset in range(0, len(data), 16):
        row = data[offset:offset + 16]
        hexes = "".join(f"{b:02x} " for b in row) + "   " * (16 - len(row))
        chars = "".join(chr(b) if b in _PRINTABLE else " " for b in row)
        lines.append(f"{offset:08x}: {hexes}{chars}")
    return "\n".join(lines) + "\n"


class ScriptSocket:
    """What a script's socket object holds (nse-spec §6.1)."""

    __slots__ = ("handle", "proto", "family", "timeout_ms", "conn", "bind", "ssl_session",
                 "rbuf", "creator", "counted_base", "pcap")

    def __init__(self, handle: int, proto: str, family: int, creator: int | None):
        self.handle = handle
        self.proto = proto  # the protocol it was created with: tcp | udp
        self.family = family
        self.timeout_ms = DEFAULT_TIMEOUT_MS
        self.conn: nsock.NsockSocket | None = None  # the iod while open
        self.bind: tuple | None = None  # (address or None, port)
        self.ssl_session = None
        self.rbuf = b""  # receive_buf's leftover
        self.creator = creator  # id of the thread whose end closes it
        self.counted_base: int | None = None  # base thread whose open count includes it
        self.pcap = False

    @property
    def is_open(self) -> bool:
        return self.conn is not None and self.conn.is_open


class _ConnectAttempt:
    """A connect waiting for the socket lock; an object rather than a closure that retries
    itself, so that it is no reference cycle and goes as soon as the connect starts."""

    __slots__ = ("api", "sock", "thread", "token", "target")

    def __init__(self, api, sock, thread, token: int, target: tuple):
        self.api, self.sock, self.thread, self.token = api, sock, thread, token
        self.target = target  # (host, sni, port, proto)

    def __call__(self) -> None:
        api = self.api
        if not api.engine.ops.is_pending(self.token):
            return
        if not api.lock.take(self.thread.base):
            api.lock.wait(self.token, self)
            return
        api._start_connect(self.sock, self.thread, self.token, *self.target)


class SocketLock:
    """The socket lock of nse-spec §4.6 for one engine."""

    def __init__(self, engine):
        self.engine = engine
        self.holders: set[int] = set()
        self.open_counts: dict[int, int] = {}
        self.waiters: dict[int, object] = {}  # token -> retry(), in arrival order
        self._ending_hooked: set[int] = set()

    def limit(self) -> int:
        options = self.engine.options
        if options.max_parallelism and options.max_parallelism > 0:
            parallelism = options.max_parallelism
        elif options.timing_level <= 2:
            parallelism = 1
        else:
            parallelism = 20
        return parallelism + 1

    def take(self, base) -> bool:
        if base.id in self.holders:
            return True
        if len(self.holders) >= self.limit():
            return False
        self.holders.add(base.id)
        if base.id not in self._ending_hooked:
            self._ending_hooked.add(base.id)
            base.add_close_handler(lambda: self._ended(base.id))
        return True

    def wait(self, token: int, retry) -> None:
        self.waiters[token] = retry

    def drop_waiter(self, token: int) -> None:
        self.waiters.pop(token, None)

    def opened(self, base_id: int) -> None:
        self.open_counts[base_id] = self.open_counts.get(base_id, 0) + 1

    def closed(self, base_id: int) -> None:
        left = self.open_counts.get(base_id, 0) - 1
        if left > 0:
            self.open_counts[base_id] = left
            return
        self.open_counts.pop(base_id, None)
        self.release_if_idle(base_id)

    def release_if_idle(self, base_id: int) -> None:
        if base_id in self.holders and not self.open_counts.get(base_id):
            self.holders.discard(base_id)
            self._wake()

    def _ended(self, base_id: int) -> None:
        self._ending_hooked.discard(base_id)
        if base_id in self.holders:
            self.holders.discard(base_id)
            self._wake()

    def _wake(self) -> None:
        if self.waiters:
            self.engine.loop.call_soon(self._retry_all)

    def _retry_all(self) -> None:
        """Every waiter tries again, in arrival order. Once the lock is full again the rest
        would only fail and queue again: they keep their place without trying (the same
        outcome, without 10,000 retries per released slot)."""
        waiting, self.waiters = list(self.waiters.items()), {}
        for position, (token, retry) in enumerate(waiting):
            if len(self.holders) >= self.limit():
                self.waiters.update(waiting[position:])
                return
            retry()  # takes the lock, or waits again

    def stats(self) -> dict:
        return {"connect_waiting": len(self.waiters)}


class SocketAPI:
    """The socket functions of one engine (``register`` returns them by Lua name)."""

    def __init__(self, engine):
        self.engine = engine
        self.sockets: dict[int, ScriptSocket] = {}
        self.lock = SocketLock(engine)
        self._handles = itertools.count(1)
        self._owned: dict[int, set[int]] = {}  # thread id -> handles it created
        self._profiles: dict[str, object] = {}
        self.make_cert = None  # Lua constructors, handed over by socket.lua
        self.make_bignum = None

    # -- helpers --------------------------------------------------------------------------
    def profile(self):
        thread = self.engine.current
        return thread.script.profile if thread is not None else self.engine.default_profile

    def scan_family(self) -> int:
        return nsock.AF_INET6 if self.engine.options.address_family == 6 else nsock.AF_INET

    def get(self, handle) -> ScriptSocket:
        sock = self.sockets.get(handle)
        if sock is None:  # closed by its thread's end and collected; behaves as closed
            sock = ScriptSocket(handle, "tcp", self.scan_family(), None)
        return sock

    def thread(self):
        thread = self.engine.current
        if thread is None:
            raise ScriptError("this NSE operation can only be used from a script thread")
        return thread

    def begin(self, on_cancel=None) -> int:
        return self.engine.ops.begin(self.thread().id, on_cancel)

    def complete(self, token: int, *results) -> None:
        self.engine.ops.complete(token, *results)

    def require_open(self, sock: ScriptSocket, what: str = "send"):
        """None when ``sock`` may do I/O (a UDP socket is set up on demand); otherwise the
        seed's returned error, or a raise (Nmap 7)."""
        if sock.pcap:
            raise ScriptError(PCAP_MISUSE)
        if sock.is_open:
            return None
        if sock.proto == "udp":  # set up unconnected, on demand (nse-spec §6.1)
            self._setup_udp(sock)
            if sock.is_open:
                return None
        profile = self.profile()
        if profile.raise_when_unconnected:
            raise ScriptError(NOT_CONNECTED)
        message = profile.unconnected_send_error.encode()
        return (None, NOT_CONNECTED.encode()) if what == "info" else (False, message)

    def clear_rbuf_for_io(self, sock: ScriptSocket) -> None:
        if not self.profile().receive_buf_persists:
            sock.rbuf = b""

    def _new_conn(self, sock: ScriptSocket) -> nsock.NsockSocket:
        conn = nsock.NsockSocket(self.engine.loop, timeout_ms=sock.timeout_ms,
                                 family=self.scan_family(),
                                 partial_reads_succeed=self.profile().partial_reads_succeed)
        if sock.bind is not None:
            conn.bind(*sock.bind)
        conn.ssl_session = sock.ssl_session
        return conn

    def _count_open(self, sock: ScriptSocket) -> None:
        if sock.counted_base is None and self.engine.current is not None:
            sock.counted_base = self.engine.current.base.id
            self.lock.opened(sock.counted_base)

    def _uncount(self, sock: ScriptSocket) -> None:
        if sock.counted_base is not None:
            base, sock.counted_base = sock.counted_base, None
            self.lock.closed(base)

    def _setup_udp(self, sock: ScriptSocket) -> None:
        conn = self._new_conn(sock)
        try:
            conn.setup_udp()
        except nsock.ImmediateFailure:
            return
        sock.conn = conn
        self._count_open(sock)

    def _close(self, sock: ScriptSocket, trace=True) -> bool:
        """Close ``sock``'s connection and reset it; False if it was not open."""
        was_open = sock.is_open
        if sock.conn is not None:
            if trace and was_open:
                self._trace(sock, ">", "CLOSE")
            sock.conn.close()
            sock.conn = None
        if sock.pcap:
            sock.pcap.close()  # the capture stops with its last reader
            sock.pcap = False
        sock.rbuf = b""
        sock.ssl_session = None
        sock.timeout_ms = DEFAULT_TIMEOUT_MS
        sock.bind = None
        self._uncount(sock)
        return was_open

    def _trace(self, sock: ScriptSocket, direction: str, data: bytes | str) -> None:
        """A --script-trace line: data is rendered (only when tracing), words as they are."""
        if not self.engine.options.trace or sock.conn is None:
            return
        payload = trace_text(data) if isinstance(data, bytes) else data
        try:
            lip, lport, rip, rport = sock.conn.get_info()
        except nsock.NotConnected:
            return
        proto = "UDP" if sock.conn.proto == "udp" else "TCP"
        self.engine.log(f"NSE: {proto} {lip}:{lport} {direction} {rip}:{rport} | {payload}")

    def _status(self, status) -> tuple:
        return None, status.encode()

    # -- lifetime -------------------------------------------------------------------------
    def new(self, proto, family) -> int:
        proto = text(proto) if proto is not None else "tcp"
        if family is None:
            af = self.scan_family()
        else:
            af = nsock.AF_INET6 if text(family) == "inet6" else nsock.AF_INET
        handle = next(self._handles)
        thread = self.engine.current
        sock = ScriptSocket(handle, proto, af, thread.id if thread is not None else None)
        self.sockets[handle] = sock
        if thread is not None:
            owned = self._owned.get(thread.id)
            if owned is None:
                owned = self._owned[thread.id] = set()
                thread.add_close_handler(lambda tid=thread.id: self._thread_ended(tid))
            owned.add(handle)
        return handle

    def _thread_ended(self, thread_id: int) -> None:
        for handle in self._owned.pop(thread_id, ()):
            sock = self.sockets.get(handle)
            if sock is not None and (sock.conn is not None or sock.pcap):
                self._close(sock)

    def collected(self, handle) -> None:
        """The Lua object was garbage-collected: close on the next loop turn."""
        def close():
            sock = self.sockets.pop(handle, None)
            if sock is None:
                return
            if sock.creator is not None:
                owned = self._owned.get(sock.creator)
                if owned is not None:
                    owned.discard(handle)
            if sock.conn is not None or sock.pcap:
                self._close(sock)
        self.engine.loop.call_soon(close)

    def mark_pcap(self, handle, subscriber) -> None:
        """For api/rawnet.py: the socket became a pcap socket, reading ``subscriber``."""
        self.get(handle).pcap = subscriber

    # -- connect --------------------------------------------------------------------------
    def connect(self, handle, host, sni, port, proto):
        sock = self.get(handle)
        if sock.pcap:
            raise ScriptError(PCAP_MISUSE)
        profile = self.profile()
        proto = text(proto) if proto is not None else sock.proto
        if proto not in ("tcp", "udp", "ssl"):  # socket.lua checked already; defensive
            if profile.bad_protocol_error is not None:
                return False, profile.bad_protocol_error.encode()
            raise ScriptError(f"invalid option '{proto}'")
        if proto == "ssl" and not HAVE_SSL:
            return False, profile.no_ssl_error.encode()
        self.clear_rbuf_for_io(sock)
        thread = self.thread()
        host = text(host)
        sni = text(sni) if sni is not None else None
        token = self.engine.ops.begin(thread.id, lambda: self.lock.drop_waiter(token))
        _ConnectAttempt(self, sock, thread, token, (host, sni, int(port), proto))()
        return PENDING, token

    def _start_connect(self, sock, thread, token, host, sni, port, proto) -> None:
        old = sock.conn
        if old is not None:  # a reconnect: the old iod goes, the receive_buf buffer stays
            old.close()
            sock.conn = None
        conn = self._new_conn(sock)
        sock.conn = conn
        if sock.counted_base is None:
            sock.counted_base = thread.base.id
            self.lock.opened(sock.counted_base)

        def done(status, value):
            if status == nsock.RESOLVE:
                if sock.conn is conn:
                    sock.conn = None
                    conn.close()
                    self._uncount(sock)
                self.complete(token, False, str(value).encode("utf-8", "surrogateescape"))
                return
            self._trace(sock, ">", "CONNECT")
            if status is None:
                if conn.is_ssl:
                    sock.ssl_session = conn.ssl_session
                self.complete(token, True)
            else:
                self.complete(token, *self._status(status))

        try:
            op = conn.connect(host, port, proto, done, server_hostname=sni)
        except (nsock.ImmediateFailure, OSError, ValueError):
            sock.conn = None
            self._uncount(sock)
            self.complete(token, False, CONNECT_FAILED)
            return
        self.engine.ops.set_cancel(token, op.cancel)

    # -- writing --------------------------------------------------------------------------
    def send(self, handle, data):
        sock = self.get(handle)
        refused = self.require_open(sock)
        if refused is not None:
            return refused
        self.clear_rbuf_for_io(sock)
        data = bytes(data)
        self._trace(sock, ">", data)
        token = self.begin()

        def done(status, _value):
            if status is None:
                self._trace(sock, ">", "SEND")
                self.complete(token, True)
            else:
                self.complete(token, *self._status(status))

        op = sock.conn.send(data, done, timeout_ms=sock.timeout_ms)
        self.engine.ops.set_cancel(token, op.cancel)
        return PENDING, token

    def sendto(self, handle, host, port, data):
        sock = self.get(handle)
        refused = self.require_open(sock)
        if refused is not None:
            return refused
        self.clear_rbuf_for_io(sock)
        data = bytes(data)
        token = self.begin()

        def done(status, value):
            if status == nsock.RESOLVE:
                self.complete(token, False, str(value).encode("utf-8", "surrogateescape"))
            elif status is None:
                self._trace(sock, ">", "SEND")
                self.complete(token, True)
            else:
                self.complete(token, *self._status(status))

        if self.engine.options.trace and sock.conn.proto == "udp":
            self._trace_sendto(sock, text(host), int(port), data)
        op = sock.conn.sendto(text(host), int(port), data, done, timeout_ms=sock.timeout_ms)
        self.engine.ops.set_cancel(token, op.cancel)
        return PENDING, token

    def _trace_sendto(self, sock, host, port, data) -> None:
        try:
            lip, lport, _, _ = sock.conn.get_info()
        except nsock.NotConnected:
            return
        if lip == nsock.UNKNOWN_PROTOCOL:
            lip, lport = ("::" if sock.family == nsock.AF_INET6 else "0.0.0.0"), 0
        self.engine.log(f"NSE: UDP {lip}:{lport} > {host}:{port} | {trace_text(data)}")

    # -- reading --------------------------------------------------------------------------
    def _read(self, handle, start, *args, clear=True):
        sock = self.get(handle)
        refused = self.require_open(sock)
        if refused is not None:
            return refused
        if clear:
            self.clear_rbuf_for_io(sock)
        sock.conn.partial_reads_succeed = self.profile().partial_reads_succeed
        token = self.begin()

        def done(status, value):
            if status is None:
                self._trace(sock, "<", value)
                self.complete(token, True, value)
            else:
                self.complete(token, *self._status(status))

        op = getattr(sock.conn, start)(*args, done, timeout_ms=sock.timeout_ms)
        self.engine.ops.set_cancel(token, op.cancel)
        return PENDING, token

    def receive(self, handle):
        return self._read(handle, "receive")

    def receive_lines(self, handle, count):
        return self._read(handle, "receive_lines", int(count))

    def receive_bytes(self, handle, count):
        return self._read(handle, "receive_bytes", int(count))

    def rbuf_begin(self, handle):
        """receive_buf's start: (true, buffer), or the unconnected socket's answer."""
        sock = self.get(handle)
        refused = self.require_open(sock)
        if refused is not None:
            return refused
        return True, sock.rbuf

    def rbuf_read(self, handle):
        """receive_buf reading more: a receive that leaves the buffer alone."""
        return self._read(handle, "receive", clear=False)

    def rbuf_set(self, handle, data) -> None:
        self.get(handle).rbuf = bytes(data)

    # -- the rest -------------------------------------------------------------------------
    def close(self, handle):
        sock = self.get(handle)
        if sock.pcap:
            self._close(sock)
            return True
        if not self._close(sock):
            return False, self.profile().closed_twice_error.encode()
        return True

    def get_info(self, handle):
        sock = self.get(handle)
        refused = self.require_open(sock, "info")
        if refused is not None:
            return refused
        lip, lport, rip, rport = sock.conn.get_info()
        return True, lip.encode(), lport, rip.encode(), rport

    def set_timeout(self, handle, milliseconds):
        sock = self.get(handle)
        profile = self.profile()
        try:
            value = math.floor(milliseconds)
        except (ValueError, OverflowError):  # nan, inf
            value = -1 if milliseconds > 0 else (0 if milliseconds != milliseconds else -2)
        if profile.timeout_floor_ms is not None:
            value = max(value, profile.timeout_floor_ms)
        elif value < -1:
            raise ScriptError(f"Negative timeout: {lua_number_text(value)}")
        sock.timeout_ms = value
        if sock.conn is not None:
            sock.conn.timeout_ms = value
        return True

    def bind(self, handle, address, port):
        sock = self.get(handle)
        probe = nsock.NsockSocket(self.engine.loop, family=sock.family)
        address = text(address) if address is not None else None
        error = probe.bind(address, int(port))
        if error is not None:
            return False, f"getaddrinfo: {error}".encode()
        sock.bind = (address, int(port))
        return True

    def reconnect_ssl(self, handle):
        sock = self.get(handle)
        profile = self.profile()
        if sock.pcap:
            raise ScriptError(PCAP_MISUSE)
        if not sock.is_open:
            if profile.raise_when_unconnected:
                raise ScriptError(NOT_CONNECTED)
            return False, profile.unconnected_send_error.encode()
        if not HAVE_SSL:
            return False, profile.no_ssl_error.encode()
        token = self.begin()

        def done(status, _value):
            if status is None:
                sock.ssl_session = sock.conn.ssl_session
                self.complete(token, True)
            else:
                self.complete(token, *self._status(status))

        op = sock.conn.reconnect_ssl(done, timeout_ms=sock.timeout_ms)
        self.engine.ops.set_cancel(token, op.cancel)
        return PENDING, token

    def get_ssl_certificate(self, handle):
        sock = self.get(handle)
        if not sock.is_open or not sock.conn.is_ssl:
            return NOT_SSL
        der = sock.conn.peer_certificate_der()
        if der is None:
            return None
        return self.certificate(der, key_errors=True)

    def certificate(self, der: bytes, key_errors=False):
        try:
            fields = certificate_fields(der)
        except CertificateKeyError as exc:
            if key_errors:
                return None, f"Error parsing cert: {exc}".encode()
            return None
        except Exception:  # noqa: BLE001 -- not a certificate we can read
            return None
        runtime = self.engine.runtime
        table = runtime.lua_value(fields["plain"])
        pubkey = table[b"pubkey"]
        for name, value in fields["bignums"].items():
            pubkey[name.encode()] = self.make_bignum(*value)
        for key, value in fields["oid_keys"]:
            target = table[key[0].encode()]
            target[runtime.lua_value(list(key[1]))] = value.encode("utf-8", "surrogateescape")
        return self.make_cert(table, der)


# -- certificates ------------------------------------------------------------------------------

class CertificateKeyError(Exception):
    """The certificate parsed but its public key did not."""


# OpenSSL's long names for name attributes (what Nmap's subject/issuer tables are keyed by).
_NAME_LN = {
    "2.5.4.3": "commonName", "2.5.4.6": "countryName", "2.5.4.7": "localityName",
    "2.5.4.8": "stateOrProvinceName", "2.5.4.9": "streetAddress",
    "2.5.4.10": "organizationName", "2.5.4.11": "organizationalUnitName",
    "2.5.4.5": "serialNumber", "2.5.4.4": "surname", "2.5.4.42": "givenName",
    "2.5.4.12": "title", "2.5.4.43": "initials", "2.5.4.44": "generationQualifier",
    "2.5.4.45": "x500UniqueIdentifier", "2.5.4.46": "dnQualifier", "2.5.4.65": "pseudonym",
    "2.5.4.41": "name", "2.5.4.13": "description", "2.5.4.15": "businessCategory",
    "2.5.4.16": "postalAddress", "2.5.4.17": "postalCode", "2.5.4.97": "organizationIdentifier",
    "2.5.4.18": "postOfficeBox", "2.5.4.20": "telephoneNumber",
    "0.9.2342.19200300.100.1.1": "userId", "0.9.2342.19200300.100.1.25": "domainComponent",
    "1.2.840.113549.1.9.1": "emailAddress", "1.2.840.113549.1.9.2": "unstructuredName",
    "1.2.840.113549.1.9.8": "unstructuredAddress",
    "1.3.6.1.4.1.311.60.2.1.1": "jurisdictionLocalityName",
    "1.3.6.1.4.1.311.60.2.1.2": "jurisdictionStateOrProvinceName",
    "1.3.6.1.4.1.311.60.2.1.3": "jurisdictionCountryName",
}

_SIG_LN = {
    "1.2.840.113549.1.1.4": "md5WithRSAEncryption", "1.2.840.113549.1.1.5": "sha1WithRSAEncryption",
    "1.2.840.113549.1.1.11": "sha256WithRSAEncryption",
    "1.2.840.113549.1.1.12": "sha384WithRSAEncryption",
    "1.2.840.113549.1.1.13": "sha512WithRSAEncryption",
    "1.2.840.113549.1.1.14": "sha224WithRSAEncryption", "1.2.840.113549.1.1.10": "rsassaPss",
    "1.2.840.113549.1.1.2": "md2WithRSAEncryption", "1.2.840.10045.4.1": "ecdsa-with-SHA1",
    "1.2.840.10045.4.3.1": "ecdsa-with-SHA224", "1.2.840.10045.4.3.2": "ecdsa-with-SHA256",
    "1.2.840.10045.4.3.3": "ecdsa-with-SHA384", "1.2.840.10045.4.3.4": "ecdsa-with-SHA512",
    "1.2.840.10040.4.3": "dsaWithSHA1", "2.16.840.1.101.3.4.3.2": "dsa_with_SHA256",
    "1.3.101.112": "ED25519", "1.3.101.113": "ED448",
}

_EXT_LN = {
    "2.5.29.14": "X509v3 Subject Key Identifier", "2.5.29.15": "X509v3 Key Usage",
    "2.5.29.16": "X509v3 Private Key Usage Period",
    "2.5.29.17": "X509v3 Subject Alternative Name",
    "2.5.29.18": "X509v3 Issuer Alternative Name", "2.5.29.19": "X509v3 Basic Constraints",
    "2.5.29.30": "X509v3 Name Constraints", "2.5.29.31": "X509v3 CRL Distribution Points",
    "2.5.29.32": "X509v3 Certificate Policies", "2.5.29.35": "X509v3 Authority Key Identifier",
    "2.5.29.36": "X509v3 Policy Constraints", "2.5.29.37": "X509v3 Extended Key Usage",
    "2.5.29.46": "X509v3 Freshest CRL", "2.5.29.54": "X509v3 Inhibit Any Policy",
    "2.5.29.9": "X509v3 Subject Directory Attributes",
    "1.3.6.1.5.5.7.1.1": "Authority Information Access",
    "1.3.6.1.5.5.7.1.11": "Subject Information Access", "1.3.6.1.5.5.7.1.24": "TLS Feature",
    "1.3.6.1.4.1.11129.2.4.2": "CT Precertificate SCTs",
    "1.3.6.1.4.1.11129.2.4.3": "CT Precertificate Poison",
    "1.3.6.1.5.5.7.48.1.5": "OCSP No Check", "2.16.840.1.113730.1.1": "Netscape Cert Type",
    "2.16.840.1.113730.1.13": "Netscape Comment",
}

_EKU_LN = {
    "1.3.6.1.5.5.7.3.1": "TLS Web Server Authentication",
    "1.3.6.1.5.5.7.3.2": "TLS Web Client Authentication", "1.3.6.1.5.5.7.3.3": "Code Signing",
    "1.3.6.1.5.5.7.3.4": "E-mail Protection", "1.3.6.1.5.5.7.3.8": "Time Stamping",
    "1.3.6.1.5.5.7.3.9": "OCSP Signing", "2.5.29.37.0": "Any Extended Key Usage",
    "1.3.6.1.4.1.311.10.3.3": "Microsoft Server Gated Crypto",
    "2.16.840.1.113730.4.1": "Netscape Server Gated Crypto",
}

_AIA_LN = {"1.3.6.1.5.5.7.48.1": "OCSP", "1.3.6.1.5.5.7.48.2": "CA Issuers"}

_CURVE_SN = {"secp256r1": "prime256v1", "secp192r1": "prime192v1"}


def _colon_hex(data: bytes) -> str:
    return ":".join(f"{b:02X}" for b in data)


def _name_oneline(name) -> str:
    parts = []
    for attribute in name:
        ln = _NAME_LN.get(attribute.oid.dotted_string)
        short = {"commonName": "CN", "countryName": "C", "localityName": "L",
                 "stateOrProvinceName": "ST", "organizationName": "O",
                 "organizationalUnitName": "OU", "emailAddress": "emailAddress"}.get(
                     ln, ln or attribute.oid.dotted_string)
        parts.append(f"{short}={attribute.value}")
    return "/" + "/".join(parts)


def _general_name(name) -> str:
    from cryptography import x509

    if isinstance(name, x509.DNSName):
        return f"DNS:{name.value}"
    if isinstance(name, x509.IPAddress):
        address = name.value
        if getattr(address, "version", 4) == 6:
            groups = address.exploded.split(":")
            return "IP Address:" + ":".join(format(int(g, 16), "X") for g in groups)
        if hasattr(address, "network_address"):
            return f"IP Address:{address.network_address}/{address.netmask}"
        return f"IP Address:{address}"
    if isinstance(name, x509.RFC822Name):
        return f"email:{name.value}"
    if isinstance(name, x509.UniformResourceIdentifier):
        return f"URI:{name.value}"
    if isinstance(name, x509.DirectoryName):
        return f"DirName:{_name_oneline(name.value)}"
    if isinstance(name, x509.RegisteredID):
        return f"Registered ID:{name.value.dotted_string}"
    if isinstance(name, x509.OtherName):
        return "othername:<unsupported>"
    return str(name)


def _extension_text(extension) -> str:
    """The value as OpenSSL's X509V3_EXT_print writes it (the common extensions), else a
    colon hex dump of the extension's bytes."""
    from cryptography import x509

    value = extension.value
    if isinstance(value, x509.SubjectKeyIdentifier):
        return _colon_hex(value.digest)
    if isinstance(value, x509.AuthorityKeyIdentifier):
        lines = []
        if value.key_identifier is not None:
            lines.append(_colon_hex(value.key_identifier))
        if value.authority_cert_issuer:
            lines.extend(_general_name(n) for n in value.authority_cert_issuer)
        if value.authority_cert_serial_number is not None:
            serial = value.authority_cert_serial_number
            raw = serial.to_bytes(max(1, (serial.bit_length() + 7) // 8), "big")
            lines.append("serial:" + _colon_hex(raw))
        return "\n".join(lines)
    if isinstance(value, x509.BasicConstraints):
        out = "CA:TRUE" if value.ca else "CA:FALSE"
        if value.path_length is not None:
            out += f", pathlen:{value.path_length}"
        return out
    if isinstance(value, (x509.SubjectAlternativeName, x509.IssuerAlternativeName)):
        return ", ".join(_general_name(n) for n in value)
    if isinstance(value, x509.KeyUsage):
        names = [("digital_signature", "Digital Signature"),
                 ("content_commitment", "Non Repudiation"),
                 ("key_encipherment", "Key Encipherment"),
                 ("data_encipherment", "Data Encipherment"),
                 ("key_agreement", "Key Agreement"), ("key_cert_sign", "Certificate Sign"),
                 ("crl_sign", "CRL Sign")]
        used = [label for attribute, label in names if getattr(value, attribute)]
        if value.key_agreement:
            if value.encipher_only:
                used.append("Encipher Only")
            if value.decipher_only:
                used.append("Decipher Only")
        return ", ".join(used)
    if isinstance(value, x509.ExtendedKeyUsage):
        return ", ".join(_EKU_LN.get(o.dotted_string, o.dotted_string) for o in value)
    if isinstance(value, x509.AuthorityInformationAccess):
        return "\n".join(_AIA_LN.get(d.access_method.dotted_string, d.access_method.dotted_string)
                         + f" - {_general_name(d.access_location)}" for d in value)
    if isinstance(value, x509.CRLDistributionPoints):
        lines = []
        for point in value:
            if point.full_name:
                lines.append("Full Name:")
                lines.extend("  " + _general_name(n) for n in point.full_name)
        return "\n".join(lines)
    if isinstance(value, x509.CertificatePolicies):
        lines = []
        for policy in value:
            lines.append(f"Policy: {policy.policy_identifier.dotted_string}")
            for qualifier in policy.policy_qualifiers or ():
                if isinstance(qualifier, str):
                    lines.append(f"  CPS: {qualifier}")
        return "\n".join(lines)
    raw = getattr(value, "value", None)
    if not isinstance(raw, bytes):
        try:
            raw = value.public_bytes()
        except Exception:  # noqa: BLE001
            raw = b""
    return _colon_hex(raw)


def _date_table(when) -> dict:
    return {"year": when.year, "month": when.month, "day": when.day, "hour": when.hour,
            "min": when.minute, "sec": when.second}


def _bignum(number: int) -> tuple[bytes, bool]:
    """A BIGNUM's (magnitude, negative) for lua/bignum.lua."""
    return number.to_bytes((number.bit_length() + 7) // 8, "big"), number < 0


def certificate_fields(der: bytes) -> dict:
    """The parts of Nmap's certificate object (nse-spec §6.2) as plain data: ``plain`` (the
    tables), ``bignums`` (pubkey fields as (magnitude, negative)), ``oid_keys`` (name attributes
    without an OpenSSL long name: (("subject"|"issuer", oid integers), value))."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa

    cert = x509.load_der_x509_certificate(bytes(der))
    oid_keys = []

    def name_table(name, which):
        table = {}
        for attribute in name:
            dotted = attribute.oid.dotted_string
            value = attribute.value
            if isinstance(value, bytes):
                value = value.decode("latin-1")
            long_name = _NAME_LN.get(dotted)
            if long_name is None:
                oid_keys.append(((which, tuple(int(p) for p in dotted.split("."))), value))
            else:
                table[long_name] = value
        return table

    plain: dict = {
        "subject": name_table(cert.subject, "subject"),
        "issuer": name_table(cert.issuer, "issuer"),
        "pem": cert.public_bytes(serialization.Encoding.PEM).decode("ascii"),
    }
    sig = cert.signature_algorithm_oid.dotted_string
    plain["sig_algorithm"] = _SIG_LN.get(sig, getattr(cert.signature_algorithm_oid, "_name",
                                                       sig))
    validity = {}
    for field, attribute in (("notBefore", "not_valid_before_utc"),
                             ("notAfter", "not_valid_after_utc")):
        try:
            validity[field] = _date_table(getattr(cert, attribute))
        except (ValueError, OverflowError, AttributeError):
            validity[field] = str(getattr(cert, attribute.replace("_utc", ""), ""))
    plain["validity"] = validity
    extensions = []
    try:
        cert_extensions = list(cert.extensions)
    except Exception:  # noqa: BLE001 -- a malformed extension: report none rather than fail
        cert_extensions = []
    for extension in cert_extensions:
        dotted = extension.oid.dotted_string
        entry = {"name": _EXT_LN.get(dotted, dotted)}
        if extension.critical:
            entry["critical"] = True
        try:
            entry["value"] = _extension_text(extension)
        except Exception as exc:  # noqa: BLE001
            entry["error"] = f"Error printing extension: {exc}"
        extensions.append(entry)
    plain["extensions"] = extensions
    try:
        key = cert.public_key()
    except Exception as exc:  # noqa: BLE001 -- Nmap: nil, "Error parsing cert: ..."
        raise CertificateKeyError(str(exc)) from exc
    pubkey: dict = {"type": "unknown"}
    bignums = {}
    if isinstance(key, rsa.RSAPublicKey):
        numbers = key.public_numbers()
        pubkey = {"type": "rsa", "bits": key.key_size}
        bignums = {"exponent": _bignum(numbers.e), "modulus": _bignum(numbers.n)}
    elif isinstance(key, dsa.DSAPublicKey):
        pubkey = {"type": "dsa", "bits": key.key_size}
    elif type(key).__name__.lstrip("_").startswith("DHPublicKey"):
        pubkey = {"type": "dh", "bits": key.key_size}
    elif isinstance(key, ec.EllipticCurvePublicKey):
        curve = _CURVE_SN.get(key.curve.name, key.curve.name)
        pubkey = {"type": "ec", "bits": key.curve.key_size,
                  "ecdhparams": {"curve_params": {"ec_curve_type": "namedcurve",
                                                  "curve": curve}}}
    else:
        size = getattr(key, "key_size", None)
        if size is None:
            size = {"Ed25519PublicKey": 256, "Ed448PublicKey": 456}.get(
                type(key).__name__.lstrip("_"), None)
        if size is not None:
            pubkey["bits"] = size
    plain["pubkey"] = pubkey
    return {"plain": plain, "bignums": bignums, "oid_keys": oid_keys}


def digest(der: bytes, algorithm: str) -> bytes | None:
    """``cert:digest(algo)``: OpenSSL digest names, any case; None when unknown."""
    name = algorithm.lower()
    try:
        return hashlib.new(name, bytes(der)).digest()
    except (ValueError, TypeError):
        try:
            return hashlib.new(name.replace("-", ""), bytes(der)).digest()
        except (ValueError, TypeError):
            return None


# -- registration ------------------------------------------------------------------------------

def register(engine) -> dict:
    api = SocketAPI(engine)
    engine.socket_api = api  # for api/rawnet.py (pcap sockets) and tests

    @lua_api
    def socket_init(make_cert, make_bignum):
        """socket.lua hands over its constructors for certificate and BIGNUM objects and
        learns the markers a result may start with."""
        api.make_cert, api.make_bignum = make_cert, make_bignum
        return PENDING, RAISE, NOT_SSL

    @lua_api
    def socket_profile():
        """The calling script's profile points socket.lua needs, as a Lua table."""
        profile = api.profile()
        cached = api._profiles.get(profile.name)
        if cached is None:
            cached = engine.runtime.table({
                "name": profile.name,
                "receive_buf_strict": profile.receive_buf_strict,
                "receive_buf_persists": profile.receive_buf_persists,
                "bad_protocol_error": profile.bad_protocol_error,
                "receive_buf_keeps_failed_read": profile.receive_buf_keeps_failed_read,
            })
            api._profiles[profile.name] = cached
        return cached

    @lua_api
    def socket_new(proto=None, family=None):
        return api.new(proto, family)

    @lua_api
    def socket_gc(handles):
        for handle in handles.values():
            api.collected(handle)

    @lua_api
    def socket_connect(handle, host, sni, port, proto=None):
        return api.connect(handle, host, sni, port, proto)

    @lua_api
    def socket_send(handle, data):
        return api.send(handle, data)

    @lua_api
    def socket_sendto(handle, host, port, data):
        return api.sendto(handle, host, port, data)

    @lua_api
    def socket_receive(handle):
        return api.receive(handle)

    @lua_api
    def socket_receive_lines(handle, count):
        return api.receive_lines(handle, count)

    @lua_api
    def socket_receive_bytes(handle, count):
        return api.receive_bytes(handle, count)

    @lua_api
    def socket_rbuf_begin(handle):
        return api.rbuf_begin(handle)

    @lua_api
    def socket_rbuf_read(handle):
        return api.rbuf_read(handle)

    @lua_api
    def socket_rbuf_set(handle, data):
        api.rbuf_set(handle, data)

    @lua_api
    def socket_close(handle):
        return api.close(handle)

    @lua_api
    def socket_get_info(handle):
        return api.get_info(handle)

    @lua_api
    def socket_set_timeout(handle, milliseconds):
        return api.set_timeout(handle, milliseconds)

    @lua_api
    def socket_bind(handle, address, port):
        return api.bind(handle, address, port)

    @lua_api
    def socket_reconnect_ssl(handle):
        return api.reconnect_ssl(handle)

    @lua_api
    def socket_get_ssl_certificate(handle):
        return api.get_ssl_certificate(handle)

    @lua_api
    def socket_stats():
        return engine.runtime.table(api.lock.stats())

    @lua_api
    def parse_ssl_certificate(der=None):
        if not isinstance(der, (bytes, int, float)) or isinstance(der, bool):
            got = "no value" if der is None else engine.runtime.lupa.lua_type(der) or (
                "boolean" if isinstance(der, bool) else "userdata")
            raise ScriptError("bad argument #1 to 'nmap.socket.parse_ssl_certificate' "
                              f"(string expected, got {got})")
        if not isinstance(der, bytes):
            return None
        return api.certificate(der)

    @lua_api
    def ssl_cert_digest(der, algorithm):
        return digest(der, text(algorithm))

    return {
        "socket_init": socket_init, "socket_profile": socket_profile, "socket_new": socket_new,
        "socket_gc": socket_gc, "socket_connect": socket_connect, "socket_send": socket_send,
        "socket_sendto": socket_sendto, "socket_receive": socket_receive,
        "socket_receive_lines": socket_receive_lines,
        "socket_receive_bytes": socket_receive_bytes, "socket_rbuf_begin": socket_rbuf_begin,
        "socket_rbuf_read": socket_rbuf_read, "socket_rbuf_set": socket_rbuf_set,
        "socket_close": socket_close, "socket_get_info": socket_get_info,
        "socket_set_timeout": socket_set_timeout, "socket_bind": socket_bind,
        "socket_reconnect_ssl": socket_reconnect_ssl,
        "socket_get_ssl_certificate": socket_get_ssl_certificate,
        "socket_stats": socket_stats, "parse_ssl_certificate": parse_ssl_certificate,
        "ssl_cert_digest": ssl_cert_digest,
    }


