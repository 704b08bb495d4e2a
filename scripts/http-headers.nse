local http = require "http"
local shortport = require "shortport"
local stdnse = require "stdnse"

description = [[
Lists the header lines a web server sends for its front page, exactly as they came,
asking with a HEAD request for "/".

When the HEAD request does not come back with status 200 (some servers refuse HEAD), a GET
request is sent instead. The last line tells which kind of request the headers answer.
]]

---
-- @usage
-- nmap -p 80 --script http-headers <target>
-- nmap -p 80 --script http-headers --script-args http-headers.path=/admin/,http-headers.useget <target>
--
-- @output
-- PORT   STATE SERVICE
-- 80/tcp open  http
-- | http-headers:
-- |   Server: Apache/2.4.57 (Debian)
-- |   Date: Mon, 01 Jan 2024 00:00:00 GMT
-- |   Content-Type: text/html
-- |   Content-Length: 131
-- |
-- |_  (Request type: HEAD)
--
-- @xmloutput
-- (the output text only, no structure)
--
-- @args http-headers.path The path to request (default <code>/</code>).
-- @args http-headers.useget Send a GET request straight away, without trying HEAD first.

author = "nsecluster"
license = "Same as nsecluster"
categories = {"discovery", "safe"}

portrule = shortport.http

action = function(host, port)
  local path = stdnse.get_script_args(SCRIPT_NAME .. ".path") or "/"
  local useget = stdnse.get_script_args(SCRIPT_NAME .. ".useget")

  local response, kind
  if not useget then
    response, kind = http.head(host, port, path), "HEAD"
  end
  if not response or response.status ~= 200 then
    response, kind = http.get(host, port, path), "GET"
  end
  if not response or not response.status or not response.rawheader then
    stdnse.debug1("No answer to the %s request for %s.", kind, path)
    return nil
  end

  local lines = {}
  for _, line in ipairs(response.rawheader) do
    lines[#lines + 1] = line
  end
  lines[#lines + 1] = ("(Request type: %s)"):format(kind)
  return stdnse.format_output(true, lines)
end
