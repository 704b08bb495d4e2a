local datetime = require "datetime"
local nmap = require "nmap"
local openssl = require "openssl"
local shortport = require "shortport"
local sslcert = require "sslcert"
local stdnse = require "stdnse"
local string = require "string"
local table = require "table"

description = [[
Fetches the certificate a TLS service presents (through STARTTLS for the
protocols <code>sslcert</code> knows) and describes it.

With no extra verbosity the result gives the subject's commonName,
organizationName, stateOrProvinceName and countryName, the subject alternative
names when there are any, and the validity period. From verbosity 1 (the default
when the script is named with <code>--script</code>) it adds the issuer, the public
key type and size, the signature algorithm and the MD5 and SHA-1 fingerprints;
from verbosity 2 every name attribute and the certificate in PEM form.

The XML output holds the whole certificate description: subject and issuer
tables, the public key, the extensions, the validity dates and the fingerprints.
]]

---
-- @usage
-- nmap -p 443 --script ssl-cert <target>
-- nmap -p 443,465,993 -vv --script ssl-cert <target>
--
-- @output
-- PORT    STATE SERVICE
-- 443/tcp open  https
-- | ssl-cert: Subject: commonName=www.example.com/organizationName=Example/stateOrProvinceName=California/countryName=US
-- | Subject Alternative Name: DNS:www.example.com, DNS:example.com
-- | Issuer: commonName=Example CA/organizationName=Example/countryName=US
-- | Public Key type: rsa
-- | Public Key bits: 2048
-- | Signature Algorithm: sha256WithRSAEncryption
-- | Not valid before: 2024-01-02T03:04:05
-- | Not valid after:  2025-01-02T03:04:05
-- | MD5:   64781c531d205070b4427b547bcd8434
-- |_SHA-1: 7cbd0e51888c5dfaadbd27ae25eefa2f47def168
--
-- @xmloutput
-- <table key="subject">
--   <elem key="commonName">www.example.com</elem>
--   <elem key="countryName">US</elem>
--   <elem key="organizationName">Example</elem>
--   <elem key="stateOrProvinceName">California</elem>
-- </table>
-- <table key="issuer">
--   <elem key="commonName">Example CA</elem>
--   <elem key="countryName">US</elem>
--   <elem key="organizationName">Example</elem>
-- </table>
-- <table key="pubkey">
--   <elem key="type">rsa</elem>
--   <elem key="bits">2048</elem>
--   <elem key="modulus">BB024C64CA...</elem>
--   <elem key="exponent">65537</elem>
-- </table>
-- <table key="extensions">
--   <table>
--     <elem key="name">X509v3 Subject Alternative Name</elem>
--     <elem key="value">DNS:www.example.com, DNS:example.com</elem>
--   </table>
-- </table>
-- <elem key="sig_algo">sha256WithRSAEncryption</elem>
-- <table key="validity">
--   <elem key="notBefore">2024-01-02T03:04:05</elem>
--   <elem key="notAfter">2025-01-02T03:04:05</elem>
-- </table>
-- <elem key="md5">64781c531d205070b4427b547bcd8434</elem>
-- <elem key="sha1">7cbd0e51888c5dfaadbd27ae25eefa2f47def168</elem>
-- <elem key="pem">-----BEGIN CERTIFICATE-----
-- MIIDZTCCAk2gAwIBAgIEWhfA3jANBgkqhkiG9w0BAQsFADBeMREwDwYDVQQDDAhy
-- ...
-- -----END CERTIFICATE-----
-- </elem>

author = "nsecluster"
license = "Same as nsecluster"
categories = {"default", "safe", "discovery"}

portrule = function(host, port)
  return shortport.ssl(host, port) or sslcert.getPrepareTLSWithoutReconnect(port) ~= nil
end

-- The name attributes shown first (and, at low verbosity, the only ones shown).
local LEADING = {"commonName", "organizationName", "stateOrProvinceName", "countryName"}

