-- The part of stdnse that the engine supplies (in Nmap, nse_main and C): threads, sleep and
-- silent_require. Any stdnse (our nselib's, or an Nmap data directory's) gets them set on its
-- module table when it loads (kernel.install_searcher).
local K, nmap, thread_info = ...

local error, pcall, require, select, tostring = error, pcall, require, select, tostring

local part = {}

--- Sleep for ``t`` seconds (fractions allowed), letting other threads run. (Only ``t`` goes
--- on: the API function takes no other argument.)
function part.sleep(t) return nmap.socket.sleep(t) end
--- A worker thread of the calling script running ``f(...)``: its coroutine, and a function
--- returning its status and the error it died with, if any.
--- (K.new_worker's errors, at level 2, blame the script calling this.)
part.new_thread = K.new_worker
--- The coroutine of the calling thread (the base of any coroutines it made).
part.base = K.base
--- The calling thread's identifier.
part.gettid = K.base
--- The id (name) of the calling script.
function part.getid() return (thread_info()) end
--- A description of the calling thread: "<id> M:<addr>" (W: in a worker thread), the
--- address being its coroutine's, as tostring shows it.
function part.getinfo()
  local id, _, is_worker = thread_info()
  if not id then return nil end
  local address = tostring(K.base()):match("^thread: 0?[xX]?(.*)")
  return ("%s %s:%s"):format(id, is_worker and "W" or "M", address)
end
--- The host and port tables of the calling script thread.
part.gethostport = K.host_port
--- Whether the calling thread is a worker made by new_thread.
function part.isworker() return (select(3, thread_info())) == true end

--- Like require, but a missing module makes the calling script skip quietly (nse-spec §1.3).
function part.silent_require(name)
  local ok, module = pcall(require, name)
  if not ok then error(K.SILENT_REQUIRE, 0) end
  return module
end

return part
