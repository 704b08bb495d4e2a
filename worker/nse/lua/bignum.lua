-- BIGNUM objects: OpenSSL's big numbers as Nmap's openssl module and certificate tables hand
-- them out. An object is an empty table (its value lives in STATE, out of the script's
-- reach); arithmetic and conversions are done in Python (worker/nse/cmod/openssl.py) on the
-- magnitude (big-endian bytes) and sign.
local K, api = ...
local settle = K.settle

local error, format, getmetatable, rawget, setmetatable, type =
      error, string.format, getmetatable, rawget, setmetatable, type

local STATE = setmetatable({}, {__mode = "k"})  -- bignum -> {magnitude, negative}
local BIGNUM = {}
local MT = {__name = "BIGNUM", __index = BIGNUM}

local function typename(v)
  local mt = getmetatable(v)
  local name = type(mt) == "table" and rawget(mt, "__name")
  return type(name) == "string" and name or type(v)
end

--- A BIGNUM of ``magnitude`` (big-endian bytes, no leading zeros) and sign.
local function make(magnitude, negative)
  local b = setmetatable({}, MT)
  STATE[b] = {magnitude, negative and true or false}
  return b
end

--- The magnitude and sign of argument ``narg`` of ``fname``, which must be a BIGNUM.
local function parts(b, narg, fname)
  local state = STATE[b]
  if not state then
    error(format("bad argument #%d to '%s' (BIGNUM expected, got %s)", narg, fname,
                 typename(b)), 0)
  end
  return state[1], state[2]
end

function BIGNUM.tobin(b) return (parts(b, 1, "tobin")) end
function BIGNUM.todec(b) return settle(api.bn2dec(parts(b, 1, "todec"))) end
function BIGNUM.tohex(b) return settle(api.bn2hex(parts(b, 1, "tohex"))) end
function BIGNUM.num_bytes(b) return #(parts(b, 1, "num_bytes")) end
function BIGNUM.num_bits(b) return settle(api.num_bits(parts(b, 1, "num_bits"))) end

function BIGNUM.is_bit_set(b, n)
  local magnitude = parts(b, 1, "is_bit_set")
  local byte = n >= 0 and magnitude:byte(#magnitude - n // 8) or nil
  return byte ~= nil and (byte >> (n % 8)) & 1 == 1
end

local function change_bit(b, n, on, fname)
  local magnitude, negative = parts(b, 1, fname)
  STATE[b][1], STATE[b][2] = settle(api.set_bit(magnitude, negative, n, on))
end
function BIGNUM.set_bit(b, n) change_bit(b, n, true, "set_bit") end
function BIGNUM.clear_bit(b, n) change_bit(b, n, false, "clear_bit") end

function BIGNUM.is_prime(b)
  local magnitude, negative = parts(b, 1, "is_prime")
  return settle(api.is_prime(magnitude, negative, false))
end
function BIGNUM.is_safe_prime(b)
  local magnitude, negative = parts(b, 1, "is_safe_prime")
  return settle(api.is_prime(magnitude, negative, true))
end

MT.__tostring = BIGNUM.tohex

return {make = make, parts = parts, methods = BIGNUM}
