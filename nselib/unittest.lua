---
-- Unit tests for NSE libraries.
--
-- A library that wants to be tested keeps a callable named <code>test_suite</code> in its module
-- table (usually only when <code>unittest.testing()</code> is true). Calling it returns the number
-- of failed tests and the number of tests run. <code>unittest.TestSuite</code> is such a
-- callable: add tests with <code>add_test</code>.
--
-- A test is a function of no arguments returning a true value when it passes, or false and an
-- optional message when it fails. The assertion helpers (<code>equal</code>, <code>is_nil</code>,
-- ...) do not test anything themselves: they return such a test function, to be handed to
-- <code>add_test</code> (or called).
--
-- Written for nsecluster from the NSE documentation; the names, arguments and return values are
-- those scripts written for Nmap expect.
--
-- @usage
-- local unittest = require "unittest"
-- local suite = unittest.TestSuite:new()
-- suite:add_test(unittest.equal(base64.enc("hi"), "aGk="), "encoding")
-- local failed, total = suite()
--
-- @class module
-- @name unittest

local stdnse = require "stdnse"

local error, ipairs, pairs, pcall, require, select, setmetatable, tostring, type =
      error, ipairs, pairs, pcall, require, select, setmetatable, tostring, type
local format, rep = string.format, string.rep
local concat, unpack = table.concat, table.unpack

local _ENV = {}

-- The libraries run_tests() tries when it is given no list.
local ALL_LIBRARIES = {
  "afp", "ajp", "amqp", "anyconnect", "asn1", "base32", "base64", "bitcoin", "bits",
  "bittorrent", "bjnp", "brute", "cassandra", "citrixxml", "coap", "comm", "creds", "cvs",
  "datafiles", "datetime", "dhcp", "dhcp6", "dicom", "dns", "dnsbl", "dnssd", "drda", "eap",
  "eigrp", "formulas", "ftp", "geoip", "giop", "gps", "http", "httpspider", "iax2", "idna",
  "ike", "imap", "informix", "ipOps", "ipmi", "ipp", "irc", "iscsi", "isns", "jdwp", "json",
  "knx", "ldap", "lfs", "libssh2", "libssh2-utility", "listop", "lpeg", "lpeg-utility", "ls",
  "match", "membase", "mobileme", "mongodb", "mqtt", "msrpc", "msrpcperformance",
  "msrpctypes", "mssql", "multicast", "mysql", "natpmp", "ncp", "ndmp", "netbios", "nmap",
  "nrpc", "nsedebug", "omp2", "oops", "openssl", "ospf", "outlib", "packet", "pgsql", "pop3",
  "pppoe", "proxy", "punycode", "rand", "rdp", "re", "redis", "rmi", "rpc", "rpcap", "rsync",
  "rtsp", "sasl", "shortport", "sip", "slaxml", "smb", "smb2", "smbauth", "smtp", "snmp",
  "socks", "srvloc", "ssh1", "ssh2", "sslcert", "sslv2", "stdnse", "strbuf", "strict",
  "stringaux", "stun", "tab", "tableaux", "target", "tftp", "tls", "tn3270", "tns", "unicode",
  "unittest", "unpwdb", "upnp", "url", "versant", "vnc", "vulns", "vuzedht", "wsdd", "xdmcp",
  "xmpp", "zlib",
}

local running = false  -- run_tests() was called: testing() is true from then on

--- Whether unit tests are being run: true when the script argument <code>unittest.run</code>
-- is given, or once <code>run_tests</code> has been called; nil otherwise.
-- Libraries use it to define their <code>test_suite</code> only when needed.
-- @return true, or nil.
function testing()
  if running then return true end
  if stdnse.get_script_args("unittest.run") then return true end
  return nil
end

-- ---------------------------------------------------------------------------------------------
-- Describing values in failure messages.

