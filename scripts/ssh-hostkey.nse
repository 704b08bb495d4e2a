local ipOps = require "ipOps"
local nmap = require "nmap"
local shortport = require "shortport"
local ssh1 = require "ssh1"
local ssh2 = require "ssh2"
local stdnse = require "stdnse"
local string = require "string"
local table = require "table"
local base64 = require "base64"
local openssl = stdnse.silent_require "openssl"

description = [[
Fetches the host keys an SSH server offers and reports, for each (an SSH-1 RSA key, then
SSH-2 DSA, RSA, ECDSA on the three NIST curves and Ed25519 keys, one connection each), its size
and MD5 fingerprint, and with the <code>ssh_hostkey</code> argument the SHA-256
fingerprint, the Bubble Babble form, the "randomart" picture and the key itself (the key is
also shown with -v). The keys found are kept in
<code>nmap.registry.sshhostkey</code>, by host address, for other scripts.

With <code>ssh-hostkey.known-hosts</code>, the keys are compared with the entries for the
host in an OpenSSH known_hosts file (plain or hashed host names).

A post-scan rule reports keys that more than one scanned host presented: possibly the same
machine under several addresses, or machines cloned from one image.
]]

---
-- @usage
-- nmap -p 22 --script ssh-hostkey <target>
-- nmap --script ssh-hostkey --script-args ssh_hostkey=full <target>
-- nmap --script ssh-hostkey --script-args ssh_hostkey=all <target>
-- nmap --script ssh-hostkey --script-args "ssh_hostkey='visual bubble'" <target>
--
-- @output
-- PORT   STATE SERVICE
-- 22/tcp open  ssh
-- | ssh-hostkey:
-- |   3072 0e5b7d6331f6ce2549963e007f996b79 (RSA)
-- |   256 b515360df6d840d056daa9d12dc4eb3c (ECDSA)
-- |_  256 369ce5619a93f96c41d403979ed4db6c (ED25519)
--
-- Post-scan script results:
-- | ssh-hostkey: Possible duplicate hosts
-- | Key 256 369ce5619a93f96c41d403979ed4db6c (ED25519) used by:
-- |   192.168.1.1
-- |_  192.168.1.2
--
-- @xmloutput
-- <table>
--   <elem key="fingerprint">369ce5619a93f96c41d403979ed4db6c</elem>
--   <elem key="type">ssh-ed25519</elem>
--   <elem key="bits">256</elem>
--   <elem key="key">AAAAC3NzaC1lZDI1NTE5AAAAIDdJFXn+Qb76NtSLKxlcUR3Nqh0U5g5AMY3eAdYww8gV</elem>
-- </table>
--
-- @args ssh_hostkey What to show of each key, as words separated by spaces or other
--       punctuation: <code>md5</code> (the hexadecimal MD5 fingerprint, the default),
--       <code>sha256</code> (the Base64 SHA-256 fingerprint), <code>bubble</code> (Bubble
--       Babble of the SHA-1 fingerprint), <code>visual</code> (the randomart picture),
--       <code>full</code> (the whole key) or <code>all</code>.
-- @args ssh-hostkey.known-hosts Compare the keys with a known_hosts file: the file named
--       here, or by <code>ssh-hostkey.known-hosts-path</code>; when neither names a
--       readable file, the UserKnownHostsFile of ~/.ssh/config, else ~/.ssh/known_hosts.
-- @args ssh-hostkey.known-hosts-path The known_hosts file to compare with (used when
--       <code>ssh-hostkey.known-hosts</code> is set).

author = "nsecluster"
license = "Same as nsecluster"
categories = {"safe", "default", "discovery"}

-- The SSH-2 host key types asked for, in order (one connection each).
local KEY_TYPES = {
  "ssh-dss", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
  "ssh-ed25519",
}

local COMPARISON = "Key comparison with known_hosts file"

portrule = shortport.port_or_service(22, "ssh")

postrule = function()
  return nmap.registry.sshhostkey ~= nil
end

