local http = require "http"
local shortport = require "shortport"
local stdnse = require "stdnse"
local string = require "string"

description = [[
Reports the title of a web server's front page.

Line breaks and tabs are taken out of the title shown, and a title longer than 65
characters is cut to 62 and "..."; the XML keeps the title as the page has it. A page
without a title is reported with its content type.

Redirects are followed (up to five, and only those the http library's default rules allow:
the same host and port). When the last answer is still a redirect, the script says where it
pointed instead.
]]

---
-- @usage
-- nmap -p 80,443 --script http-title <target>
-- nmap --script http-title --script-args http-title.url=/index.php <target>
--
-- @output
-- PORT   STATE SERVICE
-- 80/tcp open  http
-- |_http-title: Welcome to the test site
--
-- @output
-- PORT   STATE SERVICE
-- 80/tcp open  http
-- | http-title: Home page
-- |_Requested resource was /home
--
-- @xmloutput
-- <elem key="title">Home page</elem>
-- <elem key="redirect_url">/home</elem>
--
-- @args http-title.url The path of the page to fetch (default <code>/</code>).

author = "nsecluster"
license = "Same as nsecluster"
categories = {"default", "discovery", "safe"}

portrule = shortport.http

-- Titles longer than this are cut, ending in "..." within the same width.
local MAX_TITLE = 65

-- The first <title ...>text</title>, any case, with no tag inside the text.
local TITLE_PATTERN = "<[Tt][Ii][Tt][Ll][Ee][^>]*>([^<]*)</[Tt][Ii][Tt][Ll][Ee]>"

action = function(host, port)
  local path = stdnse.get_script_args(SCRIPT_NAME .. ".url") or "/"
  local response = http.get(host, port, path)

  local result = stdnse.output_table()
  local redirected_to
  if response.location and #response.location > 0 then
    redirected_to = response.location[#response.location]
    local status = response.status
    if status and string.match(tostring(status), "^30%d$") then
      result.redirect_url = redirected_to
      return result, ("Did not follow redirect to %s"):format(redirected_to)
    end
  end
  if not response.body then
    return nil
  end

  local title = string.match(response.body, TITLE_PATTERN)
  local shown
  if title and title ~= "" then
    shown = string.gsub(title, "[\n\r\t]", "")
    if #shown > MAX_TITLE then
      shown = string.sub(shown, 1, MAX_TITLE - 3) .. "..."
    end
  else
    local content_type = response.header and response.header["content-type"]
    shown = "Site doesn't have a title" ..
            (content_type and (" (" .. content_type .. ")") or "") .. "."
  end
  result.title = title
  result.redirect_url = redirected_to
  if shown == "" then
    -- A title of line breaks and tabs only: nothing to show in one line, so the table
    -- speaks for itself.
    return result
  end
  if redirected_to then
    shown = shown .. "\nRequested resource was " .. redirected_to
  end
  return result, shown
end
