---
-- JSON (RFC 4627) parsing and generation.
--
-- JSON arrays and objects become Lua tables marked with a metatable whose <code>json</code>
-- field is <code>"array"</code> or <code>"object"</code>, so an empty array stays an array when
-- generated again; JSON <code>null</code> becomes <code>json.NULL</code>. When generating, a
-- table without such a mark is an array if its length (<code>#</code>) is above zero (its
-- <code>ipairs</code> elements are written), and otherwise an object (its <code>pairs</code>
-- entries are written, in <code>pairs</code> order).
--
-- Written for nsecluster from the NSE documentation; the names, arguments and return values are
-- those scripts written for Nmap expect.
--
-- @usage
-- local status, value = json.parse('{"a": [1, 2, null]}')
-- -- status is true, value.a[3] == json.NULL
-- json.generate({1, 2, json.NULL}) --> "[1, 2, null]"
--
-- @class module
-- @name json

local error, getmetatable, ipairs, pairs, pcall, setmetatable, tonumber, tostring, type =
      error, getmetatable, ipairs, pairs, pcall, setmetatable, tonumber, tostring, type
local byte, find, format, gsub, match, sub =
      string.byte, string.find, string.format, string.gsub, string.match, string.sub
local concat = table.concat
local utf8_char = utf8.char

local _ENV = {}

--- The value JSON <code>null</code> parses to, and that generates <code>null</code>.
NULL = {}
local NULL_VALUE = NULL

local ARRAY = {json = "array"}
local OBJECT = {json = "object"}

--- Mark a table as a JSON array (it is generated as an array even when empty).
-- @param t The table.
-- @return The same table.
function make_array(t)
  return setmetatable(t, ARRAY)
end

--- Mark a table as a JSON object (it is generated as an object even when it is a sequence).
-- @param t The table.
-- @return The same table.
function make_object(t)
  return setmetatable(t, OBJECT)
end

local function kind_of(var)
  local t = type(var)
  if var == NULL_VALUE then return "null" end
  if t ~= "table" then return t end
  local mt = getmetatable(var)
  local kind = type(mt) == "table" and mt.json or nil
  if kind then return kind end
  if #var > 0 then return "array" end
  return "object"
end

--- The JSON type of a Lua value: <code>"null"</code> for <code>json.NULL</code>,
-- <code>"array"</code> or <code>"object"</code> for tables (by their mark, else their length),
-- and the Lua type for anything else.
-- @param var The value.
-- @return The type name.
function typeof(var)
  return kind_of(var)
end

-- ---------------------------------------------------------------------------------------------
-- Generating.

local ESCAPES = {
  ['"'] = '\\"', ["\\"] = "\\\\", ["/"] = "\\/", ["\n"] = "\\n", ["\r"] = "\\r",
  ["\t"] = "\\t", ["\b"] = "\\b", ["\f"] = "\\f",
}

local function quote(s)
  if type(s) == "number" then s = tostring(s) end
  if type(s) ~= "string" then
    error("object keys must be strings or numbers, got " .. type(s), 0)
  end
  return '"' .. gsub(s, '[\n\r\t\b\f"\\/]', ESCAPES) .. '"'
end

