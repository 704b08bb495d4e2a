-- Part of nsecluster's seed-conformance suite (tests/nse/test_seed_conformance.py). It uses only
-- the nmap module and plain Lua, so it runs unchanged under nmap 7.93 and under nsecluster.
local nmap = require "nmap"

description = [[Seed conformance: nmap.mutex and its lock, trylock, done and running operations.]]
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

hostrule = function(host) return true end

action = function(host)
  local id = "seed-mutex " .. host.ip
  local m = nmap.mutex(id)
  R("mutex", type(m))
  R("same object same function", nmap.mutex(id) == m)
  C("running when free", function() return pk(m("running")) end)
  C("trylock free", function() return pk(m("trylock")) end)
  C("running when held", function()
    local owner = m("running")
    return pk(type(owner), owner == coroutine.running())
  end)
  C("trylock from another coroutine", function()
    return pk(coroutine.wrap(function() return m("trylock") end)())
  end)
  C("done", function() return pk(m("done")) end)
  C("running after done", function() return pk(m("running")) end)
  C("lock", function() return pk(m("lock")) end)
  C("trylock when locked", function()
    return pk(coroutine.wrap(function() return m("trylock") end)())
  end)
  C("done 2", function() return pk(m("done")) end)
  C("done without lock", function() return pk(m("done")) end)
  C("bad operation", function() return pk(m("bogus")) end)
  C("mutex of a number", function() return pk(nmap.mutex(5)) end)
  C("mutex of nil", function() return pk(nmap.mutex(nil)) end)
  C("mutex of a boolean", function() return pk(nmap.mutex(true)) end)
  C("mutex of a table", function() return pk(type(nmap.mutex({}))) end)
  C("mutex of a function", function() return pk(type(nmap.mutex(print))) end)
  return result()
end
