"""Real protocol peers for the tests: a small UDP DNS server.

In-process: ``DnsServer(address, {"2.0.0.127.in-addr.arpa": "two.test"})`` answers in a thread.
In a network namespace: ``python tests/peers.py dns ADDRESS PORT QNAME=PTRNAME ...`` prints
"ready" once bound and serves until killed.
"""
from __future__ import annotations

import socket
import struct
import sys
import threading


def encode_name(name: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in name.split(".") if p) + b"\0"


def reply_for(query: bytes, names: list[str], rcode: int = 0, compress: bool = True) -> bytes:
    """A response to ``query`` with one PTR answer per name (or none, with ``rcode``)."""
    query_id = struct.unpack_from("!H", query)[0]
    question = query[12:]
    header = struct.pack("!HHHHHH", query_id, 0x8180 | rcode, 1, len(names), 0, 0)
    answers = b""
    for name in names:
        owner = b"\xc0\x0c" if compress else question[:-4]
        rdata = encode_name(name)
        answers += owner + struct.pack("!HHIH", 12, 1, 300, len(rdata)) + rdata
    return header + question + answers


def question_name(query: bytes) -> str:
    labels, offset = [], 12
    while offset < len(query) and query[offset]:
        labels.append(query[offset + 1:offset + 1 + query[offset]].decode("ascii", "replace"))
        offset += 1 + query[offset]
    return ".".join(labels)


class DnsServer:
    """Answers PTR queries for the names it knows, NXDOMAIN for everything else (A and AAAA
    included, so name lookups fail fast); names in ``silent`` get no reply at all."""

    def __init__(self, address: str, names: dict[str, str], silent=(), port: int = 0):
        self.names, self.silent = names, set(silent)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((address, port))
        self.port = self.sock.getsockname()[1]
        self.queries: list[str] = []
        self.thread = threading.Thread(target=self.serve, daemon=True)

    def start(self) -> "DnsServer":
        self.thread.start()
        return self

    def serve(self) -> None:
        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            if len(data) < 12:
                continue
            qname = question_name(data)
            self.queries.append(qname)
            if qname in self.silent:
                continue
            if qname in self.names:
                self.sock.sendto(reply_for(data, [self.names[qname]]), peer)
            else:
                self.sock.sendto(reply_for(data, [], rcode=3), peer)

    def close(self) -> None:
        self.sock.close()


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[0] != "dns":
        print("usage: peers.py dns ADDRESS PORT [QNAME=PTRNAME ...]", file=sys.stderr)
        return 2
    names = dict(item.split("=", 1) for item in argv[3:])
    server = DnsServer(argv[1], names, port=int(argv[2]))
    print("ready", flush=True)
    server.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
