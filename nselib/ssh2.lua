---
-- The SSH-2 transport layer as far as it is needed to learn a server's host key: binary
-- packets, the KEXINIT message, and a key exchange up to the server's reply, which carries
-- the host key (RFC 4253, RFC 4419).
--
-- Written for nsecluster from the NSEDoc of Nmap's ssh2 library, the RFCs and observation of
-- Nmap 7.93; the names, arguments and return values are those scripts written for Nmap
-- expect. <code>fetch_host_key</code> offers the key exchange methods Nmap offers
-- (diffie-hellman group1, group14, group16 and group exchange, the same KEXINIT on the wire),
-- so it finds the keys Nmap finds. Unlike Nmap's, it also reads a server that sends its
-- KEXINIT in the same segment as its version line, or lines before the version line (RFC
-- 4253 section 4.2). Nothing the server sends is trusted: garbage, a bad packet length, an early close or silence make
-- <code>fetch_host_key</code> return nothing rather than raise an error.
--
-- @class module
-- @name ssh2

local base64 = require "base64"
local nmap = require "nmap"
local stdnse = require "stdnse"
local openssl = stdnse.silent_require "openssl"

local ipairs, pcall, tostring, type = ipairs, pcall, tostring, type
local byte, char, find, gmatch, match, pack, sub, unpack =
      string.byte, string.char, string.find, string.gmatch, string.match, string.pack,
      string.sub, string.unpack
local concat = table.concat

local _ENV = {}

--- Functions of the transport layer (packets and key exchange messages).
local transport = {}
_ENV.transport = transport

-- Message numbers (RFC 4250).
local MSG_DISCONNECT, MSG_IGNORE, MSG_UNIMPLEMENTED, MSG_DEBUG = 1, 2, 3, 4
local MSG_KEXINIT = 20
local MSG_KEXDH_INIT, MSG_KEXDH_REPLY = 30, 31
local MSG_KEX_DH_GEX_GROUP, MSG_KEX_DH_GEX_INIT, MSG_KEX_DH_GEX_REPLY = 31, 32, 33
local MSG_KEX_DH_GEX_REQUEST = 34

