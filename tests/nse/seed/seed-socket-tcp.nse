-- Part of nsecluster's seed-conformance suite (tests/nse/test_seed_conformance.py). It uses only
-- the nmap module and plain Lua, so it runs unchanged under nmap 7.93 and under nsecluster.
local nmap = require "nmap"

description = [[Seed conformance: connect-style TCP sockets against an echo server (connect,
send, receive, receive_lines, receive_bytes, receive_buf, get_info, set_timeout, close) and
the error strings the seed lists.]]
author = "nsecluster"
license = "Same as Nmap--See https://nmap.org/book/man-legal.html"
categories = {"safe"}

-- Output helpers, the same in every seed-*.nse: one "key: value ..." line per check.
local out = {}
local function show(v)
  local t = type(v)
  if t == "string" then
    return '"' .. v:gsub('[%c"\\\128-\255]', function(c)
      return string.format("\\%d", c:byte())
    end) .. '"'
  elseif t == "table" then
    local keys, shown = {}, {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    for i, k in ipairs(keys) do shown[i] = tostring(k) .. "=" .. show(v[k]) end
    return "{" .. table.concat(shown, ",") .. "}"
  elseif t == "number" or t == "boolean" or t == "nil" then
    return tostring(v)
  end
  return "<" .. t .. ">"
end
-- R(key, ...): the values, shown; "key:" alone when there are none.
local function R(key, ...)
  local n = select("#", ...)
  local shown = {}
  for i = 1, n do shown[i] = show((select(i, ...))) end
  out[#out + 1] = key .. ":" .. (n > 0 and " " .. table.concat(shown, " ") or "")
end
-- C(key, f): f returns table.pack(results); errors are shown as "raised <message>" without
-- the "file:line: " prefix.
local function C(key, f)
  local ok, r = pcall(f)
  if ok then
    R(key, table.unpack(r, 1, r.n))
  else
    while type(r) == "string" and r:find("^[^ ]-:%d+: ") do r = r:gsub("^[^ ]-:%d+: ", "", 1) end
    out[#out + 1] = key .. ": raised " .. show(r)
  end
end
local pk = table.pack
local function arg(name) return tonumber(nmap.registry.args["seed." .. name]) end
local function result() return table.concat(out, "\n") end

portrule = function(host, port) return port.number == arg("echo") end

local function semicolon(buf) return buf:find(";", 1, true) end

-- A new socket connected to the echo server, with ``data`` echoed back and waiting.
local function echoing(host, port, data)
  local s = nmap.new_socket()
  s:set_timeout(3000)
  s:connect(host.ip, port.number)
  s:send(data)
  return s
end

action = function(host, port)
  local s = nmap.new_socket()
  R("new_socket", type(s))
  C("send unconnected", function() return pk(s:send("x")) end)
  C("receive unconnected", function() return pk(s:receive()) end)
  C("get_info unconnected", function() return pk(s:get_info()) end)
  C("close unconnected", function() return pk(nmap.new_socket():close()) end)
  C("set_timeout negative", function()
    local ok, err = pcall(function() return nmap.new_socket():set_timeout(-5) end)
    return pk(ok, ok and err or (tostring(err):match("Negative timeout") ~= nil))
  end)
  C("set_timeout", function() return pk(s:set_timeout(3000)) end)
  C("connect host and port tables", function() return pk(s:connect(host, port)) end)
  C("send", function() return pk(s:send("hello\n")) end)
  C("receive", function() return pk(s:receive()) end)
  C("get_info", function()
    local ok, lip, lport, rip, rport = s:get_info()
    return pk(ok, lip, math.type(lport), rip, rport == port.number)
  end)
  s:send("l1\nl2\nl3\n")
  C("receive_lines 1", function() return pk(s:receive_lines(1)) end)
  s:send("abcdef")
  C("receive_bytes 3", function() return pk(s:receive_bytes(3)) end)
  -- receive_buf keeps what follows the delimiter for the next receive_buf call.
  s:send("k1\nk2\nk3\n")
  C("receive_buf string", function() return pk(s:receive_buf("\n", false)) end)
  C("receive_buf string keeppattern", function() return pk(s:receive_buf("\n", true)) end)
  -- Another I/O call: the seed clears the receive_buf buffer ("k3\n"), Nmap 7 keeps it.
  s:send("z\n")
  C("receive_buf after send", function() return pk(s:receive_buf("\n", false)) end)
  s:set_timeout(200)
  C("receive_buf after that", function() return pk(s:receive_buf("\n", false)) end)
  s:set_timeout(3000)
  s:send("f1;f2;")
  C("receive_buf function", function() return pk(s:receive_buf(semicolon, false)) end)
  C("receive_buf function keeppattern", function() return pk(s:receive_buf(semicolon, true)) end)
  s:send("ab12cd\n")
  C("receive_buf pattern keeppattern", function() return pk(s:receive_buf("%d+", true)) end)
  C("receive_buf rest", function() return pk(s:receive_buf("\n", false)) end)
  s:send("ab12cd\n")
  C("receive_buf pattern", function() return pk(s:receive_buf("%d+", false)) end)
  C("receive_buf rest 2", function() return pk(s:receive_buf("\n", true)) end)
  -- Nothing more arrives: TIMEOUT.
  s:set_timeout(100)
  C("receive timeout", function() return pk(s:receive()) end)
  C("receive_lines timeout", function() return pk(s:receive_lines(1)) end)
  C("receive_bytes timeout", function() return pk(s:receive_bytes(1)) end)
  C("receive_buf timeout", function() return pk(s:receive_buf("\n", false)) end)
  C("close", function() return pk(s:close()) end)
  C("close again", function() return pk(s:close()) end)
  C("send closed", function() return pk(s:send("x")) end)
  C("receive closed", function() return pk(s:receive()) end)
  C("receive_lines closed", function() return pk(s:receive_lines(1)) end)
  C("receive_bytes closed", function() return pk(s:receive_bytes(1)) end)
  C("receive_buf closed", function() return pk(s:receive_buf("\n", false)) end)
  C("get_info closed", function() return pk(s:get_info()) end)

  -- connect's argument forms
  local t = nmap.new_socket()
  C("connect ip string and number", function() return pk(t:connect(host.ip, port.number)) end)
  t:close()
  C("connect tcp", function() return pk(t:connect(host.ip, port.number, "tcp")) end)
  t:close()
  C("connect host table and number", function() return pk(t:connect(host, port.number)) end)
  t:close()
  C("connect ip string and port table", function() return pk(t:connect(host.ip, port)) end)
  t:close()
  C("connect host name", function() return pk(t:connect("localhost", port.number)) end)
  t:close()
  C("connect bad protocol", function()
    return pk(nmap.new_socket():connect(host.ip, port.number, "bogus"))
  end)
  local refused = nmap.new_socket()
  C("connect refused", function() return pk(refused:connect(host.ip, arg("closed"))) end)
  C("send after refused", function() return pk(refused:send("x")) end)
  refused:close()
  C("connect unresolvable", function()
    return pk(nmap.new_socket():connect("bad..name", port.number))
  end)

  -- receive_buf's error cases, each on a fresh connection with data waiting
  C("receive_buf bad delimiter", function()
    return pk(echoing(host, port, "d1\n"):receive_buf({}, false))
  end)
  C("receive_buf function raises", function()
    return pk(echoing(host, port, "d2\n"):receive_buf(function() error("seed boom") end, false))
  end)
  C("receive_buf bad pattern", function()
    return pk(echoing(host, port, "d3\n"):receive_buf("%", false))
  end)
  C("receive_buf negative size", function()
    local function backwards(buf) if #buf > 0 then return 3, 1 end end
    return pk(echoing(host, port, "d4\n"):receive_buf(backwards, false))
  end)
  C("receive_buf empty pattern", function()
    return pk(echoing(host, port, "d5\n"):receive_buf("", false))
  end)
  C("receive_buf no keeppattern", function()
    return pk(echoing(host, port, "d6\nrest"):receive_buf("\n"))
  end)

  -- partial data: then silence (TIMEOUT) or then EOF
  local function partial(name, timeout)
    local u = nmap.new_socket()
    u:set_timeout(timeout or 3000)
    u:connect(host.ip, arg(name))
    return u
  end
  C("receive_lines partial timeout", function()
    return pk(partial("partial", 300):receive_lines(2))
  end)
  C("receive_bytes partial timeout", function()
    return pk(partial("partial", 300):receive_bytes(100))
  end)
  local u = partial("partialclose")
  C("receive_lines partial eof", function() return pk(u:receive_lines(2)) end)
  C("receive_lines after eof", function() return pk(u:receive_lines(1)) end)
  u:close()
  u = partial("partialclose")
  C("receive_bytes partial eof", function() return pk(u:receive_bytes(100)) end)
  u:close()
  u = partial("bye")
  C("receive banner", function() return pk(u:receive()) end)
  C("receive eof", function() return pk(u:receive()) end)
  u:close()
  return result()
end
