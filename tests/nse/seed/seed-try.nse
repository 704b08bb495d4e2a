-- Part of nsecluster's seed-conformance suite (tests/nse/test_seed_conformance.py). It uses only
-- the nmap module and plain Lua, so it runs unchanged under nmap 7.93 and under nsecluster.
local nmap = require "nmap"

description = [[Seed conformance: nmap.new_try with and without a catch function, and the seed's
Example 9.3.]]
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

portrule = function(host, port) return port.number == arg("named") end

action = function(host, port)
  local try = nmap.new_try()
  R("new_try", type(try))
  C("try true with values", function() return pk(try(true, 1, "two")) end)
  C("try true alone", function() return pk(try(true)) end)
  C("try non-nil status", function() return pk(try("yes", 2, 3)) end)
  C("try false", function() return pk(try(false, "boom")) end)
  C("try nil", function() return pk(try(nil, "nil boom")) end)
  C("try false without message", function() return pk(try(false)) end)
  local calls, nargs = 0, nil
  local try2 = nmap.new_try(function(...) calls, nargs = calls + 1, select("#", ...) end)
  C("catch success", function() return pk(try2(true, "fine")) end)
  R("catch calls after success", calls)
  C("catch failure", function() return pk(try2(false, "caught")) end)
  R("catch calls after failure", calls, nargs)

  -- Example 9.3, against the echo server and against a closed port
  local function example(number)
    local result, socket, try, catch
    result = ""
    socket = nmap.new_socket()
    catch = function() socket:close() end
    try = nmap.new_try(catch)
    try(socket:connect(host.ip, number))
    try(socket:send("example\n"))
    result = try(socket:receive_lines(1))
    try(socket:send(result))
    socket:close()
    return pk(result)
  end
  C("example 9.3", function() return example(arg("echo")) end)
  C("example 9.3 refused", function() return example(arg("closed")) end)
  return result()
end
