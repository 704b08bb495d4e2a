"""UDP services for scan tests, run inside a namespace (one process, one selector loop):

    python udp_peer.py ADDRESS [echo:PORT] [dns:PORT] [magic:PORT:HEXBYTES] [from:PORT:SRCPORT]

- echo: answers any datagram (an empty one with "x", so every answer carries data);
- dns: answers only a well-formed DNS query (RFC 1035 header, QR=0, at least one question
  whose name and type/class parse) with REFUSED; anything else, an empty datagram included,
  gets nothing: so only a scanner that sends a real query finds the port open;
- magic: answers only a datagram that is exactly HEXBYTES (decoded);
- from: answers only datagrams sent from source port SRCPORT.

Prints "ready" once every socket is bound; runs until killed (at most an hour).
"""
from __future__ import annotations

import selectors
import socket
import struct
import sys
import time


def dns_answer(query: bytes) -> bytes | None:
    if len(query) < 12:
        return None
    ident, flags, questions = struct.unpack_from("!HHH", query)
    if flags & 0x8000 or questions < 1:
        return None
    offset = 12
    while True:  # the first question's name: labels up to a zero byte, no compression
        if offset >= len(query):
            return None
        length = query[offset]
        if length == 0:
            offset += 1
            break
        if length > 63 or offset + 1 + length > len(query):
            return None
        offset += 1 + length
    if offset + 4 > len(query):
        return None
    question = query[12:offset + 4]
    return struct.pack("!HHHHHH", ident, 0x8000 | (flags & 0x7900) | 5, 1, 0, 0, 0) + question


def main(argv: list[str]) -> None:
    address, specs = argv[0], argv[1:]
    selector = selectors.DefaultSelector()
    for spec in specs:
        kind, port, *rest = spec.split(":")
        sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET,
                             socket.SOCK_DGRAM)
        sock.bind((address, int(port)))
        selector.register(sock, selectors.EVENT_READ, (kind, rest))
    print("ready", flush=True)
    deadline = time.monotonic() + 3600
    while time.monotonic() < deadline:
        for key, _ in selector.select(timeout=1):
            kind, rest = key.data
            data, peer = key.fileobj.recvfrom(65535)
            if kind == "echo":
                answer = data or b"x"
            elif kind == "dns":
                answer = dns_answer(data)
            elif kind == "magic":
                answer = b"ok" if data == bytes.fromhex(rest[0]) else None
            elif kind == "from":
                answer = b"ok" if peer[1] == int(rest[0]) else None
            else:
                answer = None
            if answer is not None:
                key.fileobj.sendto(answer, peer)


if __name__ == "__main__":
    main(sys.argv[1:])
