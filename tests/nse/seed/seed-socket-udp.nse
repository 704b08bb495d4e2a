-- Part of nsecluster's seed-conformance suite (tests/nse/test_seed_conformance.py). It uses only
-- the nmap module and plain Lua, so it runs unchanged under nmap 7.93 and under nsecluster.
local nmap = require "nmap"

description = [[Seed conformance: connect-style UDP sockets against a UDP echo server.]]
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

action = function(host, port)
  local udp = arg("udp")
  local s = nmap.new_socket()
  s:set_timeout(3000)
  C("connect udp", function() return pk(s:connect(host.ip, udp, "udp")) end)
  C("send", function() return pk(s:send("ping")) end)
  C("receive", function() return pk(s:receive()) end)
  C("get_info", function()
    local ok, lip, lport, rip, rport = s:get_info()
    return pk(ok, lip, math.type(lport), rip, rport == udp)
  end)
  s:send("one\ntwo\n")
  C("receive_lines", function() return pk(s:receive_lines(2)) end)
  s:send("x;y")
  C("receive_buf", function() return pk(s:receive_buf(";", false)) end)
  s:set_timeout(100)
  C("receive timeout", function() return pk(s:receive()) end)
  C("close", function() return pk(s:close()) end)
  C("close again", function() return pk(s:close()) end)
  local t = nmap.new_socket()
  t:set_timeout(3000)
  C("connect host table", function() return pk(t:connect(host, udp, "udp")) end)
  C("send 2", function() return pk(t:send("pong")) end)
  C("receive 2", function() return pk(t:receive()) end)
  t:close()
  local v = nmap.new_socket()
  v:set_timeout(1000)
  C("connect udp port table", function()
    return pk(v:connect(host, {number = udp, protocol = "udp"}))
  end)
  C("send 3", function() return pk(v:send("table")) end)
  C("receive 3", function() return pk(v:receive()) end)
  v:close()
  return result()
end
