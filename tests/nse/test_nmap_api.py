"""The nmap module's information, target and port functions, through real scripts, in both
profiles where they differ (nse-spec §5, §8, §11; the seed document)."""
from __future__ import annotations

import pytest
from nse_support import host, port_output, run

from worker.datadir import DataPath
from worker.nse.profile import NMAP7, SEED

PORTRULE = "portrule = function(host, port) return port.number == 22 end\n"


def action_output(tmp_path, body, result=None, **options):
    result = result or host(ports=[(22, "open", "ssh"), (80, "closed", "http")])
    out = run(tmp_path, {"probe": PORTRULE + "action = function(host, port)\n" + body + "\nend"},
              [result], **options)
    return port_output(result, 22).get("probe"), out


def test_levels_and_flags(tmp_path):
    output, _ = action_output(tmp_path, """
        return table.concat({nmap.debugging(), nmap.verbosity(), nmap.timing_level(),
                             tostring(nmap.have_ssl()), tostring(nmap.is_privileged()),
                             nmap.address_family(), nmap.get_ttl(), nmap.get_payload_length(),
                             nmap.version_intensity()}, " ")""",
        debugging=2, verbosity=1, timing_level=4)
    assert output == "2 1 4 true false inet 64 0 7"


def test_verbosity_and_intensity_when_selected_by_name(tmp_path):
    result = host(ports=[(22, "open")])
    run(tmp_path, {"probe": PORTRULE + "action = function() return nmap.verbosity() .. ' ' .."
                                       " nmap.version_intensity() end"},
        [result], attributes={"probe": {"by_name": True}}, verbosity=1)
    assert port_output(result, 22)["probe"] == "2 9"


def test_clocks_and_random_bytes(tmp_path):
    output, _ = action_output(tmp_path, """
        local c, ms = nmap.clock(), nmap.clock_ms()
        local ok, err = pcall(nmap.get_random_bytes, -1)
        return table.concat({math.type(c), math.type(ms), tostring(ms >= c * 1000),
                             #nmap.get_random_bytes(16), tostring(ok), err}, " ")""")
    assert output == ("float float true 16 false "
                      "Invalid length argument to get_random_bytes.")


def test_fetchfile_searches_the_data_directories(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "our-data-file").write_text("x")
    result = host(ports=[(22, "open")])
    out = run(tmp_path, {"probe": PORTRULE + """
        action = function()
          return tostring(nmap.fetchfile("our-data-file")) .. " " ..
                 tostring(nmap.fetchfile("no-such-file"))
        end"""}, [result])
    out.engine.datapath = DataPath((data,))
    result = host(ports=[(22, "open")])
    run(tmp_path, {"probe": PORTRULE + """
        action = function()
          return tostring(nmap.fetchfile("our-data-file")) .. " " ..
                 tostring(nmap.fetchfile("no-such-file"))
        end"""}, [result], engine=out.engine)
    assert port_output(result, 22)["probe"] == f"{data}/our-data-file nil"


def test_resolve_numbers_and_names_without_blocking(tmp_path):
    output, _ = action_output(tmp_path, """
        local ok1, a = nmap.resolve("127.0.0.9")
        local ok2, b = nmap.resolve("localhost", "inet")
        local ok3, c = nmap.resolve("127.0.0.9", "inet6")
        local ok4, err = pcall(nmap.resolve, "x", "bogus")
        return table.concat({tostring(ok1), a[1], tostring(ok2), b[1], tostring(ok3),
                             tostring(c), err}, " ")""")
    assert output == ("true 127.0.0.9 true 127.0.0.1 false Failed to resolve "
                      "bad argument #2 to 'resolve' (invalid option 'bogus')")


def test_log_write_and_dns_servers(tmp_path):
    output, out = action_output(tmp_path, """
        nmap.log_write("stdout", "hello from a script")
        local ok, err = pcall(nmap.log_write, "nowhere", "x")
        return type(nmap.get_dns_servers()) .. " " .. err""")
    assert output == "table bad argument #1 to 'log_write' (invalid option 'nowhere')"
    assert "NSE: hello from a script" in out.log


def test_interfaces(tmp_path):
    output, _ = action_output(tmp_path, """
        local lo = nmap.get_interface_info("lo")
        local ok, err = nmap.get_interface_info("no-such-if0")
        local found = false
        for _, entry in ipairs(nmap.list_interfaces()) do
          if entry.device == "lo" then found = true end
        end
        return table.concat({lo.device, lo.address, lo.netmask, lo.link, lo.up,
                             nmap.get_interface_link("lo"), tostring(ok), err,
                             tostring(found), tostring(nmap.get_interface())}, " ")""")
    assert output == "lo 127.0.0.1 8 loopback up loopback false failed to find interface " \
                     "true nil"


