"""Raw frames and IP packets for dnet objects (nse-spec §7.1): an AF_PACKET socket per
ethernet device, shared by every handle that opened it, and raw IP sockets. Sending never
waits: a raw socket's send either goes to the driver queue at once or fails."""
from __future__ import annotations

import errno
import os
import socket

ETH_P_ALL = 0x0003


class RawError(Exception):
    """A raw socket could not be opened or used; ``errno`` says why (EPERM: no privilege)."""

    def __init__(self, message: str, code: int = 0):
        super().__init__(message)
        self.errno = code


class EthernetDevices:
    """Open AF_PACKET sockets by device, counted: a device stays open while a handle uses it."""

    def __init__(self):
        self._open: dict[str, list] = {}  # device -> [socket, users]

    def open(self, device: str) -> None:
        entry = self._open.get(device)
        if entry is not None:
            entry[1] += 1
            return
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        except OSError as exc:
            raise RawError(exc.strerror or str(exc), exc.errno or 0) from None
        try:
            sock.bind((device, 0))
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            raise RawError(exc.strerror or str(exc), exc.errno or 0) from None
        self._open[device] = [sock, 1]

    def send(self, device: str, frame: bytes) -> int:
        sock = self._open[device][0]
        try:
            return sock.send(frame)
        except OSError as exc:
            raise RawError(exc.strerror or str(exc), exc.errno or 0) from None

    def close(self, device: str) -> None:
        entry = self._open.get(device)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] <= 0:
            entry[0].close()
            del self._open[device]


def open_raw_ip(version: int) -> socket.socket:
    """A raw socket that sends whole IP packets (the header included) of IP ``version``."""
    family = socket.AF_INET6 if version == 6 else socket.AF_INET
    try:
        sock = socket.socket(family, socket.SOCK_RAW, socket.IPPROTO_RAW)
        sock.setblocking(False)
        return sock
    except OSError as exc:
        raise RawError(exc.strerror or str(exc), exc.errno or 0) from None


def send_ip(sock: socket.socket, packet: bytes, destination: str) -> int:
    try:
        return sock.sendto(packet, (destination, 0))
    except OSError as exc:
        raise RawError(exc.strerror or str(exc), exc.errno or 0) from None


def not_permitted(error: RawError) -> bool:
    return error.errno in (errno.EPERM, errno.EACCES)


def raw_sockets_allowed() -> bool:
    """Whether this process may open raw sockets (root, or CAP_NET_RAW)."""
    try:
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP).close()
        return True
    except OSError:
        return False


def considered_privileged(mode: str = "auto") -> bool:
    """Nmap's idea of privilege: as told by --privileged/--unprivileged, else by
    $NMAP_PRIVILEGED/$NMAP_UNPRIVILEGED, else whether this process (the worker, in a
    cluster) may open raw sockets."""
    if mode == "auto":
        if os.environ.get("NMAP_UNPRIVILEGED"):
            return False
        if os.environ.get("NMAP_PRIVILEGED"):
            return True
        return raw_sockets_allowed()
    return mode == "privileged"
