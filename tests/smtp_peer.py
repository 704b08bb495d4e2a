"""A small threaded SMTP server for the tests, on a loopback address the test chooses.

``SmtpPeer("127.0.0.44", extensions=[...], help_reply=b"214 ...")`` listens (port 25 by
default): a greeting, then EHLO (the extensions, or an error when ``ehlo`` is False), HELO,
HELP, RSET, NOOP, QUIT, STARTTLS when given a server ``tls_context``; anything else is
"502". ``commands`` records what clients sent;
``close()`` stops the listener and every connection. All waits are bounded.
"""
from __future__ import annotations

from tcp_peer import CommandPeer, Session

DEFAULT_EXTENSIONS = ["PIPELINING", "SIZE 10240000", "VRFY", "ETRN", "STARTTLS",
                      "AUTH PLAIN LOGIN", "ENHANCEDSTATUSCODES", "8BITMIME", "DSN"]
DEFAULT_HELP = (b"214-2.0.0 This is a test mail server\r\n"
                b"214-2.0.0 Topics:\r\n"
                b"214-2.0.0       HELO    EHLO    MAIL    RCPT    DATA\r\n"
                b"214-2.0.0       RSET    NOOP    QUIT    HELP    VRFY\r\n"
                b"214 2.0.0 End of HELP info\r\n")


class SmtpPeer(CommandPeer):
    def __init__(self, address: str, port: int = 25, *,
                 banner: bytes = b"220 mail.test ESMTP ready\r\n",
                 extensions: list[str] | None = None, ehlo: bool = True,
                 help_reply: bytes | None = DEFAULT_HELP, hostname: str = "mail.test",
                 bytewise: bool = False, tls_context=None):
        self.ehlo, self.hostname = ehlo, hostname
        self.extensions = DEFAULT_EXTENSIONS if extensions is None else extensions
        self.help_reply = help_reply
        self.tls_context = tls_context  # an ssl.SSLContext: STARTTLS works
        super().__init__(address, port, banner, bytewise, quit_reply=b"221 2.0.0 Bye\r\n")

    def answer(self, session: Session, command: str, argument: str) -> None:
        if command == "EHLO" and self.ehlo:
            lines = [f"{self.hostname} Hello {argument}", *self.extensions]
            reply = "".join(f"250-{x}\r\n" for x in lines[:-1]) + f"250 {lines[-1]}\r\n"
            self.reply(session, reply.encode("latin-1"))
        elif command == "EHLO":
            self.reply(session, b"502 5.5.2 Error: command not recognized\r\n")
        elif command == "HELO":
            self.reply(session, f"250 {self.hostname}\r\n".encode())
        elif command == "HELP" and self.help_reply is not None:
            self.reply(session, self.help_reply)
        elif command == "STARTTLS" and self.tls_context is not None:
            self.reply(session, b"220 2.0.0 Ready to start TLS\r\n")
            self.start_tls(session, self.tls_context)
        elif command in ("RSET", "NOOP"):
            self.reply(session, b"250 2.0.0 Ok\r\n")
        else:
            self.reply(session, b"502 5.5.2 Error: command not recognized\r\n")
