"""NSE socket objects through real scripts, real Lua and real peers on loopback, in both
profiles (nse-spec §6, §4.6, §11 items 8-15; the seed's "Network I/O API").

Expected strings come from nmap 7.93 running the same probe scripts against the same kind of
peers; ``test_same_answers_as_nmap`` keeps checking a long probe against the installed nmap.
Where the seed and Nmap 7 differ, each profile gets its own expectation.
"""
from __future__ import annotations

import hashlib
import importlib.util
import re
import time
from pathlib import Path

import pytest
from nse_support import host, port_output, run

from worker.nse.api.sockets import lua_number_text, trace_text
from worker.nse.profile import NMAP7, SEED

_spec = importlib.util.spec_from_file_location(
    "nsock_socket_peers", Path(__file__).resolve().parent.parent / "nsock" / "test_sockets.py")
_peers_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_peers_module)
Peers = _peers_module.Peers
closed_port = _peers_module.closed_port
closed_udp_port = _peers_module.closed_udp_port

PRELUDE = r"""
local nmap = require "nmap"
local stdnse = require "stdnse"
portrule = function() return true end
local out = {}
local function show(v)
  if type(v) == "string" then
    return '"' .. v:gsub('[%c"\\]', function(c) return "\\" .. c:byte() end) .. '"'
  end
  return tostring(v)
end
local function P(...)
  local t = table.pack(...)
  for i = 1, t.n do t[i] = show(t[i]) end
  out[#out + 1] = table.concat(t, " ")
end
local function L(label, ...)  -- a labelled line: the label unquoted
  P(...)
  out[#out] = label .. (select("#", ...) > 0 and " " .. out[#out] or "")
end
"""


@pytest.fixture
def peers(tmp_path):
    owned = Peers(tmp_path)
    yield owned
    owned.close()


def run_body(tmp_path, body: str, profile=SEED, ports=(), **options) -> list[str]:
    """Run ``body`` as the action of a portrule script against 127.0.0.1 (its first port is
    ``port``); returns the P(...) lines."""
    number = ports[0] if ports else closed_port()
    result = host("127.0.0.1", ports=[(p, "open") for p in (ports or (number,))])
    source = PRELUDE + "action = function(host, port)\n" + body + \
        "\nreturn table.concat(out, '\\n')\nend\n"
    name = f"t_{profile.name}"
    ran = run(tmp_path, {name: source}, [result], profile=profile, **options)
    output = port_output(result, number).get(name)
    assert output is not None, ran.lines()
    assert not output.startswith("ERROR"), ran.lines()
    return output.split("\n")


def run_both(tmp_path, body, **kwargs) -> dict:
    return {profile.name: run_body(tmp_path / profile.name, body, profile, **kwargs)
            for profile in (SEED, NMAP7)
            if (tmp_path / profile.name).mkdir() is None}


def strip_position(line: str) -> str:
    return re.sub(r'"[^"]*?\.nse:\d+: ', '"<pos>', line)  # Lua shortens long paths


# -- basics ------------------------------------------------------------------------------------

def test_connect_send_receive_info_close(tmp_path, peers):
    port = peers.echo()
    for lines in run_both(tmp_path, """
        local s = nmap.new_socket()
        L("connect", s:connect(host, port))
        L("send", s:send("hello"))
        L("receive", s:receive())
        local ok, lip, lport, rip, rport = s:get_info()
        L("info", ok, lip, math.type(lport), rip, rport == port.number)
        L("close", s:close())
        L("connect string+number", s:connect("127.0.0.1", port.number))
        L("connect numeric string port", s:connect("127.0.0.1", tostring(port.number)))
        L("connect host number", s:connect(2130706433, port.number))
        L("connect targetname", s:connect({targetname = "localhost"}, port.number))
        L("close", s:close())
    """, ports=(port,)).values():
        assert lines == [
            'connect true', 'send true', 'receive true "hello"',
            'info true "127.0.0.1" "integer" "127.0.0.1" true', 'close true',
            'connect string+number true', 'connect numeric string port true',
            'connect host number true', 'connect targetname true', 'close true']


def test_connect_failures(tmp_path, peers):
    refused = closed_port()
    for lines in run_both(tmp_path, f"""
        local s = nmap.new_socket()
        L("refused", s:connect("127.0.0.1", {refused}))
        L("send", s:send("x"))
        L("receive", s:receive())
        L("lines", s:receive_lines(1))
        local ok, lip, lport, rip, rport = s:get_info()
        L("info", ok, rip, rport)
        L("close", s:close())
        L("big port", s:connect("127.0.0.1", 70000))
        L("negative port", s:connect("127.0.0.1", -1))
        s:close()
        local ok, err = s:connect("no-such-host.invalid", 80)
        L("name", ok, type(err), #err > 0)
    """).values():
        assert lines == ['refused nil "ERROR"', 'send nil "ERROR"', 'receive nil "EOF"',
                         'lines nil "EOF"', f'info true "127.0.0.1" {refused}', 'close true',
                         'big port nil "ERROR"', 'negative port nil "ERROR"',
                         'name false "string" true']


def test_new_socket_arguments(tmp_path):
    for lines in run_both(tmp_path, """
        P(pcall(nmap.new_socket, "sctp"))
        P(pcall(nmap.new_socket, "tcp", "inet7"))
        P(pcall(nmap.new_socket, 5))
        P(pcall(nmap.new_socket, {}))
        P(pcall(function() local ns = nmap.new_socket; local x = ns("sctp"); return x end))
        P(type(nmap.new_socket()), type(nmap.new_socket("udp", "inet6")))
        P(type(nmap.socket.new), nmap.socket.new == nmap.new_socket)
        local s = nmap.new_socket()
        P(s.foo, getmetatable(s) ~= nil, next(getmetatable(s)))
        P(pcall(function() s.foo = 1 end))
    """).values():
        assert [strip_position(line) for line in lines] == [
            'false "bad argument #1 to \'nmap.new_socket\' (invalid option \'sctp\')"',
            'false "bad argument #2 to \'nmap.new_socket\' (invalid option \'inet7\')"',
            'false "bad argument #1 to \'nmap.new_socket\' (invalid option \'5\')"',
            'false "bad argument #1 to \'nmap.new_socket\' (string expected, got table)"',
            'false "<pos>bad argument #1 to \'ns\' (invalid option \'sctp\')"',
            '"table" "table"', '"function" true', 'nil true nil',
            'false "<pos>attempt to index a userdata value"']


