"""Version detection (-sV): the probe-file parser and matcher, then real services on loopback
(OpenSSH, Redis, memcached, http.server in clear and in TLS, FTP and SMTP greeters, a silent
port, a tcpwrapped port, an unknown service) scanned by `nmap -sV` and by us side by side."""
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
from conftest import REPO

from worker.errors import UserError
from worker.protocol import ScanOptions, VersionOptions, decode, encode, GroupJob, Target
from worker.scan.probes import (OWN_PROBE_FILE, anchored_first_bytes, parse_probe_file,
                                probe_database, unescape)
from worker.scan.version import (PortProbing, escape_fp, match_response, probe_order,
                                 service_fingerprint, substitute)

sys.path.insert(0, str(REPO / "tests"))
from version_peers import ServiceFarm  # noqa: E402

SAMPLE = rb"""
# comment
Exclude T:9100-9101
Probe TCP NULL q||
totalwaitms 6000
tcpwrappedms 3000
match ssh m|^SSH-([\d.]+)-Fancy_(\d+)\r\n| p/Fancy sshd/ v/$2/ i/protocol $1/ cpe:/a:fancy:sshd:$2/ cpe:/o:linux:linux_kernel/a
softmatch ftp m|^220[ -]|
match ftp m|^220 FancyFTP ([\w.]+)|i p|Fancy FTP| v/$1/ o/Unix/

Probe TCP Hello q|HELLO\r\n\x00\x41|
rarity 3
ports 7000-7002,7010
sslports 7443
fallback Other
match hello m|^HI ([^\0]+)\0(.)|s p/Hello $P(1)/ v/$I(2,">")/ i/$SUBST(1,"_",".")/ h/$1/ d/router/

Probe TCP Other q|X|
rarity 8
match other m|^O\x4b|
match ftp m|^220 Other FTP\r\n| p/Other FTP/
"""


def db():
    return parse_probe_file(SAMPLE, "sample")


# -- the parser --------------------------------------------------------------------------------

def test_parser_reads_every_directive():
    parsed = db()
    null, hello, other = parsed.probes
    assert (null.name, null.payload, null.totalwait_ms, null.tcpwrapped_ms) == (
        "NULL", b"", 6000, 3000)
    assert hello.payload == b"HELLO\r\n\x00A" and hello.rarity == 3
    assert hello.ports == {7000, 7001, 7002, 7010} and hello.sslports == {7443}
    assert hello.fallbacks == (other,)
    assert ("TCP", 9100) in parsed.excluded and ("UDP", 9100) not in parsed.excluded
    ssh = null.rules[0]
    assert (ssh.service, ssh.soft, ssh.template[0]["p"]) == ("ssh", False, "Fancy sshd")
    assert ssh.template[1] == ["a:fancy:sshd:$2", "o:linux:linux_kernel"]
    assert null.rules[1].soft and null.rules[2].flags == "i"


def test_probe_string_escapes():
    assert unescape(rb"a\r\n\t\0\x41\\\|z\xZZ") == b"a\r\n\t\x00A\\|zxZZ"


@pytest.mark.parametrize("text, message", [
    (b"match x m|a|\n", "line 1: 'match' before any Probe line"),
    (b"Probe TCP A q|x|\nmatch x m|abc\n", "line 2: pattern has no closing delimiter"),
    (b"Probe TCP A q|x|\nmatch x m|a| q/no/\n", "line 2: unknown version field"),
    (b"Probe TCP A q|x|\nrarity high\n", "line 2: bad rarity value"),
    (b"Probe TCP A q|x|\nfallback Nope\n", "fallback probe 'Nope' is not defined"),
    (b"Probe TCP A q|x|\nports 80-70\n", "bad port range"),
])
def test_bad_probe_files_fail_with_one_line_naming_the_place(text, message):
    with pytest.raises(UserError, match=re.escape(message)):
        parse_probe_file(text, "f")


def test_patterns_are_pcre():
    # Constructs Python's re reads differently or not at all.
    rules = parse_probe_file(
        b"Probe TCP A q||\n"
        b"match possessive m|^a++b|\n"
        b"match endz m|^line\\Z|\n"
        b"match branchreset m/^(?|x(\\d)|y(\\d))!/ v/$1/\n"
        b"match octal m|^\\101\\x42|\n", "f").probes[0]
    assert match_response(rules, None, b"aab").service == "possessive"
    assert match_response(rules, None, b"line\n").service == "endz"  # \Z: before a final \n
    found = match_response(rules, None, b"y7!")
    assert (found.service, found.info.version) == ("branchreset", "7")
    assert match_response(rules, None, b"AB").service == "octal"


