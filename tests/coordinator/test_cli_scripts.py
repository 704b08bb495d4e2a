"""Script scans from the command line: selection, arguments, phases, outputs, errors."""
from __future__ import annotations

import json
import textwrap

from conftest import run_nsecluster
from lxml import etree
from test_cli import assert_valid_xml, one_line_error

BANNER = """\
description = [[
Reads what the service says first.

Second paragraph.]]
categories = {"default", "safe"}
portrule = function(host, port) return port.state == "open" end
action = function(host, port)
  local socket = nmap.new_socket()
  socket:set_timeout(2000)
  local ok, err = socket:connect(host, port)
  if not ok then return "connect failed: " .. err end
  local got, data = socket:receive()
  socket:close()
  return got and data:gsub("[\\r\\n]+$", "") or "nothing"
end
"""

PHASES = """\
categories = {"safe"}
prerule = function() return true end
hostrule = function() return true end
postrule = function() return true end
action = function(host)
  local r = nmap.registry
  r.seen = (r.seen or 0) + 1
  if SCRIPT_TYPE == "prerule" then
    nmap.add_targets(nmap.registry.args.extra)
    return "pre " .. r.seen
  elseif SCRIPT_TYPE == "hostrule" then
    return {ip = host.ip, seen = tostring(r.seen)}
  end
  return "post " .. r.seen
end
"""


def script(tmp_path, name, source):
    path = tmp_path / f"{name}.nse"
    path.write_text(textwrap.dedent(source))
    return path


def banner_server(listeners, address):
    """A listener whose queued connections get a banner from the test thread."""
    import threading

    port = listeners.listen(address)
    server = listeners.sockets[-1]

    def serve():
        for _ in range(20):
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                try:  # the port scan's own probe is reset before it is served
                    conn.sendall(b"HELLO " + address.encode() + b"\r\n")
                except OSError:
                    continue
    threading.Thread(target=serve, daemon=True).start()
    return port


def test_port_scripts_in_every_output(tmp_path, listeners):
    port = banner_server(listeners, "127.11.0.1")
    path = script(tmp_path, "greeting", BANNER)
    proc = run_nsecluster("scan", "-n", "-p", port, "--script", path, "127.11.0.1",
                          "-oX", tmp_path / "out.xml", "-oJ", tmp_path / "out.jsonl")
    assert proc.returncode == 0, proc.stderr
    assert f"{port}/tcp open" in proc.stdout
    assert "|_greeting: HELLO 127.11.0.1" in proc.stdout
    xml = (tmp_path / "out.xml").read_text()
    assert_valid_xml(xml)
    element = etree.fromstring(xml.encode()).find(".//port/script")
    assert (element.get("id"), element.get("output")) == ("greeting", "HELLO 127.11.0.1")
    records = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    port_record = records[1]["ports"][0]
    assert port_record["scripts"] == [{"id": "greeting", "output": "HELLO 127.11.0.1",
                                       "structured": None}]


def test_phases_registry_and_added_targets(tmp_path, listeners):
    path = script(tmp_path, "phases", PHASES)
    proc = run_nsecluster("scan", "-n", "-Pn", "-p", "1", "--script", path,
                          "--script-args", "extra=127.11.1.9", "127.11.1.1", "-oX", "-")
    assert proc.returncode == 0, proc.stderr
    assert_valid_xml(proc.stdout)
    root = etree.fromstring(proc.stdout.encode())
    assert root.find("prescript/script").get("output") == "pre 1"
    hosts = {h.find("address").get("addr"): h for h in root.iter("host")}
    assert set(hosts) == {"127.11.1.1", "127.11.1.9"}  # the added target joined the scan
    elems = {e.get("key"): e.text for e in hosts["127.11.1.1"].iter("elem")}
    assert elems["ip"] == "127.11.1.1"
    assert root.find("postscript/script").get("output") == "post 4"  # one registry throughout


def test_script_args_file_and_command_line_args(tmp_path):
    path = script(tmp_path, "args", """\
        categories = {"safe"}
        prerule = function() return true end
        action = function()
          local a = nmap.registry.args
          return table.concat({a.fromfile, a.both, a.nested.k, a[1]}, " ")
        end""")
    data = tmp_path / "data"
    data.mkdir()
    (data / "args.txt").write_text("fromfile=yes,both=file,nested={k=v}\n")
    proc = run_nsecluster("scan", "-n", "-sn", "-Pn", "--datadir", data, "--script", path,
                          "--script-args-file", "args.txt", "--script-args", "both=cli,bare",
                          "127.11.2.1")
    assert proc.returncode == 0, proc.stderr
    assert "|_args: yes cli v" in proc.stdout  # the command line wins over the file


def test_default_category_from_a_data_directory(tmp_path):
    data = tmp_path / "data"
    (data / "scripts").mkdir(parents=True)
    (data / "scripts" / "picked.nse").write_text(
        'categories = {"default"}\nprerule = function() return true end\n'
        'action = function() return "picked by -sC" end\n')
    (data / "scripts" / "skipped.nse").write_text(
        'categories = {"intrusive"}\nprerule = function() return true end\n'
        'action = function() return "should not run" end\n')
    (data / "scripts" / "script.db").write_text(
        'Entry { filename = "picked.nse", categories = { "default", } }\n'
        'Entry { filename = "skipped.nse", categories = { "intrusive", } }\n')
    proc = run_nsecluster("scan", "-n", "-sn", "-Pn", "-sC", "--datadir", data, "127.11.3.1")
    assert proc.returncode == 0, proc.stderr
    assert "|_picked: picked by -sC" in proc.stdout and "should not run" not in proc.stdout