def test_argument_errors_name_the_method_like_luaL_argerror(tmp_path, peers):
    port = peers.echo()
    for lines in run_both(tmp_path, """
        local s = nmap.new_socket()
        P(pcall(function() local x = s:connect("127.0.0.1", {number = "x"}) end))
        P(pcall(s.connect, s, "127.0.0.1", {number = "x"}))
        P(pcall(function() local x = s:connect({}, 80) end))
        P(pcall(function() local x = s:connect("127.0.0.1") end))
        P(pcall(function() local x = s:connect(nil, 80) end))
        P(pcall(function() local x = s:connect("127.0.0.1", "80x") end))
        P(pcall(function() local x = s:connect("127.0.0.1", 80.5) end))
        P(pcall(function() local x = s:connect("127.0.0.1", {number = 80.0}) end))
        P(pcall(function() local x = s:get_ssl_certificate() end))
        P(pcall(s.get_ssl_certificate, s))
        P(pcall(function() local x = s:set_timeout() end))
        P(pcall(function() local x = s:set_timeout("x") end))
        P(pcall(function() local x = s:bind("127.0.0.1") end))
        P(pcall(function() local x = s:bind("127.0.0.1", "abc") end))
        s:connect(host, port)
        P(pcall(function() local x = s:send() end))
        P(pcall(function() local x = s:send({}) end))
        P(pcall(function() local x = s:receive_bytes(1.5) end))
        -- a script's `return s:m()` is a tail call: no position, the method's own name
        P(pcall(function() return s:connect("127.0.0.1", {number = "x"}) end))
        s:close()
    """, ports=(port,)).values():
        assert [strip_position(line) for line in lines] == [
            "false \"<pos>bad argument #2 to 'connect' (port table lacks integer 'number' "
            "field)\"",
            "false \"bad argument #3 to '?' (port table lacks integer 'number' field)\"",
            "false \"<pos>bad argument #1 to 'connect' (host table lacks 'ip' or 'targetname' "
            "fields)\"",
            "false \"<pos>bad argument #2 to 'connect' (number expected, got no value)\"",
            "false \"<pos>bad argument #1 to 'connect' (string expected, got nil)\"",
            "false \"<pos>bad argument #2 to 'connect' (number expected, got string)\"",
            "false \"<pos>bad argument #2 to 'connect' (number has no integer "
            "representation)\"",
            "false \"<pos>bad argument #2 to 'connect' (port table lacks integer 'number' "
            "field)\"",
            "false \"<pos>calling 'get_ssl_certificate' on bad self (not a SSL socket)\"",
            "false \"bad argument #1 to '?' (not a SSL socket)\"",
            "false \"<pos>bad argument #1 to 'set_timeout' (number expected, got no value)\"",
            "false \"<pos>bad argument #1 to 'set_timeout' (number expected, got string)\"",
            "false \"<pos>bad argument #2 to 'bind' (number expected, got no value)\"",
            "false \"<pos>bad argument #2 to 'bind' (number expected, got string)\"",
            "false \"<pos>bad argument #1 to 'send' (string expected, got no value)\"",
            "false \"<pos>bad argument #1 to 'send' (string expected, got table)\"",
            "false \"<pos>bad argument #1 to 'receive_bytes' (number has no integer "
            "representation)\"",
            "false \"bad argument #2 to 'connect' (port table lacks integer 'number' field)\""]


def test_positions_point_at_the_calling_line(tmp_path):
    lines = run_body(tmp_path, """
        local s = nmap.new_socket()
        local ok, err = pcall(function()
          local x = s:send("x")
        end)
        P(err)
    """, NMAP7)
    assert re.fullmatch(r'".*/t_nmap7\.nse:\d+: socket must be connected"', lines[0])
    line = int(re.search(r":(\d+): ", lines[0]).group(1))
    source = (tmp_path / "t_nmap7.nse").read_text().split("\n")
    assert 's:send("x")' in source[line - 1]


def test_bad_protocol_raises_in_nmap7_and_returns_the_seeds_message(tmp_path, peers):
    port = peers.echo()
    lines = run_both(tmp_path, """
        local s = nmap.new_socket()
        P(pcall(function() local a, b = s:connect("127.0.0.1", port.number, "sctp"); return a, b end))
        P(pcall(s.connect, s, "127.0.0.1", port.number, "sctp"))
        P(pcall(function() local a, b = s:connect("127.0.0.1", {number = port.number, protocol = "sctp"}); return a, b end))
        P(s:connect("127.0.0.1", {number = port.number, protocol = "tcp"}))
    """, ports=(port,))
    assert [strip_position(line) for line in lines["nmap7"]] == [
        "false \"<pos>bad argument #3 to 'connect' (invalid option 'sctp')\"",
        "false \"bad argument #4 to '?' (invalid option 'sctp')\"",
        "false \"<pos>bad argument #3 to 'connect' (invalid option 'sctp')\"",
        "true"]
    assert lines["seed"] == ['true false "invalid connection method"',
                             'true false "invalid connection method"',
                             'true false "invalid connection method"', 'true']


# -- unconnected sockets -----------------------------------------------------------------------

