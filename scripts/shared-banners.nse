local ipOps = require "ipOps"
local nmap = require "nmap"
local stdnse = require "stdnse"
local string = require "string"
local table = require "table"

description = [[
Finds hosts that run the same software: for each open TCP port it records what the
service says first (an SSH version string, an FTP or SMTP greeting, ...) or, for a service
that waits to be asked, the <code>Server</code> header of its answer to an HTTP
<code>HEAD</code> request. After the scan it reports every value that two or more hosts share,
with the hosts and ports, so clusters of identical machines (or one software version
spread over a network) stand out.

Greetings are compared by their first line, with surrounding whitespace removed. Ports
give no output of their own; the groups are in the post-scan results, largest group first
(then by kind and value), the hosts of each group in address order.
]]

---
-- @usage
-- nmap -p 21,22,25,80 --script shared-banners <targets>
-- nmap -p- --script shared-banners --script-args shared-banners.min-hosts=3 10.0.0.0/24
--
-- @output
-- Post-scan script results:
-- | shared-banners:
-- |   SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3 (ssh, 3 hosts)
-- |     10.0.0.5:22
-- |     10.0.0.7:22
-- |     10.0.0.7:2222
-- |     10.0.0.12:22
-- |   nginx/1.22.1 (http-server, 2 hosts)
-- |     10.0.0.5:80
-- |_    10.0.0.9:8080
--
-- @xmloutput
-- <table>
--   <elem key="value">SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3</elem>
--   <elem key="kind">ssh</elem>
--   <elem key="hosts">3</elem>
--   <table key="ports">
--     <elem>10.0.0.5:22</elem>
--     <elem>10.0.0.7:22</elem>
--     <elem>10.0.0.7:2222</elem>
--     <elem>10.0.0.12:22</elem>
--   </table>
-- </table>
-- <table>
--   <elem key="value">nginx/1.22.1</elem>
--   <elem key="kind">http-server</elem>
--   <elem key="hosts">2</elem>
--   <table key="ports">
--     <elem>10.0.0.5:80</elem>
--     <elem>10.0.0.9:8080</elem>
--   </table>
-- </table>
--
-- @args shared-banners.timeout How long to wait for a greeting, and then for the answer to
--       the HTTP request, as a time such as <code>2s</code> or <code>500ms</code> (default
--       2s).
-- @args shared-banners.min-hosts Report values shared by at least this many hosts
--       (default 2).

author = "nsecluster"
license = "Same as nsecluster"
categories = {"discovery", "safe"}

local DEFAULT_TIMEOUT_MS = 2000
local MAX_HEADERS = 16384 -- bytes of an HTTP answer read for its headers
local MAX_VALUE = 120 -- characters of a value kept

portrule = function(host, port)
  return port.protocol == "tcp" and port.state == "open"
end

postrule = function()
  local found = nmap.registry[SCRIPT_NAME]
  return type(found) == "table" and #found > 0
end

local function timeout_ms()
  local given = stdnse.get_script_args(SCRIPT_NAME .. ".timeout")
  local seconds = given and stdnse.parse_timespec(given)
  return seconds and seconds * 1000 or DEFAULT_TIMEOUT_MS
end

local function min_hosts()
  local n = tonumber(stdnse.get_script_args(SCRIPT_NAME .. ".min-hosts"))
  if not n or n < 1 then
    return 2
  end
  return math.floor(n)
end

-- Printable ASCII kept, other bytes as \xHH, surrounding whitespace dropped, cut short.
local function clean(text)
  local first = text:find("%S")
  if not first then
    return nil
  end
  text = text:match("^.*%S", first)
  text = text:gsub("[^\32-\126]", function(c)
    return string.format("\\x%02X", c:byte())
  end)
  if #text > MAX_VALUE then
    text = text:sub(1, MAX_VALUE - 3) .. "..."
  end
  return text
end

-- The Server header of an HTTP answer's head, or nil.
local function server_header(head)
  if not head:match("^HTTP/%d") then
    return nil
  end
  for line in head:gmatch("[^\r\n]+") do
    local value = line:match("^[Ss][Ee][Rr][Vv][Ee][Rr]:[ \t]*(.*)$")
    if value then
      return value
    end
  end
  return nil
end

