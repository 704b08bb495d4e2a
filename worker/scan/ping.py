"""Privileged host discovery on the event loop, as Nmap does it as root (IPv4).

Which probes a target gets (``ping_plan``):
- a target on this machine (127/8, one of our own addresses, or anything when -e names a
  loopback device) gets none: it is up, ``localhost-response``;
- a target on a directly connected Ethernet segment gets one ARP request; the reply is
  ``arp-response`` and carries the host's hardware address; no reply, the host is down;
- any other target gets Nmap's default set: ICMP echo request, TCP SYN to 443, TCP ACK to 80,
  ICMP timestamp request. The first answer from the host itself puts it up, with Nmap's reason
  (``echo-reply``, ``syn-ack``, ``reset``, ``timestamp-reply``) and the answer's IP TTL. An ICMP
  error from a router is not an answer from the host.

The packets and the reading of answers are plain functions (no I/O); ``PingProber`` sends
them through raw sockets (ICMP and TCP, the kernel adds the IP header; an AF_PACKET socket per
interface for ARP) and matches what comes back, UltraScan deciding timing and retries.
"""
from __future__ import annotations

import functools
import ipaddress
import random
import socket
import struct
from dataclasses import dataclass
from typing import NamedTuple

from worker.macprefixes import parse_mac
from worker.nse.netinfo import (
    interface_ipv4,
    interface_mac,
    link_type,
    local_addresses,
    route_to,
)
from worker.nsock.loop import EventLoop
from worker.scan.packets import ACK, RST, SYN, UNREACH_REASONS, checksum, tcp_segment
from worker.scan.prober import RawProber, received
from worker.scan.ultra import Probe, UltraScan

ETH_P_IP, ETH_P_ARP = 0x0800, 0x0806
_BROADCAST = b"\xff" * 6
_SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)
_SOL_PACKET, _PACKET_ADD_MEMBERSHIP, _PACKET_MR_PROMISC = 263, 1, 1
_ICMP_ECHO_REPLY, _ICMP_UNREACH, _ICMP_ECHO, _ICMP_TIME_EXCEEDED = 0, 3, 8, 11
_ICMP_TIMESTAMP, _ICMP_TIMESTAMP_REPLY = 13, 14
LOCALHOST_REASON = "localhost-response"


class PingProbe(NamedTuple):
    """One kind of discovery probe: what UltraScan schedules as a host's "port"."""

    kind: str  # "arp", "icmp-echo", "icmp-timestamp", "tcp-syn", "tcp-ack"
    port: int = 0  # the TCP destination port


ARP_PROBE = PingProbe("arp")
# Nmap's default probes for a privileged IPv4 ping, in the order Nmap sends them.
DEFAULT_IP_PROBES = (PingProbe("icmp-echo"), PingProbe("tcp-syn", 443),
                     PingProbe("tcp-ack", 80), PingProbe("icmp-timestamp"))


# --------------------------------------------------------------------------------------------
# Who gets which probes


@dataclass(frozen=True, slots=True)
class PingRoute:
    """How discovery reaches one target: from which address, out of which interface."""

    source: str | None
    interface: str | None
    directly_connected: bool
    local: bool  # this machine itself: no probe needed


class PingRoutes:
    """Routes and probes for a host group's targets. What they depend on of this machine (its
    own addresses, the -e interface's address, interfaces' link types) is read once, not once
    per target."""

    def __init__(self, interface: str | None = None):
        self.interface = interface
        self._link_types: dict[str, str | None] = {}
        if interface is None:
            self._local = local_addresses()
            return
        # -e: everything leaves through that interface, from its address
        own = interface_ipv4(interface)
        self._source = own[0] if own else None
        self._network = (ipaddress.ip_network(f"{own[0]}/{own[1]}", strict=False)
                         if own else None)

    def link_type(self, interface: str) -> str | None:
        if interface not in self._link_types:
            self._link_types[interface] = link_type(interface)
        return self._link_types[interface]

    def route(self, address: str) -> PingRoute:
        ip = ipaddress.ip_address(address)
        interface = self.interface
        if interface is None:
            route = route_to(address)
            local = ip.is_loopback or address in self._local or route.interface == "lo"
            return PingRoute(route.source, route.interface, bool(route.directly_connected),
                             local)
        if self.link_type(interface) == "loopback":
            return PingRoute(self._source, interface, True, True)
        if self._network is None:
            return PingRoute(None, interface, False, False)
        return PingRoute(self._source, interface, ip in self._network, False)

    def probes(self, route: PingRoute) -> tuple[PingProbe, ...]:
        if route.local:
            return ()
        if (route.directly_connected and route.interface
                and self.link_type(route.interface) == "ethernet"):
            return (ARP_PROBE,)
        return DEFAULT_IP_PROBES


