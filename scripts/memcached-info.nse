local datetime = require "datetime"
local nmap = require "nmap"
local shortport = require "shortport"
local stdnse = require "stdnse"
local string = require "string"
local table = require "table"

description = [[
Reports what a memcached server tells about itself: its process ID, uptime and clock, its
architecture, the CPU time it used, its connections, the ports it listens on and whether
SASL authentication is on. It asks with the text protocol's <code>stats</code> and
<code>stats settings</code> commands.

It works over TCP and over UDP (where memcached frames each datagram with a small header;
an answer in several datagrams is put back together). Each read waits
<code>stdnse.get_timeout(host)</code> (at least one second).
]]

---
-- @usage
-- nmap -p 11211 --script memcached-info <target>
-- nmap -sU -p 11211 --script memcached-info <target>
--
-- @output
-- PORT      STATE SERVICE
-- 11211/tcp open  memcache
-- | memcached-info:
-- |   Process ID: 12862
-- |   Uptime: 2 seconds
-- |   Server time: 2026-11-27T01:33:25
-- |   Architecture: 64 bit
-- |   Used CPU (user): 0.005903
-- |   Used CPU (system): 0.000000
-- |   Current connections: 1
-- |   Total connections: 3
-- |   Maximum connections: 1024
-- |   TCP Port: 11211
-- |   UDP Port: 0
-- |_  Authentication: no
--
-- @xmloutput
-- <elem key="Process ID">12862</elem>
-- <elem key="Uptime">2 seconds</elem>
-- <elem key="Server time">2026-11-27T01:33:25</elem>
-- <elem key="Architecture">64 bit</elem>
-- <elem key="Used CPU (user)">0.005903</elem>
-- <elem key="Used CPU (system)">0.000000</elem>
-- <elem key="Current connections">1</elem>
-- <elem key="Total connections">3</elem>
-- <elem key="Maximum connections">1024</elem>
-- <elem key="TCP Port">11211</elem>
-- <elem key="UDP Port">0</elem>
-- <elem key="Authentication">no</elem>

author = "nsecluster"
license = "Same as nsecluster"
categories = {"discovery", "safe"}

portrule = shortport.port_or_service(11211, "memcached", {"tcp", "udp"})

local MAX_REPLY = 1024 * 1024 -- bytes both replies may take together
local MAX_DATAGRAMS = 1000 -- datagrams read for one answer

-- A whole number from a statistic, or nil.
local function integer(value)
  local n = tonumber(value)
  if not n or n ~= n or n == math.huge or n == -math.huge or n ~= math.floor(n) then
    return nil
  end
  return math.tointeger(n)
end

-- The statistics shown, in this order: the key, the label and how the value is written
-- (nil: left out).
local FIELDS = {
  {"pid", "Process ID"},
  {"uptime", "Uptime", function(v)
    local n = integer(v)
    return n and ("%d seconds"):format(n)
  end},
  {"time", "Server time", function(v)
    local n = integer(v)
    if not n then
      return nil
    end
    local ok, text = pcall(datetime.format_timestamp, n)
    return ok and text or nil
  end},
  {"pointer_size", "Architecture", function(v) return v .. " bit" end},
  {"rusage_user", "Used CPU (user)"},
  {"rusage_system", "Used CPU (system)"},
  {"curr_connections", "Current connections"},
  {"total_connections", "Total connections"},
  {"maxconns", "Maximum connections"},
  {"tcpport", "TCP Port"},
  {"udpport", "UDP Port"},
  {"auth_enabled_sasl", "Authentication"},
}

-- Reads CRLF-terminated lines through one buffer shared by both replies.
local Reader = {}
Reader.__index = Reader

function Reader.new(sock)
  return setmetatable({sock = sock, buffer = "", used = 0}, Reader)
end

-- One line without its CRLF, or nil. The pieces of a line that comes in many small pieces
-- are joined once.
function Reader:line()
  local stop = self.buffer:find("\r\n", 1, true)
  if not stop then
    local parts, tail = {self.buffer}, self.buffer:sub(-1)
    repeat
      local ok, data = self.sock:receive()
      if not ok then
        return nil
      end
      self.used = self.used + #data
      if self.used > MAX_REPLY then
        return nil
      end
      parts[#parts + 1] = data
      local found = (tail .. data):find("\r\n", 1, true)
      tail = data:sub(-1)
    until found
    self.buffer = table.concat(parts)
    stop = self.buffer:find("\r\n", 1, true)
  end
  local text = self.buffer:sub(1, stop - 1)
  self.buffer = self.buffer:sub(stop + 2)
  return text
end

-- Send a command and add its "STAT key value" lines to values, up to the line "END" (or
-- "ERROR"). False when the reply does not end.
local function ask(sock, reader, command, values)
  if not sock:send(command .. "\r\n") then
    return false
  end
  while true do
    local line = reader:line()
    if not line then
      return false
    elseif line == "END" or line == "ERROR" then
      return true
    end
    local key, value = line:match("^STAT (%S+) (.*)$")
    if key then
      values[key] = value
    end
  end
end

-- Over UDP each request and each answer datagram starts with a frame header: request ID,
-- sequence number, number of datagrams, reserved (16 bits each). The answer's datagrams
-- may come in any order; they are put together by sequence number.
local function ask_udp(sock, id, command, values)
  if not sock:send(string.pack(">I2I2I2I2", id, 0, 1, 0) .. command .. "\r\n") then
    return false
  end
  local parts, total, got = {}, nil, 0
  for _ = 1, MAX_DATAGRAMS do
    local ok, data = sock:receive()
    if not ok then
      return false
    end
    if #data >= 8 then
      local rid, seq, count = string.unpack(">I2I2I2", data)
      if rid == id and seq < count and (total == nil or total == count) then
        total = count
        if not parts[seq + 1] then
          parts[seq + 1] = data:sub(9)
          got = got + 1
        end
        if got == total then
          break
        end
      end
    end
  end
  if not total or got ~= total then
    return false
  end
  local body = table.concat(parts)
  local from = 1
  while from <= #body do
    local stop = body:find("\r\n", from, true) or #body + 1
    local key, value = body:sub(from, stop - 1):match("^STAT (%S+) (.*)$")
    if key then
      values[key] = value
    end
    from = stop + 2
  end
  return true
end

action = function(host, port)
  local udp = port.protocol == "udp"
  local sock = nmap.new_socket(udp and "udp" or "tcp")
  sock:set_timeout(stdnse.get_timeout(host))
  if not sock:connect(host, port) then
    sock:close()
    return nil
  end
  local values = {}
  local complete
  if udp then
    local id = math.random(0, 0xfffe)
    complete = ask_udp(sock, id, "stats", values)
      and ask_udp(sock, id + 1, "stats settings", values)
  else
    local reader = Reader.new(sock)
    complete = ask(sock, reader, "stats", values)
      and ask(sock, reader, "stats settings", values)
  end
  sock:close()
  if not complete then
    return nil
  end

  local result = stdnse.output_table()
  for _, field in ipairs(FIELDS) do
    local value = values[field[1]]
    if value ~= nil and field[3] then
      value = field[3](value)
    end
    if value ~= nil then
      result[field[2]] = value
    end
  end
  if #result == 0 then
    return nil
  end
  return result
end
