---
-- Base64 encoding and decoding (RFC 4648, standard alphabet with <code>=</code> padding).
--
-- Written for nsecluster from the NSE documentation; the names, arguments and return values are
-- those scripts written for Nmap expect.
--
-- @usage
-- base64.enc("hi")   --> "aGk="
-- base64.dec("aGk=") --> "hi"
--
-- @class module
-- @name base64

local error, type = error, type
local byte, char, gsub, sub = string.byte, string.char, string.gsub, string.sub
local concat = table.concat

local _ENV = {}

local ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local PAD = byte("=")

local DIGIT = {}  -- byte -> 6-bit value
local SYMBOL = {} -- 6-bit value -> character
for i = 1, #ALPHABET do
  DIGIT[byte(ALPHABET, i)] = i - 1
  SYMBOL[i - 1] = sub(ALPHABET, i, i)
end

local function check_string(value, fname)
  if type(value) ~= "string" then
    error("bad argument #1 to '" .. fname .. "' (string expected, got " .. type(value) .. ")", 3)
  end
end

--- Encode a string in Base64.
-- @param p The data (a string of bytes).
-- @return The encoding, padded with <code>=</code> to a multiple of 4 characters.
function enc(p)
  check_string(p, "enc")
  local out = {}
  local n = #p
  for i = 1, n - 2, 3 do
    local a, b, c = byte(p, i, i + 2)
    local v = a << 16 | b << 8 | c
    out[#out + 1] = SYMBOL[v >> 18] .. SYMBOL[v >> 12 & 63] .. SYMBOL[v >> 6 & 63] ..
                    SYMBOL[v & 63]
  end
  local rest = n % 3
  if rest == 1 then
    local v = byte(p, n) << 16
    out[#out + 1] = SYMBOL[v >> 18] .. SYMBOL[v >> 12 & 63] .. "=="
  elseif rest == 2 then
    local a, b = byte(p, n - 1, n)
    local v = a << 16 | b << 8
    out[#out + 1] = SYMBOL[v >> 18] .. SYMBOL[v >> 12 & 63] .. SYMBOL[v >> 6 & 63] .. "="
  end
  return concat(out)
end

local function invalid(what)
  error("invalid encoding: " .. what, 3)
end

-- The value of a character; the first two of a group may be "=" (value 0).
local function digit(e, i, lenient)
  local b = byte(e, i)
  local v = DIGIT[b]
  if v then return v end
  if lenient and b == PAD then return 0 end
  invalid("invalid character")
end

--- Decode a Base64 string. White space is ignored.
-- Raises an error (<code>invalid encoding: ...</code>) when the input is not valid Base64:
-- its length is not a multiple of 4, it holds a character outside the alphabet, or data
-- follows a padded group.
-- @param e The encoding.
-- @return The decoded data.
function dec(e)
  check_string(e, "dec")
  e = gsub(e, "%s", "")
  local n = #e
  if n % 4 ~= 0 then invalid("input is not divisible by 4") end
  local out = {}
  for i = 1, n, 4 do
    local count = 3
    if byte(e, i + 3) == PAD then
      count = byte(e, i + 2) == PAD and 1 or 2
    end
    local v = digit(e, i, true) << 18 | digit(e, i + 1, true) << 12
    if count >= 2 then v = v | digit(e, i + 2) << 6 end
    if count == 3 then v = v | digit(e, i + 3) end
    if count < 3 and i + 4 <= n then invalid("trailing characters") end
    if count == 3 then
      out[#out + 1] = char(v >> 16, v >> 8 & 255, v & 255)
    elseif count == 2 then
      out[#out + 1] = char(v >> 16, v >> 8 & 255)
    else
      out[#out + 1] = char(v >> 16)
    end
  end
  return concat(out)
end

return _ENV
