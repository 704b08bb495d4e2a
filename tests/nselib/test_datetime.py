"""nselib/datetime.lua: date tables to timestamps, timestamp and interval formatting, clock
skew records, compared with Nmap's."""
import time

import pytest
from nse_support import LUA_OUTPUT, run_lua, run_lua_nmap

PRELUDE = r'''
local dt = require "datetime"
''' + LUA_OUTPUT + r'''local function try(f, ...)
  local r = table.pack(pcall(f, ...))
  if not r[1] then return "ERR " .. tostring(r[2]):gsub("^.-:%d+: ", "") end
  for i = 2, r.n do r[i] = tostring(r[i]) .. "(" .. tostring(math.type(r[i]) or type(r[i])):sub(1, 1) .. ")" end
  return table.concat(r, ",", 2, r.n)
end
local function dumpt(t)
  if type(t) ~= "table" then return tostring(t) end
  local ks = {}
  for k, v in pairs(t) do
    ks[#ks + 1] = tostring(k) .. "=" .. (type(v) == "table" and "{" .. dumpt(v) .. "}" or
                  tostring(v)) .. "(" .. tostring(math.type(v) or type(v)):sub(1, 1) .. ")"
  end
  table.sort(ks)
  return table.concat(ks, ", ")
end
'''

TIMESTAMPS = PRELUDE + r'''
local function d(y, m, day, h, mi, s, extra)
  local t = {year = y, month = m, day = day, hour = h, min = mi, sec = s}
  for k, v in pairs(extra or {}) do t[k] = v end
  return t
end
p(try(dt.date_to_timestamp, d(1970, 1, 1, 4, 0, 0)), try(dt.date_to_timestamp, d(1970, 1, 1, 5, 0, 0), 3600),
  try(dt.date_to_timestamp, d(1970, 1, 1, 4, 0, 0), 3600), try(dt.date_to_timestamp, d(1970, 1, 1, 4, 0, 0), 0))
p(try(dt.date_to_timestamp, d(2021, 6, 15, 12, 30, 45)), try(dt.date_to_timestamp, {year = 2021, month = 6, day = 15}),
  try(dt.date_to_timestamp, d(2021, 13, 40, 25)), try(dt.date_to_timestamp, d(1969, 12, 31, 23, 59, 59)))
p(try(dt.date_to_timestamp, d(2021, 6, 15, 12, 30, 45.5)), try(dt.date_to_timestamp, d(2021, 6, 15, nil, nil, nil, {isdst = true})))
p(try(dt.date_to_timestamp, {year = 2021}), try(dt.date_to_timestamp, "2021-01-01"),
  try(dt.date_to_timestamp, d(2021, 6, 15, 0, 0, 0), 0.5), try(dt.date_to_timestamp, d(1900, 1, 1, 0)),
  try(dt.date_to_timestamp, d(3000, 1, 1, 0)))
for _, t in ipairs{0, 1, 1623760245, 1623760245.5, 1623760245.123456, -1, 2^31, 4102444800,
                   253402300799, 1e12, -1e10, d(2021, 6, 15, 12, 30, 45), d(99, 1, 2, 3, 4, 5),
                   d(2021, 6, 15, 1, 2, 3, {isdst = true})} do
  p(dumpt(t), try(dt.format_timestamp, t), try(dt.format_timestamp, t, 0), try(dt.format_timestamp, t, 3600),
    try(dt.format_timestamp, t, -19800), try(dt.format_timestamp, t, 30), try(dt.format_timestamp, t, 1.5))
end
for _, o in ipairs{-30, -60, -3600.5, 45000, 50400, 86400, -86400, 360000, 0.0} do
  p(o, try(dt.format_timestamp, 0, o))
end
p(try(dt.utc_offset), try(dt.utc_offset, 0), try(dt.utc_offset, 1623760245))
local h = {registry = {}, times = {srtt = 0.5}}
p(select("#", dt.record_skew(h, 1000, 990)), dumpt(h.registry))
dt.record_skew(h, 2000.7, 1990.2) p(dumpt(h.registry))
local h2 = {registry = {}} dt.record_skew(h2, 1000, 990) p(dumpt(h2.registry))
local h3 = {registry = {}, times = {}} dt.record_skew(h3, 1000, 1010) p(dumpt(h3.registry))
return table.concat(out, "\n")
'''