UNCONNECTED = """
    local s = nmap.new_socket()
    L("send", pcall(s.send, s, "x"))
    L("receive", pcall(s.receive, s))
    L("lines", pcall(s.receive_lines, s, 1))
    L("bytes", pcall(s.receive_bytes, s, 1))
    L("buf", pcall(s.receive_buf, s, "x", true))
    L("sendto", pcall(s.sendto, s, "127.0.0.1", 9, "x"))
    L("info", pcall(s.get_info, s))
    L("ssl", pcall(s.reconnect_ssl, s))
    L("close", pcall(s.close, s))
    L("timeout", pcall(s.set_timeout, s, 100))
    L("pcap_receive", pcall(s.pcap_receive, s) == false)
"""


def test_unconnected_socket_in_nmap7_raises(tmp_path):
    assert run_body(tmp_path, UNCONNECTED, NMAP7) == [
        'send false "socket must be connected"', 'receive false "socket must be connected"',
        'lines false "socket must be connected"', 'bytes false "socket must be connected"',
        'buf false "socket must be connected"', 'sendto false "socket must be connected"',
        'info false "socket must be connected"', 'ssl false "socket must be connected"',
        'close true false "socket already closed"', 'timeout true true', 'pcap_receive true']


def test_unconnected_socket_in_the_seed_returns_its_messages(tmp_path):
    closed = '"Trying to send through a closed socket"'
    assert run_body(tmp_path, UNCONNECTED, SEED) == [
        f'send true false {closed}', f'receive true false {closed}',
        f'lines true false {closed}', f'bytes true false {closed}',
        f'buf true false {closed}', f'sendto true false {closed}',
        'info true nil "socket must be connected"', f'ssl true false {closed}',
        'close true false "Trying to close a closed socket"', 'timeout true true',
        'pcap_receive true']


def test_after_close_the_socket_is_unconnected_again(tmp_path, peers):
    port = peers.echo()
    lines = run_both(tmp_path, """
        local s = nmap.new_socket()
        s:connect(host, port)
        P(s:close())
        P(pcall(s.send, s, "x"))
        P(pcall(s.get_info, s))
        P(s:close())
    """, ports=(port,))
    assert lines["nmap7"] == ['true', 'false "socket must be connected"',
                              'false "socket must be connected"',
                              'false "socket already closed"']
    assert lines["seed"] == ['true', 'true false "Trying to send through a closed socket"',
                             'true nil "socket must be connected"',
                             'false "Trying to close a closed socket"']


# -- reading -----------------------------------------------------------------------------------

def test_partial_reads_per_profile(tmp_path, peers):
    port = peers.banner(b"line1\npart", then_close=True, delay_s=0.1)
    body = """
        local s = nmap.new_socket()
        s:connect(host, port)
        L("lines", s:receive_lines(5))
        L("again", s:receive_lines(1))
        L("receive", s:receive())
        L("receive", s:receive())
        s:close()
        s:connect(host, port)
        L("bytes", s:receive_bytes(100))
        s:close()
    """
    lines = run_both(tmp_path, body, ports=(port,))
    assert lines["nmap7"] == ['lines true "line1\\10part"', 'again nil "EOF"',
                              'receive nil "EOF"', 'receive nil "EOF"',
                              'bytes true "line1\\10part"']
    # the seed: the partial data stays for the next read, which may take it
    assert lines["seed"] == ['lines nil "EOF"', 'again true "line1\\10part"',
                             'receive nil "EOF"', 'receive nil "EOF"', 'bytes nil "EOF"']


def test_partial_read_then_timeout_per_profile(tmp_path, peers):
    port = peers.banner(b"no newline")
    lines = run_both(tmp_path, """
        local s = nmap.new_socket()
        s:set_timeout(200)
        s:connect(host, port)
        P(s:receive_lines(1))
        s:close()
    """, ports=(port,))
    assert lines["nmap7"] == ['true "no newline"']
    assert lines["seed"] == ['nil "TIMEOUT"']


def test_timeouts(tmp_path, peers):
    port = peers.silent()
    started = time.monotonic()
    for lines in run_both(tmp_path, """
        local s = nmap.new_socket()
        P(s:set_timeout(150))
        s:connect(host, port)
        P(s:receive())
        P(s:set_timeout(0))
        P(s:receive())
        P(s:set_timeout(1.9))
        P(s:receive_bytes(1))
        s:close()
    """, ports=(port,)).values():
        assert lines == ['true', 'nil "TIMEOUT"', 'true', 'nil "TIMEOUT"', 'true',
                         'nil "TIMEOUT"']
    assert time.monotonic() - started < 10


def test_negative_timeouts(tmp_path):
    lines = run_both(tmp_path, """
        local s = nmap.new_socket()
        P(s:set_timeout(-1))
        P(pcall(s.set_timeout, s, -5))
        P(pcall(s.set_timeout, s, -2.5))
    """)
    assert lines["nmap7"] == ['true', 'false "Negative timeout: -5.0"',
                              'false "Negative timeout: -3.0"']
    assert lines["seed"] == ['true', 'true true', 'true true']  # floored to 10 ms


def test_timeout_floor_and_reset_on_close(tmp_path, peers):
    port = peers.echo()
    result = host("127.0.0.1", ports=[(port, "open")])
    ran = run(tmp_path, {"floor": PRELUDE + """
        action = function(host, port)
          local s = nmap.new_socket()
          s:set_timeout(1)
          keep_socket = s
          return "ok"
        end
    """}, [result], profile=SEED)
    api = ran.engine.socket_api
    assert [s.timeout_ms for s in api.sockets.values()] == [10]
    ran = run(tmp_path, {"reset": PRELUDE + """
        action = function(host, port)
          local s = nmap.new_socket()
          s:set_timeout(1)
          s:connect(host, port)
          s:close()
          return "ok"
        end
    """}, [result], profile=NMAP7, engine=ran.engine)
    assert sorted(s.timeout_ms for s in api.sockets.values())[-1] == 30000


