-- The lfs module as NSE has it (nse-spec §10): dir, link, mkdir, rmdir and
-- get_path_separator; the file system work is Python's (worker/nse/cmod/lfs.py).
local K, api = ...
local settle = K.settle

local error, gmatch, setmetatable = error, string.gmatch, setmetatable

local lfs = {
  _VERSION = "LuaFileSystem 1.5.0",
  _DESCRIPTION = "NSE's file system functions, provided by nsecluster",
  _COPYRIGHT = "nsecluster authors",
}

local Dir = {}
Dir.__index = Dir

--- The next name, or nil at the end; a closed directory raises, as readdir on it would.
function Dir:next()
  if self.closed then error("calling 'next' on bad self (closed directory)", 2) end
  local name = self.names()
  if name == nil then self.closed = true end
  return name
end

function Dir:close() self.closed = true end

local function step(dir) return Dir.next(dir) end

--- An iterator over the names in ``path`` ("." and ".." included) and its directory object.
function lfs.dir(path)
  local listing = settle(api.listdir(path))
  local dir = setmetatable({names = gmatch(listing, "([^%z]*)%z"), closed = false}, Dir)
  return step, dir
end

function lfs.mkdir(path) return settle(api.mkdir(path)) end
function lfs.rmdir(path) return settle(api.rmdir(path)) end
function lfs.link(old, new, symbolic) return settle(api.link(old, new, symbolic)) end
function lfs.get_path_separator() return settle(api.get_path_separator()) end

return lfs
