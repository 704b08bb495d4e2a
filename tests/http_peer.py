"""A small threaded HTTP server for tests, on a loopback address and port the test chooses
(port 80 or 8080 on a 127.x address of its own, so both Nmap and nsecluster call the service
"http"). It answers from a table of routes and can also misbehave on purpose: send garbage,
close at once, or stay silent for a while.

    site = Site("127.0.0.31", 80, {"/": page("<title>Hi</title>"), "/robots.txt": ...})
    ...
    site.close()

A route is bytes (a whole raw response), a function ``(request) -> answer``, or a dict
method -> one of those. An answer is bytes, a list of steps (bytes to send, seconds to wait,
None to close) or None (close at once). Unknown paths get ``site.missing`` (a 404)."""
from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Request:
    method: str
    target: str  # as sent: path and query
    version: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    raw: bytes

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]


def response(status: str = "200 OK", headers=(), body: bytes | str = b"",
             content_type: str | None = "text/html", length: bool = True,
             version: str = "HTTP/1.1") -> bytes:
    """A raw response: status line, the given header lines (str or bytes), Content-Type and
    Content-Length unless told otherwise, the body."""
    if isinstance(body, str):
        body = body.encode("latin-1")
    lines = [f"{version} {status}".encode()]
    lines += [h.encode("latin-1") if isinstance(h, str) else h for h in headers]
    if content_type:
        lines.append(f"Content-Type: {content_type}".encode())
    if length:
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def page(body: bytes | str, headers=(), status: str = "200 OK", **kwargs) -> bytes:
    return response(status, headers, body, **kwargs)


def redirect(location: str, status: str = "302 Found", headers=()) -> bytes:
    return response(status, [f"Location: {location}", *headers],
                    body=f"<html><body>Moved to {location}</body></html>")


NOT_FOUND = response("404 Not Found", body="<html><head><title>404 Not Found</title></head>"
                                          "<body>Not here</body></html>")

MAX_REQUEST = 1 << 20
MAX_REQUESTS_PER_CONNECTION = 1000


@dataclass
class Site:
    """One listening socket and its routes. ``mode``: "http" answers from the routes;
    "garbage" sends ``garbage`` bytes to every connection and closes; "close" closes every
    connection at once; "silent" reads and says nothing, closing after ``silent_for``
    seconds."""

    address: str
    port: int
    routes: dict = field(default_factory=dict)
    mode: str = "http"
    missing: bytes = NOT_FOUND
    server_header: str | None = None  # added to every HTTP answer that has none
    garbage: bytes = b"\x00\xff\x13garbage\x80\r\n\x1b[31m\r\n\r\n"
    silent_for: float = 3.0
    idle: float = 5.0  # a keep-alive connection closes after this long without a request
    tls: object = None  # an ssl.SSLContext (server side): the site speaks HTTPS

    def __post_init__(self):
        self.requests: list[Request] = []
        self.connections = 0
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._closed = threading.Event()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((self.address, self.port))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    # ---------------------------------------------------------------------------------------
    def close(self):
        self._closed.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        with self._lock:
            for conn in self._open:
                try:
                    conn.close()
                except OSError:
                    pass
            self._open.clear()
        self._thread.join(5)

    def paths(self, method: str | None = None) -> list[str]:
        return [r.target for r in self.requests if method is None or r.method == method]

    def methods(self) -> list[str]:
        return [r.method for r in self.requests]

    # ---------------------------------------------------------------------------------------
    def _accept(self):
        while not self._closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._open.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket):
        try:
            if self.tls is not None:
                conn.settimeout(5)
                try:
                    tls_conn = self.tls.wrap_socket(conn, server_side=True)
                except (OSError, ValueError):
                    return  # not a TLS client (or a failed handshake)
                with self._lock:
                    self._open.append(tls_conn)
                conn = tls_conn
            if self.mode == "close":
                return
            if self.mode == "garbage":
                conn.settimeout(2)
                try:
                    conn.recv(65536)  # whatever the client says first, if anything
                except OSError:
                    pass
                conn.sendall(self.garbage)
                return
            if self.mode == "silent":
                conn.settimeout(0.2)
                deadline = time.monotonic() + self.silent_for
                while time.monotonic() < deadline and not self._closed.is_set():
                    try:
                        if conn.recv(65536) == b"":
                            return
                    except socket.timeout:
                        continue
                return
            conn.settimeout(self.idle)
            buffer = b""
            for _ in range(MAX_REQUESTS_PER_CONNECTION):
                request, buffer = self._next_request(conn, buffer)
                if request is None:
                    return
                with self._lock:
                    self.requests.append(request)
                if not self._send(conn, self._answer(request)):
                    return
                connection = request.headers.get("connection", "").lower()
                if connection == "close" or (request.version == "HTTP/1.0"
                                             and connection != "keep-alive"):
                    return  # as a real server does
        except OSError:
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass
            with self._lock:
                if conn in self._open:
                    self._open.remove(conn)

    @staticmethod
    def _next_request(conn, buffer):
        while b"\r\n\r\n" not in buffer:
            if len(buffer) > MAX_REQUEST or (buffer and not buffer[:1].isalpha()):
                return None, b""  # not HTTP (a TLS hello, say): close, as servers do
            data = conn.recv(65536)
            if not data:
                return None, b""
            buffer += data
        head, rest = buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            return None, b""
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        try:
            length = max(0, int(headers.get("content-length", "0") or "0"))
        except ValueError:
            length = 0
        if length > MAX_REQUEST:
            return None, b""
        while len(rest) < length:
            data = conn.recv(65536)
            if not data:
                return None, b""
            rest += data
        body, rest = rest[:length], rest[length:]
        raw = head + b"\r\n\r\n" + body
        return Request(parts[0], parts[1], parts[2], headers, body, raw), rest

    def _answer(self, request: Request):
        route = self.routes.get(request.target, self.routes.get(request.path, self.missing))
        if isinstance(route, dict):
            route = route.get(request.method, route.get("*", self.missing))
        answer = route(request) if callable(route) else route
        if request.method == "HEAD" and isinstance(answer, bytes):
            answer = answer.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
        if self.server_header and isinstance(answer, bytes) and answer.startswith(b"HTTP/"):
            head, sep, body = answer.partition(b"\r\n\r\n")
            if b"\r\nserver:" not in head.lower():
                status, _, rest = head.partition(b"\r\n")
                head = status + b"\r\nServer: " + self.server_header.encode() + \
                    (b"\r\n" + rest if rest else b"")
            answer = head + sep + body
        return answer

    def _send(self, conn, answer) -> bool:
        if answer is None:
            return False
        steps = [answer] if isinstance(answer, bytes) else answer
        for step in steps:
            if step is None:
                return False
            if isinstance(step, (int, float)):
                if self._closed.wait(step):
                    return False
            else:
                conn.sendall(step)
        return True
