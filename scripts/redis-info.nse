local ipOps = require "ipOps"
local nmap = require "nmap"
local shortport = require "shortport"
local stdnse = require "stdnse"
local string = require "string"
local table = require "table"

description = [[
Reports what a Redis server tells about itself: version, operating system and
architecture, process, CPU and memory use, clients and replicas, and its role (from
<code>INFO</code>); then the addresses it is bound to (<code>CONFIG GET bind</code>), its
active Pub/Sub channels, the addresses its clients connect from (<code>CLIENT LIST</code>,
each address once) and, for a cluster member, the cluster's nodes (<code>CLUSTER
NODES</code>). A question the server refuses is left out; an answer that cannot be read
ends the conversation.

A password given as a credential for the service (<code>creds.redis</code> or
<code>creds.global</code>, see the creds library) is sent with <code>AUTH</code> first. A
server that demands authentication and gets none gives no output. The version and
architecture found also go into the port's service information.
]]

---
-- @usage
-- nmap -p 6379 <ip> --script redis-info
--
-- @output
-- PORT     STATE SERVICE
-- 6379/tcp open  redis
-- | redis-info:
-- |   Version: 7.0.15
-- |   Operating System: Linux 6.1.0-18-amd64 x86_64
-- |   Architecture: 64 bits
-- |   Process ID: 730
-- |   Used CPU (sys): 0.011354
-- |   Used CPU (user): 0.000000
-- |   Connected clients: 1
-- |   Connected slaves: 0
-- |   Used memory: 919.57K
-- |   Role: master
-- |   Bind addresses:
-- |     127.0.0.1
-- |   Active channels:
-- |     news
-- |   Client connections:
-- |     10.0.0.7
-- |_    192.168.1.20
--
-- @xmloutput
-- <elem key="Version">7.0.15</elem>
-- <elem key="Operating System">Linux 6.1.0-18-amd64 x86_64</elem>
-- <elem key="Architecture">64 bits</elem>
-- <elem key="Process ID">730</elem>
-- <elem key="Used CPU (sys)">0.011354</elem>
-- <elem key="Used CPU (user)">0.000000</elem>
-- <elem key="Connected clients">1</elem>
-- <elem key="Connected slaves">0</elem>
-- <elem key="Used memory">919.57K</elem>
-- <elem key="Role">master</elem>
-- <table key="Bind addresses">
--   <elem>127.0.0.1</elem>
-- </table>
-- <table key="Active channels">
--   <elem>news</elem>
-- </table>
-- <table key="Client connections">
--   <elem>10.0.0.7</elem>
--   <elem>192.168.1.20</elem>
-- </table>
--
-- @args creds.redis A credential for the service; its password (the part after the colon,
--       as in <code>creds.redis=:secret</code>) is sent with <code>AUTH</code>. See the
--       creds library, which also offers <code>creds.global</code>.

author = "nsecluster"
license = "Same as nsecluster"
categories = {"discovery", "safe"}

portrule = shortport.port_or_service(6379, "redis")

local TIMEOUT_MS = 30000
local MAX_REPLY = 4 * 1024 * 1024 -- bytes the whole conversation may take
local MAX_ITEMS = 100000 -- elements of one array
local MAX_LINE = 65536 -- bytes of a status, error or header line

-- INFO fields shown, in this order, with their labels.
local FIELDS = {
  {"redis_version", "Version"},
  {"os", "Operating System"},
  {"arch_bits", "Architecture", function(v) return v .. " bits" end},
  {"process_id", "Process ID"},
  {"used_cpu_sys", "Used CPU (sys)"},
  {"used_cpu_user", "Used CPU (user)"},
  {"connected_clients", "Connected clients"},
  {"connected_slaves", "Connected slaves"},
  {"used_memory_human", "Used memory"},
  {"role", "Role"},
}

-- A connection with its own buffer, so replies may arrive in any pieces.
local Connection = {}
Connection.__index = Connection

function Connection.open(host, port)
  local sock = nmap.new_socket()
  sock:set_timeout(TIMEOUT_MS)
  local ok = sock:connect(host, port)
  if not ok then
    sock:close()
    return nil
  end
  return setmetatable({sock = sock, buffer = "", used = 0}, Connection)
