"""TCP connect probes on the event loop: the I/O half of UltraScan (``-sT`` and unprivileged
host discovery).

Each probe is one non-blocking ``connect``. The kernel's answer is the probe's result: a
completed handshake is ``open/syn-ack``, a RST is ``closed/conn-refused``, an ICMP error is
``filtered`` with its reason, and silence until the probe's timeout is left to UltraScan to retry
or call ``filtered/no-response``. Sockets close with SO_LINGER 0 (a RST), so a scan leaves no
TIME_WAIT sockets behind.
"""
from __future__ import annotations

import _socket
import errno
import functools
import resource
import struct

from worker.nsock.loop import EventLoop
from worker.scan.prober import Prober
from worker.scan.ultra import Probe, UltraScan

# The C socket type directly: a probe socket needs none of socket.socket's Python layer.
_AF_INET, _AF_INET6 = _socket.AF_INET, _socket.AF_INET6
_STREAM_NONBLOCK = _socket.SOCK_STREAM | _socket.SOCK_NONBLOCK
_SOL_SOCKET, _SO_ERROR, _SO_LINGER = _socket.SOL_SOCKET, _socket.SO_ERROR, _socket.SO_LINGER
_LINGER_RESET = struct.pack("ii", 1, 0)
_EINPROGRESS = errno.EINPROGRESS

# errno of a finished connect -> (port state, Nmap reason)
CONNECT_OUTCOMES = {
    0: ("open", "syn-ack"),
    errno.ECONNREFUSED: ("closed", "conn-refused"),
    errno.ECONNRESET: ("closed", "conn-refused"),
    errno.EHOSTUNREACH: ("filtered", "host-unreach"),
    errno.ENETUNREACH: ("filtered", "net-unreach"),
    errno.EACCES: ("filtered", "admin-prohibited"),
    errno.EPERM: ("filtered", "admin-prohibited"),
}
_OUTCOMES_GET = CONNECT_OUTCOMES.get
_OUT_OF_FDS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_LOCAL_SHORTAGE = (errno.EADDRNOTAVAIL, errno.EAGAIN, errno.ENOBUFS)
_FD_RESERVE = 64  # for the resolver, outputs and the script engine's own sockets
_SELF_CONNECT_RETRIES = 3
_SHORTAGE_RETRIES = 50


def _ephemeral_range() -> tuple[int, int]:
    """The kernel's source-port range: only a target port inside it can self-connect."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(v) for v in f.read().split())
        return low, high
    except (OSError, ValueError):
        return 1, 65535


_EPHEMERAL_LOW, _EPHEMERAL_HIGH = _ephemeral_range()


def fd_budget() -> int:
    """How many probe sockets this process may hold, after raising the soft fd limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = 65536 if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return max(8, soft - _FD_RESERVE)


class ConnectProber(Prober):
    """Drives one UltraScan to completion with connect probes on ``loop``; its host keys are
    the addresses to connect to."""

    def __init__(self, loop: EventLoop, scan: UltraScan):
        super().__init__(loop, scan)
        self._requeues: dict[tuple, int] = {}  # (host, port) -> probes sent again untried

    def _launch(self, probe: Probe) -> None:
        address = probe.host.key
        try:
            sock = _socket.socket(_AF_INET6 if ":" in address else _AF_INET, _STREAM_NONBLOCK)
        except OSError as exc:
            if exc.errno in _OUT_OF_FDS:
                # Fewer sockets than we planned for: shrink the budget and try again later.
                self.scan.fd_budget = max(1, self.scan.outstanding - 1)
                self.scan.requeue(probe)
                self.loop.call_later(10, self._queue_pump)
                return
            raise
        err = sock.connect_ex((address, probe.port))
        if err == _EINPROGRESS:
            # Loopback answers (and some local errors) complete inside connect(): look before
            # waiting. A refusal is already in SO_ERROR; a finished handshake has a peer.
            err = sock.getsockopt(_SOL_SOCKET, _SO_ERROR)
            if err == 0:
                try:
                    sock.getpeername()
                except OSError:  # still connecting: wait for the answer
                    timer = self.loop.call_later(self.scan.timeout_ms(probe.host),
                                                 functools.partial(self._on_timeout, probe))
                    probe.handle = (sock, timer)
                    self.loop.watch(sock.fileno(),
                                    on_write=functools.partial(self._on_connected, probe))
                    return
        probe.handle = (sock, None)
        self._finish(probe, err)

    # -- answers ----------------------------------------------------------------------------
    def _on_connected(self, probe: Probe) -> None:
        sock = probe.handle[0]
        self._finish(probe, sock.getsockopt(_SOL_SOCKET, _SO_ERROR))
        self._queue_pump()

    def _finish(self, probe: Probe, err: int) -> None:
        sock = probe.handle[0]
        outcome = _OUTCOMES_GET(err)
        if err == 0:
            sock.setsockopt(_SOL_SOCKET, _SO_LINGER, _LINGER_RESET)  # close with a RST
            if _EPHEMERAL_LOW <= probe.port <= _EPHEMERAL_HIGH and _is_self_connect(sock):
                # Loopback can connect a socket to itself when the ephemeral source port equals
                # the target port (TCP simultaneous open). Nothing listens there: ask again from
                # another source port; if the kernel keeps choosing this one, it is closed.
                if self._requeue(probe, _SELF_CONNECT_RETRIES, 0):
                    return
                outcome = CONNECT_OUTCOMES[errno.ECONNREFUSED]
        elif outcome is None and err in _LOCAL_SHORTAGE:
            # No source port or buffer free right now: our shortage, not the target's answer.
            # Wait and ask again; if it lasts, count it as a try without an answer.
            if self._requeue(probe, _SHORTAGE_RETRIES, 10):
                return
        self._close(probe)
        now = self.loop.now_ms()
        if outcome is None:  # ETIMEDOUT and anything unusual: no answer
            self.scan.on_timeout(probe, now)
        else:
            for abandoned in self.scan.on_reply(probe, now, *outcome):
                self._close(abandoned)

    def _requeue(self, probe: Probe, limit: int, delay_ms: float) -> bool:
        """Send ``probe`` again without counting a try, at most ``limit`` times per port."""
        key = (probe.host.key, probe.port)
        count = self._requeues.get(key, 0) + 1
        if count > limit:
            return False
        self._requeues[key] = count
        self._close(probe)
        self.scan.requeue(probe)
        self.loop.call_later(delay_ms, self._queue_pump)
        return True

    def _on_timeout(self, probe: Probe) -> None:
        self._close(probe)
        self.scan.on_timeout(probe, self.loop.now_ms())
        self._queue_pump()

    def _close(self, probe: Probe) -> None:
        handle = probe.handle
        if handle is None:
            return
        probe.handle = None
        sock, timer = handle
        if timer is not None:
            timer.cancel()
            self.loop.forget(sock.fileno())  # close() takes it out of the epoll set
        sock.close()


def _is_self_connect(sock: _socket.socket) -> bool:
    try:
        return sock.getsockname()[:2] == sock.getpeername()[:2]
    except OSError:
        return False
