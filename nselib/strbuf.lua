---
-- String buffers: a list of strings that grows with <code>..</code> and is joined only when
-- needed, instead of copying a growing string at every concatenation.
--
-- <code>buf .. s</code> appends the string <code>s</code> (or every string of another buffer)
-- to <code>buf</code> and returns <code>buf</code> itself; the left operand must be a buffer.
-- Two buffers are <code>==</code> when they hold the same strings in the same order.
-- <code>tostring(buf)</code> joins the strings with newlines.
--
-- Written for nsecluster from the NSE documentation; the names, arguments and return values are
-- those scripts written for Nmap expect.
--
-- @usage
-- local buf = strbuf.new()
-- buf = buf .. "line one" .. "line two"
-- return tostring(buf)  --> "line one\nline two"
--
-- @class module
-- @name strbuf

local error, getmetatable, select, setmetatable, type =
      error, getmetatable, select, setmetatable, type
local concat = table.concat

local _ENV = {}

local BUFFER = {}  -- the metatable of every buffer

local function is_buffer(value)
  return type(value) == "table" and getmetatable(value) == BUFFER
end

--- Append a string, or the strings of another buffer, to a buffer (the <code>..</code>
-- operator).
-- @param sbuf The buffer.
-- @param s A string or a buffer.
-- @return The buffer <code>sbuf</code>.
function concatbuf(sbuf, s)
  if type(s) == "string" and is_buffer(sbuf) then
    sbuf[#sbuf + 1] = s
  elseif is_buffer(s) and is_buffer(sbuf) then
    for i = 1, #s do sbuf[#sbuf + 1] = s[i] end
  else
    error("bad #2 operand to strbuf concat operation", 2)
  end
  return sbuf
end

--- Whether two buffers hold the same strings (the <code>==</code> operator).
-- @param sbuf1 A buffer.
-- @param sbuf2 Another buffer.
-- @return true or false.
function eqbuf(sbuf1, sbuf2)
  if not is_buffer(sbuf1) or not is_buffer(sbuf2) then
    error("one or more operands is not a string buffer", 2)
  end
  if #sbuf1 ~= #sbuf2 then return false end
  for i = 1, #sbuf1 do
    if sbuf1[i] ~= sbuf2[i] then return false end
  end
  return true
end

--- Empty a buffer.
-- @param sbuf The buffer.
function clear(sbuf)
  for i = #sbuf, 1, -1 do sbuf[i] = nil end
end

--- The strings of a buffer joined with a delimiter.
-- @param sbuf The buffer.
-- @param delimiter The delimiter (default: none).
-- @return The joined string.
function dump(sbuf, delimiter)
  return concat(sbuf, delimiter or "")
end

--- The strings of a buffer joined with newlines (the buffer's <code>tostring</code>).
-- @param sbuf The buffer.
-- @return The joined string.
function tostring(sbuf)
  return concat(sbuf, "\n")
end

--- Make a new buffer.
-- @param ... Strings the buffer starts with.
-- @return The buffer.
function new(...)
  local sbuf = {}
  for i = 1, select("#", ...) do sbuf[i] = (select(i, ...)) end
  return setmetatable(sbuf, BUFFER)
end

BUFFER.__concat = concatbuf
BUFFER.__eq = eqbuf
BUFFER.__tostring = tostring
BUFFER.__index = _ENV

return _ENV
