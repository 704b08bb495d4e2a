"""A set of real services on one loopback address, for version detection (-sV) tests and
bench/versionscan.py.

``ServiceFarm(address, directory).start()`` runs, each on its own port of ``address``:
OpenSSH's sshd, Redis's redis-server and memcached (real programs), Python's http.server
in clear and inside TLS, the FTP and SMTP peers of tests/ with common daemons' greetings, a
silent port (accepts, never sends), a "tcpwrapped" port (accepts, then closes at once),
an unknown service (a banner no probe file knows) and TLS that never says a word.
``ports`` maps each role to its port; ``stop()`` ends everything.

As a command: ``python tests/version_peers.py ADDRESS DIRECTORY`` prints the ports as JSON
once every service answers and serves until killed.
"""
from __future__ import annotations

import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ftp_peer import FtpPeer  # noqa: E402
from smtp_peer import SmtpPeer  # noqa: E402
from ssh_peer import Sshd, make_keys  # noqa: E402
from tcp_peer import TcpServer, stop_process  # noqa: E402
from tls_peer import make_certificate, server_context  # noqa: E402

ROLES = ("ssh", "ftp", "smtp", "http", "https", "redis", "memcached", "silent", "wrapped",
         "odd", "tls-quiet")
ODD_BANNER = b"\x01zork-7 ready\r\n"  # matches no probe file's line
FTP_BANNER = b"220 (vsFTPd 3.0.3)\r\n"
SMTP_BANNER = b"220 mail.example.test ESMTP Postfix (Debian/GNU)\r\n"
BASE_PORT = 40100  # roles get BASE_PORT + their index: nothing else on 127/8 uses these


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the tests' output clean
        pass


class _Http:
    def __init__(self, address: str, port: int, directory: Path, context=None):
        handler = lambda *a, **k: _QuietHandler(*a, directory=str(directory), **k)  # noqa
        self.server = http.server.ThreadingHTTPServer((address, port), handler)
        self.server.daemon_threads = True
        if context is not None:  # the handshake happens in the request's thread
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True,
                                                     do_handshake_on_connect=False)
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def _silent(sock: socket.socket) -> None:
    sock.settimeout(30)
    try:
        while sock.recv(4096):
            pass
    except OSError:
        pass


def _wrapped(sock: socket.socket) -> None:
    sock.close()


def _odd(sock: socket.socket) -> None:
    """An unknown service: greets, then hangs up at the first data or after a second."""
    sock.sendall(ODD_BANNER)
    sock.settimeout(1)
    try:
        sock.recv(4096)
    except OSError:
        pass
    sock.close()


class _QuietTls(TcpServer):
    """TLS that says nothing: completes a handshake, then hangs up after a second."""

    def __init__(self, address: str, port: int, context):
        self.context = context
        super().__init__(address, port, self._serve)

    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(10)
        tls = self.own(self.context.wrap_socket(sock, server_side=True))
        tls.settimeout(1)
        try:
            tls.recv(4096)
        except OSError:
            pass


class _Program:
    def __init__(self, argv: list[str], log: Path):
        self.log = open(log, "wb")
        self.process = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT)

    def close(self):
        stop_process(self.process)
        self.log.close()


class ServiceFarm:
    def __init__(self, address: str, directory: Path, base_port: int = BASE_PORT):
        self.address, self.directory = address, Path(directory)
        self.ports = {role: base_port + i for i, role in enumerate(ROLES)}
        self._closers: list = []

    def start(self, wait_s: float = 15.0) -> "ServiceFarm":
        d, a, p = self.directory, self.address, self.ports
        d.mkdir(parents=True, exist_ok=True)
        try:
            sshd = Sshd(d / "sshd", a, make_keys(d / "keys", ("ed25519",)), port=p["ssh"])
            sshd.start()
            self._closers.append(sshd.stop)
            for server in (FtpPeer(a, p["ftp"], banner=FTP_BANNER),
                           SmtpPeer(a, p["smtp"], banner=SMTP_BANNER,
                                    hostname="mail.example.test"),
                           TcpServer(a, p["silent"], _silent),
                           TcpServer(a, p["wrapped"], _wrapped),
                           TcpServer(a, p["odd"], _odd)):
                self._closers.append(server.close)
            site = d / "site"
            site.mkdir(exist_ok=True)
            (site / "index.html").write_text("<html><title>farm</title>hello</html>\n")
            cert, key, _ = make_certificate(d, "farm.test")
            context = server_context(cert, key)
            for role, tls in (("http", None), ("https", context)):
                self._closers.append(_Http(a, p[role], site, tls).close)
            self._closers.append(_QuietTls(a, p["tls-quiet"], context).close)
            redis = _Program([shutil.which("redis-server") or "redis-server", "--bind", a,
                              "--port", str(p["redis"]), "--save", "", "--appendonly", "no",
                              "--dir", str(d)], d / "redis.log")
            self._closers.append(redis.close)
            memcached = _Program([shutil.which("memcached") or "/usr/bin/memcached", "-l", a,
                                  "-p", str(p["memcached"]), "-U", "0", "-u", "nobody"],
                                 d / "memcached.log")
            self._closers.append(memcached.close)
            self._wait_listening(wait_s)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_listening(self, wait_s: float) -> None:
        deadline = time.monotonic() + wait_s
        for role, port in self.ports.items():
            while True:
                try:
                    socket.create_connection((self.address, port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise AssertionError(f"{role} did not start on {self.address}:{port}")
                    time.sleep(0.05)

    def stop(self) -> None:
        while self._closers:
            try:
                self._closers.pop()()
            except Exception:  # stopping the rest matters more
                pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


if __name__ == "__main__":
    farm = ServiceFarm(sys.argv[1], Path(sys.argv[2])).start()
    print(json.dumps(farm.ports), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(1):
            pass
    except KeyboardInterrupt:
        pass
    farm.stop()
    os._exit(0)
