"""Raw packets: dnet frames and IP packets (nse-spec §7.1) and pcap capture (§6.2).

Both work for real (worker/nsock/raw.py, worker/nsock/pcap.py) when the process may open
raw sockets; otherwise each call fails with one clear error naming what is missing. Capture
takes both forms: the seed's pcap_open(device, snaplen, promisc, test_function, bpf) with
pcap_register(hash), where a packet reaches the socket only if test_function(length, l2,
l3) returns the registered hash, and Nmap 7's pcap_open(device, snaplen, promisc, bpf),
where every captured packet does.
"""
from __future__ import annotations

import ipaddress

from worker.nse.api.base import NOTHING, PENDING, ScriptError, arg_error, lua_api
from worker.nse.netinfo import link_type
from worker.nse.runtime import text
from worker.nsock import raw

NOT_PRIVILEGED = ("raw packets need a privileged worker (root or CAP_NET_RAW); "
                  "this process is not privileged")
PCAP_ONLY = "not a pcap socket"
MAX_DEVICE_NAME = 32  # nse-spec §7.1: names of 32 bytes or more are refused


def register(engine) -> dict:
    devices = raw.EthernetDevices()
    ethernet: dict[int, str] = {}  # dnet handle -> its open device
    ip_sockets: dict[int, object] = {}  # dnet handle -> raw IP socket(s) by family

    def profile():
        thread = engine.current
        return thread.script.profile if thread is not None else engine.default_profile

    def privilege_error(error: raw.RawError) -> ScriptError:
        if raw.not_permitted(error):
            return ScriptError(NOT_PRIVILEGED)
        return ScriptError(f"failed to open raw socket: {error} (errno {error.errno})")

    @lua_api
    def ethernet_open(handle, device):
        if not isinstance(device, bytes):
            raise arg_error(2, "ethernet_open", f"string expected, got {_lua_type(device)}")
        if len(device) >= MAX_DEVICE_NAME:
            raise ScriptError("device name too long")
        name = text(device)
        if link_type(name) != "ethernet":
            if profile().dnet_7x:
                raise arg_error(2, "ethernet_open", "device is not valid ethernet interface")
            raise ScriptError("device is not valid ethernet interface")
        previous = ethernet.pop(handle, None)
        if previous is not None:
            devices.close(previous)
        try:
            devices.open(name)
        except raw.RawError as error:
            raise privilege_error(error) from None
        ethernet[handle] = name
        return True

    @lua_api
    def ethernet_send(handle, frame):
        device = ethernet.get(handle)
        if device is None:
            raise ScriptError(profile().dnet_not_open_error)
        if not isinstance(frame, bytes):
            raise arg_error(2, "ethernet_send", f"string expected, got {_lua_type(frame)}")
        try:
            sent = devices.send(device, frame)
        except raw.RawError as error:
            sent, failure = -1, str(error)
        else:
            failure = None
        if not profile().dnet_7x:
            return NOTHING
        if failure is None and sent == len(frame):
            return True
        return False, f"eth_send error: {sent}".encode()

    @lua_api
    def ethernet_close(handle):
        device = ethernet.pop(handle, None)
        if device is None:
            if not profile().dnet_7x:
                raise ScriptError(profile().dnet_not_open_error)
            return True
        devices.close(device)
        return True

    @lua_api
    def ip_open(handle):
        if handle not in ip_sockets:
            try:
                ip_sockets[handle] = {4: raw.open_raw_ip(4)}
            except raw.RawError as error:
                raise privilege_error(error) from None
        return True

    @lua_api
    def ip_send(handle, packet, destination=None):
        sockets = ip_sockets.get(handle)
        if sockets is None:
            raise ScriptError("raw socket not open to send")
        if not isinstance(packet, bytes) or not packet:
            raise ScriptError("can't parse ip packet")
        version = packet[0] >> 4
        if version == 4 and len(packet) >= 20:
            header_destination = str(ipaddress.IPv4Address(packet[16:20]))
        elif version == 6 and len(packet) >= 40:
            header_destination = str(ipaddress.IPv6Address(packet[24:40]))
        else:
            raise ScriptError("can't parse ip packet")
        address = _destination(destination) or header_destination
        try:
            family = ipaddress.ip_address(address).version
        except ValueError:  # names are not resolved here (that would block the loop)
            return False, f"not an IP address: {address}".encode()
        if family != version:
            return False, b"destination address family does not match the packet"
        sock = sockets.get(family)
        if sock is None:
            try:
                sock = sockets[family] = raw.open_raw_ip(6)
            except raw.RawError as error:
                raise privilege_error(error) from None
        try:
            raw.send_ip(sock, packet, address)
        except raw.RawError as error:
            return False, f"error while sending: {error} (errno {error.errno})".encode()
        return True

    @lua_api
    def ip_close(handle):
        sockets = ip_sockets.pop(handle, None)
        if sockets is None:
            return False, b"raw socket already closed"
        for sock in sockets.values():
            sock.close()
        return True

    captures = None  # worker/nsock/pcap.Captures, made on the first pcap_open

    @lua_api
    def pcap_open(handle, device, snaplen, promisc, fourth=None, fifth=None):
        nonlocal captures
        from worker.nsock.pcap import Captures

        sockets = engine.socket_api
        sock = sockets.get(handle)
        if sock.pcap or sock.is_open:
            raise ScriptError("socket is already open")
        if not isinstance(device, bytes):
            raise arg_error(2, "pcap_open", f"string expected, got {_lua_type(device)}")
        if not isinstance(snaplen, (int, float)) or isinstance(snaplen, bool):
            raise arg_error(3, "pcap_open", f"number expected, got {_lua_type(snaplen)}")
        if profile().pcap_time:  # Nmap 7's capture API: (device, snaplen, promisc, bpf)
            seed_form = False
            if not isinstance(promisc, bool):
                raise arg_error(4, "pcap_open", f"boolean expected, got {_lua_type(promisc)}")
        else:  # the seed's: (device, snaplen, promisc 1/0, test_function, bpf)
            seed_form = engine.runtime.is_function(fourth)
            if not isinstance(promisc, (bool, int, float)):
                raise arg_error(4, "pcap_open", f"number expected, got {_lua_type(promisc)}")
        test_function, bpf = (fourth, fifth) if seed_form else (None, fourth)
        name = text(device)
        if name != "any" and link_type(name) is None:
            raise ScriptError("bad device name")
        if bpf is not None and not isinstance(bpf, bytes):
            raise arg_error(6 if seed_form else 5, "pcap_open", "string expected")
        if captures is None:
            captures = Captures(engine.loop)
        matcher = _HashMatch(test_function, engine) if seed_form else None
        try:
            subscriber = captures.open(name, max(1, int(snaplen)), bool(promisc),
                                       text(bpf or b""), accept=matcher)
        except raw.RawError as error:
            if raw.not_permitted(error):
                raise ScriptError(f"can't open pcap reader on {name}: {NOT_PRIVILEGED}") \
                    from None
            raise ScriptError(f"can't open pcap reader on {name}: {error}") from None
        sockets.mark_pcap(handle, subscriber)
        return NOTHING

    def subscriber_of(handle):
        subscriber = engine.socket_api.get(handle).pcap
        if not subscriber:
            raise ScriptError(PCAP_ONLY)
        return subscriber

    @lua_api
    def pcap_register(handle, packet_hash=b""):
        subscriber = subscriber_of(handle)
        if subscriber.accept is not None:
            subscriber.accept.wanted = packet_hash if isinstance(packet_hash, bytes) else b""
        return NOTHING

    @lua_api
    def pcap_receive(handle):
        subscriber = subscriber_of(handle)
        sockets = engine.socket_api
        timed = profile().pcap_time
        if subscriber.accept is not None and subscriber.accept.wanted is None:
            return _failed(timed, b"pcap_register must be called before pcap_receive")
        packet = subscriber.next(lambda found: finish(found))
        if packet is not None:
            return _received(timed, packet)
        token = sockets.begin(on_cancel=lambda: setattr(subscriber, "waiter", None))
        timeout_ms = sockets.get(handle).timeout_ms
        timer = None

        def finish(found):
            if timer is not None:
                timer.cancel()
            engine.ops.complete(token, *_received(timed, found))

        def timed_out():
            subscriber.waiter = None
            engine.ops.complete(token, *_failed(timed, b"TIMEOUT"))

        if timeout_ms is not None and timeout_ms >= 0:
            timer = engine.loop.call_later(timeout_ms, timed_out)
        return PENDING, token

    @lua_api
    def pcap_close(handle):
        subscriber_of(handle)
        return engine.socket_api.close(handle)

    return {"ethernet_open": ethernet_open, "ethernet_send": ethernet_send,
            "ethernet_close": ethernet_close, "ip_open": ip_open, "ip_send": ip_send,
            "ip_close": ip_close, "pcap_open": pcap_open, "pcap_register": pcap_register,
            "pcap_receive": pcap_receive, "pcap_close": pcap_close}


