"""Loopback TCP peers for the bundled scripts' tests: each listener runs a handler per
connection in its own thread (greet and hold, greet and close, stay silent, speak only TLS,
answer requests), counts how many connections it has at once, and stops in ``close()``."""
from __future__ import annotations

import contextlib
import importlib.util
import socket
import ssl
import threading
import time
from pathlib import Path

from tcp_peer import TcpServer, close_quietly, read_line, stop_process  # noqa: F401 (re-export)

_spec = importlib.util.spec_from_file_location(
    "nsock_socket_peers_banner", Path(__file__).resolve().parent / "nsock" / "test_sockets.py")
_SOCKETS = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_SOCKETS)
make_certificate = _SOCKETS.make_certificate

HOLD_S = 20.0  # the longest a handler keeps a connection open by itself


class Listener(TcpServer):
    """One port: runs ``greeter(conn, stopping)`` per connection (in TLS when given a
    context) and counts the connections open now, the most at once and the total."""

    def __init__(self, address: str, port: int, greeter, tls: ssl.SSLContext | None,
                 stopping: threading.Event):
        self.greeter = greeter
        self.tls = tls
        self.lock = threading.Lock()
        self.current = 0  # connections open now
        self.peak = 0  # the most at once
        self.total = 0  # connections accepted
        super().__init__(address, port, self._serve, backlog=256, stopping=stopping,
                         join_s=HOLD_S + 5)

    def _serve(self, conn: socket.socket):
        with self.lock:
            self.current += 1
            self.total += 1
            self.peak = max(self.peak, self.current)
        try:
            conn.settimeout(HOLD_S)
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            self.greeter(conn, self.stopping)
        finally:
            with self.lock:
                self.current -= 1
            close_quietly(conn)


class BannerPeers:
    def __init__(self, address: str, directory: Path | None = None):
        self.address = address
        self.directory = directory
        self.listeners: list[Listener] = []
        self.stopping = threading.Event()
        self._tls_context = None

    # ---------------------------------------------------------------- listeners

    def serve(self, handler, port: int = 0, tls: bool = False,
              address: str | None = None) -> Listener:
        """Listen on ``address`` (default: the peers' own) and ``port`` (0: any) and run
        ``handler(conn, stopping)`` per connection."""
        listener = Listener(address or self.address, port, handler,
                            self.tls_context() if tls else None, self.stopping)
        self.listeners.append(listener)
        return listener

    def tls_context(self) -> ssl.SSLContext:
        if self._tls_context is None:
            assert self.directory is not None, "TLS needs a directory for the certificate"
            cert, key, _ = make_certificate(self.directory)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
            self._tls_context = context
        return self._tls_context

    def close(self):
        self.stopping.set()
        for listener in self.listeners:
            listener.close()
        self.listeners.clear()


@contextlib.contextmanager
def serving(handlers: dict, port: int):
    """BannerPeers with ``handlers[address]`` on ``port`` of each address, closed after."""
    peers = BannerPeers(next(iter(handlers)))
    try:
        for address, handler in handlers.items():
            peers.serve(handler, port=port, address=address)
        yield peers
    finally:
        peers.close()


# -------------------------------------------------------------------- handlers

def hold(conn: socket.socket, stopping: threading.Event, limit_s: float = HOLD_S):
    """Keep the connection open until the client closes it, the peers stop or time is up."""
    conn.settimeout(0.2)
    deadline = time.monotonic() + limit_s
    while not stopping.is_set() and time.monotonic() < deadline:
        try:
            if not conn.recv(4096):
                return
        except socket.timeout:
            continue
        except OSError:
            return