def test_script_help_describes_and_exits(tmp_path):
    path = script(tmp_path, "greeting", BANNER)
    proc = run_nsecluster("scan", "--script-help", path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[:5] == [
        "", "greeting", "Categories: default safe", str(path),
        "  Reads what the service says first."]
    assert "  Second paragraph." in proc.stdout


def test_script_errors(tmp_path):
    assert one_line_error(run_nsecluster("scan", "-n", "--script", "no-such-script-zz",
                                         "127.0.0.1")) == \
        "nsecluster: 'no-such-script-zz' did not match a category, filename, or directory"
    path = script(tmp_path, "greeting", BANNER)
    assert one_line_error(run_nsecluster("scan", "-n", "--script", path, "--script-args",
                                         "x={", "127.0.0.1")) == \
        "nsecluster: arguments did not parse!"
    broken = script(tmp_path, "broken", "action = function() end\n")
    proc = run_nsecluster("scan", "-n", "--script", broken, "127.0.0.1")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == \
        f"nsecluster: {broken} is missing required function: 'rule'"
    assert proc.stdout == ""  # nothing was scanned or written


def test_script_timeout_and_error_output(tmp_path, listeners):
    port = listeners.listen("127.11.4.1")
    slow = script(tmp_path, "slow", """\
        portrule = function() return true end
        action = function() nmap.socket.sleep(60) return "late" end""")
    failing = script(tmp_path, "failing", """\
        portrule = function() return true end
        action = function() error("broken on purpose") end""")
    proc = run_nsecluster("scan", "-n", "-p", port, "--script", f"{slow},{failing}",
                          "--script-timeout", "1s", "127.11.4.1", timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "slow" not in proc.stdout
    assert "|_failing: ERROR: Script execution failed (use -d to debug)" in proc.stdout
    debug = run_nsecluster("scan", "-n", "-d", "-p", port, "--script", failing, "127.11.4.1")
    assert "NSE: failing against 127.11.4.1:" in debug.stderr
    assert "threw an error!" in debug.stderr and "broken on purpose" in debug.stderr


def test_script_trace_shows_the_conversation(tmp_path, listeners):
    port = banner_server(listeners, "127.11.5.1")
    path = script(tmp_path, "greeting", BANNER)
    proc = run_nsecluster("scan", "-n", "-p", port, "--script", path, "--script-trace",
                          "127.11.5.1")
    assert proc.returncode == 0, proc.stderr
    assert "NSE: TCP " in proc.stderr and f"127.11.5.1:{port}" in proc.stderr
    assert "HELLO 127.11.5.1" in proc.stderr


# -- --script-updatedb ---------------------------------------------------------------------

def _updatedb_tree(root):
    scripts = root / "scripts"
    (scripts / "sub").mkdir(parents=True)
    (scripts / "zz-test.nse").write_text('description = "z"\ncategories = {"safe", "Discovery"}\n'
                                         'portrule = function() return true end\n'
                                         'action = function() end\n')
    (scripts / "aa.nse").write_text('local nmap = require "nmap"\ndescription = "a"\n'
                                    'categories = {"vuln"}\n'
                                    'hostrule = function() return true end\n'
                                    'action = function() end\n')
    (scripts / "sub" / "inner.nse").write_text((scripts / "aa.nse").read_text())
    (scripts / "notes.txt").write_text("not a script")
    return scripts


def test_script_updatedb_writes_what_nmap_writes(tmp_path, nmap_path):
    import subprocess

    ours, theirs = _updatedb_tree(tmp_path / "ours"), _updatedb_tree(tmp_path / "nmap")
    done = run_nsecluster("scan", "--datadir", ours.parent, "--script-updatedb")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["NSE: Updating rule database.",
                                        "NSE: Script Database updated successfully."]
    subprocess.run([nmap_path, "--datadir", str(theirs.parent), "--script-updatedb"],
                   capture_output=True, check=True, timeout=60)
    assert (ours / "script.db").read_text() == (theirs / "script.db").read_text()
    assert (ours / "script.db").read_text().count("Entry") == 2
    selected = run_nsecluster("scan", "--datadir", ours.parent, "--script-help", "vuln")
    assert selected.returncode == 0 and "\naa\n" in selected.stdout


def test_script_updatedb_keeps_the_old_database_when_a_script_does_not_load(tmp_path):
    scripts = _updatedb_tree(tmp_path)
    assert run_nsecluster("scan", "--datadir", tmp_path, "--script-updatedb").returncode == 0
    before = (scripts / "script.db").read_text()
    (scripts / "bad.nse").write_text("broken(")
    done = run_nsecluster("scan", "--datadir", tmp_path, "--script-updatedb")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == \
        "nsecluster: script database not updated: could not load script"
    assert "bad.nse" in done.stderr and "Traceback" not in done.stderr
    assert (scripts / "script.db").read_text() == before