def test_rst_is_error(tmp_path, peers):
    port = peers.reset()
    for lines in run_both(tmp_path, """
        local s = nmap.new_socket()
        s:connect(host, port)
        P(s:receive())
        P(s:send("x"))
        s:close()
    """, ports=(port,)).values():
        assert lines == ['nil "ERROR"', 'nil "ERROR"']


def test_receive_lines_and_bytes_return_everything_accumulated(tmp_path, peers):
    port = peers.chunks([b"a\nb", b"c\n", b"d\ne\nf"], then_close=False)
    for lines in run_both(tmp_path, """
        local s = nmap.new_socket()
        s:connect(host, port)
        P(s:receive_lines(2))
        P(s:receive_bytes(2))
        s:close()
    """, ports=(port,)).values():
        assert lines == ['true "a\\10bc\\10"', 'true "d\\10e\\10f"']


# -- receive_buf -------------------------------------------------------------------------------

def test_receive_buf_nmap7(tmp_path, peers):
    port = peers.echo()
    lines = run_body(tmp_path, """
        local s = nmap.new_socket()
        s:set_timeout(300)
        s:connect(host, port)
        s:send("abc\\ndef\\nghi")
        L("keep", s:receive_buf("\\n", true))
        L("fn", s:receive_buf(function(b) return b:find("e") end, false))
        L("empty", pcall(s.receive_buf, s, "", true))
        L("l>r", pcall(s.receive_buf, s, function() return 3, 2 end, true))
        L("r>#", pcall(s.receive_buf, s, function() return 1, 200 end, true))
        L("floats", pcall(s.receive_buf, s, function() return 1.0, 2.0 end, true))
        L("strings", pcall(s.receive_buf, s, function() return "1", "2" end, true))
        L("fn err", pcall(s.receive_buf, s, function() error("boom", 0) end, true))
        local ok, e = pcall(s.receive_buf, s, function() error({x = 1}) end, true)
        L("fn err table", ok, type(e), e.x)
        L("bad pattern", pcall(s.receive_buf, s, "%", true))
        L("keep num", pcall(s.receive_buf, s, "x", 1))
        L("keep none", pcall(s.receive_buf, s, "x"))
        L("delim table", pcall(s.receive_buf, s, {}, true))
        L("method", pcall(function() local a = s:receive_buf("x", 1) end))
        L("yield", pcall(s.receive_buf, s, function() coroutine.yield() end, true))
        L("no match", s:receive_buf("Z", false))
        L("receive leaves the buffer", s:receive())
        L("buffer survives", s:receive_buf("h", true))
        L("r only", s:receive_buf(function() return 1 end, true))
        L("0,0", s:receive_buf(function() return 0, 0 end, true))
        L("0,1", s:receive_buf(function() return 0, 1 end, true))
        s:send("rest")
        L("rest", s:receive_buf("t", false))
        s:close()
    """, NMAP7, ports=(port,))
    assert [strip_position(line) for line in lines] == [
        'keep true "abc\\10"', 'fn true "d"',
        'empty false "invalid indices for match"',
        'l>r false "invalid indices for match"', 'r># false "invalid indices for match"',
        'floats false "invalid indices for match"',
        'strings false "invalid indices for match"', 'fn err false "boom"',
        'fn err table false "table" 1',
        'bad pattern false "malformed pattern (ends with \'%\')"',
        'keep num false "bad argument #3 to \'?\' (boolean expected, got number)"',
        'keep none false "bad argument #3 to \'?\' (boolean expected, got no value)"',
        'delim table false "bad argument #2 to \'?\' (function/string expected, got table)"',
        'method false "<pos>bad argument #2 to \'receive_buf\' (boolean expected, got '
        'number)"',
        'yield false "attempt to yield across a C-call boundary"',
        'no match nil "TIMEOUT"', 'receive leaves the buffer nil "TIMEOUT"',
        'buffer survives true "f\\10gh"', 'r only nil "TIMEOUT"', '0,0 true ""',
        '0,1 true "i"', 'rest true "res"']


def test_receive_buf_nmap7_loses_the_data_of_a_failed_call(tmp_path, peers):
    port = peers.banner(b"line1\npart", then_close=True, delay_s=0.2)
    lines = run_body(tmp_path, """
        local s = nmap.new_socket()
        s:connect(host, port)
        P(s:receive_buf("\\n", false))
        P(s:receive_buf("\\n", false))
        P(s:receive_buf("t", true))
    """, NMAP7, ports=(port,))
    assert lines == ['true "line1"', 'nil "EOF"', 'true "part"']


def test_receive_buf_seed(tmp_path, peers):
    port = peers.echo()
    lines = run_body(tmp_path, """
        local s = nmap.new_socket()
        s:set_timeout(300)
        s:connect(host, port)
        s:send("abc\\ndef\\n")
        L("no keeppattern", s:receive_buf("\\n"))
        L("delim number", s:receive_buf(5, true))
        L("fn err", s:receive_buf(function() error("boom") end, true))
        L("bad pattern", s:receive_buf("%", true))
        L("l>r", s:receive_buf(function() return 3, 2 end, true))
        L("found", s:receive_buf("\\n", true))
        s:send("xyz")
        L("partial", s:receive_buf("q", true))
        L("kept", s:receive_buf("y", true))
        L("buffer left", s:receive_buf("z", true) )
        s:send("1\\n2\\n")
        L("first", s:receive_buf("\\n", false))
        L("send clears the buffer", s:send("3\\n"))
        L("after", s:receive_buf("\\n", false))
        s:close()
    """, SEED, ports=(port,))
    assert lines == [
        'no keeppattern true "abc"', 'delim number false "Expected either a function or a '
        'string!"', 'fn err false "Error inside splitting-function"',
        'bad pattern false "Error in string.find (nsockobj:receive_buf)!"',
        'l>r false "Delimiter has negative size!"', 'found true "def\\10"',
        'partial nil "TIMEOUT"', 'kept true "xy"', 'buffer left true "z"',
        'first true "1"', 'send clears the buffer true', 'after true "3"']


