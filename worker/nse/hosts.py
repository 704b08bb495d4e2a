"""The hosts of the current host group as scripts see them: host and port tables (nse-spec
§8), and the port list the nmap.*port* functions read and change.
"""
from __future__ import annotations

import ipaddress

from worker.macprefixes import parse_mac
from worker.nse.profile import Profile
from worker.protocol import HostResult, PortResult, Service

INTERESTING = ("open", "open|filtered", "unfiltered")  # states that get portrule threads
_PROTO_ORDER = {"tcp": 0, "udp": 1, "sctp": 2}


class HostContext:
    """One host of the group during one script pass."""

    def __init__(self, target_id: int, result: HostResult, runtime, route=None,
                 deadline_ms: float | None = None):
        self.target_id = target_id
        self.result = result
        self.address = result.address
        self.runtime = runtime
        if route is None:
            from worker.nse.netinfo import route_to
            route = route_to(result.address)
        self.route = route
        self.deadline_ms = deadline_ms
        self.threads = 0
        self._tables: dict[str, object] = {}
        self.registry = runtime.table()  # host.registry: per host, per pass (nse-spec §7.4)

    def timed_out(self) -> bool:
        return self.result.timed_out or self.result.status != "up"

    # -- the host table -----------------------------------------------------------------------
    def lua_table(self, profile: Profile):
        table = self._tables.get(profile.name)
        if table is None:
            table = self._tables[profile.name] = self.runtime.table(self._host_fields(profile))
            table[b"registry"] = self.registry
        return table

    def _host_fields(self, profile: Profile) -> dict:
        r = self.result
        fields = {"ip": r.address, "name": r.ptr_name or "", "reason": r.reason,
                  "reason_ttl": r.reason_ttl, "_Target": self.target_id,
                  "bin_ip": ipaddress.ip_address(r.address).packed}
        if r.targetname:
            fields["targetname"] = r.targetname
        if r.srtt_us is not None:
            fields["times"] = {"srtt": r.srtt_us / 1e6, "rttvar": (r.rttvar_us or 0) / 1e6,
                               "timeout": (r.timeout_us or 0) / 1e6}
        route = self.route
        if route is not None:
            if route.source is not None:
                fields["bin_ip_src"] = ipaddress.ip_address(route.source).packed
            if route.interface is not None:
                fields["interface"] = route.interface
                if route.mtu is not None:
                    fields["interface_mtu"] = route.mtu
            if route.directly_connected is not None:
                fields["directly_connected"] = route.directly_connected
            if route.interface is not None:
                fields.update(_hardware_addresses(r.address, route))
        if r.mac_address is not None:  # what discovery's ARP reply said
            fields["mac_addr"] = parse_mac(r.mac_address)
        return fields

    # -- ports ------------------------------------------------------------------------------
    def script_ports(self) -> list[PortResult]:
        """The ports portrule threads run on, as they are now (nse-spec §4.4)."""
        return sorted((p for p in self.result.ports if p.state in INTERESTING),
                      key=lambda p: (_PROTO_ORDER.get(p.protocol, 9), p.portid))

    def find_port(self, protocol: str, number: int, split: bool = False) -> PortResult | None:
        """The port's record; one inside a bulk run is taken out of it when ``split``."""
        for port in self.result.ports:
            if port.portid == number and port.protocol == protocol:
                return port
        for run in self.result.port_runs:
            if run.protocol != protocol:
                continue
            for low, high in run.ranges:
                if low <= number <= high:
                    port = PortResult(protocol, number, run.state, run.reason, run.reason_ttl)
                    if split:
                        self._take_out_of(run, number)
                        self.result.ports.append(port)
                        self.result.ports.sort(key=lambda p: (_PROTO_ORDER.get(p.protocol, 9),
                                                              p.portid))
                    return port
        return None

    def _take_out_of(self, run, number: int) -> None:
        ranges = []
        for low, high in run.ranges:
            if low <= number <= high:
                if low < number:
                    ranges.append((low, number - 1))
                if number < high:
                    ranges.append((number + 1, high))
            else:
                ranges.append((low, high))
        run.ranges = tuple(ranges)
        if not ranges:
            self.result.port_runs.remove(run)

    def ports_in_order(self, protocol: str, state: str):
        """Every port of ``protocol`` in ``state``, by number (bulk runs included)."""
        numbers = [p.portid for p in self.result.ports
                   if p.protocol == protocol and p.state == state]
        for run in self.result.port_runs:
            if run.protocol == protocol and run.state == state:
                for low, high in run.ranges:
                    numbers.extend(range(low, high + 1))
        return sorted(numbers)

    def port_table(self, port: PortResult, profile: Profile):
        """A fresh port table (nse-spec §8.2). Built straight from bytes: one is made for
        every portrule thread, so this is on the engine's hot path."""
        table_from = self.runtime.lua.table_from
        version = table_from(_version_fields(port.service, profile))
        version[b"cpe"] = table_from([c.encode() for c in port.service.cpe]
                                     if port.service is not None else ())
        table = table_from({b"number": port.portid, b"protocol": _b(port.protocol),
                            b"state": _b(port.state), b"reason": _b(port.reason),
                            b"reason_ttl": port.reason_ttl, b"version": version})
        if port.service is not None:
            table[b"service"] = _b(port.service.name)
        return table


