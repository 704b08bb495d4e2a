"""A small threaded SMTP server for the tests, on a loopback address the test chooses.

``SmtpPeer("127.0.0.44", extensions=[...], help_reply=b"214 ...")`` listens (port 25 by
default): a greeting, then EHLO (the extensions, or an error when ``ehlo`` is False), HELO,
HELP, RSET, NOOP, QUIT, STARTTLS when given a server ``tls_context``; anything else is
"502". ``commands`` records what clients sent;
``close()`` stops the listener and every connection. All waits are bounded.
"""
from __future__ import annotations

import socket
import threading

DEFAULT_EXTENSIONS = ["PIPELINING", "SIZE 10240000", "VRFY", "ETRN", "STARTTLS",
                      "AUTH PLAIN LOGIN", "ENHANCEDSTATUSCODES", "8BITMIME", "DSN"]
DEFAULT_HELP = (b"214-2.0.0 This is a test mail server\r\n"
                b"214-2.0.0 Topics:\r\n"
                b"214-2.0.0       HELO    EHLO    MAIL    RCPT    DATA\r\n"
                b"214-2.0.0       RSET    NOOP    QUIT    HELP    VRFY\r\n"
                b"214 2.0.0 End of HELP info\r\n")


class SmtpPeer:
    def __init__(self, address: str, port: int = 25, *,
                 banner: bytes = b"220 mail.test ESMTP ready\r\n",
                 extensions: list[str] | None = None, ehlo: bool = True,
                 help_reply: bytes | None = DEFAULT_HELP, hostname: str = "mail.test",
                 bytewise: bool = False, tls_context=None):
        self.banner, self.ehlo, self.hostname, self.bytewise = banner, ehlo, hostname, bytewise
        self.extensions = DEFAULT_EXTENSIONS if extensions is None else extensions
        self.help_reply = help_reply
        self.tls_context = tls_context  # an ssl.SSLContext: STARTTLS works
        self.commands: list[str] = []
        self._stop = threading.Event()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((address, port))
        self.listener.listen(32)
        self.port = self.listener.getsockname()[1]
        self._spawn(self._accept)

    def _spawn(self, target, *args):
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept(self):
        while not self._stop.is_set():
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                self._sockets.append(sock)
            self._spawn(self._serve, sock)

    def close(self):
        self._stop.set()
        for sock in [self.listener, *self._sockets]:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in accept/recv
            except OSError:
                pass
            try:
                sock.close()
            except OSError:
                pass
        for thread in self._threads:
            thread.join(timeout=2)

    def _send(self, sock, data: bytes):
        if self.bytewise:
            for i in range(len(data)):
                sock.sendall(data[i:i + 1])
                if self._stop.wait(0.001):
                    return
        else:
            sock.sendall(data)

    def _serve(self, sock: socket.socket):
        buffer = b""
        try:
            sock.settimeout(15)
            self._send(sock, self.banner)
            for _ in range(200):  # bounded session
                while b"\n" not in buffer:
                    chunk = sock.recv(4096)
                    if not chunk:
                        return
                    buffer += chunk
                line, _, buffer = buffer.partition(b"\n")
                text = line.rstrip(b"\r").decode("latin-1")
                self.commands.append(text)
                command, _, argument = text.partition(" ")
                command = command.upper()
                if command == "EHLO" and self.ehlo:
                    lines = [f"{self.hostname} Hello {argument}", *self.extensions]
                    reply = "".join(f"250-{x}\r\n" for x in lines[:-1]) + f"250 {lines[-1]}\r\n"
                    self._send(sock, reply.encode("latin-1"))
                elif command == "EHLO":
                    self._send(sock, b"502 5.5.2 Error: command not recognized\r\n")
                elif command == "HELO":
                    self._send(sock, f"250 {self.hostname}\r\n".encode())
                elif command == "HELP" and self.help_reply is not None:
                    self._send(sock, self.help_reply)
                elif command == "STARTTLS" and self.tls_context is not None:
                    self._send(sock, b"220 2.0.0 Ready to start TLS\r\n")
                    sock = self.tls_context.wrap_socket(sock, server_side=True)
                    with self._lock:
                        self._sockets.append(sock)
                elif command in ("RSET", "NOOP"):
                    self._send(sock, b"250 2.0.0 Ok\r\n")
                elif command == "QUIT":
                    self._send(sock, b"221 2.0.0 Bye\r\n")
                    return
                else:
                    self._send(sock, b"502 5.5.2 Error: command not recognized\r\n")
        except OSError:
            pass
        finally:
            try:
                sock.close()
            except OSError:
                pass
