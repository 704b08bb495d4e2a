"""The threaded TCP server under the tests' peers, and a line reader for their handlers.

``TcpServer("127.0.0.41", 21, handler)`` listens on a loopback address (port 0: any free
port) and runs ``handler(sock)`` in a thread of its own for each connection; the accepted
socket is closed when the handler returns, and an OSError or ValueError (the client went
away, a failed TLS handshake) just ends that connection. ``close()`` stops the listener and
every socket it owns, then waits (bounded) for the threads. ``CommandPeer`` builds on it
for line protocols such as FTP and SMTP.
"""
from __future__ import annotations

import socket
import subprocess
import threading


def close_quietly(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass


def stop_process(proc) -> None:
    """Ask a peer process to stop, then make it; bounded either way."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def read_line(sock: socket.socket, buffer: bytearray) -> str | None:
    """The next line from ``sock`` without its CR LF (latin-1), None once the client closes.
    ``buffer`` keeps what was received past that line, for the next call."""
    while b"\n" not in buffer:
        chunk = sock.recv(4096)
        if not chunk:
            return None
        buffer += chunk
    end = buffer.index(b"\n")
    line = bytes(buffer[:end])
    del buffer[:end + 1]
    return line.rstrip(b"\r").decode("latin-1")


class TcpServer:
    """Listens on ``address``:``port`` and runs ``handler(sock)`` per connection."""

    def __init__(self, address: str, port: int, handler, backlog: int = 32,
                 stopping: threading.Event | None = None, join_s: float = 2.0):
        self.handler = handler
        self.connections = 0  # accepted so far
        self.stopping = stopping if stopping is not None else threading.Event()
        self.join_s = join_s  # how long close() waits for each thread
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((address, port))
        self.listener.listen(backlog)
        self.port = self.listener.getsockname()[1]
        self.spawn(self._accept)

    def spawn(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def own(self, sock: socket.socket) -> socket.socket:
        """Have ``close()`` shut ``sock`` down too; returns it."""
        with self._lock:
            self._sockets.append(sock)
        return sock

    def _accept(self):
        while not self.stopping.is_set():
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return  # the listener was shut down
            self.connections += 1
            self.own(sock)
            self.spawn(self._run, sock)

    def _run(self, sock: socket.socket):
        try:
            self.handler(sock)
        except (OSError, ValueError):
            pass
        finally:
            close_quietly(sock)

    def close(self) -> None:
        self.stopping.set()
        with self._lock:
            sockets, threads = [self.listener, *self._sockets], list(self._threads)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in accept/recv
            except OSError:
                pass
            close_quietly(sock)
        for thread in threads:
            thread.join(timeout=self.join_s)


class Session:
    """One connection of a CommandPeer: its socket (the TLS one after an upgrade) and what
    was received past the last line. Subclasses add what a protocol keeps."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buffer = bytearray()


class CommandPeer(TcpServer):
    """A command-line protocol server (FTP, SMTP): greets with ``banner``, then passes each
    line (at most 200, recorded in ``commands``) to ``answer(session, COMMAND, argument)``
    until the client closes or sends QUIT (answered ``quit_reply``, then closed).
    ``bytewise``: replies go a byte at a time."""

    session_type = Session

    def __init__(self, address: str, port: int, banner: bytes, bytewise: bool,
                 quit_reply: bytes):
        self.banner, self.bytewise, self.quit_reply = banner, bytewise, quit_reply
        self.commands: list[str] = []
        super().__init__(address, port, self._session)

    def answer(self, session: Session, command: str, argument: str) -> None:
        raise NotImplementedError

    def start_tls(self, session: Session, context) -> None:
        """Go on in TLS (``context``: a server ssl.SSLContext)."""
        session.sock = self.own(context.wrap_socket(session.sock, server_side=True))

    def reply(self, session: Session, data: bytes) -> None:
        if not self.bytewise:
            session.sock.sendall(data)
            return
        for i in range(len(data)):
            session.sock.sendall(data[i:i + 1])
            if self.stopping.wait(0.001):  # a millisecond apart, until close()
                return

    def _session(self, sock: socket.socket):
        session = self.session_type(sock)
        try:
            sock.settimeout(15)
            self.reply(session, self.banner)
            for _ in range(200):  # bounded session
                text = read_line(session.sock, session.buffer)
                if text is None:
                    return
                self.commands.append(text)
                command, _, argument = text.partition(" ")
                command = command.upper()
                if command == "QUIT":
                    self.reply(session, self.quit_reply)
                    return
                self.answer(session, command, argument)
        finally:
            close_quietly(session.sock)  # the TLS socket after an upgrade
