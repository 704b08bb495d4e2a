---
-- The SSH-1 protocol as far as it is needed to learn a server's host key, and the formats
-- key fingerprints are shown in (hexadecimal, Base64, Bubble Babble and the "randomart"
-- picture OpenSSH draws), and a reader for OpenSSH known_hosts files.
--
-- Written for nsecluster from the NSEDoc of Nmap's ssh1 library, the SSH-1.5 protocol
-- description and observation of Nmap 7.93; the names, arguments and return values are those
-- scripts written for Nmap expect. A server that answers with garbage, closes early or never
-- answers makes <code>fetch_host_key</code> return nothing; it does not raise an error.
-- (Where Nmap 7.93's raises errors, this one answers: Bubble Babble of an odd-length
-- fingerprint, a known_hosts path that cannot be read when ~/.ssh/config is missing.)
--
-- @class module
-- @name ssh1

local base64 = require "base64"
local nmap = require "nmap"
local stdnse = require "stdnse"
local openssl = stdnse.silent_require "openssl"

local io, os = io, os
local error, pcall, tostring, type = error, pcall, tostring, type
local byte, find, format, gsub, match, rep, sub, unpack =
      string.byte, string.find, string.format, string.gsub, string.match, string.rep,
      string.sub, string.unpack
local concat = table.concat

local _ENV = {}

-- Packets longer than this are refused (SSH-1 limits a packet to 256 KiB).
local MAX_PACKET = 262144
local CLIENT_BANNER = "SSH-1.5-Nmap-SSH1-Hostkey\r\n"
local SSH_SMSG_PUBLIC_KEY = 2

-- The whole length of the SSH-1 packet that starts <code>buffer</code> (its length field,
-- the 1 to 8 padding bytes, type, data and CRC), or nil when its length field is not there yet.
local function packet_size(buffer)
  if #buffer < 4 then return nil end
  local length = unpack(">I4", buffer)
  return 4 + length + (8 - length % 8), length
end

--- Tell whether <code>buffer</code> holds a whole SSH-1 packet (for
-- <code>receive_buf</code>).
-- @param buffer The data received so far.
-- @return The packet's length twice (like <code>string.find</code>), or nil when more data is
--         needed.
function check_packet_length(buffer)
  local size = packet_size(buffer)
  if size == nil or size > #buffer then return nil end
  return size, size
end

-- As check_packet_length, but a length past any real packet takes the whole buffer, so that
-- a stream of garbage does not keep the caller reading.
local function packet_delimiter(buffer)
  local size, length = packet_size(buffer)
  if size == nil then return nil end
  if length > MAX_PACKET then return 1, #buffer end
  if size > #buffer then return nil end
  return size, size
end

--- Receive one SSH-1 packet, however it arrives in pieces.
-- @param socket A connected socket.
-- @return true and the packet (with its length field), or a false status and the socket's
--         error ("TIMEOUT", "EOF", ...).
local function receive_packet(socket)
  local status, packet = socket:receive_buf(packet_delimiter, true)
  if not status then return status, packet end
  local size, length = packet_size(packet)
  if size == nil or length > MAX_PACKET then return nil, "invalid packet length" end
  return true, packet
end
receive_ssh_packet = receive_packet

-- SSH-1 multiple precision integer at pos: bit count (2 bytes), then the bytes.
local function read_mpint(data, pos)
  if pos + 1 > #data then return nil end
  local bits = unpack(">I2", data, pos)
  local size = (bits + 7) // 8
  if pos + 1 + size > #data then return nil end
  return openssl.bignum_bin2bn(sub(data, pos + 2, pos + 1 + size)), pos + 2 + size
end

local function read_uint32(data, pos)
  if pos + 3 > #data then return nil end
  return unpack(">I4", data, pos), pos + 4
end

-- The host key of an SSH_SMSG_PUBLIC_KEY packet, or nil.
local function parse_public_key(packet)
  local size, length = packet_size(packet)
  if size == nil or size ~= #packet or length < 5 then return nil end
  local pos = 5 + (8 - length % 8) -- type byte, after the padding
  if byte(packet, pos) ~= SSH_SMSG_PUBLIC_KEY then return nil end
  pos = pos + 1 + 8 -- the anti-spoofing cookie
  local _
  _, pos = read_uint32(packet, pos) -- server key
  if not pos then return nil end
  _, pos = read_mpint(packet, pos)
  if not pos then return nil end
  _, pos = read_mpint(packet, pos)
  if not pos then return nil end
  local bits, exp, mod
  bits, pos = read_uint32(packet, pos) -- host key
  if not pos then return nil end
  exp, pos = read_mpint(packet, pos)
  if not pos then return nil end
  mod, pos = read_mpint(packet, pos)
  if not pos then return nil end
  return bits, exp, mod
end

