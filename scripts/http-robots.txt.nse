local http = require "http"
local nmap = require "nmap"
local shortport = require "shortport"
local stdnse = require "stdnse"
local string = require "string"
local table = require "table"

description = [[
Lists the paths a web server's <code>/robots.txt</code> asks robots to stay away from.

Each different <code>Disallow:</code> value is counted once, comments removed. At the usual
verbosity the first 15 are shown, with more verbosity (or debugging) the first 40, and all
of them at high levels (verbosity and debugging adding up to 5, e.g. <code>-d2</code> or
<code>-vvvv</code>), a few to a line.
]]

---
-- @usage
-- nmap -p 80 --script http-robots.txt <target>
--
-- @output
-- PORT   STATE SERVICE
-- 80/tcp open  http
-- | http-robots.txt: 30 disallowed entries (15 shown)
-- | /private0/ /private1/ /private2/ /private3/ /private4/
-- | /private5/ /private6/ /private7/ /private8/ /private9/
-- |_/private10/ /private11/ /private12/ /private13/ /private14/
--
-- @xmloutput
-- (the output text only, no structure)

author = "nsecluster"
license = "Same as nsecluster"
categories = {"default", "discovery", "safe"}

portrule = shortport.http

local LETTERS_PER_LINE = 50
local SHOWN_QUIETLY, SHOWN_VERBOSELY = 15, 40

-- The different disallowed paths, in the order they first appear.
local function disallowed(body)
  local entries, seen = {}, {}
  for line in string.gmatch(body, "[^\r\n]+") do
    local value = string.match(line, "[Dd]isallow:[ \t]*(.*)$")
    if value then
      value = string.gsub(value, "%s*#.*", "")
      if value ~= "" and not seen[value] then
        seen[value] = true
        entries[#entries + 1] = value
      end
    end
  end
  return entries
end

action = function(host, port)
  local response = http.get(host, port, "/robots.txt")
  if response.status ~= 200 or not response.body then
    return nil
  end
  local entries = disallowed(response.body)
  local count = #entries
  if count == 0 then
    return nil
  end

  -- Verbosity and debugging together decide how many are shown.
  local level = nmap.verbosity() + nmap.debugging()
  local limit = count
  if level < 2 then
    limit = SHOWN_QUIETLY
  elseif level < 5 then
    limit = SHOWN_VERBOSELY
  end
  local shown = count < limit and count or limit

  local text = {("%d disallowed entr%s "):format(count, count == 1 and "y" or "ies")}
  if shown < count then
    text[1] = text[1] .. ("(%d shown)"):format(shown)
  end
  -- A new line starts before an entry that would take the letters counted on the line past
  -- 50. Spaces are not counted, nor the entry a line starts with (so a line holds at least
  -- two entries, the first line at least one).
  local pieces, letters = {}, 0
  for i = 1, shown do
    local size = #entries[i]
    if letters > 0 and letters + size > LETTERS_PER_LINE then
      pieces[#pieces + 1] = "\n"
      letters = 0
    else
      letters = letters + size
    end
    pieces[#pieces + 1] = entries[i] .. " "
  end
  local list = string.sub(table.concat(pieces), 1, -2)  -- no space after the last entry
  return text[1] .. "\n" .. list
end
