local nmap = require "nmap"
local shortport = require "shortport"
local stdnse = require "stdnse"
local string = require "string"
local table = require "table"
local ssh2 = stdnse.silent_require "ssh2"

description = [[
Lists the algorithms an SSH-2 server offers in its key exchange init message, by kind: key
exchange, server host key, encryption, MAC and compression, each with its count, in the
server's order of preference.

When the server offers the same encryption (or MAC, or compression) list in both directions,
it is shown once under the combined name; otherwise the client-to-server and
server-to-client lists are shown separately.
]]

---
-- @usage
-- nmap -p 22 --script ssh2-enum-algos <target>
--
-- @output
-- PORT   STATE SERVICE
-- 22/tcp open  ssh
-- | ssh2-enum-algos:
-- |   kex_algorithms: (2)
-- |       curve25519-sha256
-- |       diffie-hellman-group14-sha256
-- |   server_host_key_algorithms: (2)
-- |       rsa-sha2-512
-- |       ssh-ed25519
-- |   encryption_algorithms: (2)
-- |       aes256-ctr
-- |       aes128-ctr
-- |   mac_algorithms: (1)
-- |       hmac-sha2-256
-- |   compression_algorithms: (2)
-- |       none
-- |_      zlib@openssh.com
--
-- @xmloutput
-- <table key="kex_algorithms">
--   <elem>curve25519-sha256</elem>
--   <elem>diffie-hellman-group14-sha256</elem>
-- </table>
-- <table key="server_host_key_algorithms">
--   <elem>rsa-sha2-512</elem>
--   <elem>ssh-ed25519</elem>
-- </table>
-- <table key="encryption_algorithms">
--   <elem>aes256-ctr</elem>
--   <elem>aes128-ctr</elem>
-- </table>
-- <table key="mac_algorithms">
--   <elem>hmac-sha2-256</elem>
-- </table>
-- <table key="compression_algorithms">
--   <elem>none</elem>
--   <elem>zlib@openssh.com</elem>
-- </table>

author = "nsecluster"
license = "Same as nsecluster"
categories = {"safe", "discovery"}

portrule = shortport.port_or_service(22, "ssh")

local CLIENT_BANNER = "SSH-2.0-Nmap_SSH2_Enum_Algos\r\n"
local MAX_PACKET = 262144 -- a longer packet_length is garbage
local MAX_RECEIVED = 1048576
local MSG_DISCONNECT, MSG_IGNORE, MSG_UNIMPLEMENTED, MSG_DEBUG, MSG_KEXINIT = 1, 2, 3, 4, 20

-- A buffered reader over the socket: nothing the server sends together (its version line and
-- its KEXINIT, say) is lost.
local function reader(socket)
  local conn = {buffer = "", received = 0}
  function conn.fill()
    local status, data = socket:receive()
    if not status or type(data) ~= "string" then return false end
    conn.received = conn.received + #data
    if conn.received > MAX_RECEIVED then return false end
    conn.buffer = conn.buffer .. data
    return true
  end
  return conn
end

-- The server's version line (RFC 4253 lets other lines come first), or nil.
local function read_banner(conn)
  local lines = 0
  for _ = 1, 4096 do
    local first, last = string.find(conn.buffer, "\r?\n")
    if first then
      local line = conn.buffer:sub(1, first - 1)
      conn.buffer = conn.buffer:sub(last + 1)
      if line:match("^SSH%-") then return line end
      lines = lines + 1
      if lines > 32 then return nil end
    elseif #conn.buffer > 1024 or not conn.fill() then
      return nil
    end
  end
  return nil
end

-- The payload of the next packet, or nil.
local function read_payload(conn)
  for _ = 1, MAX_RECEIVED + 1 do -- each read brings a byte at least
    if #conn.buffer >= 5 then
      local length, padding = string.unpack(">I4B", conn.buffer)
      if length > MAX_PACKET or length < 5 or padding + 1 >= length then return nil end
      if #conn.buffer >= length + 4 then
        local payload = conn.buffer:sub(6, 4 + length - padding)
        conn.buffer = conn.buffer:sub(length + 5)
        return payload
      end
    end
    if not conn.fill() then return nil end
  end
  return nil
end

-- The server's KEXINIT payload (after any IGNORE, DEBUG or UNIMPLEMENTED), or nil.
local function server_kexinit(host, port)
  local socket = nmap.new_socket()
  local status = socket:connect(host, port)
  if not status then return nil end
  status = socket:send(CLIENT_BANNER .. ssh2.transport.build(ssh2.transport.kex_init()))
  if not status then
    socket:close()
    return nil
  end
  local conn = reader(socket)
  local payload
  local banner = read_banner(conn)
  -- an SSH-1 server ("SSH-1.5") has no KEXINIT; one that speaks both says "SSH-1.99"
  if banner and (not banner:match("^SSH%-1%.") or banner:match("^SSH%-1%.99")) then
    for _ = 1, 16 do
      local message = read_payload(conn)
      local kind = message and message:byte(1)
      if kind == MSG_KEXINIT then payload = message end
      if kind ~= MSG_IGNORE and kind ~= MSG_DEBUG and kind ~= MSG_UNIMPLEMENTED then break end
    end
  end
  socket:close()
  return payload
end

-- The names of a name-list ("" is the empty list; an empty name between commas is kept).
local function names(list)
  local result = {}
  if list == "" then return result end
  for name in string.gmatch(list .. ",", "([^,]*),") do result[#result + 1] = name end
  return result
end

action = function(host, port)
  local payload = server_kexinit(host, port)
  if not payload then return nil end
  local offer = ssh2.transport.parse_kex_init(payload)
  if not offer or not offer.kex_algorithms then return nil end

  local kinds = {
    {"kex_algorithms", offer.kex_algorithms},
    {"server_host_key_algorithms", offer.server_host_key_algorithms},
  }
  for _, both in ipairs({"encryption_algorithms", "mac_algorithms", "compression_algorithms"}) do
    local c2s = offer[both .. "_client_to_server"]
    local s2c = offer[both .. "_server_to_client"]
    if c2s == s2c then
      kinds[#kinds + 1] = {both, c2s}
    else
      kinds[#kinds + 1] = {both .. "_client_to_server", c2s}
      kinds[#kinds + 1] = {both .. "_server_to_client", s2c}
    end
  end

  local output = stdnse.output_table()
  local lines = {}
  for _, kind in ipairs(kinds) do
    local name, list = kind[1], names(kind[2])
    output[name] = list
    lines[#lines + 1] = ("  %s: (%d)"):format(name, #list)
    if #list == 0 then
      lines[#lines + 1] = "      "
    else
      for _, item in ipairs(list) do lines[#lines + 1] = "      " .. item end
    end
  end
  return output, "\n" .. table.concat(lines, "\n")
end
