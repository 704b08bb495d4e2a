description = [[
Benchmark script: parses a 170 kB JSON document 20 times with the json library of the
Nmap data directory in use (which is built on LPeg) and reports the time spent parsing.
]]
categories = {"safe"}

local json = require "json"

prerule = function() return true end

action = function()
  local parts = {}
  for i = 1, 2000 do
    parts[#parts + 1] = string.format(
      '{"id": %d, "name": "host-%d", "ports": [22, 80, 443], "up": true, "score": %d.5}',
      i, i, i)
  end
  local document = "[" .. table.concat(parts, ",") .. "]"
  local started = nmap.clock_ms()
  local items = 0
  for _ = 1, 20 do
    local ok, value = json.parse(document)
    if not ok then return "parse failed: " .. tostring(value) end
    items = items + #value
  end
  return string.format("%d items in %.1f ms", items, nmap.clock_ms() - started)
end