@pytest.mark.parametrize("pattern, caseless, expected", [
    (rb"^SSH-", False, {ord("S")}),
    (rb"^ssh", True, {ord("s"), ord("S")}),
    (rb"^\x16\x03", False, {0x16}),
    (rb"^\r\n", False, {13}),
    (rb"^\0\0", False, {0}),
    (rb"^\.x", False, {ord(".")}),
    (rb"^220(?: |-)", False, {ord("2")}),
    (rb"^[]|]x(a|b)", False, None),  # can start with ] or |: not one literal
    (rb"^a?b", False, None),
    (rb"^a*b", False, None),
    (rb"^a{0,2}b", False, None),
    (rb"^a+b", False, {ord("a")}),
    (rb"^ab|cd", False, None),  # a top-level alternative is not anchored
    (rb"^a[^]|]b|c", False, None),
    (rb"^a[[:alpha:]|]b", False, {ord("a")}),
    (rb"^\d+", False, None),
    (rb"^\012", False, None),
    (rb"^(?i)a", False, None),
    (rb"^\Qa|b\E", False, None),
    (rb"SSH-", False, None),
])
def test_first_byte_prefilter(pattern, caseless, expected):
    found = anchored_first_bytes(pattern, caseless)
    assert (None if found is None else set(found)) == expected


def _match_without_prefilter(probe, null, data):
    # match_response's rule, over every line of rules_for (no first-byte prefilter): the
    # first hard match, else the first soft match (after which only hard lines of its
    # service count).
    from worker.scan.version import rules_for
    soft = None
    for rule in rules_for(probe, null):
        if soft is not None and (rule.soft or rule.service != soft.service):
            continue
        if rule.search(data) is None:
            continue
        if not rule.soft:
            return rule
        soft = rule
    return soft


PREFILTER_BANNERS = (
    b"SSH-2.0-OpenSSH_9.2p1 Debian\r\n220 x\r\nHTTP/1.0 200",
    b"SSH-2.0-Fancy_1\r\n",
    b"220 FancyFTP 1",
    b"220 fancyftp 2.x",
    b"220 x\r\n",
    b"220 Other FTP\r\n",
    b"HI x\0y",
    b"OK",
    b"\x16\x03\x01\x00",
    b"HTTP/1.0 200 OK\r\n\r\n",
)


def test_prefilter_never_hides_a_match():
    # Every line of the own probe file and of the sample, against several banners as they
    # are and with their first byte replaced by each byte: the prefiltered matcher agrees
    # with trying every line, in every case.
    for parsed in (db(), probe_database(path=OWN_PROBE_FILE)):
        checked = hard = soft = 0
        null = parsed.probe("NULL")
        for probe in parsed.probes:
            for banner in PREFILTER_BANNERS:
                for data in [banner] + [bytes([first]) + banner[1:] for first in range(256)]:
                    want = _match_without_prefilter(probe, null, data)
                    got = match_response(probe, null, data)
                    if want is None:
                        assert got is None, (probe.name, data)
                    else:
                        assert got is not None, (probe.name, data, want.line)
                        assert (got.line, got.soft, got.service) == (
                            want.line, want.soft, want.service), (probe.name, data)
                        if want.soft:
                            soft += 1
                        else:
                            hard += 1
                    checked += 1
        # each database gives hard and soft matches to compare, not only misses
        assert checked > 0 and hard > 0 and soft > 0, (parsed, checked, hard, soft)


# -- the matcher -------------------------------------------------------------------------------

def test_templates_and_helpers():
    parsed = db()
    hello = parsed.probes[1]
    found = match_response(hello, parsed.probes[0], b"HI bi\x01g_box\x00\x01\x02")
    info = found.info
    assert (found.service, info.product, info.version, info.extrainfo, info.hostname,
            info.devicetype) == ("hello", "Hello big_box", "1", "bi\x01g.box", "bi\x01g_box",
                                 "router")
    ssh = match_response(parsed.probes[0], None, b"SSH-2.0-Fancy_42\r\n")
    assert (ssh.info.product, ssh.info.version, ssh.info.extrainfo) == (
        "Fancy sshd", "42", "protocol 2.0")
    assert ssh.info.cpe == ["cpe:/a:fancy:sshd:42", "cpe:/o:linux:linux_kernel"]