local function encode(value, out, open)
  local t = type(value)
  if value == NULL_VALUE then
    out[#out + 1] = "null"
  elseif t == "string" then
    out[#out + 1] = quote(value)
  elseif t == "number" or t == "boolean" then
    out[#out + 1] = tostring(value)
  elseif t == "table" then
    if open[value] then error("cannot generate a table that contains itself", 0) end
    open[value] = true
    if kind_of(value) == "array" then
      out[#out + 1] = "["
      for i, item in ipairs(value) do
        if i > 1 then out[#out + 1] = ", " end
        encode(item, out, open)
      end
      out[#out + 1] = "]"
    else
      out[#out + 1] = "{"
      local first = true
      for k, item in pairs(value) do
        if not first then out[#out + 1] = ", " end
        first = false
        out[#out + 1] = quote(k)
        out[#out + 1] = ": "
        encode(item, out, open)
      end
      out[#out + 1] = "}"
    end
    open[value] = nil
  else
    error("Unknown data type in generate", 0)
  end
end

--- Generate the JSON text of a Lua value: tables (see the module description), strings,
-- numbers (as <code>tostring</code> writes them), booleans and <code>json.NULL</code>.
-- Raises an error for other types.
-- @param obj The value.
-- @return The JSON string.
function generate(obj)
  local out = {}
  encode(obj, out, {})
  return concat(out)
end

-- ---------------------------------------------------------------------------------------------
-- Parsing.

local SYNTAX = {}  -- raised (as an error value) on a syntax error

local function skip(s, i)
  return match(s, "^%s*()", i)
end

local SIMPLE_ESCAPES = {
  ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t",
}

local function parse_string(s, i)
  -- s:sub(i, i) is the opening quote
  local parts = {}
  i = i + 1
  while true do
    local stop = find(s, '["\\]', i)
    if not stop then error(SYNTAX, 0) end
    parts[#parts + 1] = sub(s, i, stop - 1)
    if byte(s, stop) == 34 then  -- closing quote
      return concat(parts), stop + 1
    end
    local c = sub(s, stop + 1, stop + 1)
    if c == "" then error(SYNTAX, 0) end
    i = stop + 2
    if c == "u" and match(s, "^%x%x%x%x", i) then
      local hex = sub(s, i, i + 3)
      local cp = tonumber(hex, 16)
      i = i + 4
      if cp >= 0xD800 and cp <= 0xDBFF then
        local low_hex = match(s, "^\\u(%x%x%x%x)", i)
        if not low_hex then
          error(format("Bad unicode escape \\u%s (missing low surrogate)", hex))
        end
        local low = tonumber(low_hex, 16)
        if low < 0xDC00 or low > 0xDFFF then
          error(format("Bad unicode escape \\u%s\\u%s (bad low surrogate)", hex, low_hex))
        end
        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00)
        i = i + 6
      elseif cp >= 0xDC00 and cp <= 0xDFFF then
        error(format("Not a Unicode character: U+%04X", cp))
      end
      parts[#parts + 1] = utf8_char(cp)
    else
      -- Unknown escapes (and \u without four hex digits) stand for the character itself.
      parts[#parts + 1] = SIMPLE_ESCAPES[c] or c
    end
  end
end

local function parse_number(s, i)
  local text = match(s, "^%-?0x%x+", i)
  if not text then
    text = match(s, "^%-?[%d%.]+", i)
    if not text then error(SYNTAX, 0) end
    local exponent = match(s, "^[eE][%+%-]?%d+", i + #text)
    if exponent then text = text .. exponent end
  end
  local n = tonumber(text)
  if not n then error(SYNTAX, 0) end
  return n, i + #text
end

local parse_value

local function parse_array(s, i)
  local array = setmetatable({}, ARRAY)
  i = skip(s, i + 1)
  if sub(s, i, i) == "]" then return array, i + 1 end
  while true do
    local value
    value, i = parse_value(s, i)
    array[#array + 1] = value
    i = skip(s, i)
    local c = sub(s, i, i)
    if c == "]" then return array, i + 1 end
    if c ~= "," then error(SYNTAX, 0) end
    i = skip(s, i + 1)
  end
end

local function parse_object(s, i)
  local object = setmetatable({}, OBJECT)
  i = skip(s, i + 1)
  if sub(s, i, i) == "}" then return object, i + 1 end
  while true do
    if sub(s, i, i) ~= '"' then error(SYNTAX, 0) end
    local key
    key, i = parse_string(s, i)
    i = skip(s, i)
    if sub(s, i, i) ~= ":" then error(SYNTAX, 0) end
    local value
    value, i = parse_value(s, skip(s, i + 1))
    object[key] = value
    i = skip(s, i)
    local c = sub(s, i, i)
    if c == "}" then return object, i + 1 end
    if c ~= "," then error(SYNTAX, 0) end
    i = skip(s, i + 1)
  end
end

local LITERALS = {["true"] = true, ["false"] = false}

-- The value starting at position i (no leading white space), and the position after it.
parse_value = function(s, i)
  local c = sub(s, i, i)
  if c == "{" then return parse_object(s, i) end
  if c == "[" then return parse_array(s, i) end
  if c == '"' then return parse_string(s, i) end
  local word = match(s, "^%a+", i)
  if word then
    if word == "null" then return NULL_VALUE, i + 4 end
    local literal = LITERALS[word]
    if literal == nil then error(SYNTAX, 0) end
    return literal, i + #word
  end
  return parse_number(s, i)
end

--- Parse a JSON text.
-- @param data The JSON string (a number is converted to one).
-- @return true and the value on success; false and an error message otherwise
--         (<code>"syntax error"</code>, a message about a bad <code>\u</code> escape, or one
--         about an argument that is not a string).
--         A text whose value is <code>false</code> is reported as a syntax error.
function parse(data)
  if type(data) == "number" then data = tostring(data) end
  if type(data) ~= "string" then
    return false, "bad argument #1 to 'parse' (string expected, got " .. type(data) .. ")"
  end
  local ok, value, i = pcall(function()
    local v, j = parse_value(data, skip(data, 1))
    return v, skip(data, j)
  end)
  if not ok then
    if value == SYNTAX then return false, "syntax error" end
    return false, tostring(value)
  end
  if i ~= #data + 1 or not value then return false, "syntax error" end
  return true, value
end

return _ENV