-- Fetching reads through a buffer of its own (nothing the server sends early is lost,
-- whatever the socket's receive_buf rules are); a server that streams garbage is cut off.
local MAX_RECEIVED = 1048576

local function fill(conn)
  local status, data = conn.socket:receive()
  if not status or type(data) ~= "string" then return false end
  conn.received = conn.received + #data
  if conn.received > MAX_RECEIVED then return false end
  conn.buffer = conn.buffer .. data
  return true
end

-- The server's version line (other lines may come first), or nil.
local function read_banner(conn)
  for _ = 1, 1024 do
    local first, last = find(conn.buffer, "\r?\n")
    if first then
      local line = sub(conn.buffer, 1, first - 1)
      conn.buffer = sub(conn.buffer, last + 1)
      if match(line, "^SSH%-") then return line end
      conn.lines = conn.lines + 1
      if conn.lines > 32 then return nil end
    elseif #conn.buffer > 1024 or not fill(conn) then
      return nil
    end
  end
  return nil
end

-- The next packet, or nil.
local function read_packet(conn)
  for _ = 1, MAX_RECEIVED + 1 do -- each read brings a byte at least
    local size, length = packet_size(conn.buffer)
    if size then
      if length > MAX_PACKET then return nil end
      if #conn.buffer >= size then
        local packet = sub(conn.buffer, 1, size)
        conn.buffer = sub(conn.buffer, size + 1)
        return packet
      end
    end
    if not fill(conn) then return nil end
  end
  return nil
end

local function exchange(socket, host, port)
  local status = socket:connect(host, port)
  if not status then return nil end
  local conn = {socket = socket, buffer = "", received = 0, lines = 0}
  local banner = read_banner(conn)
  -- Only a server that speaks SSH-1 (1.x, or 1.99 for both) answers an SSH-1 client.
  if not banner or not match(banner, "^SSH%-1%.") then return nil end
  status = socket:send(CLIENT_BANNER)
  if not status then return nil end
  local packet = read_packet(conn)
  if not packet then return nil end
  local bits, exp, mod = parse_public_key(packet)
  if not bits then return nil end
  local fp_input = mod:tobin() .. exp:tobin()
  local key = exp:todec() .. " " .. mod:todec()
  return {
    exp = exp,
    mod = mod,
    bits = bits,
    key_type = "rsa1",
    fp_input = fp_input,
    fingerprint = openssl.md5(fp_input),
    fp_sha256 = openssl.digest("sha256", fp_input),
    full_key = bits .. " " .. key,
    key = key,
    algorithm = "RSA1",
  }
end

--- Fetch the host key of an SSH-1 server.
-- @param host Nmap host table (or address).
-- @param port Nmap port table (or number).
-- @return A table with the key: <code>exp</code> and <code>mod</code> (BIGNUMs),
--         <code>bits</code>, <code>key_type</code> ("rsa1"), <code>algorithm</code> ("RSA1"),
--         <code>fp_input</code> (modulus then exponent, the bytes fingerprinted),
--         <code>fingerprint</code> (MD5), <code>fp_sha256</code>, <code>key</code> (exponent
--         and modulus in decimal) and <code>full_key</code> (bits, exponent and modulus); or
--         nothing when the server gave no SSH-1 host key.
function fetch_host_key(host, port)
  local socket = nmap.new_socket()
  local ok, key = pcall(exchange, socket, host, port)
  socket:close()
  if not ok then
    stdnse.debug1("SSH-1 host key exchange failed: %s", tostring(key))
    return
  end
  if key then return key end
end

--- Format a key fingerprint in hexadecimal.
-- @param fingerprint The fingerprint (bytes).
-- @param algorithm The key's algorithm name ("RSA", "DSA", ...).
-- @param bits The key's size in bits.
-- @return "bits hex (algorithm)".
function fingerprint_hex(fingerprint, algorithm, bits)
  local hex = gsub(fingerprint, ".", function(c) return format("%02x", byte(c)) end)
  return format("%d %s (%s)", bits, hex, algorithm)
end

--- Format a key fingerprint in Base64 (without the "=" padding), as OpenSSH prints SHA-256
-- fingerprints.
-- @param fingerprint The fingerprint (bytes).
-- @param hash The name of the hash that made it ("SHA256").
-- @param algorithm The key's algorithm name.
-- @param bits The key's size in bits.
-- @return "bits hash:base64 (algorithm)" (as Nmap's, "nil" stands for the Base64 of an empty
--         fingerprint).
function fingerprint_base64(fingerprint, hash, algorithm, bits)
  local encoded = match(base64.enc(fingerprint), "[^=]+")
  return format("%d %s:%s (%s)", bits, hash, tostring(encoded), algorithm)
end

local VOWELS = "aeiouy"
local CONSONANTS = "bcdfghklmnprstvzx"

local function vowel(i) return sub(VOWELS, i + 1, i + 1) end
local function consonant(i) return sub(CONSONANTS, i + 1, i + 1) end

--- Format a key fingerprint in Bubble Babble (the encoding OpenSSH uses for SHA-1
-- fingerprints).
-- @param fingerprint The fingerprint (bytes).
-- @param algorithm The key's algorithm name.
-- @param bits The key's size in bits.
-- @return "bits words (algorithm)".
function fingerprint_bubblebabble(fingerprint, algorithm, bits)
  local length = #fingerprint
  local rounds = length // 2 + 1
  local seed = 1
  local out = {"x"}
  for i = 0, rounds - 1 do
    if i + 1 < rounds or length % 2 ~= 0 then
      local b1 = byte(fingerprint, 2 * i + 1)
      out[#out + 1] = vowel(((b1 >> 6 & 3) + seed) % 6) .. consonant(b1 >> 2 & 15)
                      .. vowel(((b1 & 3) + seed // 6) % 6)
      if i + 1 < rounds then
        local b2 = byte(fingerprint, 2 * i + 2)
        out[#out + 1] = consonant(b2 >> 4 & 15) .. "-" .. consonant(b2 & 15)
        seed = (seed * 5 + b1 * 7 + b2) % 36
      end
    else
      out[#out + 1] = vowel(seed % 6) .. "x" .. vowel(seed // 6)
    end
  end
  out[#out + 1] = "x"
  return format("%d %s (%s)", bits, concat(out), algorithm)
end

local FIELD_X, FIELD_Y = 17, 9
local SYMBOLS = " .o+=*BOX@%&#/^SE"

--- Format a key fingerprint as the ASCII-art picture OpenSSH draws ("randomart"): a walk
-- over a 17x9 field, two bits of the fingerprint a step.
-- @param fingerprint The fingerprint (bytes; the MD5 fingerprint by convention).
-- @param algorithm The key's algorithm name.
-- @param bits The key's size in bits.
-- @return The picture, with a newline before and after it.
function fingerprint_visual(fingerprint, algorithm, bits)
  local top = #SYMBOLS - 1 -- index of "E"
  local field = {}
  for y = 1, FIELD_Y do
    field[y] = {}
    for x = 1, FIELD_X do field[y][x] = 0 end
  end
  local x, y = FIELD_X // 2 + 1, FIELD_Y // 2 + 1
  for i = 1, #fingerprint do
    local input = byte(fingerprint, i)
    for _ = 1, 4 do
      x = x + ((input & 1) ~= 0 and 1 or -1)
      y = y + ((input & 2) ~= 0 and 1 or -1)
      if x < 1 then x = 1 elseif x > FIELD_X then x = FIELD_X end
      if y < 1 then y = 1 elseif y > FIELD_Y then y = FIELD_Y end
      if field[y][x] < top - 2 then field[y][x] = field[y][x] + 1 end
      input = input >> 2
    end
  end
  field[FIELD_Y // 2 + 1][FIELD_X // 2 + 1] = top - 1 -- "S", where the walk starts
  field[y][x] = top -- "E", where it ends
  local lines = {"", format("+--[%4s %4d]----+", algorithm, bits)}
  for row = 1, FIELD_Y do
    local cells = {}
    for column = 1, FIELD_X do
      local n = field[row][column] + 1
      cells[column] = sub(SYMBOLS, n, n)
    end
    lines[#lines + 1] = "|" .. concat(cells) .. "|"
  end
  lines[#lines + 1] = "+" .. rep("-", FIELD_X) .. "+"
  lines[#lines + 1] = ""
  return concat(lines, "\n")
end

-- The known_hosts file OpenSSH's client uses: the UserKnownHostsFile of ~/.ssh/config (first
-- path, "~" for the home directory), else ~/.ssh/known_hosts.
local function default_known_hosts()
  local home = os.getenv("HOME") or ""
  local config = io.open(home .. "/.ssh/config", "r")
  if config then
    for line in config:lines() do
      local path = match(line, "^%s*UserKnownHostsFile[%s=]+(%S+)")
      if path then
        config:close()
        if sub(path, 1, 1) == "~" then path = home .. sub(path, 2) end
        return path
      end
    end
    config:close()
  end
  return home .. "/.ssh/known_hosts"
end

--- Read a known_hosts file.
-- @param path The file to read. When it cannot be opened (or is not given), the
--        UserKnownHostsFile of ~/.ssh/config is read, else ~/.ssh/known_hosts.
-- @return A list of the file's entries, one a line that does not start with "#": a table
--         with <code>linenumber</code> and <code>entry</code>, the line split at each space
--         (as Nmap's: two spaces give an empty field). Raises an error when no file can be
--         read, as Nmap's does.
function parse_known_hosts_file(path)
  local file = path and io.open(path, "r")
  if not file then
    path = default_known_hosts()
    file = io.open(path, "r")
    if not file then
      stdnse.debug1("cannot open known_hosts file %s", path)
      error(format("cannot open file '%s'", path))
    end
  end
  local entries, linenumber = {}, 0
  for line in file:lines() do
    linenumber = linenumber + 1
    if sub(line, 1, 1) ~= "#" then
      local fields, start = {}, 1
      while true do
        local space = find(line, " ", start, true)
        if not space then break end
        fields[#fields + 1] = sub(line, start, space - 1)
        start = space + 1
      end
      fields[#fields + 1] = sub(line, start)
      entries[#entries + 1] = {linenumber = linenumber, entry = fields}
    end
    if linenumber >= 1000000 then break end
  end
  file:close()
  return entries
end

return _ENV
