---
-- Helper functions for strings: joining, splitting, case-insensitive patterns and escaping
-- for file names.
--
-- Written for nsecluster from the NSE documentation; the names, arguments and return values are
-- those scripts written for Nmap expect.
--
-- @class module
-- @name stringaux

local assert, error, tostring, type = assert, error, tostring, type
local byte, find, format, gsub, lower, sub, upper =
      string.byte, string.find, string.format, string.gsub, string.lower, string.sub,
      string.upper
local concat = table.concat

local _ENV = {}

--- Join the strings of an array with a delimiter between them (<code>table.concat</code> with
-- the arguments the other way round).
-- @usage stringaux.strjoin(", ", {"a", "b", "c"}) --> "a, b, c"
-- @param delimiter The string to put between elements.
-- @param list The array of strings (numbers are allowed too).
-- @return The joined string.
function strjoin(delimiter, list)
  assert(type(delimiter) == "string",
         "delimiter is of the wrong type! (did you get the parameters backward?)")
  return concat(list, delimiter)
end

--- Split a string wherever a delimiter pattern matches.
-- Empty fields are kept (so <code>n</code> delimiters always give <code>n+1</code> fields);
-- captures in the pattern are ignored. A match of the empty string is not a delimiter.
-- @usage stringaux.strsplit(",%s*", "a, b,c") --> {"a", "b", "c"}
-- @param pattern The Lua pattern separating the fields.
-- @param text The string to split.
-- @return An array of the fields.
function strsplit(pattern, text)
  if type(text) ~= "string" and type(text) ~= "number" then
    error("bad argument #2 to 'strsplit' (string expected, got " .. type(text) .. ")", 2)
  end
  text = tostring(text)
  local fields = {}
  local start, search = 1, 1
  local length = #text
  while search <= length + 1 do
    local first, last = find(text, pattern, search)
    if not first then break end
    if last >= first then
      fields[#fields + 1] = sub(text, start, first - 1)
      start, search = last + 1, last + 1
    else
      search = first + 1  -- an empty match: look again one byte further on
    end
  end
  fields[#fields + 1] = sub(text, start)
  return fields
end

--- Escape a string so that it is safe as a file name: every byte except ASCII letters, digits,
-- <code>.</code>, <code>_</code> and <code>-</code> becomes <code>%</code> and two lower-case
-- hex digits, and the names <code>.</code> and <code>..</code> are escaped entirely.
-- @usage stringaux.filename_escape("in/out") --> "in%2fout"
-- @param s The string.
-- @return The escaped string.
function filename_escape(s)
  if type(s) ~= "string" then
    error("bad argument #1 to 'filename_escape' (string expected, got " .. type(s) .. ")", 2)
  end
  if s == "." then return "%2e" end
  if s == ".." then return "%2e%2e" end
  return (gsub(s, "[^A-Za-z0-9%._%-]", function(c) return format("%%%02x", byte(c)) end))
end

local function is_letter(c)
  return (c >= "a" and c <= "z") or (c >= "A" and c <= "Z")
end

--- Make a Lua pattern case-insensitive: each letter outside a set (<code>[...]</code>) or an
-- escape (<code>%x</code>) becomes a set of its two cases.
-- @usage stringaux.ipattern("ab%d") --> "[aA][bB]%d"
-- @param pattern The pattern.
-- @return The case-insensitive pattern.
function ipattern(pattern)
  if type(pattern) ~= "string" then
    error("bad argument #1 to 'ipattern' (string expected, got " .. type(pattern) .. ")", 2)
  end
  local out = {}
  local i, n = 1, #pattern
  while i <= n do
    local c = sub(pattern, i, i)
    if c == "%" then
      out[#out + 1] = sub(pattern, i, i + 1)
      i = i + 2
    elseif c == "[" then
      -- Copy a set as it is, up to its closing bracket (escapes inside skipped).
      local j = i + 1
      while j <= n do
        local d = sub(pattern, j, j)
        if d == "%" then
          j = j + 2
        elseif d == "]" then
          break
        else
          j = j + 1
        end
      end
      out[#out + 1] = sub(pattern, i, j)
      i = j + 1
    elseif is_letter(c) then
      out[#out + 1] = "[" .. lower(c) .. upper(c) .. "]"
      i = i + 1
    else
      out[#out + 1] = c
      i = i + 1
    end
  end
  return concat(out)
end

return _ENV
