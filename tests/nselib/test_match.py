"""nselib/match.lua: the receive_buf delimiters, as pure functions compared with Nmap's, and
on a real socket against a peer on 127.0.0.1."""
import socket
import threading

import pytest
from nse_support import LUA_OUTPUT, run_lua, run_lua_nmap

from worker.nse.profile import NMAP7, SEED

PURE = r'''
local match = require "match"
''' + LUA_OUTPUT + r'''local function call(f, b)
  local r = table.pack(pcall(f, b))
  if not r[1] then return "ERR " .. tostring(r[2]):gsub("^.-:%d+: ", "") end
  for i = 2, r.n do r[i] = tostring(r[i]) end
  return (r.n - 1) .. ":" .. table.concat(r, ",", 2, r.n)
end
local nb = match.numbytes(5)
for _, b in ipairs{"", "abc", "abcde", "abcdefgh"} do p("nb", b, call(nb, b)) end
p("nb0", call(match.numbytes(0), ""), call(match.numbytes(0), "x"))
p("nbstr", call(match.numbytes("3"), "abcd"))
local pl = match.pattern_limit("\r\n", 10)
for _, b in ipairs{"", "ab", "ab\r\n", "ab\r\ncd\r\n", "abcdefghij", "abcdefghijkl",
                   "abcdefgh\r\nxx", "abcdefghi\r\n", "abcdefghij\r\n", "abcdefghijk\r\n",
                   "\r\n"} do
  p("pl", (b:gsub("\r\n", "~")), call(pl, b))
end
local pl2 = match.pattern_limit("(%d+)x", 6)
for _, b in ipairs{"12x", "abc12x", "abcdefg12x", "abcdefg"} do p("pl2", b, call(pl2, b)) end
local pl3 = match.pattern_limit("", 3)
for _, b in ipairs{"", "a", "abcd"} do p("pl3", b, call(pl3, b)) end
local pl4 = match.pattern_limit("x", 0)
for _, b in ipairs{"", "a", "x"} do p("pl4", b, call(pl4, b)) end
p("bad", call(match.pattern_limit("[", 5), "abc"))
return table.concat(out, "\n")
'''


def test_delimiters_match_nmap(tmp_path):
    ours = run_lua(tmp_path, PURE)
    lines = ours.split("\n")
    assert lines[:4] == ["nb |  | 1:nil", "nb | abc | 1:nil", "nb | abcde | 2:5,5",
                         "nb | abcdefgh | 2:5,5"]
    assert "pl | abcdefghijkl | 2:10,10" in lines and "pl | abcdefghi~ | 2:10,11" in lines
    assert "pl2 | abc12x | 2:4,6" in lines
    assert run_lua_nmap(tmp_path, PURE) == ours


@pytest.fixture
def peer():
    """A TCP peer on 127.0.0.1 that sends its data in pieces to each client, then closes."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.settimeout(10)
    pieces = [b"0123", b"456789abc", b"HEADER\r\nthe rest without an end"]

    def serve():
        for _ in range(2):  # one connection per profile
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                for piece in pieces:
                    conn.sendall(piece)
                    threading.Event().wait(0.05)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    listener.close()
    thread.join(10)


@pytest.mark.parametrize("profile", [SEED, NMAP7], ids=["seed", "nmap7"])
def test_delimiters_on_a_socket(tmp_path, peer, profile):
    body = f'''local match = require "match"
    local s = nmap.new_socket()
    s:set_timeout(3000)
    assert(s:connect("127.0.0.1", {peer}))
    local got = {{}}
    for _, want in ipairs{{2, 3, 4}} do
      local ok, data = s:receive_buf(match.numbytes(want), true)
      got[#got + 1] = tostring(ok) .. ":" .. tostring(data)
    end
    local ok, data = s:receive_buf(match.pattern_limit("\\r\\n", 64), false)
    got[#got + 1] = tostring(ok) .. ":" .. tostring(data)
    ok, data = s:receive_buf(match.pattern_limit("NEVER", 8), true)
    got[#got + 1] = tostring(ok) .. ":" .. tostring(data)
    s:close()
    return table.concat(got, "|")'''
    assert run_lua(tmp_path, body, profile) == \
        "true:01|true:234|true:5678|true:9abcHEADER|true:the rest"