class _HashMatch:
    """The seed's packet hash: ``test_function(length, l2, l3)`` against the registered
    string (nothing is delivered before pcap_register)."""

    def __init__(self, test_function, engine):
        self.test_function, self.engine = test_function, engine
        self.wanted: bytes | None = None

    def __call__(self, length, l2, l3) -> bool:
        if self.wanted is None:
            return False
        if self.wanted == b"":
            return True
        try:
            return self.test_function(length, l2, l3) == self.wanted
        except Exception as exc:  # a failing hash function matches nothing
            self.engine.debug(1, f"pcap test function failed: {exc}")
            return False


def _received(timed: bool, packet: tuple) -> tuple:
    length, l2, l3, moment = packet
    return (True, length, l2, l3, moment) if timed else (True, length, l2, l3)


def _failed(timed: bool, reason: bytes) -> tuple:
    return (None, reason) if timed else (None, reason, None, None)


def _destination(value) -> str | None:
    """ip_send's destination: an address string, or a host table's ``ip``."""
    if isinstance(value, bytes):
        return text(value)
    if value is not None and hasattr(value, "__getitem__"):
        ip = value[b"ip"]
        return text(ip) if isinstance(ip, bytes) else None
    return None


def _lua_type(value) -> str:
    if value is None:
        return "no value"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return "table"
