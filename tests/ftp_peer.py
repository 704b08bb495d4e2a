"""A small threaded FTP server for the tests, on a loopback address the test chooses.

``FtpPeer("127.0.0.41", anonymous=True, listing=[...])`` listens (port 21 by default) and
serves each connection in its own thread: USER/PASS (anonymous login allowed or refused),
SYST, STAT, PASV, EPSV, LIST/NLST over the data connection, TYPE, PWD, CWD, QUIT, and
AUTH TLS when given a server ``tls_context``.
Every reply is configurable; ``commands`` records what clients sent. ``close()`` stops the
listener and every connection. All waits are bounded.
"""
from __future__ import annotations

import socket
import threading

DEFAULT_LISTING = [
    "-rw-r--r--   1 ftp      ftp            31 Mar 28  2001 .banner",
    "drwxr-xr-x   2 ftp      ftp          4096 Jan 14  2022 bin",
    "drwxrwxrwx   2 ftp      ftp          4096 Jul 19 18:48 incoming",
    "-rw-rw-rw-   1 ftp      ftp          1024 Aug  5  2004 open.txt",
    "drwxr-xr-x   2 ftp      ftp          4096 Aug  5  2004 pub",
]


class FtpPeer:
    def __init__(self, address: str, port: int = 21, *, anonymous: bool = True,
                 banner: bytes = b"220 Test FTP server ready\r\n",
                 listing: list[str] | None = None,
                 syst: bytes = b"215 UNIX Type: L8\r\n",
                 stat: bytes | None = None,
                 passive: str = "both", login_reply: bytes | None = None,
                 raw_listing: bytes | None = None, bytewise: bool = False,
                 tls_context=None):
        self.address, self.anonymous, self.banner = address, anonymous, banner
        self.listing = DEFAULT_LISTING if listing is None else listing
        self.syst, self.passive, self.bytewise = syst, passive, bytewise
        self.raw_listing = raw_listing  # sent as is instead of the LIST lines
        self.tls_context = tls_context  # an ssl.SSLContext: AUTH TLS works
        self.stat = stat if stat is not None else (
            b"211-FTP server status:\r\n"
            b"     Connected to 127.0.0.1\r\n"
            b"     Logged in as ftp\r\n"
            b"     TYPE: ASCII\r\n"
            b"     Session timeout in seconds is 300\r\n"
            b"211 End of status\r\n")
        self.login_reply = login_reply or b"230 Login successful.\r\n"
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

    # -- plumbing ---------------------------------------------------------------------------

    def _spawn(self, target, *args):
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _own(self, sock: socket.socket) -> socket.socket:
        with self._lock:
            self._sockets.append(sock)
        return sock

    def _accept(self):
        while not self._stop.is_set():
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            self._own(sock)
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

    # -- the protocol -----------------------------------------------------------------------

    def _data_listener(self) -> socket.socket:
        data = self._own(socket.socket())
        data.bind((self.address, 0))
        data.listen(1)
        data.settimeout(10)
        return data

    def _serve(self, sock: socket.socket):
        buffer = b""
        user = None
        data_listener = None
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
                if command == "USER":
                    user = argument
                    if argument in ("anonymous", "ftp") and not self.anonymous:
                        self._send(sock, b"530 This FTP server does not allow anonymous "
                                         b"logins.\r\n")
                    else:
                        self._send(sock, b"331 Please specify the password.\r\n")
                elif command == "PASS":
                    if user in ("anonymous", "ftp") and self.anonymous:
                        self._send(sock, self.login_reply)
                    else:
                        self._send(sock, b"530 Login incorrect.\r\n")
                elif command == "SYST":
                    self._send(sock, self.syst)
                elif command == "STAT" and not argument:
                    self._send(sock, self.stat)
                elif command == "PASV" and self.passive in ("both", "pasv"):
                    data_listener = self._data_listener()
                    number = data_listener.getsockname()[1]
                    a, b, c, d = self.address.split(".")
                    self._send(sock, f"227 Entering Passive Mode ({a},{b},{c},{d},"
                                     f"{number // 256},{number % 256}).\r\n".encode())
                elif command == "EPSV" and self.passive in ("both", "epsv"):
                    data_listener = self._data_listener()
                    number = data_listener.getsockname()[1]
                    self._send(sock, f"229 Entering Extended Passive Mode "
                                     f"(|||{number}|)\r\n".encode())
                elif command in ("LIST", "NLST"):
                    if data_listener is None:
                        self._send(sock, b"425 Use PORT or PASV first.\r\n")
                        continue
                    self._send(sock, b"150 Here comes the directory listing.\r\n")
                    try:
                        peer, _ = data_listener.accept()
                        self._own(peer)
                        lines = self.listing if command == "LIST" else [
                            entry.split()[-1] for entry in self.listing]
                        if self.raw_listing is not None and command == "LIST":
                            peer.sendall(self.raw_listing)
                        else:
                            peer.sendall(b"".join(x.encode("latin-1") + b"\r\n"
                                                  for x in lines))
                        peer.close()
                    except OSError:
                        pass
                    data_listener.close()
                    data_listener = None
                    self._send(sock, b"226 Directory send OK.\r\n")
                elif command == "AUTH" and self.tls_context is not None:
                    self._send(sock, b"234 AUTH TLS OK.\r\n")
                    sock = self.tls_context.wrap_socket(sock, server_side=True)
                    self._own(sock)
                elif command == "TYPE":
                    self._send(sock, b"200 Switching to Binary mode.\r\n")
                elif command == "PWD":
                    self._send(sock, b'257 "/" is the current directory\r\n')
                elif command == "CWD":
                    self._send(sock, b"250 Directory successfully changed.\r\n")
                elif command == "QUIT":
                    self._send(sock, b"221 Goodbye.\r\n")
                    return
                else:
                    self._send(sock, b"500 Unknown command.\r\n")
        except OSError:
            pass
        finally:
            try:
                sock.close()
            except OSError:
                pass
