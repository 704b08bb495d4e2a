"""The command line end to end: real scans of listeners on 127.0.0.0/8, every output format,
bad input, signals, progress on a terminal, names and reverse DNS in a private namespace."""
from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import NSECLUSTER, REPO, free_port, run_nsecluster
from lxml import etree

DTD_PATH = Path("/usr/share/nmap/nmap.dtd")


def xml_states(xml_text: str) -> dict[str, dict[int, tuple[str, str]]]:
    """{address: {port: (state, reason)}} of the ports listed one by one."""
    root = etree.fromstring(xml_text.encode())
    found = {}
    for host in root.iter("host"):
        address = host.find("address").get("addr")
        found[address] = {int(p.get("portid")): (p.find("state").get("state"),
                                                  p.find("state").get("reason"))
                          for p in host.iter("port")}
    return found


def assert_valid_xml(xml_text: str) -> None:
    if not DTD_PATH.is_file():
        pytest.fail("Nmap's nmap.dtd is missing (Debian package nmap-common; .ci/setup)")
    dtd = etree.DTD(str(DTD_PATH))
    document = etree.fromstring(xml_text.encode())
    assert dtd.validate(document), dtd.error_log.filter_from_errors()


def one_line_error(proc) -> str:
    """The failure contract: non-zero exit, exactly one line on stderr, no traceback."""
    assert proc.returncode != 0, proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


# -- start-up ---------------------------------------------------------------------------------

HEAVY = ("celery", "kombu", "lupa", "scapy", "redis", "rich", "msgpack", "flower")