-- (kind, value) for one port, or nil.
local function fingerprint(host, port)
  local wait = timeout_ms()
  local sock = nmap.new_socket()
  sock:set_timeout(wait)
  if not sock:connect(host, port) then
    sock:close()
    return nil
  end
  local ok, greeting = sock:receive()
  if ok then
    sock:close()
    local line = greeting:match("^[\r\n]*([^\r\n]*)")
    local value = clean(line)
    if not value then
      return nil
    end
    return value:match("^SSH%-") and "ssh" or "banner", value
  elseif greeting ~= "TIMEOUT" then
    sock:close()
    return nil
  end
  -- Nothing said: ask as an HTTP client would.
  local request = ("HEAD / HTTP/1.0\r\nHost: %s\r\nUser-Agent: nsecluster\r\n\r\n"):format(
    host.targetname or host.ip)
  if not sock:send(request) then
    sock:close()
    return nil
  end
  -- The answer's head: pieces up to the blank line (or MAX_HEADERS), joined once.
  local parts, have, tail = {}, 0, ""
  while have < MAX_HEADERS do
    local got, data = sock:receive()
    if not got then
      break
    end
    parts[#parts + 1] = data
    have = have + #data
    local window = tail .. data
    if window:find("\n\r?\n") then
      break
    end
    tail = window:sub(-3)
  end
  sock:close()
  local server = server_header(table.concat(parts))
  local value = server and clean(server)
  if not value then
    return nil
  end
  return "http-server", value
end

local function record(host, port)
  local kind, value = fingerprint(host, port)
  if kind then
    local found = nmap.registry[SCRIPT_NAME] or {}
    nmap.registry[SCRIPT_NAME] = found
    found[#found + 1] = {ip = host.ip, port = port.number, kind = kind, value = value}
  end
  return nil
end

-- Addresses compare as numbers, IPv4 before IPv6; anything unreadable after, as text.
local function address_key(ip)
  local ok, bin = pcall(ipOps.ip_to_str, ip)
  if ok and bin then
    return string.char(#bin) .. bin
  end
  return "\255" .. ip
end

local function report()
  local groups, order = {}, {}
  for _, entry in ipairs(nmap.registry[SCRIPT_NAME] or {}) do
    local id = entry.kind .. "\0" .. entry.value
    local group = groups[id]
    if not group then
      group = {kind = entry.kind, value = entry.value, hosts = {}, count = 0, ports = {},
               seen = {}}
      groups[id] = group
      order[#order + 1] = group
    end
    local where = entry.ip .. "\0" .. entry.port
    if not group.seen[where] then
      group.seen[where] = true
      group.ports[#group.ports + 1] = entry
      if not group.hosts[entry.ip] then
        group.hosts[entry.ip] = true
        group.count = group.count + 1
      end
    end
  end

  local wanted = min_hosts()
  local shown = {}
  for _, group in ipairs(order) do
    if group.count >= wanted then
      shown[#shown + 1] = group
    end
  end
  if #shown == 0 then
    return nil
  end
  table.sort(shown, function(a, b)
    if a.count ~= b.count then
      return a.count > b.count
    elseif a.kind ~= b.kind then
      return a.kind < b.kind
    end
    return a.value < b.value
  end)

  local out, lines = {}, {}
  for _, group in ipairs(shown) do
    table.sort(group.ports, function(a, b)
      local ka, kb = address_key(a.ip), address_key(b.ip)
      if ka ~= kb then
        return ka < kb
      end
      return a.port < b.port
    end)
    local ports = {}
    for i, entry in ipairs(group.ports) do
      ports[i] = entry.ip:find(":", 1, true) and ("[%s]:%d"):format(entry.ip, entry.port)
        or ("%s:%d"):format(entry.ip, entry.port)
    end
    local item = stdnse.output_table()
    item.value = group.value
    item.kind = group.kind
    item.hosts = group.count
    item.ports = ports
    out[#out + 1] = item
    lines[#lines + 1] = ("  %s (%s, %d hosts)"):format(group.value, group.kind, group.count)
    for _, where in ipairs(ports) do
      lines[#lines + 1] = "    " .. where
    end
  end
  return out, "\n" .. table.concat(lines, "\n")
end

action = function(...)
  if SCRIPT_TYPE == "postrule" then
    return report()
  end
  return record(...)
end
