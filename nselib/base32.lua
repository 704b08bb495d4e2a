---
-- Base32 encoding and decoding (RFC 4648), with the standard alphabet or the "extended hex"
-- one, and <code>=</code> padding.
--
-- Written for nsecluster from the NSE documentation; the names, arguments and return values are
-- those scripts written for Nmap expect.
--
-- @usage
-- base32.enc("foo")        --> "MZXW6==="
-- base32.enc("foo", true)  --> "CPNMU==="
-- base32.dec("MZXW6===")   --> "foo"
--
-- @class module
-- @name base32

local error, type = error, type
local byte, char, rep, sub = string.byte, string.char, string.rep, string.sub
local concat = table.concat

local _ENV = {}

local PAD = byte("=")

local function alphabet(letters)
  local digit, symbol = {}, {}
  for i = 1, #letters do
    digit[byte(letters, i)] = i - 1
    symbol[i - 1] = sub(letters, i, i)
  end
  return {digit = digit, symbol = symbol}
end

local STANDARD = alphabet("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
local HEX = alphabet("0123456789ABCDEFGHIJKLMNOPQRSTUV")

-- Characters (of 8) used, and padding characters, for 1 to 5 bytes in the last group.
local USED = {2, 4, 5, 7, 8}

local function check_string(value, fname)
  if type(value) ~= "string" then
    error("bad argument #1 to '" .. fname .. "' (string expected, got " .. type(value) .. ")", 3)
  end
end

--- Encode a string in Base32.
-- @param p The data (a string of bytes).
-- @param hex If true, use the extended hex alphabet (<code>0-9A-V</code>) instead of the
--            standard one (<code>A-Z2-7</code>).
-- @return The encoding, padded with <code>=</code> to a multiple of 8 characters.
function enc(p, hex)
  check_string(p, "enc")
  local symbol = (hex and HEX or STANDARD).symbol
  local out = {}
  local n = #p
  for i = 1, n, 5 do
    local count = n - i + 1
    if count > 5 then count = 5 end
    local v = 0
    for j = 0, 4 do
      v = v << 8 | (j < count and byte(p, i + j) or 0)
    end
    local used = USED[count]
    for j = 1, used do
      out[#out + 1] = symbol[v >> (40 - 5 * j) & 31]
    end
    if used < 8 then out[#out + 1] = rep("=", 8 - used) end
  end
  return concat(out)
end

local function invalid(what)
  error("invalid encoding: " .. what, 3)
end

--- Decode a Base32 string.
-- Raises an error (<code>invalid encoding: ...</code>) when the input is not valid Base32: its
-- length is not a multiple of 8, it holds a character outside the alphabet (white space
-- included), its padding is of an impossible length, or data follows a padded group.
-- @param e The encoding.
-- @param hex If true, decode the extended hex alphabet.
-- @return The decoded data.
function dec(e, hex)
  check_string(e, "dec")
  local digit = (hex and HEX or STANDARD).digit
  local n = #e
  if n % 8 ~= 0 then invalid("input is not divisible by 8") end
  local out = {}
  for i = 1, n, 8 do
    -- How many bytes the group holds, from the padding at its end.
    local count = 5
    if byte(e, i + 7) == PAD then
      if sub(e, i + 2, i + 7) == "======" then
        count = 1
      elseif sub(e, i + 4, i + 7) == "====" then
        count = 2
      elseif sub(e, i + 5, i + 7) == "===" then
        count = 3
      else
        count = 4
      end
    end
    local v = 0
    for j = 0, 7 do
      local d = 0
      if j < USED[count] then
        local b = byte(e, i + j)
        d = digit[b]
        if not d then
          -- "=" stands for 0 in the first two characters of a group.
          if j < 2 and b == PAD then d = 0 else invalid("invalid character") end
        end
      end
      v = v << 5 | d
    end
    if count < 5 and i + 8 <= n then invalid("trailing characters") end
    for j = 1, count do
      out[#out + 1] = char(v >> (40 - 8 * j) & 255)
    end
  end
  return concat(out)
end

return _ENV
