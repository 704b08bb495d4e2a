---
-- Random strings and character sets (not cryptographically strong).
--
-- Written for nsecluster from the NSE documentation; the names, arguments and return values are
-- those scripts written for Nmap expect.
--
-- @class module
-- @name rand

local nmap = require "nmap"

local error, tonumber, type = error, tonumber, type
local byte, char, sub = string.byte, string.char, string.sub
local concat = table.concat
local floor, random = math.floor, math.random

local _ENV = {}

local function bound(value, n)
  if type(value) == "string" then value = byte(value) end
  if type(value) ~= "number" then
    error("bad argument #" .. n .. " to 'charset' (character or byte value expected)", 3)
  end
  return value
end

local function make_charset(left_bound, right_bound, charset)
  local set = charset or {}
  local first, last = bound(left_bound, 1), bound(right_bound, 2)
  for b = first, last do set[#set + 1] = char(b) end
  return set
end

--- Make (or extend) a character set for <code>random_string</code>: the characters from one
-- bound to the other, inclusive.
-- @usage rand.random_string(8, rand.charset("0", "9", rand.charset("a", "f")))
-- @param left_bound The first character, or its byte value.
-- @param right_bound The last character, or its byte value.
-- @param charset A character set to add to (default: a new one).
-- @return The character set (an array of one-character strings).
function charset(left_bound, right_bound, charset)
  return make_charset(left_bound, right_bound, charset)
end

local function random_from(len, set)
  len = tonumber(len)
  if not len then error("bad argument #1 to 'random_string' (number expected)", 3) end
  if not set then
    if len < 0 then error("bad argument #1 to 'random_string' (negative length)", 3) end
    return nmap.get_random_bytes(floor(len))
  end
  local size = #set
  if size == 0 then error("bad argument #2 to 'random_string' (empty charset)", 3) end
  local out = {}
  if type(set) == "string" then
    for i = 1, len do
      local k = random(1, size)
      out[i] = sub(set, k, k)
    end
  else
    for i = 1, len do out[i] = set[random(1, size)] end
  end
  return concat(out)
end

--- A random string.
-- @param len The number of characters (elements of the charset).
-- @param charset A string or an array of strings to pick from (each pick independent). Without
--                one, the result is random bytes (including nulls).
-- @return The string.
function random_string(len, charset)
  return random_from(len, charset)
end

local ALPHA = make_charset("a", "z")

--- A random word of lower-case letters <code>a</code> to <code>z</code>.
-- @param len The number of letters.
-- @return The string.
function random_alpha(len)
  return random_from(len, ALPHA)
end

return _ENV