# --------------------------------------------------------------------------------------------
# Packets (no I/O)


def icmp_message(icmp_type: int, ident: int, sequence: int) -> bytes:
    """An echo request (no payload, as Nmap's) or a timestamp request (zero timestamps)."""
    body = b"\0" * 12 if icmp_type == _ICMP_TIMESTAMP else b""
    header = struct.pack("!BBHHH", icmp_type, 0, 0, ident, sequence)
    return header[:2] + struct.pack("!H", checksum(header + body)) + header[4:] + body


def arp_request(source_mac: bytes, source_ip: bytes, target_ip: bytes) -> bytes:
    """A broadcast Ethernet frame asking who has ``target_ip`` (RFC 826)."""
    arp = struct.pack("!HHBBH6s4s6s4s", 1, ETH_P_IP, 6, 4, 1, source_mac, source_ip,
                      b"\0" * 6, target_ip)
    frame = _BROADCAST + source_mac + struct.pack("!H", ETH_P_ARP) + arp
    return frame + b"\0" * (60 - len(frame))  # the minimum Ethernet frame, padded


def read_arp_reply(frame: bytes) -> tuple[bytes, bytes] | None:
    """(sender IPv4 address, sender hardware address) of an ARP reply frame, else None."""
    if len(frame) < 42 or frame[12:14] != b"\x08\x06":
        return None
    htype, ptype, hlen, plen, oper = struct.unpack_from("!HHBBH", frame, 14)
    if htype != 1 or ptype != ETH_P_IP or hlen != 6 or plen != 4 or oper != 2:
        return None
    return frame[28:32], frame[22:28]


class Answer(NamedTuple):
    target: bytes  # the probed address, packed
    key: tuple  # which probe it answers (see PingProber._key)
    reason: str
    ttl: int
    from_target: bool  # the probed host itself answered (not a router's error message)


def read_ip_answer(packet: bytes) -> Answer | None:
    """What an IPv4 packet received on a raw ICMP or TCP socket answers, if anything."""
    if len(packet) < 20 or packet[0] >> 4 != 4:
        return None
    header = (packet[0] & 0x0F) * 4
    ttl, protocol, source = packet[8], packet[9], packet[12:16]
    if protocol == socket.IPPROTO_TCP:
        if len(packet) < header + 14:
            return None
        their_port, our_port = struct.unpack_from("!HH", packet, header)
        flags = packet[header + 13]
        if flags & SYN and flags & ACK:
            reason = "syn-ack"
        elif flags & RST:
            reason = "reset"
        else:
            return None
        return Answer(source, ("tcp", our_port, their_port), reason, ttl, True)
    if protocol != socket.IPPROTO_ICMP or len(packet) < header + 8:
        return None
    icmp_type, code = packet[header], packet[header + 1]
    if icmp_type in (_ICMP_ECHO_REPLY, _ICMP_TIMESTAMP_REPLY):
        ident = struct.unpack_from("!H", packet, header + 4)[0]
        kind = "icmp-echo" if icmp_type == _ICMP_ECHO_REPLY else "icmp-timestamp"
        reason = "echo-reply" if icmp_type == _ICMP_ECHO_REPLY else "timestamp-reply"
        return Answer(source, (kind, ident), reason, ttl, True)
    if icmp_type not in (_ICMP_UNREACH, _ICMP_TIME_EXCEEDED):
        return None
    # An error message quotes the IP header and first 8 bytes of the probe it answers.
    inner = packet[header + 8:]
    if len(inner) < 20:
        return None
    inner_header = (inner[0] & 0x0F) * 4
    if len(inner) < inner_header + 8:
        return None
    target = inner[16:20]
    if inner[9] == socket.IPPROTO_TCP:
        our_port, their_port = struct.unpack_from("!HH", inner, inner_header)
        key = ("tcp", our_port, their_port)
    elif inner[9] == socket.IPPROTO_ICMP and inner[inner_header] in (_ICMP_ECHO, _ICMP_TIMESTAMP):
        kind = "icmp-echo" if inner[inner_header] == _ICMP_ECHO else "icmp-timestamp"
        key = (kind, struct.unpack_from("!H", inner, inner_header + 4)[0])
    else:
        return None
    reason = (UNREACH_REASONS.get(code, "unreach") if icmp_type == _ICMP_UNREACH
              else "time-exceeded")
    return Answer(target, key, reason, ttl, source == target)


