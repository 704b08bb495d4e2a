-- The zlib module (nse-spec §10) in the lzlib style Nmap ships: compress/decompress,
-- adler32/crc32, and deflate/inflate stream objects. The compression is Python's zlib
-- (worker/nse/cmod/zlib.py); the streams' buffering and read formats are done here.
local K, api, constants = ...
local settle = K.settle

local error, find, pairs, select, setmetatable, sub, tonumber, type =
      error, string.find, pairs, select, setmetatable, string.sub, tonumber, type
local unpack = table.unpack

local zlib = {
  _VERSION = "lzlib 0.4-work3",
  _DESCRIPTION = "zlib compression for NSE scripts, provided by nsecluster",
  _COPYRIGHT = "nsecluster authors",
}
for name, value in pairs(constants) do zlib[name] = value end

function zlib.version() return settle(api.version()) end
--- Compressed ``data``; a second value, always 1.0, as Nmap's module gives (observed).
function zlib.compress(data, ...) return settle(api.compress(data, ...)), 1.0 end
function zlib.decompress(data, bits) return settle(api.decompress(data, bits)) end
function zlib.adler32(start, data) return settle(api.adler32(start, data)) end
function zlib.crc32(start, data) return settle(api.crc32(start, data)) end

-- A stream's ``handle`` is its Python zlib object: dropping the reference is all "close"
-- needs (no __gc: a finalizer must not call into Python while the Lua state closes).
local function release(stream)
  stream.handle = nil
end

-- -- deflate: compressed output goes to a sink (a function, or an object with :write) ------
local DEFLATE = {}
DEFLATE.__index = DEFLATE
DEFLATE.__name = "zlib:zstream"
DEFLATE.__tostring = function() return "zlib deflate stream" end

local function emit(stream, data)
  if data == "" then return end
  local sink = stream.sink
  if type(sink) == "function" then sink(data) else sink:write(data) end
end

function DEFLATE:write(...)
  if not self.handle then error("deflate stream is closed", 2) end
  for i = 1, select("#", ...) do
    emit(self, settle(api.deflate_write(self.handle, (select(i, ...)))))
  end
  return self
end

function DEFLATE:flush()
  if self.handle then emit(self, settle(api.deflate_flush(self.handle, false))) end
  return self
end

function DEFLATE:close()
  if self.handle then
    emit(self, settle(api.deflate_flush(self.handle, true)))
    release(self)
  end
end

function zlib.deflate(sink, level, method, bits, memlevel, strategy, dictionary)
  local stream = setmetatable({sink = sink}, DEFLATE)
  stream.handle = settle(api.deflate_new(level, method, bits, memlevel, strategy, dictionary))
  return stream
end

-- -- inflate: compressed input comes from a source (a string, a function returning chunks,
-- -- or an object with :read); the decompressed text is read as from a file -----------------
local INFLATE = {}
INFLATE.__index = INFLATE
INFLATE.__name = "zlib:zstream"
INFLATE.__tostring = function() return "zlib inflate stream" end

local function next_input(stream)
  local source = stream.source
  if type(source) == "string" then
    stream.source = nil
    return source
  elseif type(source) == "function" then
    return source()
  elseif source ~= nil then
    return source:read(8192)
  end
end

--- Decompress until ``enough(buffer)`` or the end; false when nothing more will come.
local function fill(stream, enough)
  while not enough(stream.buffer) and not stream.ended and stream.handle do
    local chunk = next_input(stream)
    if chunk == nil then
      stream.ended = true
      break
    end
    local out, ended = settle(api.inflate_feed(stream.handle, chunk))
    stream.buffer = stream.buffer .. out
    if ended then stream.ended = true end
  end
end

local function take(stream, n)
  local piece = sub(stream.buffer, 1, n)
  stream.buffer = sub(stream.buffer, n + 1)
  return piece
end

local function read_one(stream, format)
  if format == nil or format == "*l" or format == "l" or format == "*L" or format == "L" then
    fill(stream, function(b) return find(b, "\n", 1, true) end)
    local stop = find(stream.buffer, "\n", 1, true)
    if not stop then
      if stream.buffer == "" then return nil end
      return take(stream, #stream.buffer)
    end
    local line = take(stream, stop)
    if format == "*L" or format == "L" then return line end
    return sub(line, 1, -2)
  elseif format == "*a" or format == "a" then
    fill(stream, function() return false end)
    return take(stream, #stream.buffer)
  end
  local n = tonumber(format)
  if not n then error("bad argument to 'read' (invalid format)", 3) end
  fill(stream, function(b) return #b >= n end)
  if stream.buffer == "" and n > 0 then return nil end
  return take(stream, n)
end

function INFLATE:read(...)
  local count = select("#", ...)
  if count == 0 then return read_one(self, nil) end
  local results = {}
  for i = 1, count do
    results[i] = read_one(self, (select(i, ...)))
    if results[i] == nil then break end
  end
  return unpack(results, 1, count)
end

function INFLATE:lines()
  return function() return read_one(self, "*l") end
end

function INFLATE:close()
  release(self)
  self.buffer, self.ended = "", true
end

function zlib.inflate(source, bits, dictionary)
  local stream = setmetatable({source = source, buffer = "", ended = false}, INFLATE)
  stream.handle = settle(api.inflate_new(bits, dictionary))
  return stream
end

return zlib
