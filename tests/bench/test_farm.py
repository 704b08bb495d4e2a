"""Real tests of the loopback target farm (bench.farm) and of the benchmark's
output parsers (bench.portscan).  Only 127.5.0.0/16 is used; each test has
its own /24 so that tests may run in parallel."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench import farm as farm_mod  # noqa: E402
from bench.farm import (  # noqa: E402
    Farm,
    FarmError,
    FarmSpec,
    banner_for,
    foreign_open_ports,
    many_hosts,
    many_hosts_addresses,
    many_hosts_targets,
    one_host_many_ports,
)
from bench.portscan import diff_open, parse_grepable, parse_output, parse_xml  # noqa: E402

PORTS = (2222, 2525, 8080)


def read_banner(ip: str, port: int, timeout: float = 5.0) -> bytes:
    with socket.create_connection((ip, port), timeout=timeout) as s:
        data = b""
        for _ in range(64):  # bounded
            chunk = s.recv(256)
            if not chunk:
                break
            data += chunk
            if b"\n" in data:
                break
        return data


def refuses(ip: str, port: int) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=5):
            return False
    except ConnectionRefusedError:
        return True


def listening_on(prefix: str) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {}
    for ip, port in farm_mod._proc_listeners():
        if ip.startswith(prefix):
            out.setdefault(ip, set()).add(port)
    return out


# --------------------------------------------------------------------------
# Specs


def test_many_hosts_spec_shape():
    spec = many_hosts(count=1000)
    assert len(spec.hosts) == 1000
    assert spec.hosts[0] == "127.4.0.1" and spec.hosts[-1] == "127.4.3.250"
    assert many_hosts_targets(1000) == ["127.4.0-3.1-250"]
    assert many_hosts_targets(5, "127.5.0.0") == ["127.5.0.1-5"]
    assert many_hosts_targets(251, "127.5.0.0") == ["127.5.0.1-250", "127.5.1.1"]
    assert len(many_hosts_addresses(251, "127.5.0.0")) == 251
    # about 2 of 3 ports open, some hosts entirely closed, all within the ports
    n_open = len(spec.listeners)
    assert 1800 < n_open < 2200
    assert {p for _, p in spec.listeners} == {22, 80, 443}
    exp = spec.expected_open()
    assert 0 < 1000 - len(exp) < 100
    assert set(exp) <= set(spec.hosts)
    # deterministic by seed
    assert many_hosts(count=1000) == spec
    assert many_hosts(count=1000, seed=2) != spec


def test_spec_rejects_non_loopback_and_bad_ports():
    with pytest.raises(ValueError):
        FarmSpec(listeners=(("10.0.0.1", 80),))
    with pytest.raises(ValueError):
        FarmSpec(listeners=(("127.5.0.1", 0),))
    with pytest.raises(ValueError):
        FarmSpec(listeners=(("127.5.0.1", 80), ("127.5.0.1", 80)))
    with pytest.raises(ValueError):
        many_hosts(count=3, base="192.168.0.0")
    with pytest.raises(ValueError):
        one_host_many_ports(ip="8.8.8.8")
    spec = FarmSpec(listeners=(("127.5.0.1", 80),), hosts=("127.5.0.2",))
    assert FarmSpec.from_json(spec.to_json()) == spec
    assert spec.all_hosts() == ["127.5.0.2", "127.5.0.1"]


def test_one_host_many_ports_deterministic_and_skips_busy_ports():
    ip = "127.5.1.1"
    a = one_host_many_ports(ip, open_count=60, seed=7)
    b = one_host_many_ports(ip, open_count=60, seed=7)
    assert a == b
    ports = [p for _, p in a.listeners]
    assert len(ports) == 60 and all(1 <= p <= 65535 for p in ports)
    assert {22, 25, 21} <= set(ports)  # well-known ports come first
    assert max(ports) > 10000  # spread over the whole range
    busy = ports[-1]
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((ip, busy))
        s.listen()
        c = one_host_many_ports(ip, open_count=60, seed=7)
        assert busy not in {p for _, p in c.listeners}
        assert len(c.listeners) == 60


def test_banners():
    assert banner_for("127.5.0.1", 22) == b"SSH-2.0-FarmSSH_1.0\r\n"
    assert banner_for("127.5.0.1", 2525) == b"220 farm ESMTP\r\n"
    assert banner_for("127.5.0.1", 8080) == b"farm 127.5.0.1:8080\r\n"


# --------------------------------------------------------------------------
# A running farm


def test_farm_banners_closed_ports_and_clean_stop():
    spec = many_hosts(count=5, ports=PORTS, base="127.5.2.0", seed=3)
    expected = spec.expected_open()
    assert expected, "seed 3 must open something"
    with Farm(spec) as farm:
        assert farm.running
        assert farm.expected_open() == expected
        # expected_open matches what the kernel says is listening
        assert listening_on("127.5.2.") == expected
        for ip in spec.hosts:
            for port in PORTS:
                if port in expected.get(ip, set()):
                    assert read_banner(ip, port) == banner_for(ip, port)
                else:
                    assert refuses(ip, port), f"{ip}:{port} should be closed"
        # a client that sends something is answered with a close
        ip, port = spec.listeners[0]
        with socket.create_connection((ip, port), timeout=5) as s:
            s.recv(256)
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            s.settimeout(5)
            rest = b""
            for _ in range(16):
                try:
                    chunk = s.recv(256)
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                rest += chunk
            assert rest == b""
    assert not farm.running
    # every port is free again and refuses connections
    assert listening_on("127.5.2.") == {}
    for ip, port in spec.listeners:
        assert refuses(ip, port)
        assert farm_mod.port_is_free(ip, port)
    farm.stop()  # idempotent


def test_farm_closes_idle_connections_after_timeout():
    spec = FarmSpec(listeners=(("127.5.3.1", 2222),))
    with Farm(spec, conn_timeout=0.3):
        with socket.create_connection(("127.5.3.1", 2222), timeout=5) as s:
            data = b""
            t0 = time.monotonic()
            for _ in range(16):
                chunk = s.recv(256)
                if not chunk:
                    break
                data += chunk
            assert data == b"SSH-2.0-FarmSSH_1.0\r\n"
            assert time.monotonic() - t0 < 4


def test_farm_survives_bursts():
    spec = many_hosts(count=4, ports=(2222, 8080, 9090), base="127.5.4.0", seed=1)
    listeners = list(spec.listeners)
    with Farm(spec) as farm:
        # many short connections in a row
        t0 = time.monotonic()
        for i in range(2000):
            ip, port = listeners[i % len(listeners)]
            assert read_banner(ip, port) == banner_for(ip, port)
        rate = 2000 / (time.monotonic() - t0)
        # many connections held open at once
        held = []
        try:
            for i in range(400):
                ip, port = listeners[i % len(listeners)]
                held.append(socket.create_connection((ip, port), timeout=5))
            for s in held:
                assert s.recv(256).endswith(b"\r\n")
        finally:
            for s in held:
                s.close()
        assert farm.running
    assert rate > 200, f"only {rate:.0f} connections/s"


def test_farm_start_fails_when_port_taken():
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.5.5.1", 4444))
        s.listen()
        farm = Farm(FarmSpec(listeners=(("127.5.5.1", 4443), ("127.5.5.1", 4444))))
        with pytest.raises(FarmError, match="127.5.5.1:4444"):
            farm.start()
        assert not farm.running
    assert farm_mod.port_is_free("127.5.5.1", 4443)


def test_farm_exits_when_parent_goes_away():
    farm = Farm(FarmSpec(listeners=(("127.5.6.1", 2222),))).start()
    proc = farm._proc
    proc.stdin.close()  # what happens when the parent dies
    proc.wait(timeout=10)
    assert proc.returncode == 0
    farm.stop()
    assert refuses("127.5.6.1", 2222)


def test_foreign_open_ports_sees_other_listeners():
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.5.7.1", 5555))
        s.listen()
        found = foreign_open_ports(["127.5.7.1", "127.5.7.2"])
        assert 5555 in found["127.5.7.1"]
        assert 5555 not in found.get("127.5.7.2", set())
        assert 5555 not in foreign_open_ports(["127.5.7.1"], exclude={"127.5.7.1": [5555]}).get("127.5.7.1", set())
        assert foreign_open_ports(["127.5.7.1"], ports=[5556]) == {}


def test_command_line_prints_expected_json():
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.farm", "--many-hosts", "3", "--base", "127.5.8.0", "--ports", "2222,8080"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, cwd=str(REPO_ROOT), text=True,
    )
    try:
        line = proc.stdout.readline()
        got = {ip: set(ps) for ip, ps in json.loads(line).items()}
        assert got == many_hosts(3, (2222, 8080), "127.5.8.0").expected_open()
        ip = next(iter(got))
        port = min(got[ip])
        assert read_banner(ip, port) == banner_for(ip, port)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    assert proc.returncode == 0
    assert "READY" in proc.stderr.read()
    assert refuses(ip, port)


# --------------------------------------------------------------------------
# Output parsers

GREPABLE = """\
# Nmap 7.93 scan initiated Thu Nov 26 21:58:08 2026 as: nmap -oG - 127.3.0.1
Host: 127.3.0.1 ()\tStatus: Up
Host: 127.3.0.1 ()\tPorts: 22/open/tcp//ssh///, 80/closed/tcp//http///, 161/open|filtered/udp//snmp///, \
8080/open/tcp//http-proxy///\tIgnored State: closed (65532)
Host: 127.3.0.2 ()\tStatus: Up
Host: 127.3.0.2 ()\tPorts: 22/closed/tcp//ssh///, 80/closed/tcp//http///
Host: 127.3.0.3 ()\tStatus: Down
# Nmap done at Thu Nov 26 21:58:09 2026 -- 3 IP addresses (2 hosts up) scanned in 1.61 seconds
"""

XML = """\
<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE nmaprun>
<?xml-stylesheet href="file:///usr/bin/../share/nmap/nmap.xsl" type="text/xsl"?>
<nmaprun scanner="nmap" args="nmap -oX -" start="1" version="7.93" xmloutputversion="1.05">
<host><status state="up" reason="user-set"/><address addr="127.3.0.1" addrtype="ipv4"/>
<ports><extraports state="closed" count="65532"/>
<port protocol="tcp" portid="22"><state state="open" reason="syn-ack"/></port>
<port protocol="tcp" portid="80"><state state="closed" reason="conn-refused"/></port>
<port protocol="udp" portid="161"><state state="open" reason="udp-response"/></port>
<port protocol="tcp" portid="8080"><state state="open" reason="syn-ack"/></port>
</ports></host>
<host><status state="up"/><address addr="127.3.0.2" addrtype="ipv4"/><ports/></host>
<host><status state="down"/><address addr="127.3.0.3" addrtype="ipv4"/></host>
<runstats><finished time="2"/><hosts up="2" down="1" total="3"/></runstats>
</nmaprun>
"""


def test_parse_static_grepable_and_xml():
    for res in (parse_grepable(GREPABLE), parse_xml(XML), parse_output(GREPABLE), parse_output("noise\n" + XML)):
        assert res.open == {"127.3.0.1": {22, 8080}}
        assert res.up == {"127.3.0.1", "127.3.0.2"}
    assert parse_grepable("") .open == {}
    with pytest.raises(ValueError):
        parse_xml("no xml here")


def test_diff_open():
    d = diff_open({"127.5.0.1": {1, 2}}, {"127.5.0.1": {2, 3}, "127.5.0.2": {4}})
    assert (d["missing"], d["extra"]) == (2, 1)
    assert d["extra_examples"] == ["127.5.0.1:1"]


@pytest.mark.parametrize("fmt", ["-oG", "-oX"])
def test_parsers_on_real_nmap_output_of_the_farm(nmap_path, fmt):
    base = "127.5.9.0" if fmt == "-oG" else "127.5.10.0"
    spec = many_hosts(count=6, ports=PORTS, base=base, seed=5)
    targets = many_hosts_targets(6, base)
    with Farm(spec) as farm:
        expected = farm.expected_open()
        for ip, ps in foreign_open_ports(spec.hosts, PORTS, exclude=expected).items():
            expected.setdefault(ip, set()).update(ps)
        r = subprocess.run(
            [nmap_path, "--unprivileged", "-sT", "-n", "-Pn", "-p", ",".join(map(str, PORTS)), *targets, fmt, "-"],
            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        )
    assert r.returncode == 0, r.stderr
    res = parse_output(r.stdout)
    assert res.open == expected
    assert res.up == set(spec.hosts)


@pytest.mark.usefixtures("nmap_path")
def test_portscan_harness_with_nmap_only(tmp_path, capsys):
    from bench import portscan

    out = tmp_path / "bench.json"
    rc = portscan.main([
        "--tools", "nmap", "--runs", "1", "--workload", "all",
        "--one-host-ip", "127.5.11.1", "--open-count", "30",
        "--hosts", "20", "--many-hosts-base", "127.5.12.0",
        "--json", str(out),
    ])
    report = capsys.readouterr().out
    assert rc == 0, report
    assert "workload one-host" in report and "workload many-hosts" in report
    doc = json.loads(out.read_text())
    assert doc["tools"]["nmap"]["version"].startswith("Nmap version")
    assert doc["machine"]["cpus"] >= 1
    names = {w["name"]: w for w in doc["workloads"]}
    assert names["one-host"]["summary"]["all_match_expected"]
    assert names["many-hosts"]["summary"]["all_match_expected"]
    assert names["many-hosts"]["runs"][0]["hosts_up"] == 20
    assert names["one-host"]["expected_open_ports"] >= 30
    run = names["one-host"]["runs"][0]
    assert run["ok"] and run["wall_s"] > 0 and run["peak_rss_mb"] > 1
