"""Raw packets: dnet frames and IP packets (nse-spec §7.1); pcap capture (§6.2).

dnet sends for real through worker/nsock/raw.py, when the process may open raw sockets;
otherwise each call fails with one clear error naming what is missing. Capture (pcap_*)
is not available yet and says so.
"""
from __future__ import annotations

import ipaddress

from worker.nse.api.base import NOTHING, ScriptError, arg_error, lua_api
from worker.nse.netinfo import link_type
from worker.nse.runtime import text
from worker.nsock import raw

NOT_PRIVILEGED = ("raw packets need a privileged worker (root or CAP_NET_RAW); "
                  "this process is not privileged")
NO_CAPTURE = "raw packet capture is not available in this nsecluster version"
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

    def refuse_capture(*_args):
        raise ScriptError(NO_CAPTURE)

    api = {"ethernet_open": ethernet_open, "ethernet_send": ethernet_send,
           "ethernet_close": ethernet_close, "ip_open": ip_open, "ip_send": ip_send,
           "ip_close": ip_close}
    for name in ("pcap_open", "pcap_register", "pcap_receive", "pcap_close"):
        api[name] = lua_api(refuse_capture)
    return api


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
