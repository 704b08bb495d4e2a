---
-- Delimiter functions for the socket method <code>receive_buf</code>, which calls them with
-- the data buffered so far and expects the start and end of the delimiter (like
-- <code>string.find</code>), or nil to read more.
--
-- Written for nsecluster from the NSE documentation; the names, arguments and return values are
-- those scripts written for Nmap expect.
--
-- @class module
-- @name match

local find = string.find

local _ENV = {}

--- A delimiter that cuts the buffer after a fixed number of bytes: the buffered version of
-- <code>receive_bytes</code> that never returns more than asked for. Use it with
-- <code>keeppattern</code> true (otherwise the last byte is dropped).
-- @param num The number of bytes.
-- @return A function for <code>receive_buf</code>.
-- @usage local status, data = sock:receive_buf(match.numbytes(80), true)
function numbytes(num)
  return function(buf)
    if #buf >= num then return num, num end
    return nil
  end
end

--- A delimiter that looks for a Lua pattern like a string delimiter does, but gives up waiting
-- for it once <code>within</code> bytes are buffered: the delimiter then ends the buffer at
-- that many bytes.
-- @param pattern The Lua pattern to look for (anywhere in the buffer).
-- @param within The number of bytes after which to stop waiting for the pattern.
-- @return A function for <code>receive_buf</code>.
-- @usage local status, line = sock:receive_buf(match.pattern_limit("\r\n", 80), true)
function pattern_limit(pattern, within)
  return function(buf)
    local left, right = find(buf, pattern)
    if left then return left, right end
    if #buf >= within then return within, within end
    return nil
  end
end

return _ENV