-- A name attribute's key as text: a long name, or an OID table as dotted digits.
local function key_text(key)
  if type(key) == "table" then
    local parts = {}
    for _, n in ipairs(key) do
      parts[#parts + 1] = tostring(n)
    end
    return table.concat(parts, ".")
  end
  return tostring(key)
end

-- The subject or issuer as a table of text keys and values, in key order.
local function name_table(name)
  local plain, keys = {}, {}
  for key, value in pairs(name or {}) do
    local text = key_text(key)
    plain[text] = value
    keys[#keys + 1] = text
  end
  table.sort(keys)
  local out = stdnse.output_table()
  for _, key in ipairs(keys) do
    out[key] = plain[key]
  end
  return out
end

-- "key=value/key=value": the leading attributes, then (verbosity above 1) the rest.
local function name_text(names)
  local parts, used = {}, {}
  for _, key in ipairs(LEADING) do
    if names[key] ~= nil then
      parts[#parts + 1] = key .. "=" .. tostring(names[key])
      used[key] = true
    end
  end
  if nmap.verbosity() > 1 then
    for key, value in pairs(names) do  -- an output table: in key order
      if not used[key] then
        parts[#parts + 1] = key .. "=" .. tostring(value)
      end
    end
  end
  return table.concat(parts, "/")
end

-- A validity date (a date table, or the text Nmap could not read) as text.
local function date_text(value)
  if type(value) == "table" then
    local ok, text = pcall(datetime.format_timestamp, value)
    if ok and text then
      return text
    end
    return nil
  end
  return value
end

local function bignum_hex(value)
  if value == nil then return nil end
  local ok, text = pcall(openssl.bignum_bn2hex, value)
  if ok then return text end
  return tostring(value)
end

local function bignum_dec(value)
  if value == nil then return nil end
  local ok, text = pcall(openssl.bignum_bn2dec, value)
  if ok then return text end
  return tostring(value)
end

local function pubkey_table(key)
  local out = stdnse.output_table()
  key = key or {}
  out.type = key.type
  out.bits = key.bits
  if key.type == "rsa" then
    out.modulus = bignum_hex(key.modulus)
    out.exponent = bignum_dec(key.exponent)
  elseif key.ecdhparams then
    local curve = key.ecdhparams.curve_params or {}
    local params = stdnse.output_table()
    params.ec_curve_type = curve.ec_curve_type
    params.curve = curve.curve
    local ecdh = stdnse.output_table()
    ecdh.curve_params = params
    out.ecdhparams = ecdh
  end
  return out
end

local function extensions_table(extensions)
  if type(extensions) ~= "table" or #extensions == 0 then
    return nil
  end
  local out = {}
  for _, extension in ipairs(extensions) do
    local entry = stdnse.output_table()
    entry.name = extension.name
    entry.value = extension.value
    entry.critical = extension.critical
    entry.error = extension.error
    out[#out + 1] = entry
  end
  return out
end

local function san_of(extensions)
  for _, extension in ipairs(extensions or {}) do
    if extension.name == "X509v3 Subject Alternative Name" then
      return extension.value
    end
  end
  return nil
end

action = function(host, port)
  host.targetname = host.targetname or host.name
  local ok, cert = sslcert.getCertificate(host, port)
  if not ok or not cert then
    stdnse.debug1("getCertificate error: %s", tostring(cert))
    return nil
  end

  local out = stdnse.output_table()
  out.subject = name_table(cert.subject)
  out.issuer = name_table(cert.issuer)
  out.pubkey = pubkey_table(cert.pubkey)
  out.extensions = extensions_table(cert.extensions)
  out.sig_algo = cert.sig_algorithm
  local validity = stdnse.output_table()
  local dates = cert.validity or {}
  validity.notBefore = date_text(dates.notBefore)
  validity.notAfter = date_text(dates.notAfter)
  out.validity = validity
  out.md5 = stdnse.tohex(cert:digest("md5"))
  out.sha1 = stdnse.tohex(cert:digest("sha1"))
  out.pem = cert.pem

  local verbosity = nmap.verbosity()
  local lines = {"Subject: " .. name_text(out.subject)}
  local san = san_of(cert.extensions)
  if san then
    lines[#lines + 1] = "Subject Alternative Name: " .. san
  end
  if verbosity > 0 then
    lines[#lines + 1] = "Issuer: " .. name_text(out.issuer)
    lines[#lines + 1] = "Public Key type: " .. tostring(out.pubkey.type)
    lines[#lines + 1] = "Public Key bits: " .. tostring(out.pubkey.bits)
    lines[#lines + 1] = "Signature Algorithm: " .. tostring(out.sig_algo)
  end
  lines[#lines + 1] = "Not valid before: " .. tostring(validity.notBefore)
  lines[#lines + 1] = "Not valid after:  " .. tostring(validity.notAfter)
  if verbosity > 0 then
    lines[#lines + 1] = "MD5:   " .. out.md5
    lines[#lines + 1] = "SHA-1: " .. out.sha1
  end
  if verbosity > 1 then
    lines[#lines + 1] = out.pem
  end
  return out, table.concat(lines, "\n")
end
