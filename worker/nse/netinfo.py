"""How this machine reaches a host: source address, interface, whether it is on-link.

Read from the kernel without sending anything: a UDP socket "connected" to the target picks
the source address (no packet leaves), the interface is the one holding that address, and the
routing table tells whether the target is reached without a gateway.
"""
from __future__ import annotations

import fcntl
import ipaddress
import socket
import struct
from dataclasses import dataclass
from functools import lru_cache

from worker.macprefixes import parse_mac

_SIOCGIFADDR = 0x8915
_SIOCGIFMTU = 0x8921


@dataclass(frozen=True)
class Route:
    source: str | None
    interface: str | None
    mtu: int | None
    directly_connected: bool | None


@lru_cache(maxsize=4096)
def route_to(address: str) -> Route:
    ip = ipaddress.ip_address(address)
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((address, 9))
            source = probe.getsockname()[0]
    except OSError:
        return Route(None, None, None, None)
    interface = _interface_holding(source)
    return Route(source, interface, _mtu(interface) if interface else None,
                 _on_link(ip, source))


@lru_cache(maxsize=64)
def _addresses_by_interface() -> dict[str, str]:
    """address -> interface name, for every IPv4 and IPv6 address of this machine."""
    found: dict[str, str] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _, name in socket.if_nameindex():
            try:
                packed = fcntl.ioctl(sock.fileno(), _SIOCGIFADDR,
                                     struct.pack("256s", name.encode()[:15]))
                found[socket.inet_ntoa(packed[20:24])] = name
            except OSError:
                continue
    try:
        with open("/proc/net/if_inet6") as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 6:
                    found[str(ipaddress.ip_address(bytes.fromhex(fields[0])))] = fields[5]
    except OSError:
        pass
    return found


def local_addresses() -> set[str]:
    """Every address of this machine's interfaces."""
    return set(_addresses_by_interface())


def _interface_holding(source: str) -> str | None:
    name = _addresses_by_interface().get(source)
    if name is None and ipaddress.ip_address(source).is_loopback:
        return "lo"
    return name


def _mtu(interface: str) -> int | None:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            reply = fcntl.ioctl(sock.fileno(), _SIOCGIFMTU,
                                struct.pack("16si12x", interface.encode()[:15], 0))
            return struct.unpack("16si12x", reply)[1]
    except OSError:
        return None


def _on_link(ip, source: str) -> bool | None:
    """No gateway on the route to ``ip`` (a local address is its own link)."""
    if ip.is_loopback or str(ip) == source:
        return True
    if ip.version != 4:
        return None
    best = None
    try:
        with open("/proc/net/route") as f:
            next(f, None)
            for line in f:
                fields = line.split()
                if len(fields) < 8:
                    continue
                dest, gateway, mask = (int(fields[i], 16) for i in (1, 2, 7))
                dest, gateway, mask = (socket.ntohl(v) for v in (dest, gateway, mask))
                if int(ip) & mask == dest and (best is None or mask > best[0]):
                    best = (mask, gateway)
    except (OSError, ValueError):
        return None
    return None if best is None else best[1] == 0


_LINK_TYPES = {1: "ethernet", 772: "loopback", 512: "p2p", 65534: "p2p"}  # ARPHRD_*
_SIOCGIFNETMASK = 0x891B
_SIOCGIFBRDADDR = 0x8919


def _sys(name: str, item: str) -> str | None:
    try:
        with open(f"/sys/class/net/{name}/{item}") as f:
            return f.read().strip()
    except OSError:
        return None


def link_type(name: str) -> str | None:
    """"ethernet", "loopback", "p2p" or "other"; None for no such interface."""
    kind = _sys(name, "type")
    if kind is None or not kind.isdigit():
        return None
    return _LINK_TYPES.get(int(kind), "other")


def _ipv4_ioctl(name: str, request: int) -> str | None:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            packed = fcntl.ioctl(sock.fileno(), request, struct.pack("256s", name.encode()[:15]))
            return socket.inet_ntoa(packed[20:24])
    except OSError:
        return None


def _entries(name: str) -> list[dict]:
    """One table per address of interface ``name`` (nse-spec §5 get_interface_info)."""
    link = link_type(name)
    if link is None:
        return []
    base = {"device": name, "shortname": name.split(":")[0], "link": link,
            "up": "up" if _sys(name, "operstate") in ("up", "unknown") else "down"}
    mtu = _sys(name, "mtu")
    if mtu and mtu.isdigit():
        base["mtu"] = int(mtu)
    mac = _sys(name, "address")
    if link == "ethernet" and mac:
        base["mac"] = parse_mac(mac)
    entries = []
    address = _ipv4_ioctl(name, _SIOCGIFADDR)
    if address is not None:
        entry = dict(base, address=address, family=4)
        mask = _ipv4_ioctl(name, _SIOCGIFNETMASK)
        if mask is not None:
            entry["netmask"] = ipaddress.ip_network(f"0.0.0.0/{mask}").prefixlen
        if link == "ethernet":
            broadcast = _ipv4_ioctl(name, _SIOCGIFBRDADDR)
            if broadcast is not None:
                entry["broadcast"] = broadcast
        entries.append(entry)
    try:
        with open("/proc/net/if_inet6") as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 6 and fields[5] == name:
                    entries.append(dict(base, family=6, netmask=int(fields[2], 16),
                                        address=str(ipaddress.ip_address(
                                            bytes.fromhex(fields[0])))))
    except OSError:
        pass
    return entries


def interface_mac(name: str) -> bytes | None:
    """The hardware address of ethernet interface ``name``."""
    if link_type(name) != "ethernet":
        return None
    mac = _sys(name, "address")
    return parse_mac(mac) if mac else None


_ARP_COMPLETE = 0x2


def neighbour_mac(address: str, interface: str) -> bytes | None:
    """The hardware address the kernel's neighbour table holds for IPv4 ``address`` on
    ``interface`` (after any connection to it, the kernel has resolved it), or None."""
    try:
        with open("/proc/net/arp") as f:
            next(f, None)  # the column titles
            for line in f:
                fields = line.split()
                if (len(fields) >= 6 and fields[0] == address and fields[5] == interface
                        and int(fields[2], 16) & _ARP_COMPLETE):
                    return parse_mac(fields[3])
    except (OSError, ValueError):
        return None
    return None


def interface_info(name: str, family: int) -> dict | None:
    for entry in _entries(name):
        if entry["family"] == family:
            return {k: v for k, v in entry.items() if k != "family"}
    return None


def interface_ipv4(name: str) -> tuple[str, int] | None:
    """(address, prefix length) of interface ``name``'s IPv4 address, or None."""
    info = interface_info(name, 4)
    if info is None or "address" not in info:
        return None
    return info["address"], int(info.get("netmask", 32))


def list_interfaces() -> list[dict]:
    return [{k: v for k, v in entry.items() if k != "family"}
            for _, name in socket.if_nameindex() for entry in _entries(name)]
