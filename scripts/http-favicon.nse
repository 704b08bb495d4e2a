local http = require "http"
local io = require "io"
local nmap = require "nmap"
local shortport = require "shortport"
local stdnse = require "stdnse"
local string = require "string"
local url = require "url"
local openssl = stdnse.silent_require "openssl"

description = [[
Names the web application behind a site by its icon: the site's favicon is fetched, its
MD5 hash computed and looked up in a fingerprint file (<code>nselib/data/favicon-db</code>,
the one bundled with this script, else one found in the data directories). A known icon is
shown by name; otherwise the MD5 hash of the icon is shown.

With the script argument <code>favicon.uri</code>, that path (relative to
<code>favicon.root</code>) is the icon. Otherwise the page at the root is read and its first
<code>&lt;link rel="icon"&gt;</code> (or <code>rel="shortcut icon"</code>) element names the
icon; a link to another host or port is ignored (a relative link counts as one to port 80,
so it is followed on port 80 only). When there is no usable link, or the icon it
names cannot be fetched, <code>/favicon.ico</code> is tried.
]]

---
-- @usage
-- nmap -p 80 --script http-favicon <target>
-- nmap -p 80 --script http-favicon --script-args favicon.root=/app,favicon.uri=img/icon.ico <target>
--
-- @output
-- PORT   STATE SERVICE
-- 80/tcp open  http
-- |_http-favicon: Unknown favicon MD5: 7D4140C76BF7648531683BFA4F7F8C22
--
-- @xmloutput
-- (the output text only, no structure)
--
-- @args favicon.uri The path of the icon, relative to <code>favicon.root</code>; no page is
--       read for a link then.
-- @args favicon.root The folder of the site to look in (default: the root). The page read
--       for a link is this folder followed by <code>/</code>.

author = "nsecluster"
license = "Same as nsecluster"
categories = {"default", "discovery", "safe"}

portrule = shortport.http

local DATABASE = "nselib/data/favicon-db"

-- Where the database is: beside this script's own nselib (scripts/../nselib/data), as
-- bundled with it; else wherever the data directories have one.
local function database_path()
  local top = type(SCRIPT_PATH) == "string" and string.match(SCRIPT_PATH, "^(.*)scripts/[^/]*$")
  if top then
    local bundled = top .. DATABASE
    local file = io.open(bundled, "r")
    if file then
      file:close()
      return bundled
    end
  end
  return nmap.fetchfile(DATABASE)
end

-- {MD5 in capitals -> name} from the database; an empty table when it cannot be read.
local function load_database()
  local known = {}
  local path = database_path()
  local file = path and io.open(path, "r")
  if not file then
    stdnse.debug1("Cannot read %s.", DATABASE)
    return known
  end
  for line in file:lines() do
    local md5, name = string.match(line, "^%s*(%x+)%s*:%s*(.-)%s*$")
    if md5 then
      known[string.upper(md5)] = name
    end
  end
  file:close()
  return known
end

-- The value of attribute ``name`` (quoted with ' or ") in the text of a tag, or nil.
local function attribute(tag, name)
  local _, last, quote = string.find(string.lower(tag), "%f[%w%-]" .. name .. "%s*=%s*([\"'])")
  if not last then return nil end
  local close = string.find(tag, quote, last + 1, true)
  if not close then return nil end
  return string.sub(tag, last + 1, close - 1)
end

-- Whether a rel value names an icon: one of its words is "icon".
local function is_icon(rel)
  for word in string.gmatch(string.lower(rel), "%S+") do
    if word == "icon" then return true end
  end
  return false
end

-- The href of the first icon link of a page, or nil.
local function icon_link(body)
  for tag in string.gmatch(body, "<[Ll][Ii][Nn][Kk]([^>]*)>") do
    local rel = attribute(tag, "rel")
    if rel and is_icon(rel) then
      return attribute(tag, "href")
    end
  end
  return nil
end

-- The path of ``href`` (seen on a page under ``root``) when it points at this host and port.
local function local_path(host, port, root, href)
  local name = stdnse.get_hostname(host)
  -- The page counts as http://<host><root>: a relative link is taken to be on port 80 (as
  -- Nmap does), so it is followed on port 80 only, an absolute one on the port it names.
  local base = ("http://%s%s"):format(name, root ~= "" and root or "/")
  local ok, target = pcall(function() return url.parse(url.absolute(base, href)) end)
  if not ok or type(target) ~= "table" or not target.host or not target.path then
    return nil
  end
  local target_port = tonumber(target.port) or url.get_default_port(target.scheme) or port.number
  local wanted = string.lower(target.host)
  local same_host = wanted == string.lower(name) or target.host == host.ip
                    or (host.targetname and wanted == string.lower(host.targetname))
  if not same_host or target_port ~= port.number then
    return nil
  end
  return target.path
end

-- The icon's data, or nil when the answer is not 200.
local function fetch(host, port, path)
  local response = http.get(host, port, path)
  if response.status == 200 and response.body then
    return response.body
  end
  return nil
end

action = function(host, port)
  local root = stdnse.get_script_args("favicon.root") or ""
  local uri = stdnse.get_script_args("favicon.uri")
  local base = root .. "/"

  local icon
  if uri then
    icon = fetch(host, port, base .. uri)
  else
    local page = http.get(host, port, base)
    local href = page.body and icon_link(page.body)
    local path = href and local_path(host, port, root, href)
    if path then
      stdnse.debug1("Icon link: %s", path)
      icon = fetch(host, port, path)
    end
    if not icon then
      icon = fetch(host, port, base .. "favicon.ico")
    end
  end
  if not icon then
    return nil
  end

  local md5 = string.upper(stdnse.tohex(openssl.md5(icon)))
  local name = load_database()[md5]
  if name then
    return name
  end
  return "Unknown favicon MD5: " .. md5
end
