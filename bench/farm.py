"""A loopback target farm: many TCP listeners on many 127.x.y.z addresses.

All of 127.0.0.0/8 is loopback on Linux, so binding to 127.4.1.7 needs no
configuration: many addresses behave like many hosts.  Every listener accepts
connections, immediately sends a one-line banner (``SSH-2.0-FarmSSH_1.0`` on
SSH-like ports, ``220 farm ESMTP`` on SMTP-like ports, ... or the generic
``farm <ip>:<port>``), then closes the connection as soon as the peer sends
something or closes, or after a short timeout.  One ``selectors`` (epoll) loop
in one process serves every listener and connection, so the farm survives
thousands of connections per second with no thread per connection.

Library use::

    from bench.farm import Farm, many_hosts
    spec = many_hosts(count=5, ports=(2222, 2525, 8080), base="127.5.0.0")
    with Farm(spec) as farm:         # serves from a subprocess
        farm.expected_open()         # {"127.5.0.1": {2222, 8080}, ...}

Command use (runs until killed; prints the expected open ports as JSON on
stdout once every listener is bound)::

    python -m bench.farm --one-host
    python -m bench.farm --many-hosts 1000

Only addresses in 127.0.0.0/8 are accepted anywhere in this module.
"""

from __future__ import annotations

import argparse
import collections
import ipaddress
import json
import os
import random
import resource
import selectors
import signal
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

REPO_ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")

#: Hosts per /24 used by :func:`many_hosts` (last octet 1..250).
HOSTS_PER_SUBNET = 250

#: Default seconds an accepted connection is kept open waiting for the peer.
DEFAULT_CONN_TIMEOUT = 1.0

SSH_PORTS = frozenset({22, 2222, 22222})
SMTP_PORTS = frozenset({25, 465, 587, 2525})
FTP_PORTS = frozenset({21, 2121})
POP3_PORTS = frozenset({110, 995})
IMAP_PORTS = frozenset({143, 993})

#: Ports :func:`one_host_many_ports` tries first so that the banner kinds are
#: all present on the one-host farm.
WELL_KNOWN_PORTS = (21, 22, 25, 80, 110, 143, 443, 2222, 2525, 8080)


class FarmError(RuntimeError):
    """The farm could not be started (a bind failed, it died, it timed out)."""


def _check_loopback(ip: str) -> str:
    try:
        addr = ipaddress.IPv4Address(ip)
    except ValueError as exc:
        raise ValueError(f"not an IPv4 address: {ip!r}") from exc
    if addr not in LOOPBACK:
        raise ValueError(f"farm addresses must be in 127.0.0.0/8, got {ip}")
    return str(addr)