-- A packet_length past this is garbage, not a packet (OpenSSH's own limit is 256 KiB).
local MAX_PACKET = 262144
local CLIENT_BANNER = "SSH-2.0-Nmap-SSH2-Hostkey\r\n"

-- The Oakley / RFC 3526 MODP groups (generator 2).
local MODP_1024 =
  "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74" ..
  "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437" ..
  "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED" ..
  "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE65381FFFFFFFFFFFFFFFF"
local MODP_2048_HEAD =
  "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74" ..
  "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437" ..
  "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED" ..
  "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05" ..
  "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB" ..
  "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B" ..
  "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718" ..
  "3995497CEA956AE515D2261898FA051015728E5A8AA"
local MODP_2048 = MODP_2048_HEAD .. "CAA68FFFFFFFFFFFFFFFF"
local MODP_4096 = MODP_2048_HEAD ..
  "AC42DAD33170D04507A33" ..
  "A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7" ..
  "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864" ..
  "D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E2" ..
  "08E24FA074E5AB3143DB5BFCE0FD108E4B82D120A92108011A723C12A787E6D7" ..
  "88719A10BDBA5B2699C327186AF4E23C1A946834B6150BDA2583E9CA2AD44CE8" ..
  "DBBBC2DB04DE8EF92E8EFC141FBECAA6287C59474E6BC05D99B2964FA090C3A2" ..
  "233BA186515BE7ED1F612970CEE2D7AFB81BDD762170481CD0069127D5B05AA9" ..
  "93B4EA988D8FDDC186FFB7DC90A6C08F4DF435C934063199FFFFFFFFFFFFFFFF"

-- The key exchange methods offered, in order of preference, and how to run each.
local KEX_METHODS = {
  {name = "diffie-hellman-group1-sha1", kind = "group", prime = MODP_1024},
  {name = "diffie-hellman-group14-sha1", kind = "group", prime = MODP_2048},
  {name = "diffie-hellman-group14-sha256", kind = "group", prime = MODP_2048},
  {name = "diffie-hellman-group16-sha512", kind = "group", prime = MODP_4096},
  {name = "diffie-hellman-group-exchange-sha1", kind = "gex"},
  {name = "diffie-hellman-group-exchange-sha256", kind = "gex"},
}

local DEFAULTS = {
  kex_algorithms = "diffie-hellman-group1-sha1",
  host_key_algorithms = "ssh-dss,ssh-rsa",
  encryption_algorithms = "aes128-cbc,3des-cbc,blowfish-cbc,aes192-cbc,aes256-cbc," ..
                          "aes128-ctr,aes192-ctr,aes256-ctr",
  mac_algorithms = "hmac-md5,hmac-sha1,hmac-ripemd160",
  compression_algorithms = "none",
}

-- The name-lists of a KEXINIT, in order (RFC 4253 section 7.1).
local KEXINIT_FIELDS = {
  "kex_algorithms", "server_host_key_algorithms",
  "encryption_algorithms_client_to_server", "encryption_algorithms_server_to_client",
  "mac_algorithms_client_to_server", "mac_algorithms_server_to_client",
  "compression_algorithms_client_to_server", "compression_algorithms_server_to_client",
  "languages_client_to_server", "languages_server_to_client",
}

-- An SSH string at pos: the value and the position after it, or nil.
local function read_string(data, pos)
  if type(data) ~= "string" or pos + 3 > #data then return nil end
  local length = unpack(">I4", data, pos)
  if pos + 3 + length > #data then return nil end
  return sub(data, pos + 4, pos + 3 + length), pos + 4 + length
end

-- An mpint (RFC 4251) as it must be sent: no superfluous zero bytes, a zero byte before a
-- first byte with its high bit set.
local function mpint(bn)
  local bytes = bn:tobin()
  if #bytes > 0 and byte(bytes, 1) >= 0x80 then bytes = "\0" .. bytes end
  return pack(">s4", bytes)
end

--- Tell whether <code>buffer</code> holds a whole SSH-2 packet (for
-- <code>receive_buf</code>).
-- @param buffer The data received so far.
-- @return The packet's length twice (like <code>string.find</code>), or nil when more data is
--         needed.
function check_packet_length(buffer)
  if #buffer < 4 then return nil end
  local length = unpack(">I4", buffer)
  if length + 4 > #buffer then return nil end
  return length + 4, length + 4
end

-- As check_packet_length, but a length past any real packet takes the whole buffer, so that
-- garbage does not keep the caller reading until the connection ends.
local function packet_delimiter(buffer)
  if #buffer < 4 then return nil end
  local length = unpack(">I4", buffer)
  if length > MAX_PACKET then return 1, #buffer end
  if length + 4 > #buffer then return nil end
  return length + 4, length + 4
end

--- Receive one SSH-2 packet, however it arrives in pieces.
-- @param socket A connected socket.
-- @return true and the packet (with its length field), or a false status and the socket's
--         error ("TIMEOUT", "EOF", ...) or "invalid packet length".
function transport.receive_packet(socket)
  local status, packet = socket:receive_buf(packet_delimiter, true)
  if not status then return status, packet end
  if #packet < 5 or unpack(">I4", packet) > MAX_PACKET then
    return nil, "invalid packet length"
  end
  return true, packet
end

--- Build an SSH-2 binary packet (no encryption, no MAC) around a payload: length, padding
-- length, payload and 4 to 11 random padding bytes, a multiple of 8 bytes in all.
-- @param payload The payload.
-- @return The packet.
function transport.build(payload)
  local padding = 8 - (#payload + 5) % 8
  if padding < 4 then padding = padding + 8 end
  return pack(">I4B", #payload + padding + 1, padding) .. payload
         .. openssl.rand_pseudo_bytes(padding)
end

--- Extract the payload of a received SSH-2 packet. As Nmap's does, the result takes one byte
-- more than the payload (the first padding byte); nil when the packet's length field does not
-- match its size.
-- @param packet The packet, with its length field.
-- @return The payload, or nil.
function transport.payload(packet)
  if type(packet) ~= "string" or #packet < 5 then return nil end
  local packet_length, padding_length = unpack(">I4B", packet)
  if #packet ~= packet_length + 4 then return nil end
  return sub(packet, 6, packet_length - padding_length + 5)
end

--- Encode a BIGNUM as an SSH string of its bytes, as Nmap's library does: a zero byte is put
-- in front when the number of bytes is a multiple of 8 (so zero is one zero byte).
-- @param bn A BIGNUM.
-- @return The encoding.
function transport.pack_mpint(bn)
  local bytes, packed = bn:num_bytes(), bn:tobin()
  if bytes % 8 == 0 then
    bytes = bytes + 1
    packed = "\0" .. packed
  end
  return pack(">I4", bytes) .. packed
end

--- Build a KEXDH_INIT payload.
-- @param e The client's public value (a BIGNUM).
-- @return The payload.
function transport.kexdh_init(e)
  return char(MSG_KEXDH_INIT) .. transport.pack_mpint(e)
end

--- Build a KEX_DH_GEX_INIT payload.
-- @param e The client's public value (a BIGNUM).
-- @return The payload.
function transport.kexdh_gex_init(e)
  return char(MSG_KEX_DH_GEX_INIT) .. transport.pack_mpint(e)
end

--- Build a KEXINIT payload.
-- @param options Table of name-lists (comma-separated strings) to offer instead of the
--        defaults: <code>kex_algorithms</code>, <code>host_key_algorithms</code>,
--        <code>encryption_algorithms</code>, <code>mac_algorithms</code>,
--        <code>compression_algorithms</code> (each for both directions); and
--        <code>cookie</code> (16 bytes; random by default).
-- @return The payload.
function transport.kex_init(options)
  options = options or {}
  local cookie = options.cookie or openssl.rand_bytes(16)
  local function option(name) return options[name] or DEFAULTS[name] end
  return char(MSG_KEXINIT) .. cookie
         .. pack(">s4s4s4s4s4s4s4s4s4s4BI4", option("kex_algorithms"),
                 option("host_key_algorithms"),
                 option("encryption_algorithms"), option("encryption_algorithms"),
                 option("mac_algorithms"), option("mac_algorithms"),
                 option("compression_algorithms"), option("compression_algorithms"),
                 "", "", 0, 0)
end

--- Parse a KEXINIT payload.
-- @param payload The payload (message number first).
-- @return A table with <code>cookie</code> and the name-lists as strings:
--         <code>kex_algorithms</code>, <code>server_host_key_algorithms</code>,
--         <code>encryption_algorithms_client_to_server</code>,
--         <code>encryption_algorithms_server_to_client</code>,
--         <code>mac_algorithms_client_to_server</code>,
--         <code>mac_algorithms_server_to_client</code>,
--         <code>compression_algorithms_client_to_server</code>,
--         <code>compression_algorithms_server_to_client</code>,
--         <code>languages_client_to_server</code>, <code>languages_server_to_client</code>;
--         an empty table when the payload is not a KEXINIT message (as Nmap's); nil when it
--         is too short to hold them (where Nmap's raises an error).
function transport.parse_kex_init(payload)
  if type(payload) ~= "string" or #payload < 1 then return nil end
  if byte(payload, 1) ~= MSG_KEXINIT then return {} end
  if #payload < 17 then return nil end
  local parsed = {cookie = sub(payload, 2, 17)}
  local pos = 18
  for _, field in ipairs(KEXINIT_FIELDS) do
    local value
    value, pos = read_string(payload, pos)
    if value == nil then return nil end
    parsed[field] = value
  end
  return parsed
end

-- -------------------------------------------------------------------------------------------
-- Fetching a host key.

-- Fetching reads through a buffer of its own, so that nothing a server sends early (its
-- KEXINIT together with its version line, say) is lost, whatever the socket's receive_buf
-- rules are; and a server that streams garbage is cut off.
local MAX_RECEIVED = 1048576

local function new_connection(socket)
  return {socket = socket, buffer = "", received = 0}
end

local function fill(conn)
  local status, data = conn.socket:receive()
  if not status or type(data) ~= "string" then return false end
  conn.received = conn.received + #data
  if conn.received > MAX_RECEIVED then return false end
  conn.buffer = conn.buffer .. data
  return true
end

-- The next line (without its end), or nil.
local function read_line(conn)
  for _ = 1, 1024 do
    local first, last = find(conn.buffer, "\r?\n")
    if first then
      local line = sub(conn.buffer, 1, first - 1)
      conn.buffer = sub(conn.buffer, last + 1)
      return line
    end
    if #conn.buffer > 1024 or not fill(conn) then return nil end
  end
  return nil
end

-- The server's version line; RFC 4253 lets other lines come first.
local function read_banner(conn)
  for _ = 1, 32 do
    local line = read_line(conn)
    if not line then return nil end
    if match(line, "^SSH%-") then return line end
  end
  return nil
end

-- The payload of the next packet, or nil. (Each read brings at least a byte and at most
-- MAX_RECEIVED are read: the loop ends.)
local function read_payload(conn)
  for _ = 1, MAX_RECEIVED + 1 do
    if #conn.buffer >= 4 then
      local length = unpack(">I4", conn.buffer)
      if length > MAX_PACKET or length < 5 then return nil end
      if #conn.buffer >= length + 4 then
        local padding = byte(conn.buffer, 5)
        local payload = sub(conn.buffer, 6, 4 + length - padding)
        conn.buffer = sub(conn.buffer, length + 5)
        if padding + 1 >= length then return nil end
        return payload
      end
    end
    if not fill(conn) then return nil end
  end
  return nil
end

-- The payload of the next message that is not IGNORE, DEBUG or UNIMPLEMENTED, and its
-- number; nil on error or DISCONNECT.
local function next_message(conn)
  for _ = 1, 16 do
    local payload = read_payload(conn)
    if not payload then return nil end
    local kind = byte(payload, 1)
    if kind == MSG_DISCONNECT then return nil end
    if kind ~= MSG_IGNORE and kind ~= MSG_DEBUG and kind ~= MSG_UNIMPLEMENTED then
      return payload, kind
    end
  end
  return nil
end

local function send_message(conn, payload)
  return conn.socket:send(transport.build(payload))
end

local function in_list(list, name)
  for item in gmatch(list, "[^,]+") do
    if item == name then return true end
  end
  return false
end

local function offered_kex()
  local names = {}
  for i, method in ipairs(KEX_METHODS) do names[i] = method.name end
  return concat(names, ",")
end

-- A random exponent and g^x mod p for a Diffie-Hellman group.
local function dh_public(g, p)
  local bits = p:num_bits()
  if bits < 512 or bits > 16384 then return nil end
  local x = openssl.bignum_rand(bits - 1)
  return openssl.bignum_mod_exp(g, x, p)
end

-- Run the key exchange; the payload of the server's reply, whose first field is the host key.
local function key_exchange(conn, method)
  local expected = MSG_KEXDH_REPLY
  if method.kind == "group" then
    local e = dh_public(openssl.bignum_dec2bn("2"), openssl.bignum_hex2bn(method.prime))
    if not send_message(conn, char(MSG_KEXDH_INIT) .. mpint(e)) then return nil end
  elseif method.kind == "gex" then
    -- The sizes Nmap asks for: at least 1024 bits, preferably 1024, at most 8192.
    if not send_message(conn, pack(">BI4I4I4", MSG_KEX_DH_GEX_REQUEST, 1024, 1024, 8192)) then
      return nil
    end
    local group, kind = next_message(conn)
    if kind ~= MSG_KEX_DH_GEX_GROUP then return nil end
    local p_bytes, pos = read_string(group, 2)
    if not p_bytes then return nil end
    local g_bytes = read_string(group, pos)
    if not g_bytes or #p_bytes == 0 or byte(p_bytes, 1) >= 0x80 then return nil end
    local e = dh_public(openssl.bignum_bin2bn(g_bytes), openssl.bignum_bin2bn(p_bytes))
    if not e then return nil end
    if not send_message(conn, char(MSG_KEX_DH_GEX_INIT) .. mpint(e)) then return nil end
    expected = MSG_KEX_DH_GEX_REPLY
  end
  local reply, kind = next_message(conn)
  if kind ~= expected then return nil end
  return reply
end

local ALGORITHMS = {
  ["ssh-rsa"] = "RSA",
  ["ssh-dss"] = "DSA",
  ["ecdsa-sha2-nistp256"] = "ECDSA",
  ["ecdsa-sha2-nistp384"] = "ECDSA",
  ["ecdsa-sha2-nistp521"] = "ECDSA",
  ["ssh-ed25519"] = "ED25519",
}

-- The algorithm name and size of a key blob of a known type, or nil when the blob is not a
-- key of that type.
local function describe(key_type, blob)
  local name, pos = read_string(blob, 1)
  if name ~= key_type then return nil end
  if key_type == "ssh-rsa" then
    local _, n
    _, pos = read_string(blob, pos) -- e
    if not pos then return nil end
    n = read_string(blob, pos)
    if not n then return nil end
    return "RSA", openssl.bignum_bin2bn(n):num_bits()
  elseif key_type == "ssh-dss" then
    local p = read_string(blob, pos)
    if not p then return nil end
    return "DSA", openssl.bignum_bin2bn(p):num_bits()
  elseif key_type == "ssh-ed25519" then
    if not read_string(blob, pos) then return nil end
    return "ED25519", "256"
  else
    local curve = read_string(blob, pos)
    if not curve then return nil end
    return "ECDSA", match(curve, "^nistp(%d+)$") or match(key_type, "(%d+)$")
  end
end

local function exchange(socket, host, port, key_type)
  local status = socket:connect(host, port)
  if not status then return nil end
  if not socket:send(CLIENT_BANNER) then return nil end
  local conn = new_connection(socket)
  local banner = read_banner(conn)
  if not banner or (match(banner, "^SSH%-1%.") and not match(banner, "^SSH%-1%.99")) then
    return nil
  end
  local kex_names = offered_kex()
  if not send_message(conn, transport.kex_init({
    kex_algorithms = kex_names,
    host_key_algorithms = key_type,
  })) then
    return nil
  end
  local server_kexinit, kind = next_message(conn)
  if kind ~= MSG_KEXINIT then return nil end
  local offer = transport.parse_kex_init(server_kexinit)
  if not offer then return nil end
  if key_type and not in_list(offer.server_host_key_algorithms, key_type) then
    return nil
  end
  local method
  for _, candidate in ipairs(KEX_METHODS) do
    if in_list(offer.kex_algorithms, candidate.name) then
      method = candidate
      break
    end
  end
  if not method then return nil end
  local reply = key_exchange(conn, method)
  if not reply then return nil end
  local blob = read_string(reply, 2)
  if not blob or #blob == 0 then return nil end
  key_type = key_type or read_string(blob, 1)
  if type(key_type) ~= "string" then return nil end
  local algorithm, bits
  if ALGORITHMS[key_type] then
    algorithm, bits = describe(key_type, blob)
    if not algorithm then return nil end
  end
  local encoded = base64.enc(blob)
  return {
    key_type = key_type,
    fp_input = blob,
    fingerprint = openssl.md5(blob),
    fp_sha256 = openssl.digest("sha256", blob),
    key = encoded,
    full_key = key_type .. " " .. encoded,
    algorithm = algorithm,
    bits = bits,
  }
end

--- Fetch an SSH-2 host key: one connection, a key exchange offering only the given host key
-- algorithm, stopped at the server's reply.
-- @param host Nmap host table (or address).
-- @param port Nmap port table (or number).
-- @param key_type The host key algorithm to ask for ("ssh-rsa", "ssh-dss",
--        "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-ed25519",
--        or another name the server may offer).
-- @return A table with the key: <code>key_type</code>, <code>fp_input</code> (the key blob),
--         <code>fingerprint</code> (its MD5), <code>fp_sha256</code>, <code>key</code> (the
--         blob in Base64), <code>full_key</code> ("type base64") and, for the types above,
--         <code>algorithm</code> ("RSA", "DSA", "ECDSA", "ED25519") and <code>bits</code>; or
--         nothing when the server gave no key of that type.
function fetch_host_key(host, port, key_type)
  local socket = nmap.new_socket()
  local ok, key = pcall(exchange, socket, host, port, key_type)
  socket:close()
  if not ok then
    stdnse.debug1("SSH-2 host key exchange failed: %s", tostring(key))
    return
  end
  if key then return key end
end

return _ENV
