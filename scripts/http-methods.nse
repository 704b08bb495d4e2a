local http = require "http"
local math = require "math"
local shortport = require "shortport"
local stdnse = require "stdnse"
local string = require "string"
local table = require "table"

description = [[
Works out which request methods a web server accepts, and points out the ones that may be
risky.

An OPTIONS request comes first: the methods its <code>Allow</code> and <code>Public</code>
headers name are taken as supported. Each of GET, HEAD, POST and OPTIONS those headers do
not name is then tried on its own (with <code>http-methods.test-all</code>, DELETE, PUT,
CONNECT and TRACE too). A method counts as supported unless its answer is 405 or 501, or is
an error status (400 to 599) equal to the one a made-up method gets.

"Potentially risky" are all supported methods except GET, HEAD, POST and OPTIONS. Not every
one of them is a security problem, but each deserves a closer look.
]]

---
-- @usage
-- nmap -p 80 --script http-methods <target>
-- nmap -p 80 --script http-methods --script-args http-methods.url-path=/website,http-methods.retest <target>
--
-- @output
-- PORT   STATE SERVICE
-- 80/tcp open  http
-- | http-methods:
-- |   Supported Methods: GET HEAD POST OPTIONS PUT DELETE TRACE
-- |_  Potentially risky methods: PUT DELETE TRACE
--
-- @xmloutput
-- <table key="Supported Methods">
--   <elem>GET</elem>
--   <elem>HEAD</elem>
--   <elem>POST</elem>
--   <elem>OPTIONS</elem>
--   <elem>PUT</elem>
--   <elem>DELETE</elem>
--   <elem>TRACE</elem>
-- </table>
-- <table key="Potentially risky methods">
--   <elem>PUT</elem>
--   <elem>DELETE</elem>
--   <elem>TRACE</elem>
-- </table>
--
-- @args http-methods.url-path The path to ask about (default <code>/</code>).
-- @args http-methods.retest Also request every supported method not yet tried on its own,
--       and list each method's status line under "Status Lines".
-- @args http-methods.test-all Try DELETE, PUT, CONNECT and TRACE on their own too, besides
--       GET, HEAD, POST and OPTIONS.

author = "nsecluster"
license = "Same as nsecluster"
categories = {"default", "safe"}

portrule = shortport.http

local SAFE = {GET = true, HEAD = true, POST = true, OPTIONS = true}
local BASIC_TESTS = {"GET", "HEAD", "POST", "OPTIONS"}
local MORE_TESTS = {"DELETE", "PUT", "CONNECT", "TRACE"}

-- A method name nobody implements: four capital letters.
local function made_up_method()
  local letters = {}
  for i = 1, 4 do
    letters[i] = string.char(math.random(65, 90))
  end
  return table.concat(letters)
end

local function trim(s)
  return (string.match(s, "^%s*(.-)%s*$"))
end

-- Lists of methods show on one line, separated by spaces (the XML has one elem each).
local SPACED = {__tostring = function(list) return table.concat(list, " ") end}

local function status_line(response)
  return (string.gsub(response["status-line"] or "", "\r?\n$", ""))
end

action = function(host, port)
  local path = stdnse.get_script_args(SCRIPT_NAME .. ".url-path") or "/"
  local retest = stdnse.get_script_args(SCRIPT_NAME .. ".retest")
  local test_all = stdnse.get_script_args(SCRIPT_NAME .. ".test-all")

  -- A server that does not answer OPTIONS is still tried method by method.
  local options = http.generic_request(host, port, "OPTIONS", path)
  stdnse.debug1("HTTP Status for OPTIONS is %s", tostring(options.status))

  local supported, listed = setmetatable({}, SPACED), {}
  local function add(method)
    if not listed[method] then
      listed[method] = true
      supported[#supported + 1] = method
    end
  end
  for _, name in ipairs({"allow", "public"}) do
    local value = options.header and options.header[name]
    if value then
      for item in string.gmatch(value .. ",", "([^,]*),") do
        add(trim(item))
      end
    end
  end

  local random_status = http.generic_request(host, port, made_up_method(), path).status
  stdnse.debug1("Response Code to Random Method is %s", tostring(random_status))

  local lines = {}  -- method -> status line of its own request
  local tests = {}
  for _, method in ipairs(BASIC_TESTS) do tests[#tests + 1] = method end
  if test_all then
    for _, method in ipairs(MORE_TESTS) do tests[#tests + 1] = method end
  end
  for _, method in ipairs(tests) do
    if not listed[method] then
      local response = http.generic_request(host, port, method, path)
      local status = response.status
      if status then
        lines[method] = status_line(response)
        if status ~= 405 and status ~= 501
          and (status < 400 or status >= 600 or status ~= random_status) then
          add(method)
        end
      end
    end
  end

  local result = stdnse.output_table()
  if #supported > 0 then
    result["Supported Methods"] = supported
    local risky = setmetatable({}, SPACED)
    for _, method in ipairs(supported) do
      if not SAFE[method] then risky[#risky + 1] = method end
    end
    if #risky > 0 then
      result["Potentially risky methods"] = risky
    end
  end
  if retest then
    local status_lines = stdnse.output_table()
    for _, method in ipairs(supported) do
      if not lines[method] then
        local response = http.generic_request(host, port, method, path)
        if response.status then
          lines[method] = status_line(response)
        end
      end
      if lines[method] then
        status_lines[method] = lines[method]
      end
    end
    result["Status Lines"] = status_lines
  end
  if #result == 0 then
    return nil
  end
  return result
end