def test_reconnect_keeps_the_receive_buf_buffer_in_nmap7(tmp_path, peers):
    port = peers.echo()
    lines = run_both(tmp_path, """
        local s = nmap.new_socket()
        s:connect(host, port)
        s:send("aa\\nbb")
        P(s:receive_buf("\\n", false))
        P(s:connect(host, port))
        s:send("cc\\n")
        P(s:receive_buf("\\n", false))
        s:close()
    """, ports=(port,))
    assert lines["nmap7"] == ['true "aa"', 'true', 'true "bbcc"']
    assert lines["seed"] == ['true "aa"', 'true', 'true "cc"']


# -- ownership ---------------------------------------------------------------------------------

def test_a_socket_belongs_to_the_coroutine_that_first_used_it(tmp_path, peers):
    port = peers.echo()
    for lines in run_both(tmp_path, """
        local s = nmap.new_socket()
        s:connect(host, port)
        local function in_co(name, f) L(name, coroutine.resume(coroutine.create(f))) end
        in_co("co send", function() return s:send("a") end)
        L("base send", pcall(s.send, s, "x"))
        L("base receive", pcall(function() local a = s:receive() end))
        in_co("co set_timeout", function() return s:set_timeout(100) end)
        local ok, good = coroutine.resume(coroutine.create(function() return s:get_info() end))
        L("co get_info", ok, good)
        in_co("co rbuf", function() local a = s:receive_buf("x", true) end)
        L("connect resets", s:connect(host, port))
        L("base send now", s:send("b"))
        L("base receive", s:receive())
        in_co("co send now", function() local a = s:send("c") end)
        in_co("co tail call", function() return s:send("c") end)
        s:close()
    """, ports=(port,)).values():
        assert [strip_position(line) for line in lines] == [
            'co send true true',
            'base send false "Invalid reuse of a socket from one thread to another."',
            'base receive false "<pos>Invalid reuse of a socket from one thread to another."',
            'co set_timeout true true', 'co get_info true true',
            'co rbuf false "<pos>Invalid reuse of a socket from one thread to another."',
            'connect resets true', 'base send now true', 'base receive true "b"',
            'co send now false "<pos>Invalid reuse of a socket from one thread to another."',
            'co tail call false "Invalid reuse of a socket from one thread to another."']


def test_coroutines_and_workers_can_do_io_on_their_own_sockets(tmp_path, peers):
    port = peers.echo()
    for lines in run_both(tmp_path, """
        local results = {}
        local co = coroutine.create(function()
          local s = nmap.new_socket()
          s:connect(host, port)
          s:send("inner")
          return s:receive()
        end)
        P(coroutine.resume(co))
        local done = false
        stdnse.new_thread(function()
          local s = nmap.new_socket()
          s:connect(host, port)
          s:send("worker")
          results[1] = select(2, s:receive())
          done = true
        end)
        while not done do stdnse.sleep(0.01) end
        P(results[1])
    """, ports=(port,)).values():
        assert lines == ['true true "inner"', '"worker"']


# -- UDP ---------------------------------------------------------------------------------------

def test_udp_sockets(tmp_path, peers):
    echo = peers.udp_echo()
    closed = closed_udp_port()
    lines = run_both(tmp_path, f"""
        local u = nmap.new_socket("udp")
        u:set_timeout(1000)
        L("send", u:send("x"))
        L("info", u:get_info())
        L("sendto", u:sendto("127.0.0.1", {echo}, "ping"))
        L("receive", u:receive())
        local ok, lip, lport, rip, rport = u:get_info()
        L("info", ok, lip, lport > 0, rip, rport)
        L("sendto name", u:sendto("no-such-host.invalid", {echo}, "x"))
        L("close", u:close())
        L("close fresh", nmap.new_socket("udp"):close())
        local c = nmap.new_socket()
        c:set_timeout(1000)
        L("connect", c:connect("127.0.0.1", {{number = {echo}, protocol = "udp"}}))
        c:send("ab") c:send("cd")
        L("datagram", c:receive())
        L("datagram", c:receive())
        c:close()
        L("closed port", c:connect("127.0.0.1", {closed}, "udp"), c:send("hi"), c:receive())
        c:close()
    """)
    for name, close_fresh in (("nmap7", 'close fresh false "socket already closed"'),
                              ("seed", 'close fresh false "Trying to close a closed socket"')):
        got = lines[name]
        assert got[0] == 'send nil "ERROR"'
        assert got[1] == 'info true "unknown protocol" 0 "unknown protocol" 0'
        assert got[2:5] == ['sendto true', 'receive true "ping"',
                            f'info true "0.0.0.0" true "127.0.0.1" {echo}']
        assert got[5].startswith('sendto name false "') and got[6] == 'close true'
        assert got[7:] == [close_fresh, 'connect true', 'datagram true "ab"',
                           'datagram true "cd"', 'closed port true true nil "ERROR"']


# -- TLS ---------------------------------------------------------------------------------------