def test_substitute_leaves_unknown_dollars():
    assert substitute("cost $5 $X", None) == "cost  $X"


def test_soft_then_hard_match_and_fallbacks():
    parsed = db()
    null, hello, other = parsed.probes
    soft = match_response(null, None, b"220 something\r\n")
    assert (soft.service, soft.soft) == ("ftp", True)
    hard = match_response(null, None, b"220 fancyftp 1.2\r\n")  # the i flag
    assert (hard.service, hard.soft, hard.info.version, hard.info.ostype) == (
        "ftp", False, "1.2", "Unix")
    # Hello's answer falls back on Other's lines, then the NULL probe's.
    assert match_response(hello, null, b"OK").service == "other"
    assert match_response(hello, null, b"SSH-1.99-Fancy_1\r\n").service == "ssh"
    # After a soft match on ftp only ftp lines count.
    assert match_response(hello, null, b"OK", only_service="ftp") is None
    assert match_response(hello, null, b"220 Other FTP\r\n", only_service="ftp").info.product == \
        "Other FTP"


def test_probe_order_ports_first_then_rarity():
    parsed = db()
    assert [p.name for p in probe_order(parsed, 7001, 0, False)] == ["Hello"]
    assert [p.name for p in probe_order(parsed, 80, 2, False)] == []
    assert [p.name for p in probe_order(parsed, 80, 3, False)] == ["Hello"]
    assert [p.name for p in probe_order(parsed, 80, 9, False)] == ["Hello", "Other"]
    assert [p.name for p in probe_order(parsed, 7443, 0, True)] == ["Hello"]


def test_port_probing_byte_by_byte_and_sequence():
    parsed = db()
    probing = PortProbing(parsed, "127.0.0.1", 7001, 7)
    step = probing.start()
    assert (step.kind, step.payload, step.wait_ms) == ("connect", b"", 6000)
    probing.on_connected(0)
    # Nothing from NULL: Hello goes out on the same connection.
    step = probing.on_timeout()
    assert (step.kind, step.payload) == ("send", b"HELLO\r\n\x00A")
    answer = b"HI box\x00\x05"
    for i in range(len(answer) - 1):
        assert probing.on_data(answer[i:i + 1]) is None
    assert probing.on_data(answer[-1:]).kind == "done"
    service = probing.service(None, lambda p: "")
    assert (service.name, service.product, service.version, service.method, service.conf) == (
        "hello", "Hello box", "5", "probed", 10)


def test_tcpwrapped_only_for_a_quick_close_without_data():
    parsed = db()
    quick = PortProbing(parsed, "127.0.0.1", 80, 7)
    quick.start()
    quick.on_connected(1000)
    assert quick.on_eof(1500).kind == "done"
    assert quick.service(None, lambda p: "").name == "tcpwrapped"
    slow = PortProbing(parsed, "127.0.0.1", 80, 9)
    slow.start()
    slow.on_connected(1000)
    assert slow.on_eof(4500).kind == "connect"  # after tcpwrappedms: just the next probe


def test_fingerprint_escapes_and_header():
    parsed = db()
    probing = PortProbing(parsed, "127.0.0.1", 4444, 7)
    probing.start()
    probing.on_data(b"A\"B\\(x) \x00\x01\r\n\t\xff%,")
    probing.on_timeout()
    fp = service_fingerprint(probing, 7, when=0x6B090000, platform="x86_64-pc-linux-gnu")
    assert fp == ('SF-Port4444-TCP:V=7.93%I=7%D=11/27%Time=6B090000%P=x86_64-pc-linux-gnu'
                  '%r(NULL,10,"A\\"B\\\\\\(x\\)\\x20\\0\\x01\\r\\n\\t\\xff%,");')
    assert escape_fp(b"ok") == "ok"
    # As nmap -sV wrote string.punctuation: regex metacharacters (not {}) get a backslash.
    assert escape_fp(b"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~") == \
        "!\\\"#\\$%&'\\(\\)\\*\\+,-\\./:;<=>\\?@\\[\\\\\\]\\^_`{\\|}~"