_BYTES: dict[str, bytes] = {}


def _b(text: str) -> bytes:
    """Encoded once: states, reasons, protocols and names repeat across every port."""
    encoded = _BYTES.get(text)
    if encoded is None:
        encoded = text.encode("utf-8", "surrogateescape")
        if len(_BYTES) < 4096:
            _BYTES[text] = encoded
    return encoded


def _version_fields(service: Service | None, profile: Profile) -> dict[bytes, object]:
    # A port the services table does not name is still a table guess (confidence 3).
    fields: dict[bytes, object] = {b"service_tunnel": b"none", b"name_confidence": 3.0,
                                   b"service_dtype": b"table"}
    if service is not None:
        fields[b"name"] = _b(service.name)
        fields[b"name_confidence"] = float(service.conf)
        fields[b"service_dtype"] = _b(service.method)
        if service.tunnel:
            fields[b"service_tunnel"] = _b(service.tunnel)
        for key in ("product", "version", "extrainfo", "hostname", "ostype", "devicetype"):
            value = getattr(service, key)
            if value is not None:
                fields[key.encode()] = value.encode("utf-8", "surrogateescape")
        if service.servicefp is not None:
            fields[b"service_fp"] = service.servicefp.encode("utf-8", "surrogateescape")
    if not profile.os_as_tables:  # the seed's port.version carries the RPC fields
        fields[b"rpc_status"] = b"untested"
    return fields


class HostIndex:
    """The group's hosts, in group order, found the way Nmap finds them (nse-spec §4.1)."""

    def __init__(self, contexts: list[HostContext]):
        self.contexts = contexts
        self._by_target = {c.target_id: c for c in contexts}
        self._by_ip = {}
        self._by_name = {}
        for context in contexts:
            self._by_ip.setdefault(context.address, context)
            if context.result.targetname:
                self._by_name.setdefault(context.result.targetname, context)

    def __iter__(self):
        return iter(self.contexts)

    def find(self, target_id, ip, targetname) -> HostContext | None:
        if isinstance(target_id, int) and target_id in self._by_target:
            return self._by_target[target_id]
        if ip is not None:
            return self._by_ip.get(ip)
        if targetname is not None:
            return self._by_name.get(targetname)
        return None


def version_service(port: PortResult, version: dict, probestate: str,
                    services_name) -> Service:
    """nse-spec §8.3: what set_port_version records, from the script's port.version."""
    name = version.get("name")
    if probestate in ("hardmatched", "softmatched"):
        method, conf = "probed", 10
    elif probestate == "tcpwrapped":
        method, conf = "probed", 8
        name = name or "tcpwrapped"
    else:  # nomatch, incomplete
        method, conf = "table", 3
        name = name or services_name(port.protocol, port.portid)

    def clip(key, limit):
        value = version.get(key)
        return _clean(value)[:limit] if value is not None else None

    return Service(
        name=_clean(name)[:80] if name else (port.service.name if port.service else "unknown"),
        method=method, conf=conf, product=clip("product", 80), version=clip("version", 80),
        extrainfo=clip("extrainfo", 256), hostname=clip("hostname", 80),
        ostype=clip("ostype", 32), devicetype=clip("devicetype", 32),
        tunnel="ssl" if version.get("service_tunnel") == "ssl" else None,
        servicefp=(version.get("service_fp") if probestate != "hardmatched" else None),
        cpe=[_clean(c)[:80] for c in version.get("cpe") or []])


def _clean(value) -> str:
    """Printable text only, as Nmap keeps version strings."""
    return "".join(c if c.isprintable() else " " for c in str(value)).strip()


def _hardware_addresses(address: str, route) -> dict:
    """mac_addr_src for an ethernet interface; mac_addr and mac_addr_next_hop too for a
    directly connected IPv4 target the kernel has resolved (its neighbour table)."""
    from worker.nse.netinfo import interface_mac, neighbour_mac

    own = interface_mac(route.interface)
    if own is None:
        return {}
    fields = {"mac_addr_src": own}
    if route.directly_connected and ":" not in address:
        theirs = neighbour_mac(address, route.interface)
        if theirs is not None:
            fields["mac_addr"] = fields["mac_addr_next_hop"] = theirs
    return fields