def test_ssl_certificate_object(tmp_path, peers):
    port, der = peers.tls_echo()
    lines = run_body(tmp_path, """
        local s = nmap.new_socket()
        L("connect", s:connect(host, port, "ssl"))
        local c = s:get_ssl_certificate()
        L("object", type(c), (tostring(c):gsub("0x%x+", "ADDR")))
        L("subject", c.subject.commonName, c.subject.countryName, c.subject.emailAddress,
          c.subject.organizationName, c.subject.organizationalUnitName,
          c.subject.stateOrProvinceName)
        L("issuer", c.issuer.commonName)
        L("sig", c.sig_algorithm)
        local nb, na = c.validity.notBefore, c.validity.notAfter
        L("notBefore", nb.year, nb.month, nb.day, nb.hour, nb.min, nb.sec)
        L("notAfter", na.year)
        L("pem", c.pem:match("^%-%-%-%-%-BEGIN CERTIFICATE%-%-%-%-%-\\n") ~= nil)
        L("pubkey", c.pubkey.type, c.pubkey.bits, c.pubkey.exponent:todec(),
          tostring(c.pubkey.exponent), c.pubkey.modulus:num_bits(), #c.pubkey.modulus:tobin())
        for i, e in ipairs(c.extensions) do L("ext", i, e.name, e.critical, e.value) end
        L("sha1", stdnse.tohex and stdnse.tohex(c:digest("sha1")) or nil)
        L("digest", #c:digest("sha1"), #c:digest("SHA256"), #c:digest("md5"), c:digest("bogus"))
        L("digest arg", pcall(function() local x = c:digest() end))
        L("absent", c.serial, c.der, c.foo)
        L("readonly", pcall(function() c.subject = 1 end))
        L("send", s:send("over tls"))
        L("receive", s:receive())
        local p = nmap.socket.parse_ssl_certificate(SHA1_DER)
        L("parse", p.subject.commonName, p.pubkey.bits)
        L("parse junk", nmap.socket.parse_ssl_certificate("junk"))
        L("parse pem", nmap.socket.parse_ssl_certificate(c.pem))
        L("parse none", pcall(nmap.socket.parse_ssl_certificate))
        s:close()
    """.replace("SHA1_DER", '"' + "".join(f"\\{b}" for b in der) + '"'), NMAP7,
        ports=(port,))
    sha1 = hashlib.sha1(der).digest()
    assert [strip_position(line) for line in lines[:13]] == [
        'connect true', 'object "table" "SSL_CERT: ADDR"',
        'subject "localhost" "US" "a@b.c" "Test Org" "Unit" "CA"', 'issuer "localhost"',
        'sig "sha256WithRSAEncryption"', 'notBefore 2024 1 2 3 4 5', 'notAfter 2033',
        'pem true', 'pubkey "rsa" 2048 "65537" "010001" 2048 256',
        f'ext 1 "X509v3 Subject Key Identifier" nil "{_ski(der)}"',
        'ext 2 "X509v3 Basic Constraints" true "CA:TRUE"',
        'ext 3 "X509v3 Subject Alternative Name" nil "DNS:localhost, IP Address:127.0.0.1"',
        'ext 4 "X509v3 Key Usage" nil "Digital Signature, Key Encipherment"']
    assert lines[13] == ('ext 5 "X509v3 Extended Key Usage" nil "TLS Web Server '
                         'Authentication, TLS Web Client Authentication"')
    rest = [strip_position(line) for line in lines[14:]]
    assert rest[0] in (f'sha1 "{sha1.hex()}"', "sha1 nil")
    assert rest[1:] == [
        'digest 20 32 16 nil',
        "digest arg false \"<pos>bad argument #1 to 'digest' (string expected, got no value)\"",
        'absent nil nil nil', 'readonly false "<pos>attempt to index a SSL_CERT value"',
        'send true', 'receive true "over tls"', 'parse "localhost" 2048', 'parse junk nil',
        'parse pem nil',
        "parse none false \"bad argument #1 to 'nmap.socket.parse_ssl_certificate' (string "
        "expected, got no value)\""]


def _ski(der: bytes) -> str:
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    value = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    return ":".join(f"{b:02X}" for b in value)


def test_ec_certificate_public_key(tmp_path, peers):
    port, _ = peers.tls_echo(key_type="ec")
    lines = run_body(tmp_path, """
        local s = nmap.new_socket()
        s:connect(host, port, "ssl")
        local k = s:get_ssl_certificate().pubkey
        P(k.type, k.bits, k.exponent, k.modulus, k.ecdhparams.curve_params.ec_curve_type,
          k.ecdhparams.curve_params.curve)
        s:close()
    """, NMAP7, ports=(port,))
    assert lines == ['"ec" 256 nil nil "namedcurve" "prime256v1"']


def test_ssl_failures(tmp_path, peers):
    plain, silent = peers.echo(), peers.silent()
    for lines in run_both(tmp_path, f"""
        local s = nmap.new_socket()
        P(s:connect("127.0.0.1", {plain}, "ssl"))
        s:close()
        s:set_timeout(300)
        P(s:connect("127.0.0.1", {silent}, "ssl"))
        s:close()
    """, ports=(plain,)).values():
        assert lines == ['nil "ERROR"', 'nil "TIMEOUT"']


def test_reconnect_ssl(tmp_path, peers):
    port, _ = peers.starttls()
    for lines in run_both(tmp_path, """
        local s = nmap.new_socket()
        s:connect(host, port)
        P(pcall(s.get_ssl_certificate, s))
        s:send("STARTTLS\\n")
        P(s:receive_lines(1))
        P(s:reconnect_ssl())
        P(s:get_ssl_certificate().subject.commonName)
        P(s:send("x1"), s:receive())
        s:close()
    """, ports=(port,)).values():
        assert lines == ['false "bad argument #1 to \'?\' (not a SSL socket)"',
                         'true "OK\\10"', 'true', '"localhost"', 'true true "x1"']


# -- bind --------------------------------------------------------------------------------------