local function describe_table(t, indent, parts, depth)
  for k, v in pairs(t) do
    if type(v) == "table" and depth < 32 then
      parts[#parts + 1] = indent .. tostring(k) .. ":\n"
      describe_table(v, indent .. "  ", parts, depth + 1)
    else
      local text = type(v) == "string" and format("%q", v) or tostring(v)
      parts[#parts + 1] = indent .. tostring(k) .. ": " .. text .. "\n"
    end
  end
end

-- A value as failure messages show it: a table as "key: value" lines (nested tables indented),
-- a string quoted, anything else by tostring; each followed by a newline. nil is "nil".
local function describe(value)
  if value == nil then return "nil" end
  if type(value) == "table" then
    local parts = {}
    describe_table(value, "", parts, 0)
    return concat(parts)
  end
  if type(value) == "string" then return format("%q", value) .. "\n" end
  return tostring(value) .. "\n"
end

--- Make a test factory from a predicate and a failure message format.
-- The factory takes the predicate's arguments and returns a test: a function that calls the
-- predicate with them and returns true when it holds, or false and <code>fmt</code> formatted
-- with a description of each argument.
-- @param test Predicate function.
-- @param fmt Format string for the failure message, one <code>%s</code> per argument.
-- @return A test factory.
-- @usage
-- local is_even = unittest.make_test(function(n) return n % 2 == 0 end, "%s is odd")
-- suite:add_test(is_even(4), "four is even")
function make_test(test, fmt)
  return function(...)
    local args = {...}
    local count = select("#", ...)
    return function()
      if test(unpack(args, 1, count)) then return true end
      -- Arguments are described up to the first nil; the rest show as nil.
      local shown = {}
      for i, value in ipairs(args) do shown[i] = describe(value) end
      return false, format(fmt, unpack(shown, 1, count))
    end
  end
end

--- Test for equality (<code>==</code>).
-- @param a First value.
-- @param b Second value.
-- @return A test.
equal = make_test(function(a, b) return a == b end, "%s not equal to %s")

--- Test for inequality (<code>~=</code>).
-- @param a First value.
-- @param b Second value.
-- @return A test.
not_equal = make_test(function(a, b) return a ~= b end, "%s unexpectedly equal to %s")

--- Test that a value is exactly <code>true</code>.
-- @param value The value.
-- @return A test.
is_true = make_test(function(value) return value == true end, "Expected true, got %s")

--- Test that a value is exactly <code>false</code>.
-- @param value The value.
-- @return A test.
is_false = make_test(function(value) return value == false end, "Expected false, got %s")

--- Test that a value is nil.
-- @param value The value.
-- @return A test.
is_nil = make_test(function(value) return value == nil end, "Expected nil, got %s")

--- Test that a value is not nil.
-- @param value The value.
-- @return A test.
not_nil = make_test(function(value) return value ~= nil end, "Expected not nil, got %s")

--- Test that a value has a given type.
-- @param typ The type name, as <code>type()</code> gives it.
-- @param value The value.
-- @return A test.
type_is = make_test(function(typ, value) return type(value) == typ end,
                    "Value is not a '%s': %s")

--- Test that <code>a &lt; b</code>.
-- @param a First value.
-- @param b Second value.
-- @return A test.
lt = make_test(function(a, b) return a < b end, "%s not less than %s")

--- Test that <code>a &lt;= b</code>.
-- @param a First value.
-- @param b Second value.
-- @return A test.
lte = make_test(function(a, b) return a <= b end, "%s not less than %s")

--- Test the length (<code>#</code>) of a table or string.
-- @param t The table or string.
-- @param l The expected length.
-- @return A test.
length_is = make_test(function(t, l) return #t == l end, "Length of %s is not %s")

--- Test that the array parts of two tables are equal, one level deep (values compared with
-- <code>==</code>).
-- @param a First table.
-- @param b Second table.
-- @return A test.
function table_equal(a, b)
  return function()
    if #a ~= #b then return false, "Length not equal" end
    for i, v in ipairs(a) do
      if b[i] ~= v then
        return false, format("%s ~= %s at position %d", tostring(v), tostring(b[i]), i)
      end
    end
    return true
  end
end

--- Test that two associative tables have the same keys with equal values, one level deep.
-- @param a First table.
-- @param b Second table.
-- @return A test.
function keys_equal(a, b)
  return function()
    for k, v in pairs(a) do
      if b[k] ~= v then
        return false, format("%s ~= %s at key %s", tostring(v), tostring(b[k]), tostring(k))
      end
    end
    for k in pairs(b) do
      if a[k] == nil then
        return false, format("Key %s not present in table a", tostring(k))
      end
    end
    return true
  end
end

local function count_keys(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

local function compare(a, b, path, depth)
  local ta, tb = type(a), type(b)
  if ta ~= tb then
    return false, format("Types of %s are not equal: %s ~= %s", path, ta, tb)
  end
  if ta == "table" and a ~= b then
    local na, nb = count_keys(a), count_keys(b)
    if na ~= nb then
      return false, format("Sizes of %s are not equal: %d ~= %d", path, na, nb)
    end
    if depth > 100 then return true end
    for k, v in pairs(a) do
      local ok, msg = compare(v, b[k], path .. '["' .. tostring(k) .. '"]', depth + 1)
      if not ok then return false, msg end
    end
    return true
  end
  if a ~= b then
    return false, format("Values of %s are not equal: %s ~= %s", path, tostring(a),
                         tostring(b))
  end
  return true
end

--- Test two values for equality, recursing into tables.
-- @param a First value.
-- @param b Second value.
-- @return A test.
function identical(a, b)
  return function()
    return compare(a, b, "<top>", 0)
  end
end

--- Turn a test that should fail into one that passes when it fails.
-- @param test The test.
-- @return A test that fails with "Test unexpectedly passed" when <code>test</code> passes.
function expected_failure(test)
  return function(...)
    if test(...) then return false, "Test unexpectedly passed" end
    return true, "Test failed as expected"
  end
end

-- ---------------------------------------------------------------------------------------------
-- Test suites.

local TestSuite = {}
TestSuite.__index = TestSuite

--- Make a new, empty test suite.
-- @return The suite: add tests with <code>add_test</code>, call it to run them.
function TestSuite:new()
  return setmetatable({tests = {}}, self)
end

--- Add a test to the suite.
-- @param test A test: a function returning true on success, or false and a message.
-- @param description What the test checks, for the debug log.
function TestSuite:add_test(test, description)
  self.tests[#self.tests + 1] = {test, description}
end

--- Called before the suite's tests run (does nothing unless replaced).
function TestSuite:setup()
end

--- Called after the suite's tests ran (does nothing unless replaced).
function TestSuite:teardown()
end

--- Run the suite's tests in the order they were added, logging each failure (debug level 1)
-- and each success (level 2). An error raised by a test propagates.
-- @return The number of tests that failed.
-- @return The number of tests run.
function TestSuite:__call()
  self:setup()
  local failed, total = 0, 0
  for _, entry in ipairs(self.tests) do
    local test, description = entry[1], entry[2]
    local ok, msg = test()
    total = total + 1
    if ok then
      stdnse.debug(2, "| Test: %s...", tostring(description))
      stdnse.debug(2, "| \\_result: Pass")
    else
      failed = failed + 1
      stdnse.debug(1, "| Test: %s...", tostring(description))
      if msg then
        stdnse.debug(1, "| \\_result: Fail (%s)", tostring(msg))
      else
        stdnse.debug(1, "| \\_result: Fail")
      end
    end
  end
  self:teardown()
  stdnse.debug(1, "|_%d of %d tests passed", total - failed, total)
  return failed, total
end

_ENV.TestSuite = TestSuite

--- Run the test suites of NSE libraries.
-- Each library is loaded with <code>require</code> and its <code>test_suite</code>, if it has
-- one, is run. Turns <code>testing()</code> on first, so libraries loaded from now on define
-- their suites.
-- @param to_test Array of library names (default: all of NSE's libraries).
-- @return An ordered table of library name to number of failed tests, holding only libraries
--         with failures (empty when everything passed).
function run_tests(to_test)
  running = true
  local results = stdnse.output_table()
  for _, lib in ipairs(to_test or ALL_LIBRARIES) do
    stdnse.debug(1, "Testing %s", tostring(lib))
    local ok, module = pcall(require, lib)
    if not ok then
      stdnse.debug(1, "Failed to load %s: %s", tostring(lib), tostring(module))
    elseif type(module) == "table" and module.test_suite then
      local failed, count = module.test_suite()
      if failed == false then failed = count or 1 end
      if type(failed) == "number" and failed > 0 then results[lib] = failed end
    end
  end
  return results
end

return _ENV