INTERVALS = PRELUDE + r'''
for _, v in ipairs{0, 0.5, 1, 59, 60, 61, 3599, 3600, 3661, 86399, 86400, 90061, 1000000, -1,
                   -90061, 1.25, 59.999, 12345.678, 1e10, 60.5, 3600.5, 1.5, 2.5, 3.5, 61.5, 59.5,
                   3599.5, 86399.5, 119.5, 1e15, 2^53, -59.5, -0.4, -0.5, -0.6, -0.0, 0.001} do
  p(v, try(dt.format_time, v), try(dt.format_time, v, 1000), try(dt.format_time, v, 1),
    try(dt.format_time, v, 60))
end
for _, c in ipairs{{61000, 1000}, {100, 10}, {605, 10}, {123456, 100}, {1, 1000}, {0.001, 1000},
  {7, 3}, {36001, 10}, {86410, 10}, {-61000, 1000}, {2, 1000}, {999, 1000}, {1000, 1000},
  {1001, 1000}, {1.0, 1000}, {500, 1000}, {1, 10}, {5, 10}, {9, 10}, {10, 10}, {11, 10},
  {59999, 1000}, {60000, 1000}, {1, 60}, {30, 60}, {59, 60}, {60, 60}, {61, 60}, {1.5, 1000},
  {2.0, 1000}, {1, 100}, {99, 100}, {100, 100}, {0, 1000}, {0.0, 1000}, {3, 1000}, {10, 1000},
  {100, 1000}, {1, 1.0}, {1, 2}, {3, 2}, {1, 1000.0}, {-30, 60}, {-1, 1000}, {-999, 1000},
  {-0.001, 1000}, {100, "10"}, {7254593.5, 100}, {4338340.5, 100}, {5238240.5, 100},
  {4468885.5, 10}, {9276044.5, 10}, {8518681.5, 10}, {86399.5, 1000}} do
  p(c[1], c[2], try(dt.format_time, c[1], c[2]))
end
local function at(s) return {year = 2021, month = 6, day = 15, hour = 12, min = 0, sec = s} end
local base = at(0)
p(try(dt.format_difftime, base, base), try(dt.format_difftime, at(30), base),
  try(dt.format_difftime, base, at(30)), try(dt.format_difftime, at(100000), base),
  try(dt.format_difftime, at(60), base))
p(try(dt.format_difftime, {year = 2021, month = 6, day = 15}, {year = 2021, month = 6, day = 14}),
  try(dt.format_difftime, {year = 2021, month = 6, day = 15, isdst = true}, {year = 2021, month = 6, day = 15}),
  try(dt.format_difftime, {year = 2021, month = 6, day = 15, hour = 12}, {year = 2021, month = 6, day = 15, hour = 10}))
return table.concat(out, "\n")
'''


def test_timestamps_match_nmap(tmp_path):
    ours = run_lua(tmp_path, TIMESTAMPS)
    lines = ours.split("\n")
    assert lines[0] == "14400.0(f) | 14400.0(f) | 10800.0(f) | 14400.0(f)"
    assert any(line.startswith("1623760245 | 2021-06-15T12:30:45(s) | "
                               "2021-06-15T12:30:45+00:00(s) | 2021-06-15T13:30:45+01:00(s) | "
                               "2021-06-15T07:00:45-05:30(s)") for line in lines)
    assert "-3600.5 | 1969-12-31T22:59:59-01:00(s)" in lines
    assert "0 | datetime_skew={1=9.75(f)}(t)" in lines  # half the srtt is taken off
    assert run_lua_nmap(tmp_path, TIMESTAMPS) == ours


def test_intervals_match_nmap(tmp_path):
    ours = run_lua(tmp_path, INTERVALS)
    lines = ours.split("\n")
    assert "90061 | 1d01h01m01s(s) | 1m30.061s(s) | 1d01h01m01s(s) | 25m1.0s(s)" in lines
    assert "30 | 60 | 5s(s)" in lines  # below a second Nmap drops the leading "0."
    assert "0s(s) | +30s(s) | -30s(s) | +1d03h46m40s(s) | +1m00s(s)" in lines
    assert run_lua_nmap(tmp_path, INTERVALS) == ours


def test_bad_input_is_an_error_or_nil_not_a_fault(tmp_path):
    body = PRELUDE + r'''
    p(try(dt.format_timestamp, nil), try(dt.format_timestamp, "x"))
    p(try(dt.format_time, "x"), try(dt.format_time, 10, 0), try(dt.format_time, 10, 0.5))
    p(try(dt.format_difftime, 100, 40), try(dt.format_difftime, nil, 1))
    p(try(dt.date_to_timestamp, {year = 2021, month = 1, day = 1, sec = 1.5}))
    return table.concat(out, "\n")'''
    assert run_lua(tmp_path, body).split("\n") == [
        "ERR bad argument #1 to 'format_timestamp' (number or date table expected) | "
        "ERR bad argument #1 to 'format_timestamp' (number or date table expected)",
        "ERR bad argument to 'format_time' (numbers expected) | "
        "ERR bad argument #2 to 'format_time' (unit must be positive) | 20s(s)",
        "+1m00s(s) | ERR bad argument #1 to 'format_difftime' (date table expected, got nil)",
        "nil(n)"]


ZONES = PRELUDE + r'''
for _, d in ipairs{{year = 2021, month = 1, day = 1, hour = 0}, {year = 2021, month = 7, day = 1, hour = 0},
                   {year = 1900, month = 1, day = 1, hour = 0}, {year = 2021, month = 3, day = 28, hour = 2, min = 30}} do
  p(try(dt.date_to_timestamp, d), try(dt.date_to_timestamp, d, 3600))
end
p(try(dt.utc_offset), try(dt.utc_offset, 0), try(dt.utc_offset, 1625097600), try(dt.utc_offset, -2208988800))
return table.concat(out, "\n")
'''


@pytest.mark.parametrize("zone", ["Asia/Kolkata", "America/New_York", "Australia/Lord_Howe"])
def test_local_time_zones_like_nmap(tmp_path, monkeypatch, zone):
    # Nmap takes the zone's offset at the epoch: Lord Howe was +10:00 then, +10:30 since.
    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        ours = run_lua(tmp_path, ZONES)
        assert run_lua_nmap(tmp_path, ZONES) == ours
    finally:
        monkeypatch.undo()
        time.tzset()
    offset = {"Asia/Kolkata": "19800.0", "America/New_York": "-18000.0",
              "Australia/Lord_Howe": "36000.0"}[zone]
    assert ours.split("\n")[-1] == " | ".join([f"{offset}(f)"] * 4)
