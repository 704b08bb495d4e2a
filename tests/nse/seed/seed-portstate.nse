-- Part of nsecluster's seed-conformance suite (tests/nse/test_seed_conformance.py). It uses only
-- the nmap module and plain Lua, so it runs unchanged under nmap 7.93 and under nsecluster.
local nmap = require "nmap"

description = [[Seed conformance: nmap.get_port_state (two- and three-argument forms, the
seed's numeric-string example), set_port_state and set_port_version.]]
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

portrule = function(host, port)
  return port.number == arg("scratch")
end

local function state_of(p)
  if type(p) ~= "table" then return p end
  return p.number, p.protocol, p.state
end

action = function(host, port)
  local named, closed, spare = arg("named"), arg("closed"), arg("spare")
  C("get 2 args", function()
    return pk(state_of(nmap.get_port_state(host, {number = named, protocol = "tcp"})))
  end)
  C("get 2 args service", function()
    local p = nmap.get_port_state(host, {number = named, protocol = "tcp"})
    return pk(p.service, p.version.name)
  end)
  C("get 3 args", function()
    return pk(state_of(nmap.get_port_state(host, {number = named}, "tcp")))
  end)
  C("get numeric string", function()
    return pk(state_of(nmap.get_port_state(host, {number = tostring(named), protocol = "tcp"})))
  end)
  C("get seed example", function()
    return pk(state_of(nmap.get_port_state({ip = host.ip},
                                           {number = tostring(named), protocol = "tcp"})))
  end)
  C("get closed", function()
    return pk(state_of(nmap.get_port_state(host, {number = closed, protocol = "tcp"})))
  end)
  C("get unscanned", function()
    return pk(state_of(nmap.get_port_state(host, {number = 1, protocol = "tcp"})))
  end)
  C("get bad protocol", function()
    return pk(nmap.get_port_state(host, {number = named, protocol = "icmp"}))
  end)
  C("get host out of group", function()
    return pk(nmap.get_port_state({ip = "127.0.0.254"}, {number = named, protocol = "tcp"}))
  end)
  -- set_port_state: a closed port is opened; this script's own port is closed.
  C("set closed to open", function()
    return pk(nmap.set_port_state(host, {number = closed, protocol = "tcp"}, "open"))
  end)
  C("after set closed to open", function()
    return pk(state_of(nmap.get_port_state(host, {number = closed, protocol = "tcp"})))
  end)
  C("set own port closed", function() return pk(nmap.set_port_state(host, port, "closed")) end)
  R("own port.state unchanged", port.state)
  C("after set own port closed", function()
    return pk(state_of(nmap.get_port_state(host, port)))
  end)
  C("set bad state", function()
    return pk(nmap.set_port_state(host, {number = spare, protocol = "tcp"}, "filtered"))
  end)
  -- set_port_version on the spare port: every field the seed lists.
  local p = nmap.get_port_state(host, {number = spare, protocol = "tcp"})
  p.version.name = "seedsvc"
  p.version.product = "Seed Product"
  p.version.version = "1.2.3"
  p.version.extrainfo = "seed extra"
  p.version.hostname = "seedhost"
  p.version.ostype = "Linux"
  p.version.devicetype = "general purpose"
  p.version.service_tunnel = "none"
  C("set_port_version hardmatched", function()
    return pk(nmap.set_port_version(host, p, "hardmatched"))
  end)
  R("caller table unchanged", p.service)
  C("after set_port_version", function()
    local q = nmap.get_port_state(host, {number = spare, protocol = "tcp"})
    local v = q.version
    return pk(q.service, v.name, v.name_confidence, v.product, v.version, v.extrainfo,
              v.hostname, v.ostype, v.devicetype, v.service_tunnel)
  end)
  local empty = nmap.get_port_state(host, port)
  empty.version = {}
  C("set_port_version empty table nomatch", function()
    return pk(nmap.set_port_version(host, empty, "nomatch"))
  end)
  C("after set_port_version nomatch", function()
    local q = nmap.get_port_state(host, port)
    return pk(q.service, q.version.name, q.version.name_confidence, q.version.product)
  end)
  -- the other probe states, on ports of their own
  local wrapped = {number = arg("wrapped"), protocol = "tcp", version = {}}
  C("set_port_version tcpwrapped", function()
    return pk(nmap.set_port_version(host, wrapped, "tcpwrapped"))
  end)
  local soft = {number = arg("soft"), protocol = "tcp", version = {name = "softsvc"}}
  C("set_port_version softmatched", function()
    return pk(nmap.set_port_version(host, soft, "softmatched"))
  end)
  C("after tcpwrapped and softmatched", function()
    local w = nmap.get_port_state(host, {number = arg("wrapped"), protocol = "tcp"})
    local s = nmap.get_port_state(host, {number = arg("soft"), protocol = "tcp"})
    return pk(w.service, w.version.name_confidence, s.service, s.version.name_confidence)
  end)
  return result()
end