# --------------------------------------------------------------------------------------------
# The prober


_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_TIMESTAMP_SPACE = socket.CMSG_SPACE(16)


def _receive_time(ancillary) -> int:
    """Nanoseconds of a packet's arrival from its SCM_TIMESTAMPNS message (0 without)."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(data) >= 16:
            seconds, nanoseconds = struct.unpack_from("qq", data)
            return seconds * 1_000_000_000 + nanoseconds
    return 0


def _drain(sockets, receive) -> list:
    """What ``receive(sock)`` reads from each socket, a burst at most, without waiting."""
    return [got for sock in sockets for got in received(functools.partial(receive, sock))]


class HostAnswer(NamedTuple):
    reason: str
    ttl: int
    mac: bytes | None


def _bind_to_device(sock: socket.socket, interface: str, source: str | None) -> None:
    sock.setsockopt(socket.SOL_SOCKET, _SO_BINDTODEVICE, interface.encode())
    if source is not None:
        sock.bind((source, 0))


class PingProber(RawProber):
    """Drives one discovery UltraScan whose "ports" are PingProbes; host keys are addresses.
    ``answers`` holds, for every host found up, the reason, TTL and (ARP) hardware address."""

    def __init__(self, loop: EventLoop, scan: UltraScan, routes: dict[str, PingRoute],
                 interface: str | None = None, spoof_mac: bytes | None = None):
        super().__init__(loop, scan)
        self.routes = routes
        self.interface = interface
        self.spoof_mac = spoof_mac
        self.answers: dict[str, HostAnswer] = {}
        self.ident = random.randint(1, 0xFFFF)
        self.syn_port = random.randint(33000, 60998)
        self.ack_port = self.syn_port + 1
        self._sequence = 0
        self._packed: dict[str, bytes] = {}
        self._macs: dict[str, bytes] = {}  # interface -> our hardware address on it
        self._ip_sockets: dict[int, socket.socket] = {}  # protocol -> raw socket
        self._arp_sockets: dict[str, socket.socket] = {}  # interface -> AF_PACKET socket
        self._opened: list[socket.socket] = []

    # -- sockets ----------------------------------------------------------------------------
    def _ip_socket(self, protocol: int) -> socket.socket:
        sock = self._ip_sockets.get(protocol)
        if sock is None:
            sock = self._ip_sockets[protocol] = self._opening(
                socket.AF_INET, protocol, self._setup_ip, self._ip_readable)
        return sock

    def _setup_ip(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        if self.interface is not None:
            own = interface_ipv4(self.interface)
            _bind_to_device(sock, self.interface, own[0] if own else None)

    def _arp_socket(self, interface: str) -> socket.socket:
        sock = self._arp_sockets.get(interface)
        if sock is None:
            def setup(sock):
                sock.bind((interface, ETH_P_ARP))
                if self.spoof_mac is not None:  # replies go to the spoofed address: take them
                    index = socket.if_nametoindex(interface)
                    sock.setsockopt(_SOL_PACKET, _PACKET_ADD_MEMBERSHIP,
                                    struct.pack("iHH8s", index, _PACKET_MR_PROMISC, 0, b""))

            sock = self._arp_sockets[interface] = self._opening(
                socket.AF_PACKET, socket.htons(ETH_P_ARP), setup, self._arp_readable)
        return sock

    def _opening(self, family: int, protocol: int, setup, on_read) -> socket.socket:
        """A non-blocking raw socket, set up and watched; closed again if setting up fails."""
        sock = socket.socket(family, socket.SOCK_RAW, protocol)
        try:
            sock.setblocking(False)
            setup(sock)
        except OSError:
            sock.close()
            raise
        self._opened.append(sock)
        self.loop.watch(sock.fileno(), on_read=on_read)
        return sock

    def run(self) -> None:
        try:
            self._open_sockets()  # before any probe's clock starts: opening takes milliseconds
            super().run()
        finally:
            for sock in self._opened:
                self.loop.forget(sock.fileno())
                sock.close()
            self._opened.clear()

    def _open_sockets(self) -> None:
        """A socket that cannot open here (e.g. a device that went away) fails again at its
        first send, where the probe is reported like any send error."""
        kinds = {probe.kind for host in self.scan.hosts for probe in host.pending}
        opening = []
        if "arp" in kinds:
            interfaces = {self.routes[host.key].interface for host in self.scan.hosts
                          if ARP_PROBE in host.pending}
            opening += [functools.partial(self._arp_socket, name) for name in interfaces]
        if kinds & {"icmp-echo", "icmp-timestamp"}:
            opening.append(functools.partial(self._ip_socket, socket.IPPROTO_ICMP))
        if kinds & {"tcp-syn", "tcp-ack"}:
            opening.append(functools.partial(self._ip_socket, socket.IPPROTO_TCP))
        for open_socket in opening:
            try:
                open_socket()
            except OSError:
                pass

    # -- sending ----------------------------------------------------------------------------
    def _target(self, address: str) -> bytes:
        packed = self._packed.get(address)
        if packed is None:
            packed = self._packed[address] = socket.inet_aton(address)
        return packed

    def _interface_mac(self, interface: str) -> bytes:
        mac = self._macs.get(interface)
        if mac is None:
            mac = self._macs[interface] = interface_mac(interface) or b"\0" * 6
        return mac

    def _wait_key(self, probe: Probe) -> tuple[bytes, tuple]:
        """(target, what the answer carries): read_ip_answer's key, or ("arp",)."""
        ping: PingProbe = probe.port
        if ping.kind == "tcp-syn":
            key = ("tcp", self.syn_port, ping.port)
        elif ping.kind == "tcp-ack":
            key = ("tcp", self.ack_port, ping.port)
        elif ping.kind == "arp":
            key = ("arp",)
        else:
            key = (ping.kind, self.ident)
        return (self._target(probe.host.key), key)

    def _launch(self, probe: Probe) -> None:
        address = probe.host.key
        route = self.routes[address]
        ping: PingProbe = probe.port
        theirs = self._target(address)
        try:
            if ping.kind == "arp":
                own_mac = self.spoof_mac or self._interface_mac(route.interface)
                source = socket.inet_aton(route.source or "0.0.0.0")
                self._arp_socket(route.interface).send(arp_request(own_mac, source, theirs))
            elif ping.kind.startswith("icmp"):
                self._sequence = (self._sequence + 1) & 0xFFFF
                icmp_type = _ICMP_ECHO if ping.kind == "icmp-echo" else _ICMP_TIMESTAMP
                self._ip_socket(socket.IPPROTO_ICMP).sendto(
                    icmp_message(icmp_type, self.ident, self._sequence), (address, 0))
            else:
                ours = socket.inet_aton(route.source or "0.0.0.0")
                syn = ping.kind == "tcp-syn"
                number = random.getrandbits(32)  # answers are matched by ports, not by it
                segment = tcp_segment(ours, theirs, self.syn_port if syn else self.ack_port,
                                      ping.port, SYN if syn else ACK,
                                      number if syn else 0, 0 if syn else number)
                self._ip_socket(socket.IPPROTO_TCP).sendto(segment, (address, 0))
        except (BlockingIOError, InterruptedError):
            self.scan.requeue(probe)  # the send queue is full: a moment later
            self.loop.call_later(1, self._queue_pump)
            return
        except OSError as exc:  # e.g. no route: the kernel answers for the network
            reason = "net-unreach" if exc.errno == 101 else "host-unreach"
            self._reply(probe, ("filtered", reason))
            return
        self._await_answer(probe)

    # -- answers ----------------------------------------------------------------------------
    def _ip_readable(self) -> None:
        """Answers from every raw socket at once, in the order they reached the machine (the
        kernel's receive time), so the first answer wins whichever socket it came in on."""
        if self._closed:
            return
        received = [(_receive_time(ancillary), order, packet) for order, (packet, ancillary, _, _)
                    in enumerate(_drain(self._ip_sockets.values(),
                                        lambda sock: sock.recvmsg(576, _TIMESTAMP_SPACE)))]
        received.sort()
        answered = False
        for _, _, packet in received:
            answer = read_ip_answer(packet)
            if answer is None:
                continue
            if answer.from_target:
                outcome, ttl = ("open", answer.reason), answer.ttl
            else:  # a router's error: not the host's answer
                outcome, ttl = ("filtered", answer.reason), 0
            answered |= self._answer((answer.target, answer.key), outcome, ttl)
        if answered:
            self._queue_pump()

    def _arp_readable(self) -> None:
        if self._closed:
            return
        answered = False
        for frame in _drain(self._arp_sockets.values(), lambda sock: sock.recv(128)):
            reply = read_arp_reply(frame)
            if reply is not None:
                answered |= self._answer((reply[0], ("arp",)), ("open", "arp-response"), 0,
                                         reply[1])
        if answered:
            self._queue_pump()

    def _answered(self, probe: Probe, outcome: tuple[str, str], ttl: int,
                  mac: bytes | None) -> None:
        host = probe.host
        if host.up and host.key not in self.answers:  # the answer that put the host up
            self.answers[host.key] = HostAnswer(outcome[1], ttl, mac)