def greet(data: bytes, then_close: bool = False, pieces: int = 1, gap_s: float = 0.0):
    """Send ``data`` (in ``pieces`` parts ``gap_s`` apart), then close or hold."""
    def handler(conn, stopping):
        size = max(1, -(-len(data) // pieces)) if data else 0
        for start in range(0, len(data), size or 1):
            conn.sendall(data[start:start + size])
            if gap_s:
                time.sleep(gap_s)
        if not then_close:
            hold(conn, stopping)
    return handler


def silent(conn, stopping):
    hold(conn, stopping)


def close_at_once(conn, stopping):
    return


def read_until(conn: socket.socket, marker: bytes, limit: int = 65536) -> bytes:
    """Bytes up to and including ``marker`` (less when the peer closes first)."""
    got = b""
    while marker not in got and len(got) < limit:
        piece = conn.recv(4096)
        if not piece:
            break
        got += piece
    return got


# -------------------------------------------------------------------- scans

def _results(xml_path: Path, script: str) -> dict:
    """{(address, port): ScriptResult} of ``script`` in a scan's XML, "post" for the
    post-scan result, and {("service", address, port): attributes of <service>}."""
    import xml.etree.ElementTree as ET

    from script_support import ScriptResult, structure

    found = {}
    root = ET.parse(xml_path).getroot()
    for host in root.iter("host"):
        address = host.find("address").get("addr")
        for port in host.iter("port"):
            service = port.find("service")
            if service is not None:
                found[("service", address, int(port.get("portid")))] = dict(service.attrib)
            for element in port.iter("script"):
                if element.get("id") == script:
                    found[(address, int(port.get("portid")))] = ScriptResult(
                        element.get("output"), structure(element), "")
    for post in root.iter("postscript"):
        for element in post.iter("script"):
            if element.get("id") == script:
                found["post"] = ScriptResult(element.get("output"), structure(element), "")
    return found


def scan(tool: str, tmp_path: Path, targets, ports, script: str, args: str | None = None,
         extra=(), timeout: int = 120) -> tuple[dict, float, str]:
    """Run ``tool`` ("nmap" or "ours") once; ({(address, port) or "post": ScriptResult},
    seconds taken, stdout)."""
    import shutil
    import subprocess

    from conftest import run_nsecluster

    targets = [targets] if isinstance(targets, str) else list(targets)
    common = ["-sT", "-n", "-Pn", "-p", ",".join(map(str, ports)), *targets,
              "--script", script, *extra]
    if args:
        common += ["--script-args", args]
    xml_path = tmp_path / f"{tool}.xml"
    started = time.monotonic()
    if tool == "nmap":
        nmap = shutil.which("nmap")
        assert nmap, "nmap is required (.ci/setup installs Debian's nmap)"
        done = subprocess.run([nmap, "--unprivileged", *common, "-oX", str(xml_path)],
                              capture_output=True, text=True, timeout=timeout, cwd=tmp_path)
    else:
        done = run_nsecluster("scan", "--unprivileged", *common, "-oX", str(xml_path),
                              timeout=timeout)
    taken = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    script_id = Path(script).stem if script.endswith(".nse") else script
    return _results(xml_path, script_id), taken, done.stdout


def scan_both(tmp_path: Path, *args, parallel: bool = True, **kwargs):
    """(ours, nmap's) as ``scan`` gives them, each in its own directory; run at the same
    time unless ``parallel`` is false (the peers must then serve both at once)."""
    from concurrent.futures import ThreadPoolExecutor

    def one(tool):
        directory = tmp_path / tool
        directory.mkdir(exist_ok=True)
        return scan(tool, directory, *args, **kwargs)

    if not parallel:
        return one("ours"), one("nmap")
    with ThreadPoolExecutor(2) as pool:
        ours, theirs = pool.map(one, ("ours", "nmap"))
    return ours, theirs


# -------------------------------------------------------------------- Redis-like peers

def read_resp_command(conn: socket.socket, buffer: bytearray) -> list[bytes] | None:
    """One request (a RESP array of bulk strings, or an inline line), None at the end."""
    def line():
        while b"\r\n" not in buffer:
            piece = conn.recv(4096)
            if not piece:
                return None
            buffer.extend(piece)
        end = buffer.index(b"\r\n")
        got = bytes(buffer[:end])
        del buffer[:end + 2]
        return got

    first = line()
    if first is None:
        return None
    if not first.startswith(b"*"):
        return first.split()
    words = []
    for _ in range(min(int(first[1:] or 0), 64)):
        header = line()
        if header is None:
            return None
        size = int(header[1:])
        while len(buffer) < size + 2:
            piece = conn.recv(4096)
            if not piece:
                return None
            buffer.extend(piece)
        words.append(bytes(buffer[:size]))
        del buffer[:size + 2]
    return words


def bulk(text: str | bytes) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    return b"$%d\r\n%s\r\n" % (len(data), data)


def array(*items: str | bytes) -> bytes:
    return b"*%d\r\n" % len(items) + b"".join(bulk(item) for item in items)


def _reply(replies: dict, key: str, log: list | None, default: bytes):
    """``replies[key]`` (called when a callable), or ``default``; ``key`` goes to ``log``."""
    if log is not None:
        log.append(key)
    reply = replies.get(key, default)
    return reply() if callable(reply) else reply


def resp_server(replies: dict, log: list | None = None, default: bytes = b"-ERR unknown\r\n",
                most: int = 32, gap_s: float = 0.0):
    """Answer each request with ``replies[" ".join(words).upper()]`` (raw bytes, a callable
    giving them, None to close, or (bytes, "close") to send and close); ``log`` collects
    the requests. At most ``most`` requests a connection; ``gap_s``: send a byte at a time,
    this long apart."""
    def send(conn, data):
        if not gap_s:
            conn.sendall(data)
            return
        for i in range(len(data)):
            conn.sendall(data[i:i + 1])
            time.sleep(gap_s)

    def handler(conn, stopping):
        buffer = bytearray()
        for _ in range(most):
            words = read_resp_command(conn, buffer)
            if words is None:
                return
            reply = _reply(replies, b" ".join(words).decode("latin-1").upper(), log, default)
            if reply is None:
                return
            if isinstance(reply, tuple):  # (data, "close"): send, then close
                send(conn, reply[0])
                return
            send(conn, reply)
    return handler


def line_server(replies: dict, log: list | None = None, default: bytes = b"ERROR\r\n"):
    """Answer each request line (without CRLF) with ``replies[line]`` (raw bytes, a callable
    giving them, or None to close); ``log`` collects the lines."""
    def handler(conn, stopping):
        buffer = bytearray()
        for _ in range(32):
            line = read_line(conn, buffer)
            if line is None:
                return
            reply = _reply(replies, line, log, default)
            if reply is None:
                return
            conn.sendall(reply)
    return handler


def stats(**values) -> bytes:
    return b"".join(b"STAT %s %s\r\n" % (k.encode(), str(v).encode())
                    for k, v in values.items()) + b"END\r\n"


# -------------------------------------------------------------------- a real sshd

def start_sshd(address: str, port: int, directory: Path):
    """OpenSSH's sshd on ``address``:``port`` with a host key made here and no config file;
    returns the process (stop it with ``stop_process``)."""
    import os
    import shutil
    import subprocess

    sshd = "/usr/sbin/sshd"
    assert os.path.exists(sshd), "sshd is required (.ci/setup installs openssh-server)"
    key = directory / f"hostkey-{address}-{port}"
    if not key.exists():
        keygen = shutil.which("ssh-keygen")
        assert keygen, "ssh-keygen is required (openssh-client)"
        subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True,
                       timeout=30)
    os.makedirs("/run/sshd", exist_ok=True)  # its privilege separation directory
    proc = subprocess.Popen([sshd, "-D", "-e", "-f", "/dev/null", "-h", str(key),
                             "-o", f"ListenAddress={address}:{port}", "-o", "PidFile=none"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((address, port), timeout=0.5):
                return proc
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.05)
    stop_process(proc)
    raise AssertionError(f"sshd did not start on {address}:{port}")


# -------------------------------------------------------------------- a memcached on UDP

class UdpMemcached:
    """Answers memcached's UDP frames: ``replies`` maps a command to its answer body, sent
    in ``pieces`` datagrams (``reverse``: last first); ``wrong_id`` answers with another
    request ID; ``garble`` (a seed) sends random frames instead. Stops in ``close()``."""

    def __init__(self, address: str, port: int, replies: dict, pieces: int = 1,
                 reverse: bool = False, wrong_id: bool = False, garble: int | None = None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((address, port))
        self.sock.settimeout(0.2)
        self.replies, self.pieces, self.reverse, self.wrong_id = (replies, pieces, reverse,
                                                                   wrong_id)
        self.garble = None if garble is None else __import__("random").Random(garble)
        self.requests: list[bytes] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        import struct

        while not self.stopping.is_set():
            try:
                data, peer = self.sock.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            if len(data) < 8:
                continue
            request_id = struct.unpack(">H", data[:2])[0]
            command = data[8:].rstrip(b"\r\n").decode("latin-1")
            self.requests.append(command)
            body = self.replies.get(command)
            if self.garble is not None:  # seeded junk: frames with our ID, random fields
                rng = self.garble
                for _ in range(rng.randrange(1, 6)):
                    frame = struct.pack(">HHHH", request_id, rng.randrange(4),
                                        rng.randrange(4), rng.randrange(65536))
                    frame += (body or b"")[:rng.randrange(60)] + bytes(
                        rng.randrange(256) for _ in range(rng.randrange(40)))
                    self.sock.sendto(frame[:rng.randrange(len(frame) + 1)], peer)
                continue
            if body is None:
                continue
            if self.wrong_id:
                request_id ^= 0x5555
            size = max(1, -(-len(body) // self.pieces))
            chunks = [body[i:i + size] for i in range(0, len(body), size)] or [b""]
            frames = [struct.pack(">HHHH", request_id, n, len(chunks), 0) + chunk
                      for n, chunk in enumerate(chunks)]
            for frame in reversed(frames) if self.reverse else frames:
                self.sock.sendto(frame, peer)

    def close(self):
        self.stopping.set()
        self.thread.join(timeout=5)
        self.sock.close()
