-- Part of nsecluster's seed-conformance suite (tests/nse/test_seed_conformance.py). It uses only
-- the nmap module and plain Lua, so it runs unchanged under nmap 7.93 and under nsecluster.
local nmap = require "nmap"

description = [[Seed conformance: the port table (number, protocol, service, state and the
port.version values) as a portrule sees it, without -sV.]]
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
  return port.number == arg("named") or port.number == arg("unnamed")
end

action = function(host, port)
  R("number", port.number, math.type(port.number))
  R("protocol", port.protocol)
  R("service", port.service)
  R("state", port.state)
  local v = port.version
  R("version", type(v))
  R("version.name", v.name)
  R("version.name_confidence", v.name_confidence)
  for _, k in ipairs({"product", "version", "extrainfo", "hostname", "ostype", "devicetype"}) do
    R("version." .. k, v[k])
  end
  R("version.service_tunnel", v.service_tunnel)
  R("version.service_fp", v.service_fp)
  R("version.rpc_status", v.rpc_status)
  R("version.rpc_program", v.rpc_program, v.rpc_lowver, v.rpc_highver)
  return result()
end
