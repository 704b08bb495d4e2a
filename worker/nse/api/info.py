"""Runtime information: levels, clock, data files, names, interfaces, logging (nse-spec §5)."""
from __future__ import annotations

import ipaddress
import os
import socket
import time

from worker.nse.api.base import PENDING, ScriptError, lua_api
from worker.nse.runtime import text
from worker.scan import probes


def register(engine) -> dict:
    options = lambda: engine.options  # noqa: E731 -- read at call time: scans reconfigure

    @lua_api
    def debugging():
        return options().debugging

    @lua_api
    def verbosity():
        thread = engine.current
        bonus = 1 if thread is not None and thread.script.by_name else 0
        return options().verbosity + bonus  # nse-spec §2.7: +1 when selected by name

    @lua_api
    def timing_level():
        return options().timing_level

    @lua_api
    def have_ssl():
        return True

    @lua_api
    def is_privileged():
        return options().privileged

    @lua_api
    def address_family():
        return b"inet6" if options().address_family == 6 else b"inet"

    @lua_api
    def version_intensity():
        thread = engine.current
        if thread is not None and thread.script.by_name:
            return 9
        intensity = options().script_args.get("script-intensity")
        if isinstance(intensity, str) and intensity.strip().lstrip("-").isdigit():
            return int(intensity)
        return options().version_intensity

    @lua_api
    def clock():
        return time.time()

    @lua_api
    def clock_ms():
        return float(int(time.time() * 1000) + 1)  # milliseconds, rounded up, a float

    @lua_api
    def get_random_bytes(count=None):
        if not isinstance(count, int) or isinstance(count, bool):
            raise ScriptError("bad argument #1 to 'get_random_bytes' (number expected)")
        if count < 0:
            raise ScriptError("Invalid length argument to get_random_bytes.")
        return os.urandom(count)

    @lua_api
    def fetchfile(name=None):
        if not isinstance(name, bytes):
            raise ScriptError("bad argument #1 to 'fetchfile' (string expected)")
        found = engine.datapath.find(text(name)) if engine.datapath is not None else None
        return str(found).encode() if found is not None else None

    @lua_api
    def resolve(name=None, family=b"unspec"):
        if not isinstance(name, bytes):
            raise ScriptError("bad argument #1 to 'resolve' (string expected)")
        families = {b"inet": socket.AF_INET, b"inet6": socket.AF_INET6,
                    b"unspec": socket.AF_UNSPEC}
        if family not in families:
            raise ScriptError(f"bad argument #2 to 'resolve' (invalid option "
                              f"'{text(family)}')")

        def answer(addresses):
            if not addresses:
                return False, b"Failed to resolve"
            return True, engine.runtime.lua_value(addresses)

        host = text(name)
        try:  # a numeric address needs no lookup
            address = ipaddress.ip_address(host)
        except ValueError:
            token = engine.ops.begin(engine.current.id)
            engine.lookups.resolve(host, families[family],
                                   lambda found: engine.ops.complete(token, *answer(found)))
            return PENDING, token
        wanted = {socket.AF_INET: 4, socket.AF_INET6: 6}.get(families[family])
        return answer([str(address)] if wanted in (None, address.version) else [])

    @lua_api
    def get_dns_servers():
        from worker.dns import RESOLV_CONF_PATH, parse_resolv_conf

        try:
            with open(RESOLV_CONF_PATH, encoding="utf-8", errors="replace") as f:
                servers = parse_resolv_conf(f.read())
        except OSError:
            servers = []
        return engine.runtime.lua_value(servers)

    @lua_api
    def log_write(where=None, message=None):
        if where not in (b"stdout", b"stderr"):
            raise ScriptError("bad argument #1 to 'log_write' (invalid option "
                              f"'{text(where) if isinstance(where, bytes) else where}')")
        engine.log(f"NSE: {text(message) if message is not None else ''}")
        return None

    @lua_api
    def log_stderr(message):
        engine.log(text(message))

    @lua_api
    def get_ttl():
        return 64

    @lua_api
    def get_payload_length():
        return 0

    @lua_api
    def port_is_excluded(port=None, protocol=None):
        """Whether nmap-service-probes' Exclude directive names this port: always false
        without -sV, as in Nmap. (Nmap also applies an Exclude item without T:/U: only to the
        protocols scanned; here it names TCP and UDP both.)"""
        if isinstance(port, float) and port.is_integer():
            port = int(port)
        if not isinstance(port, int) or isinstance(port, bool):
            raise ScriptError("bad argument #1 to 'port_is_excluded' (number expected)")
        if protocol not in (b"tcp", b"udp", b"sctp"):
            raise ScriptError("bad argument #2 to 'port_is_excluded' (invalid option "
                              f"'{text(protocol) if isinstance(protocol, bytes) else protocol}')")
        if not options().version_scan:
            return False
        found = engine.datapath.find(probes.FILE_NAME) if engine.datapath is not None else None
        try:
            database = probes.probe_database(path=found or probes.OWN_PROBE_FILE)
        except probes.ProbeFileError as exc:
            raise ScriptError(str(exc)) from None
        return (text(protocol).upper(), port & 0xFFFF) in database.excluded

    @lua_api
    def get_interface():
        interface = options().interface
        return interface.encode() if interface is not None else None

    @lua_api
    def get_interface_link(name=None):
        from worker.nse import netinfo

        link = netinfo.link_type(text(name)) if isinstance(name, bytes) else None
        return link.encode() if link in ("ethernet", "loopback", "p2p") else None

    @lua_api
    def get_interface_info(name=None):
        from worker.nse import netinfo

        if not isinstance(name, bytes):
            raise ScriptError("bad argument #1 to 'get_interface_info' (string expected)")
        info = netinfo.interface_info(text(name), options().address_family)
        if info is None:
            return False, b"failed to find interface"
        return engine.runtime.lua_value(info)

    @lua_api
    def list_interfaces():
        from worker.nse import netinfo

        return engine.runtime.lua_value(netinfo.list_interfaces())

    @lua_api
    def thread_info():
        """(script id, label, is worker, host ip, port number, port protocol) of the caller."""
        thread = engine.current
        if thread is None:
            return None
        host = thread.host.address.encode() if thread.host is not None else None
        port = thread.port
        return (thread.script.id.encode(), thread.label(options().debugging).encode(),
                thread.is_worker, host, port.portid if port is not None else None,
                port.protocol.encode() if port is not None else None)

    return {name: value for name, value in locals().items()
            if callable(value) and getattr(value, "__wrapped__", None) is not None}