end

-- Read until the buffer holds n bytes (false when the peer stops first or sends too much).
-- The pieces are joined once, so a reply that comes in many small pieces costs no more.
function Connection:fill(n)
  if #self.buffer >= n then
    return true
  end
  if self.used + n > MAX_REPLY then
    return false
  end
  local parts, have = {self.buffer}, #self.buffer
  while have < n do
    local ok, data = self.sock:receive()
    if not ok then
      return false
    end
    parts[#parts + 1] = data
    have = have + #data
  end
  self.buffer = table.concat(parts)
  return true
end

-- One line without its CRLF, or nil (also for a line longer than MAX_LINE).
function Connection:line()
  local stop = self.buffer:find("\r\n", 1, true)
  if not stop then
    local parts, have, tail = {self.buffer}, #self.buffer, self.buffer:sub(-1)
    repeat
      if have > MAX_LINE then
        return nil
      end
      local ok, data = self.sock:receive()
      if not ok then
        return nil
      end
      parts[#parts + 1] = data
      have = have + #data
      local found = (tail .. data):find("\r\n", 1, true)
      tail = data:sub(-1)
    until found
    self.buffer = table.concat(parts)
    stop = self.buffer:find("\r\n", 1, true)
  end
  local text = self.buffer:sub(1, stop - 1)
  self.buffer = self.buffer:sub(stop + 2)
  self.used = self.used + stop + 1
  return text
end

function Connection:take(n)
  if not self:fill(n) then
    return nil
  end
  local data = self.buffer:sub(1, n)
  self.buffer = self.buffer:sub(n + 1)
  self.used = self.used + n
  return data
end

-- Reply kinds: {kind="status"|"error"|"bulk"|"array"|"null", value=...}. An array holds
-- status, error and bulk strings only. nil: the connection failed or the reply is not one
-- we read (an integer, a nested array, garbage), and the conversation is over.
function Connection:reply(nested)
  local header = self:line()
  if not header then
    return nil
  end
  local kind, rest = header:sub(1, 1), header:sub(2)
  if kind == "+" then
    return {kind = "status", value = rest}
  elseif kind == "-" then
    return {kind = "error", value = rest}
  elseif kind == "$" then
    local size = tonumber(rest:match("^%-?%d+$"))
    if not size then
      return nil
    elseif size < 0 then
      return {kind = "null"}
    end
    local data = self:take(size + 2)
    if not data or data:sub(-2) ~= "\r\n" then
      return nil
    end
    return {kind = "bulk", value = data:sub(1, -3)}
  elseif kind == "*" and not nested then
    local count = tonumber(rest:match("^%-?%d+$"))
    if not count or count > MAX_ITEMS then
      return nil
    elseif count < 0 then
      return {kind = "null"}
    end
    local items = {}
    for i = 1, count do
      local item = self:reply(true)
      if not item or item.kind == "null" then
        return nil
      end
      items[i] = item.value
    end
    return {kind = "array", value = items}
  end
  return nil
end

-- Send a command as an array of bulk strings and read its reply.
function Connection:command(...)
  local words = table.pack(...)
  local parts = {("*%d\r\n"):format(words.n)}
  for i = 1, words.n do
    parts[#parts + 1] = ("$%d\r\n%s\r\n"):format(#words[i], words[i])
  end
  if not self.sock:send(table.concat(parts)) then
    return nil
  end
  return self:reply()
end

function Connection:close()
  self.sock:close()
end

-- The password of the first credential the creds library offers for the service.
local function password(host, port)
  local ok, creds = pcall(require, "creds")
  if not ok or type(creds) ~= "table" or not creds.Credentials then
    return nil
  end
  local found
  pcall(function()
    local c = creds.Credentials:new(creds.ALL_DATA, host, port)
    for entry in c:getCredentials(creds.State.VALID + creds.State.PARAM) do
      if entry.pass then
        found = entry.pass
        return
      end
    end
  end)
  return found
end

-- Text split at every occurrence of a plain separator (empty pieces kept).
local function split(text, separator)
  local pieces, from = {}, 1
  while true do
    local at = text:find(separator, from, true)
    if not at then
      pieces[#pieces + 1] = text:sub(from)
      return pieces
    end
    pieces[#pieces + 1] = text:sub(from, at - 1)
    from = at + #separator
  end
end

local function parse_info(text)
  local values = {}
  for _, line in ipairs(split(text, "\r\n")) do
    local key, value = line:match("^([^:]*):(.*)$")
    if key then
      values[key] = value -- a repeated field: the last one counts
    end
  end
  return values
end

-- Client addresses from CLIENT LIST: unique, IPv4 before IPv6, in address order.
local function client_addresses(text)
  local seen, found = {}, {}
  for _, line in ipairs(split(text, "\n")) do
    -- The first "addr=" that starts the line or follows a blank: address ":" port.
    local value = (" " .. line):match("[ \t]addr=(%S*)")
    local ip = value and value:match("^(.+):%d+$")
    if ip then
      ip = ip:match("^%[(.*)%]$") or ip
      local ok, bin = pcall(ipOps.ip_to_str, ip)
      if ok and bin and not seen[bin] then
        seen[bin] = true
        found[#found + 1] = bin
      end
    end
  end
  table.sort(found, function(a, b)
    if #a ~= #b then
      return #a < #b
    end
    return a < b
  end)
  for i, bin in ipairs(found) do
    found[i] = ipOps.str_to_ip(bin)
  end
  return found
end

-- "address (flags)" for each line of CLUSTER NODES.
local function cluster_nodes(text)
  local nodes = {}
  for _, line in ipairs(split(text, "\n")) do
    local address, flags = line:match("^%x+%s+([%x%.:%[%]]*)@?%d*%s+(%S+)")
    if address then
      nodes[#nodes + 1] = ("%s (%s)"):format(address, flags)
    end
  end
  return nodes
end

local function set_version(host, port, info)
  local version, bits = info.redis_version, info.arch_bits
  if not version and not bits then
    return
  end
  port.version = port.version or {}
  port.version.name = port.version.name or "redis"
  if version then
    port.version.version = version
    port.version.cpe = port.version.cpe or {}
    table.insert(port.version.cpe, "cpe:/a:redis:redis:" .. version)
  end
  if bits then
    port.version.extrainfo = bits .. " bits"
  end
  pcall(nmap.set_port_version, host, port)
end

action = function(host, port)
  local conn = Connection.open(host, port)
  if not conn then
    return nil
  end
  local secret = password(host, port)
  if secret and not conn:command("AUTH", secret) then
    conn:close()
    return nil
  end

  local info = conn:command("INFO")
  if not info or info.kind == "error" then
    conn:close()
    return nil
  end
  local result = stdnse.output_table()
  local fields = info.kind == "bulk" and parse_info(info.value) or {}
  set_version(host, port, fields)
  for _, field in ipairs(FIELDS) do
    local value = fields[field[1]]
    if value then
      result[field[2]] = field[3] and field[3](value) or value
    end
  end

  -- Each further question; the conversation ends at the first answer we cannot read.
  local bind = conn:command("CONFIG", "GET", "bind")
  if bind then
    if bind.kind == "array" and type(bind.value[2]) == "string" then
      local addresses = split(bind.value[2], " ")
      for i, address in ipairs(addresses) do
        if address == "" then
          addresses[i] = "0.0.0.0"
        end
      end
      result["Bind addresses"] = addresses
    end
    local channels = conn:command("PUBSUB", "CHANNELS")
    if channels then
      if channels.kind == "array" and #channels.value > 0 then
        result["Active channels"] = channels.value
      end
      local clients = conn:command("CLIENT", "LIST")
      if clients then
        if clients.kind == "bulk" or clients.kind == "status" then
          local addresses = client_addresses(clients.value)
          if #addresses > 0 then
            result["Client connections"] = addresses
          end
        end
        local cluster = conn:command("CLUSTER", "NODES")
        if cluster and cluster.kind == "bulk" then
          local nodes = cluster_nodes(cluster.value)
          if #nodes > 0 then
            result["Cluster nodes"] = nodes
          end
        end
      end
    end
  end
  conn:close()
  if #result == 0 then
    return nil
  end
  return result
end