# --------------------------------------------------------------------------------------------
# One host group's privileged discovery


def raw_ping_wanted(options) -> bool:
    """Discovery is privileged when this process may send raw packets and is not told
    otherwise (--unprivileged, $NMAP_UNPRIVILEGED); with -Pn, a raw port scan (-sS, -sU)
    still ARPs its directly connected hosts (their frames need the address)."""
    from worker.nsock.raw import considered_privileged, raw_sockets_allowed
    from worker.protocol import needs_raw_sockets

    if not options.host_discovery and not needs_raw_sockets(options):
        return False
    return considered_privileged(options.privilege) and raw_sockets_allowed()


class RawPing:
    """Privileged discovery of a host group's IPv4 targets (IPv6 ones are left to the caller).
    ``scanned``: the targets this decided on; ``up``: those found up, in the given order."""

    def __init__(self, options, loop: EventLoop, addresses: list[str]):
        self.options = options
        arp_only = not options.host_discovery
        self.scanned: set[str] = set()
        self.local: set[str] = set()
        self.routes: dict[str, PingRoute] = {}
        self._order = [a for a in addresses if ":" not in a]
        targets = []
        routes = PingRoutes(options.interface)
        for address in self._order:
            route = routes.route(address)
            probes = routes.probes(route)
            if arp_only and probes != (ARP_PROBE,):
                continue
            self.scanned.add(address)
            if route.local:
                self.local.add(address)
                continue
            self.routes[address] = route
            targets.append((address, probes))
        self.scan = UltraScan(targets, options.timing, loop.now_ms(), discovery=True)
        spoof = parse_mac(options.spoof_mac) if options.spoof_mac else None
        self.prober = PingProber(loop, self.scan, self.routes, options.interface, spoof)

    def run(self) -> None:
        if self.scan.hosts:
            self.prober.run()

    @property
    def up(self) -> list[str]:
        answered = {h.key for h in self.scan.hosts if h.up and not h.timed_out}
        return [a for a in self._order if a in self.local or a in answered]

    def describe(self, host) -> None:
        """Put what discovery learned into an up host's HostResult: reason, TTL, MAC."""
        answer = self.prober.answers.get(host.address)
        if answer is not None:
            host.reason, host.reason_ttl = answer.reason, answer.ttl
            if answer.mac is not None:
                from worker.macprefixes import format_mac, mac_prefixes

                host.mac_address = format_mac(answer.mac)
                host.mac_vendor = mac_prefixes(self.options.datadir).vendor(answer.mac)
        elif host.address in self.local and self.options.host_discovery:
            host.reason, host.reason_ttl = LOCALHOST_REASON, 0
