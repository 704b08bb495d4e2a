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

from tcp_peer import CommandPeer, Session

DEFAULT_LISTING = [
    "-rw-r--r--   1 ftp      ftp            31 Mar 28  2001 .banner",
    "drwxr-xr-x   2 ftp      ftp          4096 Jan 14  2022 bin",
    "drwxrwxrwx   2 ftp      ftp          4096 Jul 19 18:48 incoming",
    "-rw-rw-rw-   1 ftp      ftp          1024 Aug  5  2004 open.txt",
    "drwxr-xr-x   2 ftp      ftp          4096 Aug  5  2004 pub",
]


class FtpSession(Session):
    user: str | None = None  # the last USER argument
    data_listener: socket.socket | None = None  # after PASV or EPSV, until LIST or NLST


class FtpPeer(CommandPeer):
    session_type = FtpSession

    def __init__(self, address: str, port: int = 21, *, anonymous: bool = True,
                 banner: bytes = b"220 Test FTP server ready\r\n",
                 listing: list[str] | None = None,
                 syst: bytes = b"215 UNIX Type: L8\r\n",
                 stat: bytes | None = None,
                 passive: str = "both", login_reply: bytes | None = None,
                 raw_listing: bytes | None = None, bytewise: bool = False,
                 tls_context=None):
        self.address, self.anonymous = address, anonymous
        self.listing = DEFAULT_LISTING if listing is None else listing
        self.syst, self.passive = syst, passive
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
        super().__init__(address, port, banner, bytewise, quit_reply=b"221 Goodbye.\r\n")

    def _data_listener(self) -> socket.socket:
        data = self.own(socket.socket())
        data.bind((self.address, 0))
        data.listen(1)
        data.settimeout(10)
        return data

    def _send_listing(self, session: FtpSession, command: str):
        self.reply(session, b"150 Here comes the directory listing.\r\n")
        try:
            peer, _ = session.data_listener.accept()
            self.own(peer)
            lines = self.listing if command == "LIST" else [
                entry.split()[-1] for entry in self.listing]
            if self.raw_listing is not None and command == "LIST":
                peer.sendall(self.raw_listing)
            else:
                peer.sendall(b"".join(x.encode("latin-1") + b"\r\n" for x in lines))
            peer.close()
        except OSError:
            pass
        session.data_listener.close()
        session.data_listener = None
        self.reply(session, b"226 Directory send OK.\r\n")

    def answer(self, session: FtpSession, command: str, argument: str) -> None:
        if command == "USER":
            session.user = argument
            if argument in ("anonymous", "ftp") and not self.anonymous:
                self.reply(session, b"530 This FTP server does not allow anonymous "
                                    b"logins.\r\n")
            else:
                self.reply(session, b"331 Please specify the password.\r\n")
        elif command == "PASS":
            if session.user in ("anonymous", "ftp") and self.anonymous:
                self.reply(session, self.login_reply)
            else:
                self.reply(session, b"530 Login incorrect.\r\n")
        elif command == "SYST":
            self.reply(session, self.syst)
        elif command == "STAT" and not argument:
            self.reply(session, self.stat)
        elif command == "PASV" and self.passive in ("both", "pasv"):
            session.data_listener = self._data_listener()
            number = session.data_listener.getsockname()[1]
            a, b, c, d = self.address.split(".")
            self.reply(session, f"227 Entering Passive Mode ({a},{b},{c},{d},"
                                f"{number // 256},{number % 256}).\r\n".encode())
        elif command == "EPSV" and self.passive in ("both", "epsv"):
            session.data_listener = self._data_listener()
            number = session.data_listener.getsockname()[1]
            self.reply(session, f"229 Entering Extended Passive Mode "
                                f"(|||{number}|)\r\n".encode())
        elif command in ("LIST", "NLST"):
            if session.data_listener is None:
                self.reply(session, b"425 Use PORT or PASV first.\r\n")
            else:
                self._send_listing(session, command)
        elif command == "AUTH" and self.tls_context is not None:
            self.reply(session, b"234 AUTH TLS OK.\r\n")
            self.start_tls(session, self.tls_context)
        elif command == "TYPE":
            self.reply(session, b"200 Switching to Binary mode.\r\n")
        elif command == "PWD":
            self.reply(session, b'257 "/" is the current directory\r\n')
        elif command == "CWD":
            self.reply(session, b"250 Directory successfully changed.\r\n")
        else:
            self.reply(session, b"500 Unknown command.\r\n")
