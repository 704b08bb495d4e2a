"""Host and port functions: get_port_state, get_ports, set_port_state, set_port_version,
add_targets, new_targets_num (nse-spec §5, §8; the seed's 3-argument get_port_state too).
"""
from __future__ import annotations

from worker.nse.api.base import NOTHING, ScriptError, lua_api
from worker.nse.hosts import version_service
from worker.nse.runtime import text

PROTOCOL_ERROR = 'port \'protocol\' field must be "udp", "sctp" or "tcp"'
STATES = ("open", "filtered", "unfiltered", "closed", "open|filtered", "closed|filtered")
PROBESTATES = ("hardmatched", "softmatched", "nomatch", "tcpwrapped", "incomplete")


_PRINTABLE = bytes(b if 0x20 <= b < 0x7f else 0x2E for b in range(256))

def register(engine) -> dict:
    def profile():
        thread = engine.current
        return thread.script.profile if thread is not None else None

    def find_host(host, function: str):
        if not engine.runtime.is_table(host):
            raise ScriptError("host table does not have a 'ip' or 'targetname' field")
        ip, name = host[b"ip"], host[b"targetname"]
        if ip is None and name is None:
            raise ScriptError("host table does not have a 'ip' or 'targetname' field")
        found = engine.hosts.find(host[b"_Target"], text(ip) if ip is not None else None,
                                  text(name) if name is not None else None) \
            if engine.hosts is not None else None
        if found is None:
            raise ScriptError(f"bad argument #1 to '{function}' (host is not being "
                              f"processed right now)")
        return found

    def port_key(port, protocol=None):
        """(protocol, number) from a port table; the seed's separate protocol argument and
        numeric strings are accepted under the seed profile."""
        if not engine.runtime.is_table(port):
            raise ScriptError("port 'number' field must be an integer")
        number = port[b"number"]
        seed = profile() is not None and profile().port_number_strings
        if seed and isinstance(number, bytes) and number.strip().isdigit():
            number = int(number)
        if isinstance(number, float) and number.is_integer():
            number = int(number)
        if not isinstance(number, int) or isinstance(number, bool):
            raise ScriptError("port 'number' field must be an integer")
        proto = port[b"protocol"]
        if seed and protocol is not None:  # the seed's get_port_state(host, port, protocol)
            proto = protocol
        if not isinstance(proto, bytes):
            raise ScriptError("port 'protocol' field must be a string")
        if text(proto) not in ("tcp", "udp", "sctp"):
            raise ScriptError(PROTOCOL_ERROR)
        return text(proto), number

    @lua_api
    def get_port_state(host, port, protocol=None):
        context = find_host(host, "get_port_state")
        proto, number = port_key(port, protocol)
        found = context.find_port(proto, number)
        if found is None:
            return None
        return context.port_table(found, profile() or engine.default_profile)

    @lua_api
    def get_ports(host, port, protocol, state):
        context = find_host(host, "get_ports")
        if not isinstance(protocol, bytes) or text(protocol) not in ("tcp", "udp", "sctp"):
            raise ScriptError(PROTOCOL_ERROR)
        if not isinstance(state, bytes) or text(state) not in STATES:
            raise ScriptError(f"bad argument #4 to 'get_ports' (invalid option "
                              f"'{text(state)}')")
        after = -1
        if port is not None:
            after = port_key(port, protocol)[1]
        for number in context.ports_in_order(text(protocol), text(state)):
            if number > after:
                found = context.find_port(text(protocol), number)
                return context.port_table(found, profile() or engine.default_profile)
        return None

    @lua_api
    def set_port_state(host, port, state):
        context = find_host(host, "set_port_state")
        proto, number = port_key(port)
        if state not in (b"open", b"closed"):
            raise ScriptError("bad argument #3 to 'set_port_state' (invalid option "
                              f"'{text(state) if isinstance(state, bytes) else state}')")
        found = context.find_port(proto, number)
        if found is None or found.state == text(state):
            return NOTHING
        found = context.find_port(proto, number, split=True)
        found.state, found.reason, found.reason_ttl = text(state), "script-set", 0
        return NOTHING

    def printable(value) -> str:
        """As Nmap stores version fields: each byte outside printable ASCII becomes '.'."""
        if not isinstance(value, bytes):
            return text(value)
        return value.translate(_PRINTABLE).decode("ascii")

    @lua_api
    def set_port_version(host, port, probestate=b"hardmatched"):
        context = find_host(host, "set_port_version")
        proto, number = port_key(port)
        probestate = text(probestate) if probestate is not None else "hardmatched"
        if probestate not in PROBESTATES:
            raise ScriptError(f"bad argument #3 to 'set_port_version' (invalid option "
                              f"'{probestate}')")
        version = port[b"version"]
        if not engine.runtime.is_table(version):
            raise ScriptError("port 'version' field must be a table")
        fields = {}
        for key in ("name", "product", "version", "extrainfo", "hostname", "ostype",
                    "devicetype", "service_fp", "service_tunnel"):
            value = version[key.encode()]
            if value is not None:
                fields[key] = printable(value)
        if fields.get("service_tunnel") not in (None, "none", "ssl"):
            raise ScriptError("bad argument #2 to 'set_port_version' (invalid value for "
                              "port.version.service_tunnel)")
        cpe = version[b"cpe"]
        if cpe is not None:
            if not engine.runtime.is_table(cpe):
                raise ScriptError("port.version 'cpe' field must be a table")
            fields["cpe"] = [text(v) for _, v in sorted(cpe.items()) if isinstance(v, bytes)]
        found = context.find_port(proto, number, split=True)
        if found is None:
            return NOTHING
        found.service = version_service(found, fields, probestate, engine.service_name)
        return NOTHING

    @lua_api
    def add_targets(*targets):
        if not targets:
            return len(engine.new_targets)
        added = 0
        for target in targets:
            if not isinstance(target, bytes) or not target.strip() or b" " in target.strip():
                return (added, b"failed to add new targets.") if added == 0 else added
            engine.new_targets.append(text(target).strip())
            engine.new_targets_total += 1
            added += 1
        return added

    @lua_api
    def new_targets_num():
        return engine.new_targets_total

    return {"get_port_state": get_port_state, "get_ports": get_ports,
            "set_port_state": set_port_state, "set_port_version": set_port_version,
            "add_targets": add_targets, "new_targets_num": new_targets_num}