local function tohex(data)
  return (data:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

-- The words of the ssh_hostkey argument, as a set.
local function wanted_formats()
  local given = stdnse.get_script_args("ssh_hostkey") or "md5"
  local set = {}
  for word in string.gmatch(given, "%w+") do set[word] = true end
  if set.all then
    set.md5, set.sha256, set.bubble, set.visual, set.full = true, true, true, true, true
  end
  if nmap.verbosity() > 1 then set.full = true end -- (1 without -v)
  return set
end

-- The text shown for one key.
local function describe(key, formats)
  local lines = {}
  if formats.md5 then
    lines[#lines + 1] = ssh1.fingerprint_hex(key.fingerprint, key.algorithm, key.bits)
  end
  if formats.sha256 then
    lines[#lines + 1] = ssh1.fingerprint_base64(key.fp_sha256, "SHA256", key.algorithm,
                                                key.bits)
  end
  if formats.bubble then
    lines[#lines + 1] = ssh1.fingerprint_bubblebabble(openssl.sha1(key.fp_input),
                                                      key.algorithm, key.bits)
  end
  if formats.visual then
    lines[#lines + 1] = ssh1.fingerprint_visual(key.fingerprint, key.algorithm, key.bits)
  end
  if formats.full then
    lines[#lines + 1] = key.full_key
  end
  return table.concat(lines, "\n")
end

local function key_table(key)
  local out = stdnse.output_table()
  out.fingerprint = tohex(key.fingerprint)
  out.type = key.key_type
  out.bits = key.bits
  out.key = key.key
  return out
end

-- -- known_hosts -------------------------------------------------------------------------------

-- Does one host pattern of a known_hosts line name this host and port?
local function pattern_matches(pattern, names, port)
  local salt, hash = string.match(pattern, "^|1|([^|]+)|([^|]+)$")
  if salt then
    local raw_salt, raw_hash = base64.dec(salt), base64.dec(hash)
    for _, name in ipairs(names) do
      local candidate = port == 22 and name or ("[%s]:%d"):format(name, port)
      if openssl.hmac("sha1", raw_salt, candidate) == raw_hash then return true end
    end
    return false
  end
  local bracketed, number = string.match(pattern, "^%[(.-)%]:(%d+)$")
  if bracketed then
    if tonumber(number) ~= port then return false end
    pattern = bracketed
  elseif port ~= 22 then
    return false
  end
  -- OpenSSH wildcards: * and ?; everything else literally, without regard to case.
  local lua_pattern = "^" .. pattern:lower():gsub("[%^%$%(%)%%%.%[%]%+%-]", "%%%0")
                      :gsub("%*", ".*"):gsub("%?", ".") .. "$"
  for _, name in ipairs(names) do
    if string.find(name:lower(), lua_pattern) then return true end
  end
  return false
end

-- Does the host field of a known_hosts line (comma-separated patterns, "!" negating)
-- name this host?
local function host_field_matches(field, names, port)
  local matched = false
  for pattern in string.gmatch(field, "[^,]+") do
    local negated = pattern:sub(1, 1) == "!"
    if negated then pattern = pattern:sub(2) end
    if pattern_matches(pattern, names, port) then
      if negated then return false end
      matched = true
    end
  end
  return matched
end

local function compare_known_hosts(host, port, keys)
  local path = stdnse.get_script_args(SCRIPT_NAME .. ".known-hosts-path")
  if not path then
    path = stdnse.get_script_args(SCRIPT_NAME .. ".known-hosts")
    if type(path) ~= "string" then path = nil end
  end
  local ok, entries = pcall(ssh1.parse_known_hosts_file, path)
  if not ok then
    stdnse.debug1("%s", entries)
    return "Could not read the known_hosts file."
  end
  local names = {host.ip}
  if host.targetname then names[#names + 1] = host.targetname end
  if host.name and host.name ~= "" then names[#names + 1] = host.name end
  local found_blobs, found_types = {}, {}
  for _, key in ipairs(keys) do
    found_blobs[key.key] = key
    found_types[key.key_type] = key
  end
  local good, wrong = {}, {}
  local any = false
  for _, line in ipairs(entries) do
    local fields = {}
    for _, field in ipairs(line.entry) do
      if field ~= "" then fields[#fields + 1] = field end
    end
    -- A marker (@cert-authority, @revoked) first: not a plain host key.
    if #fields >= 3 and fields[1]:sub(1, 1) ~= "@"
       and host_field_matches(fields[1], names, port.number) then
      any = true
      local key_type, blob = fields[2], fields[3]
      local label = ("L%d: %s %s"):format(line.linenumber, fields[1], key_type)
      if found_blobs[blob] and found_blobs[blob].key_type == key_type then
        good[#good + 1] = label
      elseif found_types[key_type] then
        wrong[#wrong + 1] = label
      end
    end
  end
  if not any then
    return "No entry for scanned host found in known_hosts file."
  end
  local result = stdnse.output_table()
  if #good > 0 then result["GOOD Matches in known_hosts file"] = good end
  if #wrong > 0 then result["WRONG Matches in known_hosts file"] = wrong end
  if #good == 0 and #wrong == 0 then
    return "No key of the types found is recorded for the host in known_hosts file."
  end
  return result
end

local function comparison_text(result)
  if type(result) == "string" then
    return ("  %s: %s"):format(COMPARISON, result)
  end
  local lines = {("  %s: "):format(COMPARISON)}
  for label, list in pairs(result) do
    lines[#lines + 1] = ("    %s: "):format(label)
    for _, item in ipairs(list) do lines[#lines + 1] = "      " .. item end
  end
  return table.concat(lines, "\n")
end

-- -- the port rule -----------------------------------------------------------------------------

local function portaction(host, port)
  local keys = {}
  local key = ssh1.fetch_host_key(host, port)
  if key then keys[#keys + 1] = key end
  for _, key_type in ipairs(KEY_TYPES) do
    key = ssh2.fetch_host_key(host, port, key_type)
    if key then keys[#keys + 1] = key end
  end
  if #keys == 0 then return nil end

  nmap.registry.sshhostkey = nmap.registry.sshhostkey or {}
  local registered = nmap.registry.sshhostkey[host.ip] or {}
  for _, found in ipairs(keys) do registered[#registered + 1] = found end
  nmap.registry.sshhostkey[host.ip] = registered

  local formats = wanted_formats()
  local output = stdnse.output_table()
  local lines = {}
  for i, found in ipairs(keys) do
    output[i] = key_table(found)
    lines[#lines + 1] = "  " .. describe(found, formats)
  end
  if stdnse.get_script_args(SCRIPT_NAME .. ".known-hosts") then
    local result = compare_known_hosts(host, port, keys)
    output[COMPARISON] = result
    lines[#lines + 1] = comparison_text(result)
  end
  return output, "\n" .. table.concat(lines, "\n")
end

-- -- the post-scan rule ------------------------------------------------------------------------

local function postaction()
  -- hosts by key (the key blob and its type); keys shown by fingerprint, hosts by address
  local by_key, order = {}, {}
  for ip, keys in pairs(nmap.registry.sshhostkey) do
    for _, key in ipairs(keys) do
      local id = key.key_type .. " " .. key.key
      local entry = by_key[id]
      if not entry then
        entry = {key = key, hosts = {}, seen = {}}
        by_key[id] = entry
        order[#order + 1] = id
      end
      if not entry.seen[ip] then
        entry.seen[ip] = true
        entry.hosts[#entry.hosts + 1] = ip
      end
    end
  end
  local shared = {}
  for _, id in ipairs(order) do
    if #by_key[id].hosts > 1 then shared[#shared + 1] = by_key[id] end
  end
  if #shared == 0 then return nil end
  local function less(a, b)
    local ok, result = pcall(ipOps.compare_ip, a, "lt", b)
    if ok and result ~= nil then return result end
    return a < b
  end
  table.sort(shared, function(a, b)
    return tohex(a.key.fingerprint) < tohex(b.key.fingerprint)
  end)
  local output, lines = {}, {"Possible duplicate hosts"}
  for _, entry in ipairs(shared) do
    table.sort(entry.hosts, less)
    local key = entry.key
    local described = stdnse.output_table()
    described.fingerprint = tohex(key.fingerprint)
    described.type = key.key_type
    described.bits = key.bits
    local item = stdnse.output_table()
    item.key = described
    item.hosts = entry.hosts
    output[#output + 1] = item
    lines[#lines + 1] = ("Key %s used by:"):format(
      ssh1.fingerprint_hex(key.fingerprint, key.algorithm, key.bits))
    for _, ip in ipairs(entry.hosts) do lines[#lines + 1] = "  " .. ip end
  end
  return output, table.concat(lines, "\n")
end

action = function(host, port)
  if SCRIPT_TYPE == "postrule" then
    return postaction()
  end
  return portaction(host, port)
end
