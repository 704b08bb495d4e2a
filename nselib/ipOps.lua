---
-- IP address helpers: checking, expanding, converting and comparing IPv4 and IPv6 addresses
-- and ranges.
--
-- Written for nsecluster from the NSEDoc of Nmap's ipOps and from observing Nmap 7.93; the
-- names, arguments, return values and error messages are those scripts written for Nmap
-- expect. Soft failures return nil (or false) and a message "Error in ipOps.<function>: ...".
--
-- @class module
-- @name ipOps

local stdnse = require "stdnse"

local error, ipairs, pcall, tonumber, type = error, ipairs, pcall, tonumber, type
local byte, char, find, format, gmatch, gsub, match, rep, sub =
      string.byte, string.char, string.find, string.format, string.gmatch, string.gsub,
      string.match, string.rep, string.sub
local pack, unpack = string.pack, string.unpack
local concat, sort = table.concat, table.sort
local mtype = math.type

local M = stdnse.module("ipOps", stdnse.seeall)

local function fail(fname, message)
  return "Error in ipOps." .. fname .. ": " .. message
end

-- ---------------------------------------------------------------------------------------------
-- Expansion.

-- "a.b.c.d" with missing octets made "0" (the octets keep their text), or nil.
local function expand_ipv4(ip)
  if find(ip, "[^%.%d]") then return nil end
  local octets = {}
  for octet in gmatch(ip, "%d+") do
    if tonumber(octet) > 255 or #octets == 4 then return nil end
    octets[#octets + 1] = octet
  end
  for i = #octets + 1, 4 do octets[i] = "0" end
  return concat(octets, ".")
end

local function octet_numbers(ipv4)
  local a, b, c, d = match(ipv4, "^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  return tonumber(a), tonumber(b), tonumber(c), tonumber(d)
end

local function split_groups(text, into)
  for group in gmatch(text, "[^:]+") do into[#into + 1] = group end
  return into
end

--- Expand an address to its full form: IPv4 to four octets ("1.2" gives "1.2.0.0"), IPv6 to
-- eight groups (no "::", an embedded IPv4 part turned into two groups).
-- @param ip The address.
-- @param family "inet6" to map an IPv4 address into IPv6, "inet" to insist on IPv4.
-- @return The expanded address, or nil and an error message.
local function expand_ip(ip, family)
  if type(ip) ~= "string" or ip == "" then
    return nil, fail("expand_ip", "Expected IP address as a string.")
  end
  if not find(ip, ":", 1, true) then
    local ipv4 = expand_ipv4(ip)
    if not ipv4 then
      return nil, fail("expand_ip", "An address assumed to be IPv4 was malformed.")
    end
    if family == "inet6" then
      local a, b, c, d = octet_numbers(ipv4)
      return format("0:0:0:0:0:ffff:%x:%x", a * 256 + b, c * 256 + d)
    end
    return ipv4
  end
  if family and family ~= "inet6" then
    return nil, fail("expand_ip", "Cannot convert IPv6 address to IPv4")
  end
  local malformed = fail("expand_ip", "An address assumed to be IPv6 was malformed.")
  -- A dotted IPv4 part after the last colon becomes two groups.
  local head, tail = match(ip, "^(.*:)([%d%.]*%.[%d%.]*)$")
  if head then
    if find(head, "[^%x:]") then return nil, malformed end
    local ipv4 = expand_ipv4(tail)
    if not ipv4 then
      return nil, fail("expand_ip", "An address assumed to be IPv4in6 was malformed.")
    end
    local a, b, c, d = octet_numbers(ipv4)
    ip = head .. format("%x:%x", a * 256 + b, c * 256 + d)
  end
  local groups
  local left, right = match(ip, "^(.-)::(.*)$")
  if left then
    if find(right, "::", 1, true) then return nil, malformed end
    local before, after = split_groups(left, {}), split_groups(right, {})
    if #before + #after > 7 then return nil, malformed end
    groups = before
    for _ = 1, 8 - #before - #after do groups[#groups + 1] = "0" end
    for _, group in ipairs(after) do groups[#groups + 1] = group end
  else
    groups = split_groups(ip, {})
    if #groups == 0 then
      -- Nmap 7.93 fails this way on an address of colons alone.
      error("attempt to index a nil value (field '?')")
    end
    if #groups > 8 then return nil, malformed end
    for i = #groups + 1, 8 do groups[i] = "0" end
  end
  for _, group in ipairs(groups) do
    if not match(group, "^%x+$") or tonumber(group, 16) > 0xffff then
      return nil, malformed
    end
  end
  return concat(groups, ":")
end
M.expand_ip = expand_ip

-- ---------------------------------------------------------------------------------------------
-- Conversions.

--- The address as bytes: 4 for IPv4, 16 for IPv6.
-- @return The bytes, or nil and an error message.
local function ip_to_str(ip)
  local full, err = expand_ip(ip)
  if not full then return nil, err end
  if find(full, ":", 1, true) then
    local bytes = {}
    for group in gmatch(full, "[^:]+") do bytes[#bytes + 1] = pack(">I2", tonumber(group, 16)) end
    return concat(bytes)
  end
  return char(octet_numbers(full))
end
M.ip_to_str = ip_to_str

local function ipv6_groups(bytes)
  local groups = {}
  for i = 1, 16, 2 do groups[#groups + 1] = (unpack(">I2", bytes, i)) end
  return groups
end

local function hex_groups(groups, first, last)
  local parts = {}
  for i = first, last do parts[#parts + 1] = format("%x", groups[i]) end
  return concat(parts, ":")
end

--- Text of an address given as 4 or 16 bytes (IPv6 written with "::" for a run of zero
-- groups).
-- @return The address, or nil and "Invalid length".
local function str_to_ip(ip)
  if #ip == 4 then
    return format("%d.%d.%d.%d", byte(ip, 1, 4))
  elseif #ip == 16 then
    local groups = ipv6_groups(ip)
    -- The first run of zero groups is shortened, but a lone zero first group is not.
    for i = 1, 8 do
      if groups[i] == 0 and (i > 1 or groups[2] == 0) then
        local j = i
        while j <= 8 and groups[j] == 0 do j = j + 1 end
        return hex_groups(groups, 1, i - 1) .. "::" .. hex_groups(groups, j, 8)
      end
    end
    return hex_groups(groups, 1, 8)
  end
  return nil, "Invalid length"
end
M.str_to_ip = str_to_ip

local NIBBLE_BITS = {}
for value = 0, 15 do
  local bits = ""
  for bit = 3, 0, -1 do bits = bits .. ((value >> bit) & 1) end
  NIBBLE_BITS[format("%x", value)] = bits
  NIBBLE_BITS[format("%X", value)] = bits
end

--- The address as a string of 32 or 128 binary digits.
-- @return The digits, or nil and an error message.
local function ip_to_bin(ip)
  local bytes, err = ip_to_str(ip)
  if not bytes then return nil, err end
  return (gsub(bytes, ".", function(c)
    local hex = format("%02x", byte(c))
    return NIBBLE_BITS[sub(hex, 1, 1)] .. NIBBLE_BITS[sub(hex, 2, 2)]
  end))
end
M.ip_to_bin = ip_to_bin

--- The address written by 32 (IPv4) or 128 (IPv6, eight full groups) binary digits.
-- @return The address, or nil and an error message.
local function bin_to_ip(binstring)
  if type(binstring) ~= "string" or find(binstring, "[^01]") then
    return nil, fail("bin_to_ip", "Expected string of binary digits.")
  end
  if #binstring == 32 then
    local octets = {}
    for i = 1, 32, 8 do octets[#octets + 1] = tonumber(sub(binstring, i, i + 7), 2) end
    return concat(octets, ".")
  elseif #binstring == 128 then
    local groups = {}
    for i = 1, 128, 16 do groups[#groups + 1] = tonumber(sub(binstring, i, i + 15), 2) end
    return hex_groups(groups, 1, 8)
  end
  return nil, fail("bin_to_ip", "Expected exactly 32 or 128 binary digits.")
end
M.bin_to_ip = bin_to_ip

--- Binary digits for hexadecimal ones (four each).
-- @return The digits; nil and a message for a non-string, false and a message for text
--         that is not hexadecimal.
local function hex_to_bin(hex)
  if type(hex) ~= "string" then
    return nil, fail("hex_to_bin", "Expected string")
  end
  if find(hex, "%X") then
    -- This message carries the position it was raised at, as Nmap's does.
    local _, message = pcall(error, fail("hex_to_bin",
                                         "Expected string representing a hexadecimal number."), 2)
    return false, message
  end
  return (gsub(hex, "%x", NIBBLE_BITS))
end
M.hex_to_bin = hex_to_bin

--- An IPv4 address as a 32-bit number.
-- @return The number, or nil and an error message.
local function todword(ip)
  if type(ip) ~= "string" or find(ip, ":", 1, true) then
    return nil, fail("todword", "Expected IPv4 address.")
  end
  local full, err = expand_ip(ip)
  if not full then return nil, err end
  local a, b, c, d = octet_numbers(full)
  return ((a * 256 + b) * 256 + c) * 256 + d
end
M.todword = todword

--- A 32-bit number as a dotted IPv4 address (nil for anything but a number).
local function fromdword(ip)
  if type(ip) ~= "number" then return nil end
  return format("%d.%d.%d.%d", byte(pack(">I4", ip), 1, 4))
end
M.fromdword = fromdword

--- The parts of an address as numbers: 4 octets, or 8 IPv6 groups.
-- @return An array of numbers, or nil and an error message.
local function get_parts_as_number(ip)
  local full, err = expand_ip(ip)
  if not full then return nil, err end
  local parts = {}
  if find(full, ":", 1, true) then
    for group in gmatch(full, "[^:]+") do parts[#parts + 1] = tonumber(group, 16) end
  else
    for octet in gmatch(full, "%d+") do parts[#parts + 1] = tonumber(octet) end
  end
  return parts
end
M.get_parts_as_number = get_parts_as_number

-- ---------------------------------------------------------------------------------------------
-- Comparison and ranges.

local OPERATORS = {
  eq = function(l, r) return l == r end,
  ne = function(l, r) return l ~= r end,
  lt = function(l, r) return #l < #r or (#l == #r and l < r) end,
  le = function(l, r) return #l < #r or (#l == #r and l <= r) end,
  gt = function(l, r) return #l > #r or (#l == #r and l > r) end,
  ge = function(l, r) return #l > #r or (#l == #r and l >= r) end,
}

--- Compare two addresses; every IPv4 address sorts before every IPv6 address.
-- @param left An address.
-- @param op One of "eq", "ne", "lt", "le", "gt", "ge".
-- @param right An address.
-- @return A boolean, or nil and an error message.
local function compare_ip(left, op, right)
  local l, err = ip_to_str(left)
  if not l then return nil, err end
  local r, err2 = ip_to_str(right)
  if not r then return nil, err2 end
  local compare = OPERATORS[op]
  if not compare then return nil, fail("compare_ip", "Invalid Operator.") end
  return compare(l, r)
end
M.compare_ip = compare_ip

--- Sort an array of addresses in place (ascending, or by the compare_ip operator given).
local function ip_sort(ips, op)
  op = op or "lt"
  sort(ips, function(a, b) return compare_ip(a, op, b) end)
end
M.ip_sort = ip_sort

local function is_ipv6(full)
  return find(full, ":", 1, true) ~= nil
end

--- The first and last addresses of the network <code>ip</code>/<code>prefix</code>.
-- @return The first and last address (IPv6 in eight full groups), or nil, nil and an error
--         message.
local function get_first_last_ip(ip, prefix)
  local full, err = expand_ip(ip)
  if not full then return nil, nil, err end
  local bits = is_ipv6(full) and 128 or 32
  prefix = tonumber(prefix)
  if not prefix or prefix < 0 or prefix > bits or prefix ~= prefix // 1 then
    return nil, nil, fail("get_first_last_ip", "Invalid prefix.")
  end
  prefix = mtype(prefix) == "float" and (prefix // 1) or prefix
  local network = sub(ip_to_bin(full), 1, prefix)
  return bin_to_ip(network .. rep("0", bits - prefix)), bin_to_ip(network .. rep("1", bits - prefix))
end
M.get_first_last_ip = get_first_last_ip

--- The first address of the network <code>ip</code>/<code>prefix</code>.
-- @return The address, or nil and an error message.
local function get_first_ip(ip, prefix)
  local first, _, err = get_first_last_ip(ip, prefix)
  return first, err
end
M.get_first_ip = get_first_ip

--- The last address of the network <code>ip</code>/<code>prefix</code>.
-- @return The address, or nil and an error message.
local function get_last_ip(ip, prefix)
  local _, last, err = get_first_last_ip(ip, prefix)
  return last, err
end
M.get_last_ip = get_last_ip

--- The first and last addresses of a range written "a.b.c.d/n" (or IPv6 with a prefix) or
-- "first - last" (then as expand_ip writes them).
-- @return The first and last addresses, or nil, nil and an error message.
local function get_ips_from_range(range)
  if type(range) ~= "string" then
    return nil, nil, fail("get_ips_from_range", "Expected a range as a string.")
  end
  local ip, prefix = match(range, "^%s*([%x:%.]+)/(%d+)%s*$")
  if ip then
    return get_first_last_ip(ip, prefix)
  end
  local first, last = match(range, "^%s*([%x:%.]+)%s*%-%s*([%x:%.]+)%s*$")
  if not first then
    return nil, nil, fail("get_ips_from_range", "The range supplied could not be interpreted.")
  end
  local err
  first, err = expand_ip(first)
  if not first then return nil, nil, err end
  last, err = expand_ip(last)
  if not last then return nil, nil, err end
  if is_ipv6(first) ~= is_ipv6(last) then
    return nil, nil, fail("get_ips_from_range",
                          "First IP address is of a different address family to last IP address.")
  end
  return first, last
end
M.get_ips_from_range = get_ips_from_range

--- Whether an address lies in a range (see get_ips_from_range for the forms).
-- @return A boolean, or nil and an error message.
local function ip_in_range(ip, range)
  local first, last, err = get_ips_from_range(range)
  if not first then return nil, err end
  local full, err2 = expand_ip(ip)
  if not full then return nil, err2 end
  if is_ipv6(full) ~= is_ipv6(first) then
    return nil, fail("ip_in_range", "IP address is of a different address family to Range.")
  end
  return compare_ip(full, "ge", first) and compare_ip(full, "le", last)
end
M.ip_in_range = ip_in_range

local PRIVATE_IPV4 = {"10/8", "127/8", "169.254/16", "172.16/12", "192.168/16", "192.0.0/24",
                      "192.0.2/24", "198.18/15", "198.51.100/24", "203.0.113/24", "224.0.0/24",
                      "240.0.0/4"}
local PRIVATE_IPV6 = {"::/127", "FC00::/7", "FE80::/10", "FEC0::/10"}

--- Whether an address is in a block that is not routed on the Internet (private, loopback,
-- link-local, documentation, benchmarking, reserved ...).
-- @return true and the block, false, or nil and an error message.
local function isPrivate(ip)
  local full, err = expand_ip(ip)
  if not full then return nil, err end
  for _, block in ipairs(is_ipv6(full) and PRIVATE_IPV6 or PRIVATE_IPV4) do
    if ip_in_range(full, block) then return true, block end
  end
  return false, nil
end
M.isPrivate = isPrivate

--- The dotted IPv4 netmask of a prefix written "/nn" (exactly two digits, at the end).
-- @return The netmask, or nil.
local function cidr_to_subnet(subnet)
  local bits = subnet:match("/(%d%d)$")
  if not bits then return nil end
  bits = tonumber(bits)
  if bits > 32 then bits = 32 end
  return fromdword((0xffffffff << (32 - bits)) & 0xffffffff)
end
M.cidr_to_subnet = cidr_to_subnet

--- The prefix ("/nn") of a dotted IPv4 netmask.
-- @return The prefix, or nil and an error message.
local function subnet_to_cidr(subnet)
  local dword, err = todword(subnet)
  if not dword then return nil, err end
  local bits = 0
  while bits < 32 and (dword >> (31 - bits)) & 1 == 1 do bits = bits + 1 end
  if dword & ((1 << (32 - bits)) - 1) ~= 0 then
    -- Nmap 7.93 fails this way on a netmask that is not one run of ones.
    error("attempt to perform arithmetic on a nil value")
  end
  return "/" .. bits
end
M.subnet_to_cidr = subnet_to_cidr

return M
