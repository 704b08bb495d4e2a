---
-- Raw packets: parse a captured IPv4 packet (the IP header and its options, then TCP, UDP
-- or ICMP), and edit one in place (ports, sequence numbers, flags, addresses, IP ID, TTL)
-- with the Internet checksums recomputed (RFC 791, RFC 793, RFC 1071).
--
-- Written for nsecluster from the NSEDoc of Nmap's packet library (its function names) and
-- from observing Nmap 7.93 (the fields a parsed packet carries, what the setters change);
-- scripts written for Nmap that build TCP probes from a template and read replies run on
-- it. IPv6, ICMPv6 and Ethernet frame building are not here yet.
--
-- A packet is built from a template: <code>Packet:new(template, #template)</code>, then the
-- setters, then <code>tcp_count_checksum</code> and <code>ip_count_checksum</code>; its bytes
-- are <code>packet.buf</code>.
--
-- Offsets given to the byte helpers (<code>u8</code>, <code>set_u16</code>, ...) start at 0.
--
-- @class module
-- @name packet

local ipOps = require "ipOps"
local stdnse = require "stdnse"

local ipairs, setmetatable, tostring = ipairs, setmetatable, tostring
local byte, format, sub = string.byte, string.format, string.sub

local M = stdnse.module("packet", stdnse.seeall)

M.IPPROTO_IP = 0
M.IPPROTO_ICMP = 1
M.IPPROTO_TCP = 6
M.IPPROTO_UDP = 17

local TCP_HEADER = 20
local IP_HEADER = 20

-- ---------------------------------------------------------------------------------------------
-- Checksums and byte access.

--- The Internet checksum (RFC 1071) of a byte string: the ones' complement of the ones'
-- complement sum of its 16-bit big-endian words, an odd last byte padded with a zero.
-- @param b A byte string.
-- @return The checksum, a 16-bit integer.
local function in_cksum(b)
  if #b % 2 == 1 then b = b .. "\0" end
  local sum = 0
  for i = 1, #b - 1, 2 do
    sum = sum + (byte(b, i) << 8) + byte(b, i + 1)
  end
  while sum > 0xffff do sum = (sum & 0xffff) + (sum >> 16) end
  return ~sum & 0xffff
end
M.in_cksum = in_cksum

-- The packed integer spliced into b at the 0-based offset i; a value that does not fit
-- raises string.pack's own error.
local function splice(b, i, fmt, num)
  local packed = fmt:pack(num)
  return sub(b, 1, i) .. packed .. sub(b, i + 1 + #packed)
end

local Packet = {}
Packet.__index = Packet
M.Packet = Packet

--- The 8-bit integer at a 0-based offset of the packet.
function Packet:u8(i) return (">B"):unpack(self.buf, i + 1) end
--- The 16-bit big-endian integer at a 0-based offset of the packet.
function Packet:u16(i) return (">I2"):unpack(self.buf, i + 1) end
--- The 32-bit big-endian integer at a 0-based offset of the packet.
function Packet:u32(i) return (">I4"):unpack(self.buf, i + 1) end
--- Stores an 8-bit integer at a 0-based offset of the packet.
function Packet:set_u8(i, num) self.buf = splice(self.buf, i, ">B", num) end
--- Stores a 16-bit big-endian integer at a 0-based offset of the packet.
function Packet:set_u16(i, num) self.buf = splice(self.buf, i, ">I2", num) end
--- Stores a 32-bit big-endian integer at a 0-based offset of the packet.
function Packet:set_u32(i, num) self.buf = splice(self.buf, i, ">I4", num) end

--- The packet's bytes from a 0-based offset, all of the rest or <code>length</code> of them.
function Packet:raw(index, length)
  index = index or 0
  if length then return sub(self.buf, index + 1, index + length) end
  return sub(self.buf, index + 1)
end

-- ---------------------------------------------------------------------------------------------
-- Parsing.

--- A packet object over the bytes of an IP packet (a capture's layer 3), parsed: the IP
-- header (<code>ip_*</code> fields), then TCP (<code>tcp_*</code>), UDP (<code>udp_*</code>)
-- or ICMP (<code>icmp_*</code>) when it carries one.
-- @param packet The bytes.
-- @param packet_len Their length (kept as <code>packet_len</code>).
-- @param force_continue Accepted for compatibility; a transport header that cannot be parsed
--        never discards the packet.
-- @return The packet object, or nil when an IPv4 header cannot be parsed. A packet that is
--         not IPv4 is returned with only <code>buf</code>, <code>packet_len</code> and
--         <code>ip_v</code>.
-- The transport header parsers Packet:new runs, by IP protocol number: (method, name).
local PARSERS = {[M.IPPROTO_TCP] = {"tcp_parse", "TCP"}, [M.IPPROTO_UDP] = {"udp_parse", "UDP"},
                 [M.IPPROTO_ICMP] = {"icmp_parse", "ICMP"}}

function Packet:new(packet, packet_len, force_continue)
  local o = setmetatable({buf = packet, packet_len = packet_len}, self)
  o.ip_v = byte(packet, 1) >> 4
  if o.ip_v ~= 4 then return o end
  if not o:ip_parse(force_continue) then return nil end
  local parser = PARSERS[o.ip_p]
  if parser and not o[parser[1]](o, force_continue) then
    stdnse.debug1("Error while parsing %s packet", parser[2])
  end
  return o
end

-- The options between two 0-based offsets: a list of {type, len[, data]}; End of list and
-- No operation are one byte. Also whether anything follows an End of list.
local function parse_options(buf, first, last)
  local options, after_eol, seen_eol = {}, false, false
  local i = first
  while i < last do
    local kind = byte(buf, i + 1)
    if kind == nil then break end
    if seen_eol then after_eol = true end
    if kind == 0 or kind == 1 then
      options[#options + 1] = {type = kind, len = 1}
      seen_eol = seen_eol or kind == 0
      i = i + 1
    else
      local len = byte(buf, i + 2)
      if len == nil or len < 2 then break end
      local data = len > 2 and sub(buf, i + 3, i + len) or nil
      options[#options + 1] = {type = kind, len = len, data = data}
      i = i + len
    end
  end
  return options, after_eol
end

--- Parses the IPv4 header (RFC 791) into the <code>ip_*</code> fields.
-- @return true, or false when the packet is shorter than an IPv4 header.
function Packet:ip_parse(force_continue)
  if #self.buf < IP_HEADER then return false end
  self.ip_offset = 0
  local first = self:u8(0)
  self.ip = true
  self.ip_v = first >> 4
  self.ip_hl = first & 0x0f
  self.ip_tos = self:u8(1)
  self.ip_len = self:u16(2)
  self.ip_id = self:u16(4)
  local fragment = self:u16(6)
  self.ip_rf = fragment & 0x8000 ~= 0
  self.ip_df = fragment & 0x4000 ~= 0
  self.ip_mf = fragment & 0x2000 ~= 0
  self.ip_off = fragment & 0x1fff
  self.ip_ttl = self:u8(8)
  self.ip_p = self:u8(9)
  self.ip_sum = self:u16(10)
  self.ip_bin_src = self:raw(12, 4)
  self.ip_bin_dst = self:raw(16, 4)
  self.ip_src = ipOps.str_to_ip(self.ip_bin_src)  -- as text
  self.ip_dst = ipOps.str_to_ip(self.ip_bin_dst)
  self.ip_opt_offset = IP_HEADER
  self.ip_data_offset = self.ip_hl * 4
  self.ip_options = parse_options(self.buf, self.ip_opt_offset, self.ip_data_offset)
  return true
end

--- Parses the TCP header (RFC 793) after the IP header into the <code>tcp_*</code> fields:
-- ports, sequence and acknowledgment numbers, flags (<code>tcp_flags</code> and one
-- <code>tcp_th_*</code> boolean each), window, options (<code>tcp_options</code>, with
-- <code>tcp_opt_mss</code>, <code>tcp_opt_mtu</code>, <code>tcp_opt_ws</code>,
-- <code>tcp_opt_t1</code>/<code>tcp_opt_t2</code> for the options that carry them).
-- @return true, or false when the header is cut short (the fields read so far stay).
function Packet:tcp_parse(force_continue)
  self.tcp = true
  local at = self.ip_data_offset
  self.tcp_offset = at
  if #self.buf < at + 4 then return false end
  self.tcp_sport = self:u16(at)
  self.tcp_dport = self:u16(at + 2)
  if #self.buf < at + TCP_HEADER then return false end
  self.tcp_seq = self:u32(at + 4)
  self.tcp_ack = self:u32(at + 8)
  self.tcp_hl = self:u8(at + 12) >> 4
  self.tcp_x2 = self:u8(at + 12) & 0x0f
  local flags = self:u8(at + 13)
  self.tcp_flags = flags
  self.tcp_th_fin = flags & 0x01 ~= 0
  self.tcp_th_syn = flags & 0x02 ~= 0
  self.tcp_th_rst = flags & 0x04 ~= 0
  self.tcp_th_push = flags & 0x08 ~= 0
  self.tcp_th_ack = flags & 0x10 ~= 0
  self.tcp_th_urg = flags & 0x20 ~= 0
  self.tcp_th_ece = flags & 0x40 ~= 0
  self.tcp_th_cwr = flags & 0x80 ~= 0
  self.tcp_win = self:u16(at + 14)
  self.tcp_sum = self:u16(at + 16)
  self.tcp_urp = self:u16(at + 18)
  self.tcp_opt_offset = at + TCP_HEADER
  self.tcp_data_offset = at + self.tcp_hl * 4
  self.tcp_data_length = self.ip_len - self.tcp_data_offset
  self:tcp_parse_options()
  return true
end

--- Parses the TCP options into <code>tcp_options</code> and the <code>tcp_opt_*</code>
-- fields of the options Nmap's scripts read.
function Packet:tcp_parse_options()
  local options, after_eol = parse_options(self.buf, self.tcp_opt_offset, self.tcp_data_offset)
  self.tcp_options = options
  if after_eol then self.tcp_opt_after_eol = true end
  for _, option in ipairs(options) do
    local data = option.data or ""
    if option.type == 2 and #data == 2 then  -- maximum segment size
      self.tcp_opt_mss = (">I2"):unpack(data)
      self.tcp_opt_mtu = self.tcp_opt_mss + 40
    elseif option.type == 3 and #data == 1 then  -- window scale
      self.tcp_opt_ws = byte(data)
    elseif option.type == 8 and #data == 8 then  -- timestamps
      self.tcp_opt_t1, self.tcp_opt_t2 = (">I4I4"):unpack(data)
    end
  end
end

--- Parses the UDP header (RFC 768) into the <code>udp_*</code> fields.
-- @return true, or false when the header is cut short.
function Packet:udp_parse(force_continue)
  self.udp = true
  local at = self.ip_data_offset
  self.udp_offset = at
  if #self.buf < at + 8 then return false end
  self.udp_sport = self:u16(at)
  self.udp_dport = self:u16(at + 2)
  self.udp_len = self:u16(at + 4)
  self.udp_sum = self:u16(at + 6)
  return true
end

--- Parses the ICMP header (RFC 792) into the <code>icmp_*</code> fields.
-- @return true, or false when the header is cut short.
function Packet:icmp_parse(force_continue)
  self.icmp = true
  local at = self.ip_data_offset
  self.icmp_offset = at
  if #self.buf < at + 4 then return false end
  self.icmp_type = self:u8(at)
  self.icmp_code = self:u8(at + 1)
  self.icmp_sum = self:u16(at + 2)
  return true
end

-- ---------------------------------------------------------------------------------------------
-- Editing. Each setter changes the bytes and the field it names (the text forms
-- ip_src/ip_dst are left as parsed).

--- Sets the IP ID.
function Packet:ip_set_id(id) self:set_u16(4, id) self.ip_id = id end
--- Sets the time to live.
function Packet:ip_set_ttl(ttl) self:set_u8(8, ttl) self.ip_ttl = ttl end
--- Sets the total length field.
function Packet:ip_set_len(len) self:set_u16(2, len) self.ip_len = len end
--- Sets the header length, in 32-bit words.
function Packet:ip_set_hl(len)
  self:set_u8(0, (self.ip_v << 4) | (len & 0x0f))
  self.ip_hl = len
end
--- Sets the header checksum as given.
function Packet:ip_set_checksum(checksum) self:set_u16(10, checksum) self.ip_sum = checksum end
--- Sets the source address (4 bytes).
function Packet:ip_set_bin_src(binip)
  self.buf = sub(self.buf, 1, 12) .. binip .. sub(self.buf, 17)
  self.ip_bin_src = binip
end
--- Sets the destination address (4 bytes).
function Packet:ip_set_bin_dst(binip)
  self.buf = sub(self.buf, 1, 16) .. binip .. sub(self.buf, 21)
  self.ip_bin_dst = binip
end
--- Recomputes the header checksum.
function Packet:ip_count_checksum()
  self:ip_set_checksum(0)
  self:ip_set_checksum(in_cksum(self:raw(0, self.ip_hl * 4)))
end

--- Sets the TCP source port.
function Packet:tcp_set_sport(port)
  self:set_u16(self.tcp_offset, port) self.tcp_sport = port
end
--- Sets the TCP destination port.
function Packet:tcp_set_dport(port)
  self:set_u16(self.tcp_offset + 2, port) self.tcp_dport = port
end
--- Sets the TCP sequence number.
function Packet:tcp_set_seq(seq)
  self:set_u32(self.tcp_offset + 4, seq) self.tcp_seq = seq
end
--- Sets the TCP flags byte (FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10, URG 0x20).
function Packet:tcp_set_flags(flags)
  self:set_u8(self.tcp_offset + 13, flags) self.tcp_flags = flags
end
--- Sets the TCP urgent pointer.
function Packet:tcp_set_urp(urp)
  self:set_u16(self.tcp_offset + 18, urp) self.tcp_urp = urp
end
--- Sets the TCP checksum as given.
function Packet:tcp_set_checksum(checksum)
  self:set_u16(self.tcp_offset + 16, checksum) self.tcp_sum = checksum
end
--- Recomputes the TCP checksum over the IPv4 pseudo-header (RFC 793 3.1) and the segment.
-- @param len The IP packet's length (default: the bytes the packet holds).
function Packet:tcp_count_checksum(len)
  len = len or #self.buf
  self:tcp_set_checksum(0)
  local segment = self:raw(self.tcp_offset, len - self.tcp_offset)
  local pseudo = self.ip_bin_src .. self.ip_bin_dst
    .. (">BBI2"):pack(0, M.IPPROTO_TCP, #segment)
  self:tcp_set_checksum(in_cksum(pseudo .. segment))
end

--- A one-line summary of the IP header, for debugging.
function Packet:ip_tostring()
  return format("IP %s -> %s id %d ttl %d proto %d len %d", self.ip_src, self.ip_dst,
                self.ip_id, self.ip_ttl, self.ip_p, self.ip_len)
end

--- A one-line summary of the TCP header, for debugging.
function Packet:tcp_tostring()
  return format("TCP %s:%s -> %s:%s flags 0x%02x seq %s ack %s", self.ip_src,
                tostring(self.tcp_sport), self.ip_dst, tostring(self.tcp_dport),
                self.tcp_flags or 0, tostring(self.tcp_seq), tostring(self.tcp_ack))
end

return M
