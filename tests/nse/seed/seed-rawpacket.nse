-- Part of nsecluster's seed-conformance suite (tests/nse/test_seed_conformance.py). It uses only
-- the nmap module and plain Lua, so it runs unchanged under nmap 7.93 and under nsecluster.
local nmap = require "nmap"

description = [[Seed conformance: the raw packet calls (pcap_* on sockets, new_dnet and
ethernet_*), on the loopback device with a filter that matches nothing, so the capture times
out; the dnet calls are misused on purpose (loopback is no ethernet device).]]
author = "nsecluster"
license = "Same as nsecluster"
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

hostrule = function(host) return true end

action = function(host)
  local s = nmap.new_socket()
  R("pcap methods", type(s.pcap_open), type(s.pcap_register), type(s.pcap_receive),
    type(s.pcap_close))
  s:set_timeout(200)
  C("pcap_open", function()
    return pk(s:pcap_open("lo", 64, 0, function() return "" end,
                          "udp port 9 and host 127.254.254.254"))
  end)
  C("pcap_register", function() return pk(s:pcap_register("")) end)
  C("pcap_receive", function() return pk(s:pcap_receive()) end)
  C("pcap_close", function() return pk(s:pcap_close()) end)
  local d = nmap.new_dnet()
  R("dnet methods", type(d.ethernet_open), type(d.ethernet_send), type(d.ethernet_close))
  C("ethernet_open", function() return pk(d:ethernet_open("lo")) end)
  C("ethernet_send", function() return pk(d:ethernet_send("frame")) end)
  C("ethernet_close", function() return pk(d:ethernet_close()) end)
  return result()
end