# -- ports -------------------------------------------------------------------------------

def test_get_port_state_both_profiles(tmp_path):
    body = """
        local a = nmap.get_port_state(host, {number = 80, protocol = "tcp"})
        local b = nmap.get_port_state(host, {number = 81, protocol = "tcp"})
        local ok1, c = pcall(nmap.get_port_state, host, {number = "80", protocol = "tcp"})
        local ok2, d = pcall(nmap.get_port_state, host, {number = 80}, "tcp")
        local ok3, e = pcall(nmap.get_port_state, {ip = "10.9.9.9"}, {number = 80,
                                                                       protocol = "tcp"})
        local ok4, f = pcall(nmap.get_port_state, host, {number = 80, protocol = "icmp"})
        local ok5, g = pcall(nmap.get_port_state, {}, {number = 80, protocol = "tcp"})
        return table.concat({a.state, a.service, a.number, tostring(b),
                             ok1 and c.state or c, ok2 and d.state or d, e, f, g}, "|")"""
    seed, _ = action_output(tmp_path, body)
    assert seed == ("closed|http|80|nil|closed|closed|"
                    "bad argument #1 to 'get_port_state' (host is not being processed right now)|"
                    "port 'protocol' field must be \"udp\", \"sctp\" or \"tcp\"|"
                    "host table does not have a 'ip' or 'targetname' field")
    nmap7, _ = action_output(tmp_path, body, profile=NMAP7)
    assert nmap7.split("|")[4] == "port 'number' field must be an integer"


def test_port_table_fields(tmp_path):
    body = """
        local v = port.version
        return table.concat({port.number, port.protocol, port.state, port.reason,
                             port.reason_ttl, port.service, v.name, v.name_confidence,
                             v.service_tunnel, v.service_dtype, #v.cpe,
                             tostring(v.rpc_status)}, " ")"""
    seed, _ = action_output(tmp_path, body)
    assert seed == "22 tcp open syn-ack 0 ssh ssh 3.0 none table 0 untested"
    nmap7, _ = action_output(tmp_path, body, profile=NMAP7)
    assert nmap7.endswith("table 0 nil")  # 7.x has no rpc_* fields


def test_set_port_state_changes_the_record(tmp_path):
    result = host(ports=[(22, "open"), (80, "closed")])
    output, _ = action_output(tmp_path, """
        nmap.set_port_state(host, {number = 80, protocol = "tcp"}, "open")
        nmap.set_port_state(host, {number = 22, protocol = "tcp"}, "open")
        local ok, err = pcall(nmap.set_port_state, host, {number = 80, protocol = "tcp"},
                              "filtered")
        return nmap.get_port_state(host, {number = 80, protocol = "tcp"}).state .. " " ..
               port.state .. " " .. err""", result=result)
    assert output.startswith("open open bad argument #3 to 'set_port_state'")
    states = {p.portid: (p.state, p.reason) for p in result.ports}
    assert states[80] == ("open", "script-set") and states[22] == ("open", "syn-ack")


def test_set_port_version_records_and_validates(tmp_path):
    result = host(ports=[(22, "open"), (23, "open")])
    output, _ = action_output(tmp_path, """
        port.version.name = "ssh"
        port.version.product = "OpenSSH"
        port.version.version = "9.2p1"
        port.version.extrainfo = "protocol 2.0"
        port.version.cpe = {"cpe:/a:openbsd:openssh:9.2p1"}
        nmap.set_port_version(host, port, "hardmatched")
        local other = nmap.get_port_state(host, {number = 23, protocol = "tcp"})
        other.version.name = "telnet"
        nmap.set_port_version(host, other, "tcpwrapped")
        port.version.service_tunnel = "bogus"
        local ok1, e1 = pcall(nmap.set_port_version, host, port)
        port.version = "x"
        local ok2, e2 = pcall(nmap.set_port_version, host, port)
        local after = nmap.get_port_state(host, {number = 22, protocol = "tcp"})
        return after.version.product .. " " .. after.version.name_confidence .. " " ..
               after.service .. " | " .. e1 .. " | " .. e2""", result=result)
    assert output == ("OpenSSH 10.0 ssh | bad argument #2 to 'set_port_version' (invalid "
                      "value for port.version.service_tunnel) | port 'version' field must be "
                      "a table")
    services = {p.portid: p.service for p in result.ports}
    assert (services[22].product, services[22].version, services[22].method,
            services[22].cpe) == ("OpenSSH", "9.2p1", "probed", ["cpe:/a:openbsd:openssh:9.2p1"])
    assert (services[23].name, services[23].conf) == ("telnet", 8)


