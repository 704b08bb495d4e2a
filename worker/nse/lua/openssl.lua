-- The openssl module (nse-spec §10) as Nmap scripts see it: digests, HMAC, ciphers, random
-- bytes and BIGNUM arithmetic, done in Python (worker/nse/cmod/openssl.py).
local K, api, bignum = ...
local settle = K.settle
local make, parts, methods = bignum.make, bignum.parts, bignum.methods

local gmatch, tostring = string.gmatch, tostring

local openssl = {}

local function lines(text)
  local list = {}
  for name in gmatch(text, "[^\n]+") do list[#list + 1] = name end
  return list
end

function openssl.bignum_bin2bn(data) return make(settle(api.bin2bn(tostring(data)))) end
function openssl.bignum_dec2bn(digits) return make(settle(api.dec2bn(tostring(digits)))) end
function openssl.bignum_hex2bn(digits) return make(settle(api.hex2bn(tostring(digits)))) end
function openssl.bignum_rand(bits) return make(settle(api.rand(bits))) end
openssl.bignum_pseudo_rand = openssl.bignum_rand

function openssl.bignum_bn2bin(b) return (parts(b, 1, "openssl.bignum_bn2bin")) end
function openssl.bignum_bn2dec(b)
  return settle(api.bn2dec(parts(b, 1, "openssl.bignum_bn2dec")))
end
function openssl.bignum_bn2hex(b)
  return settle(api.bn2hex(parts(b, 1, "openssl.bignum_bn2hex")))
end
function openssl.bignum_num_bits(b)
  parts(b, 1, "openssl.bignum_num_bits")
  return methods.num_bits(b)
end
function openssl.bignum_num_bytes(b)
  return #(parts(b, 1, "openssl.bignum_num_bytes"))
end
function openssl.bignum_set_bit(b, n)
  parts(b, 1, "openssl.bignum_set_bit")
  return methods.set_bit(b, n)
end
function openssl.bignum_clear_bit(b, n)
  parts(b, 1, "openssl.bignum_clear_bit")
  return methods.clear_bit(b, n)
end
function openssl.bignum_is_bit_set(b, n)
  parts(b, 1, "openssl.bignum_is_bit_set")
  return methods.is_bit_set(b, n)
end
function openssl.bignum_is_prime(b)
  parts(b, 1, "openssl.bignum_is_prime")
  return methods.is_prime(b)
end
function openssl.bignum_is_safe_prime(b)
  parts(b, 1, "openssl.bignum_is_safe_prime")
  return methods.is_safe_prime(b)
end

function openssl.bignum_add(a, b)
  local m1, n1 = parts(a, 1, "openssl.bignum_add")
  local m2, n2 = parts(b, 2, "openssl.bignum_add")
  return make(settle(api.add(m1, n1, m2, n2)))
end

function openssl.bignum_div(a, d)
  local m1, n1 = parts(a, 1, "openssl.bignum_div")
  local m2, n2 = parts(d, 2, "openssl.bignum_div")
  local qm, qn, rm, rn = settle(api.div(m1, n1, m2, n2))
  return make(qm, qn), make(rm, rn)
end

function openssl.bignum_mod_exp(a, p, m)
  local m1, n1 = parts(a, 1, "openssl.bignum_mod_exp")
  local m2, n2 = parts(p, 2, "openssl.bignum_mod_exp")
  local m3, n3 = parts(m, 3, "openssl.bignum_mod_exp")
  return make(settle(api.mod_exp(m1, n1, m2, n2, m3, n3)))
end

function openssl.rand_bytes(n) return settle(api.rand_bytes(n)) end
openssl.rand_pseudo_bytes = openssl.rand_bytes

function openssl.md4(data) return settle(api.digest("md4", tostring(data))) end
function openssl.md5(data) return settle(api.digest("md5", tostring(data))) end
function openssl.sha1(data) return settle(api.digest("sha1", tostring(data))) end
function openssl.ripemd160(data) return settle(api.digest("ripemd160", tostring(data))) end
function openssl.digest(name, data) return settle(api.digest(tostring(name), tostring(data))) end
function openssl.hmac(name, key, data)
  return settle(api.hmac(tostring(name), tostring(key), tostring(data)))
end
function openssl.encrypt(name, key, iv, data, padding)
  return settle(api.encrypt(tostring(name), key, iv, data, padding))
end
function openssl.decrypt(name, key, iv, data, padding)
  return settle(api.decrypt(tostring(name), key, iv, data, padding))
end
function openssl.DES_string_to_key(data) return settle(api.DES_string_to_key(tostring(data))) end
function openssl.supported_digests() return lines(settle(api.supported_digests())) end
function openssl.supported_ciphers() return lines(settle(api.supported_ciphers())) end

return openssl
