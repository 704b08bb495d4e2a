local http = require "http"
local shortport = require "shortport"
local stdnse = require "stdnse"
local string = require "string"

description = [[
Reports which software says it built a web page (by default the one at /): content
management systems and site builders often put their name and version in the page's
generator meta tag, and this script reads it.

The tag is looked for in the form <code>&lt;meta name="generator" content="..."&gt;</code>
(any letter case, single or double quotes, optionally closed with <code>/&gt;</code>).
Redirects are followed, up to <code>http-generator.redirects</code> of them.
]]

---
-- @usage
-- nmap -p 80 --script http-generator <target>
-- nmap --script http-generator --script-args http-generator.path=/blog,http-generator.redirects=1 <target>
--
-- @output
-- PORT   STATE SERVICE
-- 80/tcp open  http
-- |_http-generator: WordPress 6.4.2
--
-- @xmloutput
-- (the output text only, no structure)
--
-- @args http-generator.path The page to look at (default <code>/</code>).
-- @args http-generator.redirects How many redirects to follow at most (default 3).

author = "nsecluster"
license = "Same as nsecluster"
categories = {"default", "discovery", "safe"}

portrule = shortport.http

local DEFAULT_REDIRECTS = 3

-- Each letter of a word in either case, for a Lua pattern.
local function any_case(word)
  return (string.gsub(word, "%a", function(c)
    return "[" .. string.upper(c) .. string.lower(c) .. "]"
  end))
end

local GENERATOR_PATTERN = "<" .. any_case("meta") .. " " .. any_case("name") .. "=[\"']"
  .. any_case("generator") .. "[\"'] " .. any_case("content") .. "=[\"']([^\"']*)[\"'] ?/?>"

action = function(host, port)
  local path = stdnse.get_script_args(SCRIPT_NAME .. ".path") or "/"
  local redirects = tonumber(stdnse.get_script_args(SCRIPT_NAME .. ".redirects"))
                    or DEFAULT_REDIRECTS
  local response = http.get(host, port, path, {
    redirect_ok = function(h, p)
      return http.redirect_ok(h, p, redirects)
    end,
  })
  if not response.body then
    return nil
  end
  return string.match(response.body, GENERATOR_PATTERN)
end
