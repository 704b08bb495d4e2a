"""nselib/packet.lua: IPv4 packets with TCP, UDP and ICMP parsed into the fields Nmap's
library gives (options included, cut-short and odd headers too), and TCP probes edited in
place with their checksums, compared call by call with Nmap's own library."""
import socket
import struct

from nse_support import LUA_OUTPUT, run_lua, run_lua_nmap

PRELUDE = r'''
local packet = require "packet"
''' + LUA_OUTPUT + r'''
local function hex(s) return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end)) end
local function show(v)
  if type(v) == "string" then return hex(v) end
  if type(v) == "table" then
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    local parts = {}
    for _, k in ipairs(keys) do parts[#parts + 1] = tostring(k) .. ":" .. show(v[k]) end
    return "{" .. table.concat(parts, ",") .. "}"
  end
  return tostring(v)
end
local function dump(pk)
  if not pk then return p("nil") end
  local keys = {}
  for k in pairs(pk) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = k .. "=" .. show(pk[k]) end
  p(table.concat(parts, " "))
end
local function ipv4(words, tos, len, id, off, ttl, proto, src, dst, opts)
  return string.pack(">BBI2I2I2BBI2", 0x40 + words, tos, len, id, off, ttl, proto, 0)
    .. src .. dst .. (opts or "")
end
local function tcp(sport, dport, seq, ack, words, flags, win, opts, data)
  return string.pack(">I2I2I4I4BBI2I2I2", sport, dport, seq, ack, words << 4, flags, win, 0, 0)
    .. (opts or "") .. (data or "")
end
local A, B = "\192\0\2\1", "\192\0\2\2"
'''

PARSE = PRELUDE + r'''
-- A SYN-ACK with IP options (NOPs, End of list) and TCP options (MSS, NOP, window scale).
local t = tcp(80, 40000, 0x11223344, 0x55667788, 7, 0x12, 29200, "\2\4\5\180\1\3\3\7")
local ip = ipv4(6, 0x10, 24 + #t, 0x1234, 0x4000, 63, 6, B, A, "\1\1\1\0")
dump(packet.Packet:new(ip .. t, #ip + #t))
-- A RST with data, a fragment (MF, offset 5).
t = tcp(81, 1025, 0, 0xdeadbeef, 5, 0x14, 0, nil, "abc")
ip = ipv4(5, 0, 20 + #t, 0, 0x2005, 64, 6, B, A)
dump(packet.Packet:new(ip .. t, #ip + #t))
dump(packet.Packet:new(ip .. t, #ip + #t, true))
-- Cut short: after the ports, before them; shorter than an IP header; not IPv4.
dump(packet.Packet:new(ip .. t:sub(1, 10), #ip + 10))
dump(packet.Packet:new(ipv4(5, 0, 23, 1, 0, 64, 6, B, A) .. "\0\80\1", 23))
dump(packet.Packet:new(ip:sub(1, 12), 12))
dump(packet.Packet:new("\0" .. ip:sub(2) .. t, #ip + #t))
-- UDP and ICMP.
local u = string.pack(">I2I2I2I2", 53, 5353, 12, 0) .. "abcd"
local ipu = ipv4(5, 0, 20 + #u, 7, 0, 64, 17, B, A)
dump(packet.Packet:new(ipu .. u, #ipu + #u))
local ic = string.pack(">BBI2I2I2", 8, 0, 0, 1, 2) .. "ping"
local ipi = ipv4(5, 0, 20 + #ic, 8, 0, 64, 1, B, A)
dump(packet.Packet:new(ipi .. ic, #ipi + #ic))
-- Record route and an unknown IP option; timestamps, SACK, an unknown TCP option, EOLs.
local opts = "\8\10\0\0\0\1\0\0\0\2" .. "\4\2" .. "\5\10\0\0\0\5\0\0\0\9" .. "\254\4\1\2" .. "\0\0"
t = tcp(80, 40000, 1, 2, 5 + #opts // 4, 0x10, 100, opts)
ip = ipv4(8, 0, 32 + #t, 1, 0, 64, 6, B, A, "\7\7\4\0\0\0\0" .. "\1" .. "\148\4\0\0")
dump(packet.Packet:new(ip .. t, #ip + #t))
-- Every flag and the reserved bit; a short packet_len; header lengths below the minimum.
local all = tcp(80, 40000, 1, 2, 5, 0xff, 100)
dump(packet.Packet:new(ipv4(5, 0, 40, 1, 0x8000, 64, 6, B, A) .. all, 40))
dump(packet.Packet:new(ipv4(5, 0, 40, 1, 0, 64, 6, B, A) .. all, 30))
dump(packet.Packet:new(ipv4(5, 0, 40, 1, 0, 64, 6, B, A) .. tcp(1, 2, 3, 4, 3, 2, 1), 40))
dump(packet.Packet:new(ipv4(4, 0, 40, 1, 0, 64, 6, B, A) .. all, 40))
return done()
'''