def test_bind(tmp_path, peers):
    port = peers.echo()
    for lines in run_both(tmp_path, """
        local s = nmap.new_socket()
        P(s:bind("127.0.0.2", 0))
        s:connect(host, port)
        P((select(2, s:get_info())))
        s:close()
        s:connect(host, port)
        P((select(2, s:get_info())))  -- close forgot the bind
        s:close()
        P(s:bind("localhost", 0))
        P(s:bind(nil, 0))
        P(s:bind("::1", 0))
        P(s:connect(host, port))  -- a bind of the other family is ignored
        s:close()
    """, ports=(port,)).values():
        assert lines == ['true', '"127.0.0.2"', '"127.0.0.1"',
                         'false "getaddrinfo: Name or service not known"', 'true', 'true',
                         'true']


# -- the socket lock, thread ends, collection, tracing -----------------------------------------

LOCK_BODY = """
    local s = nmap.new_socket()
    s:connect("127.0.0.1", ECHO)
    local reg = nmap.registry
    reg.holding = (reg.holding or 0) + 1
    reg.most = math.max(reg.most or 0, reg.holding)
    reg.waiting = math.max(reg.waiting or 0, nmap.socket.get_stats().connect_waiting)
    stdnse.sleep(0.15)
    reg.holding = reg.holding - 1
    s:close()
    P(reg.most, reg.waiting)
"""


@pytest.mark.parametrize("options, holders", [
    ({"max_parallelism": 1}, 2), ({"timing_level": 2}, 2), ({"max_parallelism": 2}, 3),
    ({}, 5)])
def test_socket_lock_limits_threads_holding_sockets(tmp_path, peers, options, holders):
    echo = peers.echo()
    ports = tuple(closed_port() for _ in range(5))
    result = host("127.0.0.1", ports=[(p, "open") for p in ports])
    source = PRELUDE + "action = function(host, port)\n" + \
        LOCK_BODY.replace("ECHO", str(echo)) + "\nreturn table.concat(out)\nend\n"
    ran = run(tmp_path, {"lock": source}, [result], **options)
    outputs = [port_output(result, p)["lock"] for p in ports]
    most = max(int(o.split()[0]) for o in outputs)
    waiting = max(int(o.split()[1]) for o in outputs)
    assert most == holders, outputs
    assert (waiting > 0) == (holders < 5), outputs
    assert ran.engine.socket_api.lock.holders == set()
    assert ran.engine.socket_api.lock.stats() == {"connect_waiting": 0}


def test_a_thread_holds_the_lock_while_it_has_an_open_socket(tmp_path, peers):
    echo = peers.echo()
    ports = tuple(closed_port() for _ in range(3))
    result = host("127.0.0.1", ports=[(p, "open") for p in ports])
    source = PRELUDE + f"""
action = function(host, port)
  local s = nmap.new_socket()
  local started = nmap.clock()
  s:connect("127.0.0.1", {echo})
  local waited = nmap.clock() - started
  local t = nmap.new_socket()
  t:connect("127.0.0.1", {echo})  -- a holder never waits
  s:close()
  stdnse.sleep(0.2)
  t:close()      -- the last one: the lock goes
  stdnse.sleep(0.4)
  return string.format("%.1f", waited)
end
"""
    run(tmp_path, {"hold": source}, [result], max_parallelism=1)
    waits = sorted(float(port_output(result, p)["hold"]) for p in ports)
    assert waits[:2] == [0.0, 0.0]
    assert 0.15 <= waits[2] < 0.5  # after a holder's last close, not at its end (0.6 s)


def test_thread_end_closes_its_sockets_and_collection_closes_dropped_ones(tmp_path, peers):
    port = peers.echo()
    result = host("127.0.0.1", ports=[(port, "open")])
    ran = run(tmp_path, {"leak": PRELUDE + """
        action = function(host, port)
          local dropped = nmap.new_socket()
          dropped:connect(host, port)
          dropped = nil
          collectgarbage()
          collectgarbage()
          stdnse.sleep(0.05)
          local kept = nmap.new_socket()
          kept:connect(host, port)
          return "ok"
        end
    """}, [result])
    api = ran.engine.socket_api
    assert len(api.sockets) == 1  # the collected one is gone
    assert all(sock.conn is None for sock in api.sockets.values())
    assert api.lock.holders == set() and api.lock.open_counts == {}
    assert ran.engine.loop.watched_count() == 0


def test_a_thread_killed_while_waiting_cancels_its_operation(tmp_path, peers):
    port = peers.silent()
    result = host("127.0.0.1", ports=[(port, "open")])
    ran = run(tmp_path, {"slow": PRELUDE + """
        action = function(host, port)
          local s = nmap.new_socket()
          s:connect(host, port)
          return s:receive()
        end
    """}, [result], script_timeout_ms=300)
    assert port_output(result, port) == {}
    assert len(ran.engine.ops) == 0
    assert all(sock.conn is None for sock in ran.engine.socket_api.sockets.values())


def test_script_trace(tmp_path, peers):
    port = peers.echo()
    result = host("127.0.0.1", ports=[(port, "open")])
    ran = run(tmp_path, {"trace": PRELUDE + """
        action = function(host, port)
          local s = nmap.new_socket()
          s:connect(host, port)
          s:send("ping")
          s:receive()
          s:send("\\0\\1\\2abc")
          s:receive_bytes(6)
          s:close()
          return "ok"
        end
    """}, [result], trace=True)
    lines = [line for line in ran.log if line.startswith("NSE: TCP")]
    prefix = re.escape("NSE: TCP 127.0.0.1:") + r"\d+ ([<>]) " + re.escape(f"127.0.0.1:{port} | ")
    parsed = [re.match(prefix + "(.*)", line, re.S) for line in lines]
    assert all(parsed), lines
    assert [(m.group(1), m.group(2)) for m in parsed] == [
        (">", "CONNECT"), (">", "ping"), (">", "SEND"), ("<", "ping"),
        (">", trace_text(b"\0\1\2abc")), (">", "SEND"), ("<", trace_text(b"\0\1\2abc")),
        (">", "CLOSE")]


