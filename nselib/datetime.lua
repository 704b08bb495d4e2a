---
-- Dates, timestamps and time intervals: converting date tables, formatting for output, and
-- recording the clock skew of a target.
--
-- Written for nsecluster from the NSE documentation; the names, arguments and return values are
-- those scripts written for Nmap expect.
--
-- @class module
-- @name datetime

local error, pcall, tonumber, type = error, pcall, tonumber, type
local date, difftime, time = os.date, os.difftime, os.time
local floor, huge = math.floor, math.huge
local format, gsub, sub = string.format, string.gsub, string.sub

local _ENV = {}

-- The local time zone's offset from UTC. Like Nmap's, it is the offset the zone had at the
-- epoch, whatever time it is asked about (only zones that changed since 1970 tell).
local function local_offset()
  return difftime(time(date("*t", 0)), time(date("!*t", 0)))
end

--- The local time zone's offset from UTC, in seconds (as it was at the epoch: daylight saving
-- time and later changes of the zone are not counted, as in Nmap).
-- @param t A time (seconds since the epoch); accepted for compatibility.
-- @return The offset in seconds (positive east of UTC).
function utc_offset(t)
  return local_offset()
end

--- Convert a date table to a timestamp, reading the table in a given time zone rather than
-- local time. Missing fields default as in <code>os.time</code> (hour 12).
-- @usage
-- datetime.date_to_timestamp({year=1970, month=1, day=1, hour=5, min=0, sec=0}, 3600)
-- --> 14400.0
-- @param date_t A date table (<code>year</code>, <code>month</code>, <code>day</code>, and
--               optionally <code>hour</code>, <code>min</code>, <code>sec</code>,
--               <code>isdst</code>).
-- @param offset The time zone of the table, in seconds east of UTC (default 0: UTC).
-- @return The timestamp (seconds since the epoch, a float), or nil if the table is not a
--         valid date.
function date_to_timestamp(date_t, offset)
  local ok, t = pcall(time, date_t)
  if not ok or not t then return nil end
  return difftime(t, 0) + local_offset() - (offset or 0)
end

local function format_date(d)
  return format("%d-%02d-%02dT%02d:%02d:%02d", d.year, d.month, d.day, d.hour, d.min, d.sec)
end

--- Format a date and time for output, in the style of RFC 3339:
-- <code>YYYY-MM-DDTHH:MM:SS</code>, followed by <code>+HH:MM</code> or <code>-HH:MM</code>
-- when a time zone offset is given.
-- @usage datetime.format_timestamp(0, 3600) --> "1970-01-01T01:00:00+01:00"
-- @param t Seconds since the epoch (fractions are dropped), or a date table (formatted as it
--          is; the offset is not applied to it).
-- @param offset A time zone offset in seconds east of UTC: the time is shown in that zone.
-- @return The formatted string.
function format_timestamp(t, offset)
  if type(t) == "table" then return format_date(t) end
  if type(t) ~= "number" then
    t = tonumber(t)
    if not t then
      error("bad argument #1 to 'format_timestamp' (number or date table expected)", 2)
    end
  end
  local zone = ""
  if offset then
    t = t + offset
    local sign = offset < 0 and "-" or "+"
    if offset < 0 then offset = -offset end
    zone = format("%s%02d:%02d", sign, offset // 3600, offset % 3600 // 60)
  end
  return format_date(date("!*t", floor(t))) .. zone
end

-- Decimal places shown for a unit: one per power of ten it holds (1000 -> 3).
local function places(unit)
  local n = 0
  while unit >= 10 do
    unit = unit / 10
    n = n + 1
  end
  return n
end

local function format_interval(interval, unit)
  interval, unit = tonumber(interval), tonumber(unit or 1)
  if not interval or not unit then
    error("bad argument to 'format_time' (numbers expected)", 3)
  end
  if unit <= 0 then error("bad argument #2 to 'format_time' (unit must be positive)", 3) end
  local sign = ""
  if interval < 0 then
    sign = "-"
    interval = -interval
  end
  interval = interval + 0  -- no negative zero
  if interval ~= interval or interval == huge then return "0s" end
  local precision = places(unit)
  local padded = precision == 0 and "%02.0f" or ("%." .. precision .. "f")
  local plain = "%." .. precision .. "f"

  -- Seconds are taken from the interval in its own unit before dividing (as Nmap rounds).
  local per_minute = 60 * unit
  local rest = interval % per_minute
  local seconds = rest / unit
  local minutes = (interval - rest) // per_minute
  local hours = minutes // 60
  minutes = minutes % 60
  local days = hours // 24
  hours = hours % 24

  if days > 0 then
    return format("%s%dd%02dh%02dm" .. padded .. "s", sign, days, hours, minutes, seconds)
  elseif hours > 0 then
    return format("%s%dh%02dm" .. padded .. "s", sign, hours, minutes, seconds)
  elseif minutes > 0 then
    return format("%s%dm" .. padded .. "s", sign, minutes, seconds)
  end
  local text = format(plain, seconds)
  if sub(text, 1, 1) == "0" then
    -- Below one second: the leading "0." and zeros are dropped (as Nmap shows them).
    local digits = gsub(text, "^[0%.]+", "")
    if digits ~= "" then text = digits end
  end
  return sign .. text .. "s"
end

--- Format a time interval as days, hours, minutes and seconds, like
-- <code>1d02h03m04s</code>, <code>5m00s</code> or <code>12s</code>. With a unit finer than a
-- second, seconds get one decimal place per power of ten of the unit.
-- @usage datetime.format_time(3661) --> "1h01m01s"
-- @param interval The interval (negative intervals get a leading <code>-</code>).
-- @param unit How many interval units make a second (1000 for milliseconds); default 1.
-- @return The formatted string.
function format_time(interval, unit)
  return format_interval(interval, unit)
end

local function as_time(t, n)
  if type(t) == "table" then return time(t) end
  if type(t) == "number" then return t end
  error("bad argument #" .. n .. " to 'format_difftime' (date table expected, got " ..
        type(t) .. ")", 3)
end

--- Format the difference between two times, like <code>format_time</code> but with a
-- <code>+</code> or <code>-</code> sign (none when they are equal).
-- @usage datetime.format_difftime(os.date("!*t", 7200), os.date("!*t", 0)) --> "+2h00m00s"
-- @param t2 The later time: a date table (or a timestamp).
-- @param t1 The earlier time: a date table (or a timestamp).
-- @return The formatted difference <code>t2 - t1</code>.
function format_difftime(t2, t1)
  local d = difftime(as_time(t2, 1), as_time(t1, 2))
  local sign = ""
  if d > 0 then
    sign = "+"
  elseif d < 0 then
    sign = "-"
    d = -d
  end
  return sign .. format_interval(d)
end

--- Record a difference between a target's clock and ours in the host's registry
-- (<code>host.registry.datetime_skew</code>, an array of seconds), corrected for half the
-- smoothed round-trip time to the host.
-- @param host The host table.
-- @param timestamp The target's time, in seconds since the epoch.
-- @param received Our time when that timestamp was received, in seconds since the epoch.
function record_skew(host, timestamp, received)
  local registry = host.registry
  local skews = registry.datetime_skew or {}
  local srtt = host.times and host.times.srtt or 0
  skews[#skews + 1] = difftime(floor(timestamp), floor(received)) - srtt / 2
  registry.datetime_skew = skews
end

return _ENV