def test_set_port_version_stores_non_printable_bytes_as_dots_like_nmap(tmp_path):
    result = host(ports=[(22, "open")])
    action_output(tmp_path, """
        port.version.name = "x"
        port.version.product = "a\\nb\\tc\\1d\\127e\\200f"
        port.version.version = "1\\r\\n2"
        nmap.set_port_version(host, port, "hardmatched")
        return "ok" """, result=result)
    service = result.ports[0].service
    assert (service.product, service.version) == ("a.b.c.d.e.f", "1..2")  # as nmap 7.93 stores


def test_get_ports_walks_a_state_in_port_order(tmp_path):
    from worker.protocol import PortRun
    result = host(ports=[(22, "open"), (443, "open"), (80, "open")])
    result.port_runs = [PortRun("tcp", "closed", "conn-refused", 0, ((1, 3), (5, 5)))]
    output, _ = action_output(tmp_path, """
        local found, p = {}, nil
        repeat
          p = nmap.get_ports(host, p, "tcp", "open")
          if p then found[#found + 1] = p.number end
        until not p
        local closed, q = {}, nil
        repeat
          q = nmap.get_ports(host, q, "tcp", "closed")
          if q then closed[#closed + 1] = q.number .. q.state end
        until not q
        return table.concat(found, ",") .. " " .. table.concat(closed, ",")""", result=result)
    assert output == "22,80,443 1closed,2closed,3closed,5closed"


def test_add_targets_collects_new_targets(tmp_path):
    output, out = action_output(tmp_path, """
        local n = nmap.add_targets("127.0.0.5", "127.0.0.6")
        local zero, err = nmap.add_targets("")
        return n .. " " .. zero .. " " .. err .. " " .. nmap.add_targets() .. " " ..
               nmap.new_targets_num()""")
    assert output == "2 0 failed to add new targets. 2 2"
    assert out.engine.new_targets == ["127.0.0.5", "127.0.0.6"]


def test_api_table_covers_the_documented_nmap_module(tmp_path):
    output, _ = action_output(tmp_path, """
        local names = {}
        for k, v in pairs(nmap) do names[#names + 1] = k .. ":" .. type(v) end
        table.sort(names)
        return table.concat(names, " ")""")
    present = dict(item.split(":") for item in output.split())
    seed_api = ["debugging", "have_ssl", "verbosity", "fetchfile", "timing_level",
                "get_port_state", "set_port_state", "set_port_version", "clock_ms",
                "get_interface_link", "new_socket", "new_dnet", "mutex", "new_try"]
    nmap7_api = ["clock", "get_ports", "port_is_excluded", "version_intensity", "add_targets",
                 "new_targets_num", "get_dns_servers", "is_privileged", "resolve",
                 "address_family", "get_interface", "get_interface_info", "list_interfaces",
                 "get_ttl", "get_payload_length", "get_random_bytes", "condvar", "log_write"]
    for name in seed_api + nmap7_api:
        assert present.get(name) == "function", name
    assert present["registry"] == "table" and present["socket"] == "table"
    assert present["dnet"] == "table"


@pytest.mark.parametrize("profile, expected", [
    (SEED, "false device is not valid ethernet interface | false dnet is not valid opened "
           "ethernet interface | false dnet is not valid opened ethernet interface | "
           "false raw socket already closed | false not a pcap socket"),
    (NMAP7, "false bad argument #2 to 'ethernet_open' (device is not valid ethernet "
            "interface) | false dnet ethernet interface is not open | true true | "
            "false raw socket already closed | false not a pcap socket"),
])
def test_dnet_misuse_and_capture_give_each_profiles_errors(tmp_path, profile, expected):
    output, _ = action_output(tmp_path, """
        local dnet = nmap.new_dnet()
        local out = {}
        local function try(...)
          local ok, a = pcall(...)
          out[#out + 1] = tostring(ok) .. " " .. tostring(a)
        end
        try(dnet.ethernet_open, dnet, "lo")
        try(dnet.ethernet_send, dnet, "frame")
        try(dnet.ethernet_close, dnet)
        local closed, why = dnet:ip_close()  -- never opened
        out[#out + 1] = tostring(closed) .. " " .. why
        try(nmap.new_socket().pcap_receive, nmap.new_socket())
        return table.concat(out, " | ")""", profile=profile)
    assert output.startswith(expected)