EDIT = PRELUDE + r'''
local t = tcp(0, 0, 0, 0, 6, 0x02, 1024, "\2\4\5\180")
local ip = ipv4(5, 0, 20 + #t, 0, 0, 64, 6, A, B)
local s = packet.Packet:new(ip .. t, #ip + #t)
s:tcp_set_sport(43210) s:tcp_set_dport(80) s:tcp_set_seq(0x01020304) s:tcp_set_flags(0x02)
s:ip_set_id(0xbeef) s:ip_set_ttl(37) s:ip_set_bin_src("\10\0\0\1") s:ip_set_bin_dst("\10\0\0\2")
dump(s)
s:tcp_count_checksum(s.ip_len) s:ip_count_checksum()
p(hex(s.buf), s.ip_sum, s.tcp_sum)
local again = packet.Packet:new(s.buf, #s.buf)
p(again.ip_sum, again.tcp_sum, again.ip_src, again.ip_dst, again.tcp_sport, again.tcp_seq)
s:tcp_count_checksum() p(hex(s.buf))
s:ip_set_len(60) s:ip_set_hl(6) s:tcp_set_urp(7) s:tcp_set_checksum(0x1111)
s:ip_set_checksum(0x2222)
p(hex(s.buf))
p(packet.in_cksum(""), packet.in_cksum("\1"), packet.in_cksum("\0\1\242\3"), packet.in_cksum(ip))
p(s:u8(0), s:u16(2), s:u32(12), packet.IPPROTO_TCP, packet.IPPROTO_UDP, packet.IPPROTO_ICMP,
  packet.IPPROTO_IP)
p(packet.Packet.u8(s, 9), #s.buf, s.packet_len, hex(s:raw(0, 4)), hex(s:raw(20)))
s:set_u8(1, 0xfe) s:set_u16(4, 0xabcd) s:set_u32(24, 0x01020304) p(hex(s:raw(0, 28)))
local b = packet.Packet:new(ip .. t, #ip + #t)
local ok, err = pcall(b.tcp_set_sport, b, 70000)
p(ok, (err:gsub("^.-:%d+: ", "")), hex(b.buf), b.tcp_sport)
return done()
'''


def test_parsed_fields_are_nmaps(tmp_path):
    ours = run_lua(tmp_path, PARSE)
    lines = ours.split("\n")
    assert len(lines) == 14
    first = lines[0].split(" ")
    assert "ip_id=4660" in first and "ip_ttl=63" in first and "tcp_flags=18" in first
    assert "tcp_opt_mss=1460" in first and "tcp_opt_ws=7" in first
    assert lines[5] == "nil"  # shorter than an IPv4 header
    assert run_lua_nmap(tmp_path, PARSE) == ours


def test_edited_probe_and_checksums_are_nmaps(tmp_path):
    ours = run_lua(tmp_path, EDIT)
    lines = ours.split("\n")
    assert lines[1].startswith("4500002cbeef00002506c2da0a0000010a000002a8ca0050")
    assert lines[-1].startswith("false | bad argument #1 to 'pack' (unsigned overflow)")
    assert run_lua_nmap(tmp_path, EDIT) == ours


def test_checksums_verify_as_the_kernel_computes_them(tmp_path):
    """The probe our library builds carries checksums that verify (RFC 1071: summing a
    header with its checksum gives 0xffff), checked here independently in Python."""
    ours = run_lua(tmp_path, PRELUDE + r'''
local t = tcp(0, 0, 0, 0, 5, 0x02, 1024, nil, "odd")
local ip = ipv4(5, 0, 20 + #t, 0, 0, 64, 6, A, B)
local s = packet.Packet:new(ip .. t, #ip + #t)
s:tcp_set_sport(40001) s:tcp_set_dport(22) s:tcp_set_seq(0x7fffffff) s:ip_set_id(99)
s:tcp_count_checksum(s.ip_len) s:ip_count_checksum()
p(hex(s.buf))
return done()''')
    data = bytes.fromhex(ours)

    def ones_sum(b: bytes) -> int:
        b += b"\0" * (len(b) % 2)
        total = sum(struct.unpack(f"!{len(b) // 2}H", b))
        while total >> 16:
            total = (total & 0xFFFF) + (total >> 16)
        return total

    assert ones_sum(data[:20]) == 0xFFFF
    segment = data[20:]
    pseudo = data[12:20] + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(segment))
    assert ones_sum(pseudo + segment) == 0xFFFF
    assert struct.unpack("!HHI", segment[:8]) == (40001, 22, 0x7FFFFFFF)