def test_version_options_cross_the_wire():
    job = GroupJob("s", 0, (Target("127.0.0.1"),),
                   ScanOptions(version=VersionOptions(intensity=2, trace=True)))
    assert decode(encode(job)).options.version == VersionOptions(2, True)
    assert decode(encode(GroupJob("s", 0, (), ScanOptions()))).options.version is None


def test_own_probe_file_parses_and_compiles():
    own = probe_database(path=OWN_PROBE_FILE)
    rules = [r for p in own.probes for r in p.rules]
    assert len(rules) > 20 and all(r.compiled() is not False for r in rules)


def test_bad_intensity_is_a_user_error():
    result = subprocess.run([sys.executable, "-m", "coordinator.cli", "scan", "-sV",
                             "--version-intensity", "10", "127.0.0.1"],
                            capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode != 0
    assert "version-intensity must be between 0 and 9" in result.stderr
    assert "Traceback" not in result.stderr


# -- real services beside nmap -----------------------------------------------------------------

ADDRESS = "127.77.1.1"


def _services(xml_text: str) -> dict[int, dict]:
    root = ET.fromstring(xml_text)
    found = {}
    for port in root.iter("port"):
        service = port.find("service")
        entry = {} if service is None else dict(service.attrib)
        if "servicefp" in entry:  # the same answers; the time stamp is the scan's own
            entry["servicefp"] = re.sub(r"%D=[^%]*%Time=[0-9A-F]+", "", entry["servicefp"])
        entry["cpe"] = [] if service is None else [c.text for c in service.findall("cpe")]
        found[int(port.get("portid"))] = entry
    return found


def test_services_match_nmap(nmap_path, tmp_path):
    nmap = nmap_path
    farm = ServiceFarm(ADDRESS, tmp_path / "farm").start()
    runs: dict[str, subprocess.Popen] = {}
    try:
        ports = ",".join(str(p) for p in farm.ports.values())
        common = ["-sT", "-Pn", "-n", "-sV", "--version-light", "-p", ports, ADDRESS,
                  "-oX", "-"]
        empty = tmp_path / "no-nmap"
        empty.mkdir()
        own_env = dict(os.environ, NMAPDIR=str(empty), NSECLUSTER_NMAP_PREFIXES="",
                       HOME=str(tmp_path))
        runs["nmap"] = subprocess.Popen([nmap, "--unprivileged", *common],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True)
        runs["ours"] = subprocess.Popen([sys.executable, "-m", "coordinator.cli", "scan",
                                         "--unprivileged", *common],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, cwd=REPO)
        runs["own file"] = subprocess.Popen([sys.executable, "-m", "coordinator.cli", "scan",
                                             "--unprivileged", *common],
                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                            text=True, cwd=REPO, env=own_env)
        outputs = {}
        for name, process in runs.items():
            out, err = process.communicate(timeout=120)
            assert process.returncode == 0, f"{name}: {err}"
            outputs[name] = _services(out)
    finally:
        # a timeout or a failed assertion leaves the other scans running: end them
        for process in runs.values():
            if process.poll() is None:
                process.kill()
            process.communicate()
        farm.stop()
    nmap_found, ours, own = outputs["nmap"], outputs["ours"], outputs["own file"]
    p = farm.ports
    # What Nmap says about these services (so the comparison below compares something).
    assert nmap_found[p["ssh"]]["product"] == "OpenSSH"
    assert nmap_found[p["https"]]["tunnel"] == "ssl"
    assert nmap_found[p["wrapped"]]["name"] == "tcpwrapped"
    assert nmap_found[p["odd"]]["servicefp"].startswith(f"SF-Port{p['odd']}-TCP:")
    assert (nmap_found[p["tls-quiet"]]["name"], nmap_found[p["tls-quiet"]]["tunnel"]) == (
        "unknown", "ssl")
    assert ours == nmap_found
    # Without Nmap's data: our own probe file names the same services.
    names = {port: entry.get("name") for port, entry in nmap_found.items()}
    assert {port: entry.get("name") for port, entry in own.items()} == names
    assert own[p["https"]]["tunnel"] == "ssl"
    assert own[p["ssh"]]["product"] == "OpenSSH" and own[p["redis"]]["name"] == "redis"