def modules_after(argv: list[str]) -> set[str]:
    code = ("import sys, json\nfrom coordinator.cli import main\n"
            "try:\n    main(json.loads(sys.argv[1]))\nexcept SystemExit:\n    pass\n"
            "print(json.dumps(sorted(sys.modules)), file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(argv)], capture_output=True,
                          text=True, timeout=60, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    return set(json.loads(proc.stderr.strip().splitlines()[-1]))


def test_help_and_a_connect_scan_load_no_heavy_package(listeners):
    port = listeners.listen("127.10.0.1")
    for argv in (["--help"], ["scan", "--help"],
                 ["scan", "-sT", "-n", "-p", str(port), "127.10.0.1", "-oX", "/dev/null"]):
        loaded = modules_after(argv)
        assert not {m.split(".")[0] for m in loaded} & set(HEAVY), (argv, loaded & set(HEAVY))
    assert "worker.group" in loaded  # the scan really ran


# -- real scans ------------------------------------------------------------------------------

def test_scan_finds_open_and_closed_ports_and_writes_valid_xml(listeners):
    open_a, open_b = listeners.listen("127.10.1.1"), listeners.listen("127.10.1.1")
    closed = free_port("127.10.1.1")
    proc = run_nsecluster("scan", "-sT", "-n", "-p", f"{open_a},{open_b},{closed}", "127.10.1.1",
                          "-oX", "-")
    assert proc.returncode == 0, proc.stderr
    assert_valid_xml(proc.stdout)
    assert xml_states(proc.stdout)["127.10.1.1"] == {
        open_a: ("open", "syn-ack"), open_b: ("open", "syn-ack"),
        closed: ("closed", "conn-refused")}


def test_same_states_as_nmap_on_the_same_targets(listeners, nmap_path):
    ports = [listeners.listen(f"127.10.2.{h}") for h in (1, 2) for _ in range(3)]
    spec = ",".join(map(str, sorted(set(ports) | {free_port("127.10.2.1")})))
    ours = run_nsecluster("scan", "--unprivileged", "-sT", "-n", "-p", spec, "127.10.2.1-3",
                          "-oX", "-")
    nmap = subprocess.run([nmap_path, "--unprivileged", "-sT", "-n", "-p", spec, "127.10.2.1-3",
                           "-oX", "-"], capture_output=True, text=True, timeout=120)
    assert ours.returncode == 0 and nmap.returncode == 0
    assert xml_states(ours.stdout) == xml_states(nmap.stdout)


def test_all_output_formats_at_once(tmp_path, listeners):
    port = listeners.listen("127.10.3.1")
    base = tmp_path / "scan"
    proc = run_nsecluster("scan", "-n", "-p", f"{port},{free_port('127.10.3.1')}", "--reason",
                          "127.10.3.1", "127.10.3.2", "-oA", base, "-oJ", tmp_path / "scan.jsonl")
    assert proc.returncode == 0, proc.stderr
    normal = (tmp_path / "scan.nmap").read_text()
    assert normal.startswith("# nsecluster ") and "scan initiated" in normal
    assert f"{port}/tcp open" in normal and "syn-ack" in normal
    assert "Nmap done at" in normal and "2 IP addresses (2 hosts up)" in normal
    grepable = (tmp_path / "scan.gnmap").read_text()
    assert "Host: 127.10.3.1 ()\tPorts: " in grepable and f"{port}/open/tcp//" in grepable
    assert_valid_xml((tmp_path / "scan.xml").read_text())
    records = [json.loads(line) for line in (tmp_path / "scan.jsonl").read_text().splitlines()]
    assert [r["type"] for r in records] == ["scan", "host", "host", "done"]
    assert records[0]["schema"] == "nsecluster/1"
    ports = {p["portid"]: p["state"] for p in records[1]["ports"]}
    assert ports[port] == "open"
    # The screen got the interactive form too.
    assert proc.stdout.startswith("Starting nsecluster") and "Nmap done:" in proc.stdout


def test_stdout_takes_one_format_and_replaces_the_screen_output(listeners):
    port = listeners.listen("127.10.4.1")
    proc = run_nsecluster("scan", "-n", "-p", port, "127.10.4.1", "-oG", "-")
    assert proc.returncode == 0
    assert proc.stdout.startswith("# nsecluster") and "Starting" not in proc.stdout
    assert f"{port}/open/tcp" in proc.stdout


def test_targets_from_file_and_stdin_with_exclusions(tmp_path, listeners):
    port = listeners.listen("127.10.5.2")
    target_file = tmp_path / "targets.txt"
    target_file.write_text("# a comment line\n127.10.5.1  127.10.5.2 # trailing comment\n"
                           "127.10.5.3-5\n")
    scanned = []
    for source, stdin in ((str(target_file), None), ("-", target_file.read_text())):
        proc = run_nsecluster("scan", "-n", "-p", port, "-iL", source, "--exclude",
                              "127.10.5.4,127.10.5.5", "-oX", "-", input=stdin)
        assert proc.returncode == 0, proc.stderr
        states = xml_states(proc.stdout)
        scanned.append(sorted(states))
        assert states["127.10.5.2"][port][0] == "open"
    assert scanned[0] == scanned[1] == ["127.10.5.1", "127.10.5.2", "127.10.5.3"]


def test_open_and_reason_shape_the_report(listeners):
    port = listeners.listen("127.10.6.1")
    closed = free_port("127.10.6.1")
    proc = run_nsecluster("scan", "-n", "-p", f"{port},{closed}", "--open", "--reason",
                          "127.10.6.1", "127.10.6.2")
    assert proc.returncode == 0
    assert "PORT" in proc.stdout and "REASON" in proc.stdout
    assert f"{port}/tcp open" in proc.stdout and f"{closed}/tcp" not in proc.stdout
    assert "127.10.6.2" not in proc.stdout  # --open drops hosts with nothing open
    assert "Host is up, received" in proc.stdout


def test_ping_scan_and_ipv6(listeners):
    proc = run_nsecluster("scan", "-n", "-sn", "127.10.7.1-3", "-oX", "-")
    assert proc.returncode == 0
    root = etree.fromstring(proc.stdout.encode())
    assert [h.find("status").get("state") for h in root.iter("host")] == ["up"] * 3
    assert root.find("host/ports") is None
    port = listeners.listen("::1")
    proc = run_nsecluster("scan", "-n", "-p", port, "::1", "-oX", "-")
    assert proc.returncode == 0, proc.stderr
    assert xml_states(proc.stdout)["::1"][port][0] == "open"
    assert 'addrtype="ipv6"' in proc.stdout


def test_rate_parallelism_and_retry_options_scan_correctly(listeners):
    opened = {listeners.listen("127.10.15.1") for _ in range(3)}
    spec = ",".join(map(str, sorted(opened | {free_port("127.10.15.1")})))
    for options in (["--min-rate", "5000"], ["--max-rate", "200"],
                    ["--min-parallelism", "50", "--max-parallelism", "60"],
                    ["--max-retries", "0", "--initial-rtt-timeout", "200ms",
                     "--max-rtt-timeout", "1s", "--min-rtt-timeout", "50ms"],
                    ["--scan-delay", "5ms", "--max-scan-delay", "10ms", "--host-timeout", "30s"],
                    ["--min-hostgroup", "2", "--max-hostgroup", "2", "-r"]):
        proc = run_nsecluster("scan", "-n", *options, "-p", spec, "127.10.15.1-3", "-oX", "-")
        assert proc.returncode == 0, (options, proc.stderr)
        found = {port for port, (state, _) in xml_states(proc.stdout)["127.10.15.1"].items()
                 if state == "open"}
        assert found == opened, options


@pytest.mark.parametrize("template", ["0", "1", "2", "3", "4", "5", "insane", "polite"])
def test_timing_templates_are_accepted(template, listeners):
    port = listeners.listen("127.10.8.1")
    # -T0..-T2 serialize probes with a scan delay; -Pn and one port keep even T0 quick.
    proc = run_nsecluster("scan", "-n", "-Pn", f"-T{template}", "-p", port, "127.10.8.1",
                          "-oG", "-", timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert f"{port}/open/tcp" in proc.stdout


def test_without_nmap_data_the_system_services_name_ports(tmp_path):
    env = {"NSECLUSTER_NMAP_PREFIXES": "", "HOME": str(tmp_path), "NMAPDIR": ""}
    proc = run_nsecluster("scan", "-n", "-p", "25", "127.10.9.1", "-oG", "-", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "25/closed/tcp//smtp///" in proc.stdout  # the name comes from /etc/services
    assert "Unable to find nmap-services" in proc.stderr
    proc = run_nsecluster("scan", "-n", "--top-ports", "10", "127.10.9.1", env=env)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    error = proc.stderr.strip().splitlines()[-1]  # after the fallback warning
    assert "nmap-services" in error and "--datadir" in error


def test_datadir_services_file_names_ports(tmp_path, listeners):
    port = listeners.listen("127.10.10.1")
    (tmp_path / "nmap-services").write_text(f"our-service\t{port}/tcp\t0.5\n")
    proc = run_nsecluster("scan", "-n", "--datadir", tmp_path, "-p", port, "127.10.10.1",
                          "-oG", "-", env={"XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert f"{port}/open/tcp//our-service///" in proc.stdout
    proc = run_nsecluster("scan", "-n", "--datadir", tmp_path, "--top-ports", "1",
                          "127.10.10.1", "-oX", "-", env={"XDG_CACHE_HOME": str(tmp_path)})
    assert f'services="{port}"' in proc.stdout


# -- bad input ------------------------------------------------------------------------------

@pytest.mark.parametrize("args, expected", [
    (["scan", "127.0.0.0/33"], "127.0.0.0/33"),
    (["scan", "127.0.0.9-3"], "127.0.0.9-3"),
    (["scan", "-p", "70000", "127.0.0.1"], "70000"),
    (["scan", "-p", "90-80", "127.0.0.1"], "backwards"),
    (["scan", "-p", "no-such-service-x", "127.0.0.1"], "no-such-service-x"),
    (["scan", "-p", "", "127.0.0.1"], "port"),
    (["scan", "--bogus", "127.0.0.1"], "--bogus"),
    (["scan", "-iL", "/nonexistent/targets.txt"], "/nonexistent/targets.txt"),
    (["scan", "--excludefile", "/nonexistent/ex.txt", "127.0.0.1"], "/nonexistent/ex.txt"),
    (["scan", "-T9", "127.0.0.1"], "timing"),
    (["scan", "--host-timeout", "soon", "127.0.0.1"], "--host-timeout"),
    (["scan", "--min-rate", "0", "127.0.0.1"], "--min-rate"),
    (["scan", "--min-rate", "100", "--max-rate", "10", "127.0.0.1"], "--max-rate"),
    (["scan", "--min-hostgroup", "10", "--max-hostgroup", "5", "127.0.0.1"], "hostgroup"),
    (["scan", "--max-retries", "-1", "127.0.0.1"], "--max-retries"),
    (["scan", "-oX", "/nonexistent/dir/out.xml", "127.0.0.1"], "/nonexistent/dir/out.xml"),
    (["scan", "-oN", "-", "-oX", "-", "127.0.0.1"], "stdout"),
    (["scan", "--dns-servers", "dns.example", "127.0.0.1"], "dns.example"),
    (["scan", "-sn", "-p", "80", "127.0.0.1"], "-sn"),
    (["scan", "-F", "-p", "80", "127.0.0.1"], "-F"),
    (["scan"], "targets"),
    (["bogus"], "bogus"),
    ([], "command"),
])
def test_bad_input_gets_one_clear_line(args, expected):
    if args[:1] == ["scan"]:
        args = [*args, "-n"]  # should anything get as far as scanning: no DNS from here
    line = one_line_error(run_nsecluster(*args, timeout=60))
    assert line.startswith("nsecluster: ")
    assert expected in line


def test_bad_input_exit_codes():
    assert run_nsecluster("scan", "--bogus", "127.0.0.1").returncode == 2  # syntax
    assert run_nsecluster("scan", "-p", "70000", "127.0.0.1").returncode == 1  # a bad value


def test_a_bad_target_in_a_file_stops_before_anything_is_lost(tmp_path):
    (tmp_path / "t.txt").write_text("127.10.11.1\n127.0.0.0/40\n")
    proc = run_nsecluster("scan", "-n", "-p", "1", "-iL", tmp_path / "t.txt",
                          "-oN", tmp_path / "out.nmap")
    assert proc.returncode == 1 and "127.0.0.0/40" in proc.stderr
    assert "Traceback" not in proc.stderr
    normal = (tmp_path / "out.nmap").read_text()
    assert "Nmap scan report for 127.10.11.1" in normal  # what was scanned is kept
    assert "127.0.0.0/40" in normal  # the file says why it ends there ...
    assert normal.rstrip().splitlines()[-1].startswith("# Nmap done")  # ... and is closed


# -- signals ---------------------------------------------------------------------------------

def start_scan(args, **kwargs):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([*NSECLUSTER, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO, env=env, **kwargs)


def wait_for_text(path: Path, text: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text():
            return
        time.sleep(0.05)
    pytest.fail(f"{text!r} never appeared in {path}")


SLOW_SCAN = ["-n", "-Pn", "-p", "1-3000", "--max-rate", "3000", "--max-hostgroup", "1"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_keeps_finished_hosts_and_closes_every_output(tmp_path, signum):
    base = tmp_path / "scan"
    proc = start_scan(["scan", *SLOW_SCAN, "127.10.12.1-9", "-oA", base,
                       "-oJ", tmp_path / "scan.jsonl"])
    wait_for_text(base.with_suffix(".nmap"), "Nmap scan report for 127.10.12.1")
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    normal = base.with_suffix(".nmap").read_text()
    assert "127.10.12.1" in normal and "127.10.12.9" not in normal
    assert "interrupted" in normal and normal.rstrip().splitlines()[-1].startswith("# Nmap done")
    xml = base.with_suffix(".xml").read_text()
    assert_valid_xml(xml)
    assert 'exit="error"' in xml
    records = [json.loads(line) for line in (tmp_path / "scan.jsonl").read_text().splitlines()]
    assert records[-1]["type"] == "done" and records[-1]["interrupted"] is True


def test_a_killed_scan_keeps_every_finished_host(tmp_path):
    base = tmp_path / "scan"
    proc = start_scan(["scan", *SLOW_SCAN, "127.10.13.1-9", "-oA", base,
                       "-oJ", tmp_path / "scan.jsonl"])
    wait_for_text(base.with_suffix(".gnmap"), "Host: 127.10.13.2 ")
    proc.kill()
    proc.communicate(timeout=30)
    assert "Nmap scan report for 127.10.13.1" in base.with_suffix(".nmap").read_text()
    assert "Host: 127.10.13.1 ()\tPorts:" in base.with_suffix(".gnmap").read_text()
    assert "<address addr=\"127.10.13.1\"" in base.with_suffix(".xml").read_text()
    first = json.loads((tmp_path / "scan.jsonl").read_text().splitlines()[1])
    assert first["type"] == "host" and first["address"] == "127.10.13.1"


# -- progress ------------------------------------------------------------------------------

def read_all(fd: int, proc, timeout: float = 60.0) -> str:
    chunks = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    return b"".join(chunks).decode(errors="replace")


def test_progress_shows_on_a_terminal_only_for_long_scans():
    args = ["scan", "-n", "-Pn", "-p", "1-4000", "--max-rate", "1200", "127.10.14.1"]
    master, slave = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "120", "TERM": "xterm"}
    proc = subprocess.Popen([*NSECLUSTER, *args], stdout=subprocess.DEVNULL, stderr=slave,
                            cwd=REPO, env=env)
    os.close(slave)
    terminal = read_all(master, proc)
    proc.wait(timeout=60)
    os.close(master)
    assert proc.returncode == 0
    assert "Scanning" in terminal and "ports/s" in terminal and "ETA" in terminal
    piped = run_nsecluster(*args)
    assert piped.returncode == 0 and "ports/s" not in piped.stderr
    quick = run_nsecluster("scan", "-n", "-Pn", "-p", "1-10", "127.10.14.1")
    assert quick.stderr == ""


# -- names and reverse DNS, inside a private namespace ---------------------------------------

def test_names_resolve_and_reverse_dns_names_hosts(netns):
    netns.set_resolv_conf("nameserver 127.0.0.53\n")
    (netns.etc / "hosts").write_text("127.0.0.1 localhost\n127.0.0.7 farmhost\n")
    dns = netns.popen(sys.executable, str(REPO / "tests" / "peers.py"), "dns", "127.0.0.53",
                      "53", "8.0.0.127.in-addr.arpa=eight.test.", stdout=subprocess.PIPE,
                      text=True)
    assert dns.stdout.readline().strip() == "ready"
    try:
        proc = run_nsecluster("scan", "-p", "1", "farmhost", "127.0.0.8", "nosuchname.test",
                              "-oX", "-", netns=netns.name, timeout=60)
        system = run_nsecluster("scan", "-sn", "--system-dns", "127.0.0.8", "-oG", "-",
                                netns=netns.name, timeout=60)
        always = run_nsecluster("scan", "-R", "-p", "1", "--dns-servers", "127.0.0.53",
                                "127.0.0.8", "-oG", "-", netns=netns.name, timeout=60)
    finally:
        dns.kill()
    assert "Host: 127.0.0.8 (eight.test)" in system.stdout  # the C library asked the same server
    assert "Host: 127.0.0.8 (eight.test)" in always.stdout
    assert proc.returncode == 1  # one name failed; the others were scanned
    assert 'Failed to resolve "nosuchname.test".' in proc.stderr
    assert "Traceback" not in proc.stderr
    root = etree.fromstring(proc.stdout.encode())
    names = {h.find("address").get("addr"): [(n.get("name"), n.get("type"))
                                             for n in h.iter("hostname")]
             for h in root.iter("host")}
    assert names["127.0.0.7"][0] == ("farmhost", "user")
    assert ("eight.test", "PTR") in names["127.0.0.8"]


def test_host_timeout_and_silent_hosts_in_the_report(netns):
    netns.run("iptables", "-A", "INPUT", "-d", "127.0.0.79", "-j", "DROP")
    netns.run("iptables", "-A", "INPUT", "-d", "127.0.0.80", "-j", "DROP")
    timed_out = run_nsecluster("scan", "-n", "-Pn", "--host-timeout", "500ms",
                               "--initial-rtt-timeout", "5s", "--min-rtt-timeout", "5s",
                               "-p", "1-50", "127.0.0.79", netns=netns.name, timeout=60)
    assert timed_out.returncode == 0, timed_out.stderr
    assert "Skipping host 127.0.0.79 due to host timeout" in timed_out.stdout
    # Unprivileged (connect) discovery: as root, loopback targets are up without a probe.
    down = run_nsecluster("scan", "-n", "-v", "--max-retries", "1", "-p", "80", "127.0.0.80",
                          "127.0.0.1", "-oG", "-", netns=netns.name, timeout=60,
                          env={"NMAP_UNPRIVILEGED": "1"})
    assert "Host: 127.0.0.80 ()\tStatus: Down" in down.stdout
    assert "Host: 127.0.0.1 ()\tStatus: Up" in down.stdout
    assert "(1 host up)" in down.stdout


def test_scripts_without_targets_run_their_prerules_as_nmap_does(tmp_path, nmap_path):
    script = tmp_path / "pre-only.nse"
    script.write_text('description = "x"\ncategories = {"safe"}\n'
                      'prerule = function() return true end\n'
                      'action = function() return "prerule ran" end\n')
    ours = run_nsecluster("scan", "-n", "--script", str(script))
    theirs = subprocess.run([nmap_path, "-n", "--script", str(script)], capture_output=True,
                            text=True, timeout=60)
    for done in (ours, theirs):
        assert done.returncode == 0, done.stderr
        assert "Pre-scan script results:\n|_pre-only: prerule ran\n" in done.stdout
        assert "WARNING: No targets were specified, so 0 hosts scanned." in done.stderr
    without_scripts = run_nsecluster("scan", "-n", "-p", "80")
    assert without_scripts.returncode == 1
    assert without_scripts.stderr == "nsecluster: no targets given (see 'nsecluster scan --help')\n"