def test_trace_text_matches_nmaps_hex_dump():
    assert trace_text(b"ping") == "ping"
    assert trace_text(b"A" * 19 + b"\n") == "A" * 19 + "\n"  # 95% printable: text
    assert trace_text(b"hello\n") == (
        "00000000: 68 65 6c 6c 6f 0a" + " " * 31 + "hello \n")
    data = bytes((i * 7) % 256 for i in range(41))
    assert trace_text(data) == (
        "00000000: 00 07 0e 15 1c 23 2a 31 38 3f 46 4d 54 5b 62 69      #*18?FMT[bi\n"
        "00000010: 70 77 7e 85 8c 93 9a a1 a8 af b6 bd c4 cb d2 d9 pw~             \n"
        "00000020: e0 e7 ee f5 fc 03 0a 11 18" + " " * 31 + "\n")


def test_lua_number_text():
    assert [lua_number_text(v) for v in (-5, -2.5, 1e100, 0.1)] == [
        "-5.0", "-2.5", "1e+100", "0.1"]


# -- Nmap as the reference ---------------------------------------------------------------------

PARITY_BODY = """
    local s = nmap.new_socket()
    P(pcall(s.send, s, "x"))
    P(pcall(s.receive, s))
    P(pcall(s.get_info, s))
    P(pcall(s.receive_buf, s, "x", true))
    P(s:close())
    P(pcall(s.connect, s, "127.0.0.1", {number = "x"}))
    P(pcall(function() local x = s:connect("127.0.0.1", {number = "x"}) end))
    P(pcall(function() local x = s:connect({}, 80) end))
    P(pcall(function() local x = s:connect("127.0.0.1") end))
    P(pcall(function() local x = s:connect(nil, 80) end))
    P(pcall(function() local x = s:connect("127.0.0.1", 80.5) end))
    P(pcall(s.connect, s, "127.0.0.1", port.number, "sctp"))
    P(pcall(s.get_ssl_certificate, s))
    P(pcall(function() local x = s:get_ssl_certificate() end))
    P(pcall(function() local x = s:set_timeout("x") end))
    P(pcall(function() local x = s:bind("127.0.0.1") end))
    P(s:bind("localhost", 0))
    P(s:set_timeout(1.7))
    P(s:connect("127.0.0.1", REFUSED))
    P(s:send("x"))
    P(s:receive())
    P(s:close())
    local u = nmap.new_socket("udp")
    P(u:send("x"))
    P(u:get_info())
    P(nmap.new_socket("udp"):close())
    s:connect(host, port)
    s:send("abc\\ndef\\nghi")
    P(s:receive_buf("\\n", true))
    P(s:receive_buf(function(b) return b:find("e") end, false))
    P(pcall(s.receive_buf, s, "", true))
    P(pcall(function() local a = s:receive_buf("", true) end))
    P(pcall(s.receive_buf, s, "%", true))
    P(pcall(s.receive_buf, s, "x", 1))
    P(pcall(s.receive_buf, s))
    P(pcall(s.receive_buf, s, {}, true))
    P(pcall(function() local a = s:receive_buf("x", 1) end))
    P(pcall(s.receive_buf, s, function() error("boom", 0) end, true))
    P(pcall(s.receive_buf, s, function() coroutine.yield() end, true))
    P(s:receive_buf("h", true))
    s:close()
    s:connect("127.0.0.1", PARTIAL)
    P(s:receive_lines(5))
    P(s:receive_lines(1))
    s:close()
    P(s:connect("127.0.0.1", PLAIN, "ssl"))
    s:close()
    P(s:connect("127.0.0.1", TLS, "ssl"))
    local c = s:get_ssl_certificate()
    P((tostring(c):gsub("0x%x+", "ADDR")))  -- type(c): "userdata" there, "table" here
    P(c.subject.commonName, c.issuer.organizationName, c.sig_algorithm, c.pubkey.type,
      c.pubkey.bits, tostring(c.pubkey.exponent), c.pubkey.modulus:num_bits())
    for _, e in ipairs(c.extensions) do P(e.name, e.critical, e.value) end
    local nb = c.validity.notBefore
    P(nb.year, nb.month, nb.day, nb.hour, nb.min, nb.sec)
    P(#c:digest("sha1"), #c:digest("SHA256"))
    P(pcall(c.digest, c))
    P(nmap.socket.parse_ssl_certificate("junk"))
    P(s:send("tls"))
    P(s:receive())
    s:close()
"""


def test_same_answers_as_nmap(tmp_path, peers, nmap_path):
    """The same probe script under nmap 7.93 and under the Nmap 7 profile here."""
    import subprocess
    import xml.etree.ElementTree as ET

    echo = peers.echo()
    tls, _ = peers.tls_echo()
    body = (PARITY_BODY.replace("REFUSED", str(closed_port()))
            .replace("PARTIAL", str(peers.banner(b"line1\npart", then_close=True,
                                                 delay_s=0.1)))
            .replace("PLAIN", str(peers.echo())).replace("TLS", str(tls)))
    ours = run_body(tmp_path, body, NMAP7, ports=(echo,))
    probe = tmp_path / "probe.nse"
    probe.write_text(PRELUDE + "action = function(host, port)\n" + body +
                     "\nreturn table.concat(out, '\\n')\nend\n")
    scan = subprocess.run([nmap_path, "-n", "-Pn", "-sT", "-p", str(echo), "--script",
                           str(probe), "-oX", "-", "127.0.0.1"],
                          capture_output=True, text=True, timeout=120)
    assert scan.returncode == 0, scan.stderr
    script = ET.fromstring(scan.stdout).find(".//script[@id='probe']")
    assert script is not None, scan.stdout
    theirs = script.get("output").split("\n")
    assert [strip_position(line) for line in ours] == [strip_position(line)
                                                       for line in theirs]
