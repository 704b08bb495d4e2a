-- dnet objects (nse-spec §7.1): raw frames and IP packets through api/rawnet.py.
local K, api = ...
local settle, setmetatable = K.settle, setmetatable

local Dnet = {}
Dnet.__index = Dnet
Dnet.__metatable = "dnet"

for _, name in ipairs({"ethernet_open", "ethernet_send", "ethernet_close", "ip_open",
                       "ip_send", "ip_close"}) do
  local f = api[name]
  Dnet[name] = function(self, ...) return settle(f(self.handle, ...)) end
end

local next_handle = 0

local function new_dnet()
  next_handle = next_handle + 1
  return setmetatable({handle = next_handle}, Dnet)
end

return {new_dnet = new_dnet}