@dataclass(frozen=True)
class FarmSpec:
    """What a farm listens on.

    ``listeners`` are the ``(ip, port)`` pairs that accept connections.
    ``hosts`` optionally names every address the farm stands for, including
    hosts that have every port closed (those have no listener).
    """

    listeners: tuple[tuple[str, int], ...]
    hosts: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        seen: set[tuple[str, int]] = set()
        for ip, port in self.listeners:
            _check_loopback(ip)
            if not isinstance(port, int) or not 1 <= port <= 65535:
                raise ValueError(f"bad port {port!r} for {ip}")
            if (ip, port) in seen:
                raise ValueError(f"duplicate listener {ip}:{port}")
            seen.add((ip, port))
        for ip in self.hosts:
            _check_loopback(ip)

    def expected_open(self) -> dict[str, set[int]]:
        """Open ports by address (only addresses with at least one)."""
        out: dict[str, set[int]] = {}
        for ip, port in self.listeners:
            out.setdefault(ip, set()).add(port)
        return out

    def all_hosts(self) -> list[str]:
        """Every address of the farm: ``hosts`` plus any listener address."""
        seen = dict.fromkeys(self.hosts)
        for ip, _ in self.listeners:
            seen.setdefault(ip)
        return list(seen)

    def to_json(self) -> str:
        return json.dumps({"listeners": [list(x) for x in self.listeners],
                           "hosts": list(self.hosts)}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "FarmSpec":
        data = json.loads(text)
        return cls(listeners=tuple((str(ip), int(port)) for ip, port in data["listeners"]),
                   hosts=tuple(str(h) for h in data.get("hosts", ())))


# --------------------------------------------------------------------------
# Spec generators


def port_is_free(ip: str, port: int) -> bool:
    """True if ``ip:port`` can be bound now (nothing listens there, nor on the
    wildcard address; and we are allowed to bind it)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((ip, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def one_host_many_ports(ip: str = "127.3.0.1", open_count: int = 200, seed: int = 1) -> FarmSpec:
    """One host with ``open_count`` open ports spread over 1-65535.

    A few well-known ports (SSH, SMTP, FTP, HTTP...) come first so that every
    banner kind is present, then ports in a seeded random order.  Ports that
    cannot be bound right now (already in use on this machine, including by a
    wildcard listener, or privileged and we are not root) are skipped, so the
    result is deterministic by seed on a given machine.
    """
    ip = _check_loopback(ip)
    if not 1 <= open_count <= 65535:
        raise ValueError("open_count must be in 1..65535")
    rng = random.Random(seed)
    order = list(range(1, 65536))
    rng.shuffle(order)
    n_known = min(len(WELL_KNOWN_PORTS), open_count // 10)
    candidates = list(WELL_KNOWN_PORTS[:n_known]) + order
    chosen: set[int] = set()
    for port in candidates:  # bounded: at most 65535 + 10 candidates
        if len(chosen) >= open_count:
            break
        if port in chosen or not port_is_free(ip, port):
            continue
        chosen.add(port)
    if len(chosen) < open_count:
        raise FarmError(f"only {len(chosen)} free ports on {ip}")
    return FarmSpec(listeners=tuple((ip, p) for p in sorted(chosen)), hosts=(ip,))


def _subnet_base(base: str) -> tuple[int, int, int]:
    base = _check_loopback(base)
    a, b, c, d = (int(x) for x in base.split("."))
    if d != 0:
        raise ValueError(f"base must end in .0, got {base}")
    return a, b, c


def many_hosts_addresses(count: int = 1000, base: str = "127.4.0.0") -> list[str]:
    """The ``count`` addresses :func:`many_hosts` uses: 250 per /24 starting at
    ``base`` (last octet 1..250), e.g. 127.4.0.1 ... 127.4.3.250 for 1000."""
    a, b, c = _subnet_base(base)
    if count < 1:
        raise ValueError("count must be >= 1")
    last_third = c + (count - 1) // HOSTS_PER_SUBNET
    if last_third > 255:
        raise ValueError(f"{count} hosts do not fit after {base}")
    return [f"{a}.{b}.{c + i // HOSTS_PER_SUBNET}.{1 + i % HOSTS_PER_SUBNET}" for i in range(count)]


def many_hosts_targets(count: int = 1000, base: str = "127.4.0.0") -> list[str]:
    """Nmap target specifications covering exactly :func:`many_hosts_addresses`,
    e.g. ``["127.4.0-3.1-250"]`` for 1000 hosts."""
    a, b, c = _subnet_base(base)
    many_hosts_addresses(count, base)  # validates
    full, rem = divmod(count, HOSTS_PER_SUBNET)
    specs = []
    if full:
        third = f"{c}" if full == 1 else f"{c}-{c + full - 1}"
        specs.append(f"{a}.{b}.{third}.1-{HOSTS_PER_SUBNET}")
    if rem:
        last = "1" if rem == 1 else f"1-{rem}"
        specs.append(f"{a}.{b}.{c + full}.{last}")
    return specs


def many_hosts(count: int = 1000, ports: Iterable[int] = (22, 80, 443), base: str = "127.4.0.0",
               seed: int = 1, open_probability: float = 2 / 3) -> FarmSpec:
    """``count`` hosts (see :func:`many_hosts_addresses`); on each host every
    port of ``ports`` is open with probability ``open_probability`` (seeded), so
    about 2 of 3 are open, and a few hosts have every port closed."""
    ports = tuple(ports)
    rng = random.Random(seed)
    hosts = many_hosts_addresses(count, base)
    listeners = []
    for ip in hosts:
        for port in ports:
            if rng.random() < open_probability:
                listeners.append((ip, port))
    return FarmSpec(listeners=tuple(listeners), hosts=tuple(hosts))


# --------------------------------------------------------------------------
# Listeners outside the farm


def _proc_listeners() -> list[tuple[str, int]]:
    """(address, port) of LISTEN sockets in /proc/net/tcp and tcp6."""
    out = []
    for path, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            with open(path) as fh:
                lines = fh.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) < 4 or parts[3] != "0A":
                continue
            addr_hex, port_hex = parts[1].split(":")
            raw = b"".join(struct.pack("=I", int(addr_hex[i:i + 8], 16)) for i in range(0, width, 8))
            if width == 8:
                addr = socket.inet_ntop(socket.AF_INET, raw)
            else:
                addr6 = ipaddress.IPv6Address(raw)
                addr = str(addr6.ipv4_mapped) if addr6.ipv4_mapped else str(addr6)
            out.append((addr, int(port_hex, 16)))
    return out


def _connects(ip: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=timeout):
            return True
    except OSError:
        return False


def foreign_open_ports(hosts: Iterable[str], ports: Iterable[int] | None = None,
                       exclude: Mapping[str, Iterable[int]] | None = None) -> dict[str, set[int]]:
    """Ports that a scan of ``hosts`` will find open although no farm listener
    is there: other programs listening on the wildcard address (0.0.0.0 or ::),
    which answer on every 127.x address, or on exactly one of ``hosts``.

    ``ports`` limits the answer to the scanned ports; ``exclude`` (e.g. the
    running farm's :meth:`Farm.expected_open`) is left out.  Wildcard
    candidates are confirmed by one connect to the first host.
    """
    hosts = [_check_loopback(h) for h in hosts]
    if not hosts:
        return {}
    wanted = None if ports is None else set(ports)
    exclude = {ip: set(ps) for ip, ps in (exclude or {}).items()}
    host_set = set(hosts)
    wildcard: set[int] = set()
    exact: dict[str, set[int]] = {}
    for addr, port in _proc_listeners():
        if wanted is not None and port not in wanted:
            continue
        if addr in ("0.0.0.0", "::"):
            wildcard.add(port)
        elif addr in host_set and port not in exclude.get(addr, ()):
            exact.setdefault(addr, set()).add(port)
    probe = hosts[0]
    wildcard = {p for p in sorted(wildcard)[:1000]
                if p in exclude.get(probe, ()) or _connects(probe, p)}
    out: dict[str, set[int]] = {}
    for ip in hosts:
        ports_here = (wildcard - exclude.get(ip, set())) | exact.get(ip, set())
        if ports_here:
            out[ip] = ports_here
    return out


# --------------------------------------------------------------------------
# The server loop (runs in the farm subprocess)


def banner_for(ip: str, port: int) -> bytes:
    if port in SSH_PORTS:
        return b"SSH-2.0-FarmSSH_1.0\r\n"
    if port in SMTP_PORTS:
        return b"220 farm ESMTP\r\n"
    if port in FTP_PORTS:
        return b"220 farm FTP ready\r\n"
    if port in POP3_PORTS:
        return b"+OK farm POP3 ready\r\n"
    if port in IMAP_PORTS:
        return b"* OK farm IMAP4rev1 ready\r\n"
    return f"farm {ip}:{port}\r\n".encode()


def raise_nofile_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return the new soft."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


def bind_listeners(spec: FarmSpec, backlog: int = 4096) -> list[tuple[socket.socket, bytes]]:
    """Bind and listen on every listener of ``spec``; FarmError on failure."""
    socks: list[tuple[socket.socket, bytes]] = []
    try:
        for ip, port in spec.listeners:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append((s, banner_for(ip, port)))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((ip, port))
            except OSError as exc:
                raise FarmError(f"cannot bind {ip}:{port}: {exc.strerror or exc}") from exc
            s.listen(backlog)
            s.setblocking(False)
    except BaseException:
        for s, _ in socks:
            s.close()
        raise
    return socks


class _Stop(Exception):
    pass


def serve(spec: FarmSpec, ready, *, conn_timeout: float = DEFAULT_CONN_TIMEOUT,
          watch_fd: int | None = None, max_accepts_per_event: int = 256) -> dict[str, int]:
    """Serve ``spec`` until SIGTERM/SIGINT, or EOF on ``watch_fd``.

    ``ready(n)`` is called once every listener is bound.  Returns counters.
    """
    nofile = raise_nofile_limit()
    listeners = bind_listeners(spec)
    max_conns = max(64, nofile - len(listeners) - 64)
    sel = selectors.DefaultSelector()
    stop = {"flag": False}

    def on_signal(signum, frame):  # noqa: ARG001
        stop["flag"] = True

    old_handlers = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    LISTENER, CONN, WATCH = 0, 1, 2
    for s, banner in listeners:
        sel.register(s, selectors.EVENT_READ, (LISTENER, banner))
    if watch_fd is not None:
        sel.register(watch_fd, selectors.EVENT_READ, (WATCH, None))
    live: set[socket.socket] = set()
    deadlines: collections.deque[tuple[float, socket.socket]] = collections.deque()
    stats = {"accepted": 0, "banner_failed": 0, "timed_out": 0}

    def close(conn: socket.socket) -> None:
        if conn in live:
            live.discard(conn)
            try:
                sel.unregister(conn)
            except (KeyError, ValueError):
                pass
            conn.close()

    ready(len(listeners))
    try:
        while not stop["flag"]:
            now = time.monotonic()
            while deadlines and (deadlines[0][0] <= now or deadlines[0][1] not in live):
                _, conn = deadlines.popleft()
                if conn in live:
                    stats["timed_out"] += 1
                    close(conn)
            timeout = 0.25
            if deadlines:
                timeout = min(timeout, max(0.0, deadlines[0][0] - now))
            for key, _mask in sel.select(timeout):
                kind, banner = key.data
                if kind == LISTENER:
                    lsock = key.fileobj
                    for _ in range(max_accepts_per_event):
                        try:
                            conn, _addr = lsock.accept()
                        except (BlockingIOError, InterruptedError):
                            break
                        except OSError:  # EMFILE, ECONNABORTED...: retry next round
                            break
                        stats["accepted"] += 1
                        conn.setblocking(False)
                        try:
                            conn.send(banner)
                        except OSError:
                            stats["banner_failed"] += 1
                            conn.close()
                            continue
                        live.add(conn)
                        sel.register(conn, selectors.EVENT_READ, (CONN, None))
                        deadlines.append((time.monotonic() + conn_timeout, conn))
                        while len(live) > max_conns and deadlines:
                            close(deadlines.popleft()[1])
                elif kind == CONN:
                    conn = key.fileobj
                    try:
                        conn.recv(4096)
                    except OSError:
                        pass
                    close(conn)
                else:  # WATCH: parent closed our stdin (or wrote junk): stop
                    try:
                        data = os.read(watch_fd, 4096)
                    except OSError:
                        data = b""
                    if not data:
                        stop["flag"] = True
    finally:
        for conn in list(live):
            close(conn)
        for s, _ in listeners:
            try:
                sel.unregister(s)
            except (KeyError, ValueError):
                pass
            s.close()
        sel.close()
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)
    return stats


# --------------------------------------------------------------------------
# The Farm: a subprocess running serve()


def _read_line(fd: int, deadline: float) -> str:
    buf = b""
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while b"\n" not in buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no line from farm before the deadline")
            if not sel.select(remaining):
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            buf += chunk
    return buf.decode(errors="replace").strip()


class Farm:
    """Runs a :class:`FarmSpec` in a subprocess (``python -m bench.farm
    --serve-stdin``), so that a scanner under test does not share a CPU or
    GIL with it.  The subprocess prints ``READY`` once bound; :meth:`start`
    waits for that.  The subprocess exits when :meth:`stop` is called or when
    this process dies (its stdin reaches EOF).

    Use as a context manager::

        with Farm(one_host_many_ports()) as farm:
            ...
    """

    def __init__(self, spec: FarmSpec, *, conn_timeout: float = DEFAULT_CONN_TIMEOUT,
                 ready_timeout: float = 60.0) -> None:
        self.spec = spec
        self.conn_timeout = conn_timeout
        self.ready_timeout = ready_timeout
        self._proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def expected_open(self) -> dict[str, set[int]]:
        return self.spec.expected_open()

    def start(self) -> "Farm":
        if self._proc is not None:
            raise FarmError("farm already started")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "bench.farm", "--serve-stdin", "--conn-timeout", str(self.conn_timeout)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=str(REPO_ROOT), env=env,
        )
        try:
            self._proc.stdin.write(self.spec.to_json().encode() + b"\n")
            self._proc.stdin.flush()
            line = _read_line(self._proc.stdout.fileno(), time.monotonic() + self.ready_timeout)
        except (OSError, TimeoutError) as exc:
            self.stop()
            raise FarmError(f"farm did not start: {exc}") from exc
        if not line.startswith("READY"):
            self.stop()
            raise FarmError(f"farm did not start: {line or 'exited without a word'}")
        return self

    def stop(self, timeout: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin:
                proc.stdin.close()
        except OSError:
            pass
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
        if proc.stdout:
            proc.stdout.close()

    def __enter__(self) -> "Farm":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# --------------------------------------------------------------------------
# Command line


def _expected_json(spec: FarmSpec) -> str:
    exp = spec.expected_open()
    return json.dumps({ip: sorted(exp[ip]) for ip in spec.all_hosts() if ip in exp})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.farm", description=__doc__.split("\n\n")[0])
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--one-host", action="store_true", help="one host with many open ports")
    mode.add_argument("--many-hosts", type=int, metavar="N", help="N hosts with a few ports each")
    mode.add_argument("--serve-stdin", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--ip", default="127.3.0.1", help="--one-host address (default %(default)s)")
    ap.add_argument("--open-count", type=int, default=200, help="--one-host open ports (default %(default)s)")
    ap.add_argument("--base", default="127.4.0.0", help="--many-hosts first /24 (default %(default)s)")
    ap.add_argument("--ports", default="22,80,443", help="--many-hosts ports (default %(default)s)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--conn-timeout", type=float, default=DEFAULT_CONN_TIMEOUT,
                    help="seconds a connection stays open after the banner (default %(default)s)")
    args = ap.parse_args(argv)

    try:
        if args.serve_stdin:
            spec = FarmSpec.from_json(sys.stdin.buffer.readline().decode())

            def ready(n: int) -> None:
                sys.stdout.write(f"READY {n}\n")
                sys.stdout.flush()

            serve(spec, ready, conn_timeout=args.conn_timeout, watch_fd=sys.stdin.fileno())
            return 0

        if args.one_host:
            spec = one_host_many_ports(args.ip, args.open_count, args.seed)
        else:
            ports = tuple(int(p) for p in args.ports.split(",") if p)
            spec = many_hosts(args.many_hosts, ports, args.base, args.seed)

        def ready_cli(n: int) -> None:
            sys.stdout.write(_expected_json(spec) + "\n")
            sys.stdout.flush()
            hosts = len(spec.all_hosts())
            print(f"READY: {n} listeners on {hosts} hosts; Ctrl-C to stop", file=sys.stderr, flush=True)

        serve(spec, ready_cli, conn_timeout=args.conn_timeout)
        return 0
    except FarmError as exc:
        if args.serve_stdin:
            sys.stdout.write(f"ERROR {exc}\n")
            sys.stdout.flush()
        print(f"bench.farm: {exc}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
