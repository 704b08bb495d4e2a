"""scripts/redis-info.nse and scripts/memcached-info.nse beside Nmap's scripts of the same
names: a real redis-server (127.0.0.61, with a Pub/Sub subscriber connected from
127.0.0.70), a real redis-server that wants a password (127.0.0.63), a real memcached
(127.0.0.62), and small fake servers (127.0.0.64-69, .78, .79 for Redis, 127.0.0.71-76 for
memcached)
that answer with chosen replies: every field, garbage, NOAUTH, errors, early closes, slow
and byte-at-a-time delivery. One scan of each kind serves many assertions.

Where Nmap 7.93's script fails ("ERROR: Script execution failed", or an empty output it
reports as "Bug in ...: no string output") ours gives a clean result instead; those cases are
checked on ours alone. A seeded fuzz run sends random and mutated replies to ours."""
from __future__ import annotations

import calendar
import random
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from banner_peer import (BannerPeers, UdpMemcached, array, bulk, hold, line_server,
                         resp_server, scan, scan_both, serving, stats, stop_process)
from nse_support import host as scanned_host
from nse_support import run
from tcp_peer import read_line
from script_support import ScriptResult, assert_same

REPO = Path(__file__).resolve().parents[2]
REDIS, REDIS_AUTH, MEMCACHED = "127.0.0.61", "127.0.0.63", "127.0.0.62"
SUBSCRIBER = "127.0.0.70"
VOLATILE_REDIS = ("Used CPU (sys)", "Used CPU (user)", "Used memory")


def same_but(ours: ScriptResult, theirs: ScriptResult, volatile_keys):
    """Equal output and structure, except the values of the top-level ``volatile_keys``
    (which change from one moment to the next)."""
    def masked_text(text):
        lines = []
        for line in (text or "").split("\n"):
            key = line.strip().split(": ", 1)[0]
            lines.append(f"  {key}: *" if key in volatile_keys else line)
        return "\n".join(lines)

    def masked_tree(tree):
        return [(k, "*" if k in volatile_keys else v) for k, v in tree or []]

    assert masked_text(ours.output) == masked_text(theirs.output), (
        f"output differs\n--- ours\n{ours.output}\n--- nmap\n{theirs.output}")
    assert masked_tree(ours.structure) == masked_tree(theirs.structure)


def wait_for_port(address: str, port: int, limit_s: float = 10.0):
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((address, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on {address}:{port}")


def start(command: list[str], address: str, port: int, cwd: Path) -> subprocess.Popen:
    path = shutil.which(command[0])
    assert path, f"{command[0]} is required (.ci/setup installs it)"
    proc = subprocess.Popen([path, *command[1:]], cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_for_port(address, port)
    except AssertionError:
        proc.kill()
        proc.wait(timeout=10)
        raise
    return proc


def redis_command(*words: str) -> bytes:
    return b"*%d\r\n" % len(words) + b"".join(bulk(w) for w in words)


# ------------------------------------------------------------------------------ real Redis

@pytest.fixture(scope="module")
def redis(tmp_path_factory):
    directory = tmp_path_factory.mktemp("redis")
    common = ["--port", "6379", "--save", "", "--appendonly", "no", "--daemonize", "no"]
    # Protected mode would turn away the subscriber from 127.0.0.70 (not 127.0.0.1).
    plain = start(["redis-server", "--bind", REDIS, *common, "--protected-mode", "no"],
                  REDIS, 6379, directory)
    try:
        locked = start(["redis-server", "--bind", REDIS_AUTH, *common,
                        "--requirepass", "s3cret"], REDIS_AUTH, 6379, directory)
    except AssertionError:
        stop_process(plain)
        raise
    subscriber = socket.socket()
    try:
        subscriber.bind((SUBSCRIBER, 0))
        subscriber.settimeout(5)
        subscriber.connect((REDIS, 6379))
        subscriber.sendall(redis_command("SUBSCRIBE", "news", "alerts"))
        got = b""
        while got.count(b"subscribe") < 2 and len(got) < 4096:
            piece = subscriber.recv(4096)
            assert piece, "the subscriber's connection closed"
            got += piece
        version = subprocess.run(["redis-server", "--version"], capture_output=True,
                                 text=True, timeout=10).stdout.split("v=")[1].split()[0]
        yield {"plain": plain, "locked": locked, "version": version}
    finally:
        subscriber.close()
        stop_process(plain)
        stop_process(locked)


@pytest.fixture(scope="module")
def real_redis_scan(redis, tmp_path_factory):
    """One scan of both real servers, ours then nmap (one at a time, so each is the only
    scanner connected)."""
    return scan_both(tmp_path_factory.mktemp("redis-scan"), [REDIS, REDIS_AUTH], [6379],
                     "redis-info", parallel=False)


def test_real_redis_equals_nmap(real_redis_scan):
    (ours, _, _), (theirs, _, _) = real_redis_scan
    same_but(ours[(REDIS, 6379)], theirs[(REDIS, 6379)], VOLATILE_REDIS)
    assert ours[("service", REDIS, 6379)] == theirs[("service", REDIS, 6379)]


def test_real_redis_fields(real_redis_scan, redis):
    (ours, _, _), _ = real_redis_scan
    tree = dict(ours[(REDIS, 6379)].structure)
    assert list(tree) == ["Version", "Operating System", "Architecture", "Process ID",
                          "Used CPU (sys)", "Used CPU (user)", "Connected clients",
                          "Connected slaves", "Used memory", "Role", "Bind addresses",
                          "Active channels", "Client connections"]
    assert tree["Version"] == redis["version"]
    assert tree["Architecture"] == "64 bits"
    assert tree["Process ID"] == str(redis["plain"].pid)
    assert tree["Connected clients"] == "2"  # the subscriber and the script
    assert tree["Connected slaves"] == "0" and tree["Role"] == "master"
    assert tree["Bind addresses"] == [(None, REDIS)]
    assert sorted(v for _, v in tree["Active channels"]) == ["alerts", "news"]
    assert tree["Client connections"] == [(None, "127.0.0.1"), (None, SUBSCRIBER)]
    service = ours[("service", REDIS, 6379)]
    assert service["version"] == redis["version"] and service["extrainfo"] == "64 bits"
    assert service["method"] == "probed"


def test_redis_wanting_a_password_gives_nothing_without_one(real_redis_scan):
    (ours, _, _), (theirs, _, _) = real_redis_scan
    assert (REDIS_AUTH, 6379) not in ours and (REDIS_AUTH, 6379) not in theirs


def test_redis_password_from_creds_arguments(redis, tmp_path):
    (ours, _, _), (theirs, _, _) = scan_both(tmp_path, REDIS_AUTH, [6379], "redis-info",
                                             args="creds.redis=:s3cret", parallel=False)
    same_but(ours[(REDIS_AUTH, 6379)], theirs[(REDIS_AUTH, 6379)], VOLATILE_REDIS)
    assert dict(ours[(REDIS_AUTH, 6379)].structure)["Version"] == redis["version"]


# ------------------------------------------------------------------------------ fake Redis

FULL_INFO = ("# Server\r\nredis_version:9.9.9\r\nos:TestOS 1.0\r\narch_bits:32\r\n"
             "process_id:4242\r\nused_cpu_sys:1.5\r\nused_cpu_user:2.25\r\n"
             "connected_clients:7\r\nconnected_slaves:2\r\nused_memory_human:5.00M\r\n"
             "role:slave\r\nextra:thing\r\n")
FULL = {
    "INFO": bulk(FULL_INFO),
    "CONFIG GET BIND": array("bind", "10.0.0.2 * -::1  192.168.1.1"),
    "PUBSUB CHANNELS": array("zeta", "alpha", "", "x\x01y"),
    "CLIENT LIST": bulk(
        "id=3 addr=10.0.0.9:5000 fd=8\nid=4 addr=127.0.0.1:5001 laddr=9.9.9.9:1\n"
        "id=5 addr=10.0.0.9:5002\nid=6 addr=[::1]:6000\nid=7 addr=9.1.1.1:1\n"
        "id=8 addr=host.name:5\nid=9 addr=1.1.1.7:5x\nid=10 xaddr=1.1.1.8:5\n"
        "id=11 addr=0:0:0:0:0:0:0:7:1\nid=12 addr=1.1.1.013:5\r\nid=13 addr=999.1.1.1:5\n"),
    "CLUSTER NODES": bulk(
        "07c37dfe 127.0.0.1:30004@31004 slave e7d1eecc 0 1426238317239 4 connected\n"
        "67ed2db8 127.0.0.1:30002@31002 myself,master - 0 1426238316232 2 connected 0-5460\n"
        "aaa :0@0 master,noaddr - 0 0 2 disconnected\nccc 10.0.0.1:7001@17001,host slave\n"
        "ddd 10.0.0.3:7002 master - 0 0 4 connected\nggg 1.2.3.4:1@2 master\n"
        "  a5 1.2.3.4:5@2 master\na7\t1.2.3.7@2\tmaster\nab 1.2.3.4:11@2 \nshortline\n"),
}
FULL_OUTPUT = """
  Version: 9.9.9
  Operating System: TestOS 1.0
  Architecture: 32 bits
  Process ID: 4242
  Used CPU (sys): 1.5
  Used CPU (user): 2.25
  Connected clients: 7
  Connected slaves: 2
  Used memory: 5.00M
  Role: slave
  Bind addresses: 
    10.0.0.2
    *
    -::1
    0.0.0.0
    192.168.1.1
  Active channels: 
    zeta
    alpha
    
    x\\x01y
  Client connections: 
    1.1.1.13
    9.1.1.1
    10.0.0.9
    127.0.0.1
    ::1
    ::7
  Cluster nodes: 
    127.0.0.1:30004 (slave)
    127.0.0.1:30002 (myself,master)
    :0 (master,noaddr)
    10.0.0.3:7002 (master)
    1.2.3.7 (master)"""


FAKE_REDIS = {
    "127.0.0.64": resp_server(FULL),
    "127.0.0.65": resp_server({"INFO": b"hello there\r\n"}),
    "127.0.0.66": resp_server({"INFO": b"-NOAUTH Authentication required.\r\n"}),
    "127.0.0.67": resp_server({"INFO": None}),
    "127.0.0.68": resp_server({"INFO": bulk("redis_version:1.2.3\r\narch_bits:64\r\n"),
                               "CONFIG GET BIND": (b"$100\r\nshort", "close")}),
    "127.0.0.69": resp_server(FULL, most=16, gap_s=0.002),  # a byte at a time
    # A repeated INFO field (the last counts), a bind reply without the value, a status
    # reply where an array belongs (no channels) and one for CLIENT LIST (read as text).
    "127.0.0.78": resp_server({"INFO": bulk("redis_version:1\r\nredis_version:2\r\nrole:a\r\n"
                                            "role:b\r\n"),
                               "CONFIG GET BIND": b"*1\r\n$4\r\nbind\r\n",
                               "PUBSUB CHANNELS": b"+OK\r\n",
                               "CLIENT LIST": b"+id=1 addr=1.2.3.4:5\r\n",
                               "CLUSTER NODES": b"+abc 1.2.3.4:1@2 master\r\n"}),
    # The last INFO line needs no CRLF.
    "127.0.0.79": resp_server({"INFO": bulk("os:a\r\nredis_version:1"),
                               "CONFIG GET BIND": array("bind", "1.1.1.1")}),
}


@pytest.fixture(scope="module")
def fake_redis_scan(tmp_path_factory):
    with serving(FAKE_REDIS, 6379):
        yield scan_both(tmp_path_factory.mktemp("fake-redis"), list(FAKE_REDIS), [6379],
                        "redis-info")


@pytest.mark.parametrize("address", sorted(FAKE_REDIS))
def test_fake_redis_equals_nmap(fake_redis_scan, address):
    (ours, _, _), (theirs, _, _) = fake_redis_scan
    key = (address, 6379)
    assert_same(ours.get(key, ScriptResult(None, None, "")),
                theirs.get(key, ScriptResult(None, None, "")))
    assert ours[("service", address, 6379)] == theirs[("service", address, 6379)]


def test_fake_redis_concrete(fake_redis_scan):
    (ours, _, _), _ = fake_redis_scan
    assert ours[("127.0.0.64", 6379)].output == FULL_OUTPUT
    assert ours[("127.0.0.69", 6379)].output == FULL_OUTPUT  # byte at a time
    for address in ("127.0.0.65", "127.0.0.66", "127.0.0.67"):
        assert (address, 6379) not in ours  # garbage, NOAUTH, closed
    assert ours[("127.0.0.68", 6379)].output == "\n  Version: 1.2.3\n  Architecture: 64 bits"
    assert ours[("127.0.0.78", 6379)].output == (
        "\n  Version: 2\n  Role: b\n  Client connections: \n    1.2.3.4")
    assert ours[("127.0.0.79", 6379)].output == (
        "\n  Version: 1\n  Operating System: a\n  Bind addresses: \n    1.1.1.1")
    service = ours[("service", "127.0.0.64", 6379)]
    assert (service["version"], service["extrainfo"]) == ("9.9.9", "32 bits")


NMAP_FAILS_REDIS = {
    # Nmap 7.93: "ERROR: Script execution failed" (a null array, an array for INFO), and an
    # empty output ("Bug in redis-info: no string output") when nothing is found.
    "127.0.0.71": resp_server({"INFO": bulk("redis_version:2\r\n"),
                               "CONFIG GET BIND": array("bind", "1.2.3.4"),
                               "PUBSUB CHANNELS": b"*-1\r\n"}),
    "127.0.0.72": resp_server({"INFO": b"*1\r\n$17\r\nredis_version:4\r\n\r\n",
                               "CONFIG GET BIND": array("bind", "1.2.3.4")}),
    "127.0.0.73": resp_server({"INFO": bulk("x:y\r\n"), "CONFIG GET BIND": b"*0\r\n",
                               "PUBSUB CHANNELS": b"*0\r\n", "CLIENT LIST": bulk("")}),
}


def test_where_nmap_fails_ours_is_clean(tmp_path):
    with serving(NMAP_FAILS_REDIS, 6379):
        ours, _, _ = scan("ours", tmp_path, list(NMAP_FAILS_REDIS), [6379], "redis-info")
    assert ours[("127.0.0.71", 6379)].output == (
        "\n  Version: 2\n  Bind addresses: \n    1.2.3.4")
    assert ours[("127.0.0.72", 6379)].output == "\n  Bind addresses: \n    1.2.3.4"
    assert ("127.0.0.73", 6379) not in ours


# ------------------------------------------------------------------------------ memcached

@pytest.fixture(scope="module")
def memcached(tmp_path_factory):
    proc = start(["memcached", "-l", MEMCACHED, "-p", "11211", "-U", "0", "-u", "root"],
                 MEMCACHED, 11211, tmp_path_factory.mktemp("memcached"))
    yield proc
    stop_process(proc)


def test_real_memcached_equals_nmap(memcached, tmp_path):
    (ours, _, _), (theirs, _, _) = scan_both(tmp_path, MEMCACHED, [11211], "memcached-info",
                                             parallel=False)
    same_but(ours[(MEMCACHED, 11211)], theirs[(MEMCACHED, 11211)],
             ("Uptime", "Server time", "Used CPU (user)", "Used CPU (system)",
              "Total connections", "Current connections"))
    tree = dict(ours[(MEMCACHED, 11211)].structure)
    assert list(tree) == ["Process ID", "Uptime", "Server time", "Architecture",
                          "Used CPU (user)", "Used CPU (system)", "Current connections",
                          "Total connections", "Maximum connections", "TCP Port",
                          "UDP Port", "Authentication"]
    assert tree["Process ID"] == str(memcached.pid)
    assert tree["Architecture"] == "64 bit"
    assert (tree["TCP Port"], tree["UDP Port"]) == ("11211", "0")
    # The script's own connection (the port scan's may not be gone yet).
    assert tree["Current connections"] in ("1", "2") and tree["Authentication"] == "no"
    assert tree["Maximum connections"] == "1024"
    shown = calendar.timegm(time.strptime(tree["Server time"], "%Y-%m-%dT%H:%M:%S"))
    assert abs(shown - time.time()) < 120  # the server's clock, in UTC


MC_FULL = {"stats": stats(pid=77, uptime=5, time=1700000000, version="1.2", pointer_size=32,
                          rusage_user="1.5", rusage_system="0.25", max_connections=10,
                          curr_connections=3, total_connections=9),
           "stats settings": stats(tcpport=1234, udpport=4321, auth_enabled_sasl="yes",
                                   maxconns=99)}
MC_FULL_OUTPUT = """
  Process ID: 77
  Uptime: 5 seconds
  Server time: 2023-11-14T22:13:20
  Architecture: 32 bit
  Used CPU (user): 1.5
  Used CPU (system): 0.25
  Current connections: 3
  Total connections: 9
  Maximum connections: 99
  TCP Port: 1234
  UDP Port: 4321
  Authentication: yes"""


def mc_trickle(conn, stopping):
    """Both replies one byte at a time, the first with a line after its END."""
    replies = [b"STAT pid 5\r\nSTAT uptime 0x10\r\nEND\r\nSTAT time 1e3\r\n",
               b"STAT pointer_size 64 extra\r\nSTAT rusage_user  2\r\nSTAT\tcurr_connections 4"
               b"\r\nstat total_connections 5\r\nSTAT nokv\r\nERROR\r\n"]
    buffer = bytearray()
    for reply in replies:
        if read_line(conn, buffer) is None:
            return
        for i in range(len(reply)):
            conn.sendall(reply[i:i + 1])
            time.sleep(0.002)
    hold(conn, stopping, 5)


FAKE_MEMCACHED = {
    "127.0.0.71": line_server(MC_FULL),
    "127.0.0.72": line_server({"stats": b"garbage\r\n"}),
    "127.0.0.73": line_server({"stats": None}),
    "127.0.0.74": line_server({"stats": stats(pid=1), "stats settings": None}),
    "127.0.0.75": mc_trickle,
    "127.0.0.76": line_server({"stats": b"STAT pid 5\nSTAT uptime 3\nEND\n"}),  # LF only
}


@pytest.fixture(scope="module")
def fake_memcached_scan(tmp_path_factory):
    with serving(FAKE_MEMCACHED, 11211):
        yield scan_both(tmp_path_factory.mktemp("fake-memcached"), list(FAKE_MEMCACHED),
                        [11211], "memcached-info")


@pytest.mark.parametrize("address", sorted(FAKE_MEMCACHED))
def test_fake_memcached_equals_nmap(fake_memcached_scan, address):
    (ours, _, _), (theirs, _, _) = fake_memcached_scan
    key = (address, 11211)
    assert_same(ours.get(key, ScriptResult(None, None, "")),
                theirs.get(key, ScriptResult(None, None, "")))


def test_fake_memcached_concrete(fake_memcached_scan):
    (ours, taken, _), _ = fake_memcached_scan
    assert ours[("127.0.0.71", 11211)].output == MC_FULL_OUTPUT
    assert ours[("127.0.0.75", 11211)].output == (
        "\n  Process ID: 5\n  Uptime: 16 seconds\n  Server time: 1970-01-01T00:16:40"
        "\n  Architecture: 64 extra bit\n  Used CPU (user):  2")
    for address in ("127.0.0.72", "127.0.0.73", "127.0.0.74", "127.0.0.76"):
        assert (address, 11211) not in ours
    assert taken < 30  # the garbage and LF-only replies end at the 1 s read timeout


def test_memcached_where_nmap_fails_ours_is_clean(tmp_path):
    """Nmap 7.93 fails on an uptime that is not a whole number, and gives an empty output
    for two ERROR replies."""
    handlers = {"127.0.0.64": line_server({"stats": stats(uptime="1.5", pid=3),
                                           "stats settings": stats(tcpport=2)}),
                "127.0.0.65": line_server({})}
    with serving(handlers, 11211):
        ours, _, _ = scan("ours", tmp_path, list(handlers), [11211], "memcached-info")
    assert ours[("127.0.0.64", 11211)].output == "\n  Process ID: 3\n  TCP Port: 2"
    assert ("127.0.0.65", 11211) not in ours


# ------------------------------------------------------------------------------ fuzz

def mutate(rng: random.Random, data: bytes) -> bytes:
    data = bytearray(data)
    for _ in range(rng.randrange(1, 6)):
        choice = rng.randrange(4)
        if choice == 0 and data:
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif choice == 1 and data:
            del data[rng.randrange(len(data)):]
        elif choice == 2:
            at = rng.randrange(len(data) + 1)
            data[at:at] = rng.choice([b"\r\n", b"$-1\r\n", b"*3\r\n", b"$99999\r\n", b":5\r\n",
                                      b"END\r\n", b"STAT ", b"\x00\xff", b"*-1\r\n"])
        elif data:
            at = rng.randrange(len(data))
            data[at:at] = data[at:at + rng.randrange(1, 50)]
    return bytes(data)


def fuzz_handler(seed: int, replies: list[bytes], pieces: bool):
    """Answer each request with the next of ``replies`` mutated (seeded), maybe in small
    pieces, then close when they run out."""
    def handler(conn, stopping):
        rng = random.Random(seed)
        conn.settimeout(0.5)  # a script left waiting gets the close soon
        for reply in replies:
            try:
                if not conn.recv(4096):
                    return
            except OSError:
                return
            data = mutate(rng, reply) if rng.random() < 0.8 else bytes(
                rng.randrange(256) for _ in range(rng.randrange(200)))
            step = rng.randrange(1, 7) if pieces else len(data) or 1
            for i in range(0, len(data), step):
                conn.sendall(data[i:i + step])
    return handler


def test_fuzzed_replies_never_break_the_scripts(tmp_path):
    """120 seeded conversations (mutated replies, random bytes, small pieces) with each
    script through the engine: never a Lua error, and done in a few seconds."""
    redis_replies = [FULL[k] for k in ("INFO", "CONFIG GET BIND", "PUBSUB CHANNELS",
                                       "CLIENT LIST", "CLUSTER NODES")]
    mc_replies = [MC_FULL["stats"], MC_FULL["stats settings"]]
    peers = BannerPeers("127.0.0.77")
    ports = []
    try:
        for seed in range(60):
            ports.append((peers.serve(fuzz_handler(seed, redis_replies, seed % 2 == 0)).port,
                          "open", "redis"))
            ports.append((peers.serve(fuzz_handler(1000 + seed, mc_replies,
                                                   seed % 2 == 1)).port, "open", "memcached"))
        sources = {name: (REPO / "scripts" / f"{name}.nse").read_text()
                   for name in ("redis-info", "memcached-info")}
        target = scanned_host("127.0.0.77", ports)
        started = time.monotonic()
        done = run(tmp_path, sources, [target], debugging=1)
        taken = time.monotonic() - started
    finally:
        peers.close()
    log = done.lines()
    assert "threw an error" not in log and "ERROR" not in log, log[-3000:]
    outputs = [s.output for p in target.ports for s in p.scripts]
    assert outputs, "no script gave any output"
    assert not any("ERROR" in (o or "") for o in outputs)
    assert taken < 30, taken


# ------------------------------------------------------------------------------ over UDP

UDP_HOSTS = {  # address: how the answer comes
    "127.0.0.62": {},
    "127.0.0.63": {"pieces": 3, "reverse": True},  # three datagrams, last first
    "127.0.0.64": {"wrong_id": True},  # not an answer to our request
}
UDP_REPLIES = {"stats": stats(pid=42, uptime=7, time=1700000000, pointer_size=64,
                              rusage_user="0.5", curr_connections=2),
               "stats settings": stats(tcpport=0, udpport=11211, auth_enabled_sasl="no",
                                       maxconns=5)}
UDP_OUTPUT = ("\n  Process ID: 42\n  Uptime: 7 seconds\n  Server time: 2023-11-14T22:13:20"
              "\n  Architecture: 64 bit\n  Used CPU (user): 0.5\n  Current connections: 2"
              "\n  Maximum connections: 5\n  TCP Port: 0\n  UDP Port: 11211"
              "\n  Authentication: no")


def test_memcached_over_udp_garbled_frames(tmp_path):
    """Seeded random frames (our request ID, random sequence numbers, counts and bodies,
    cut anywhere) on eight hosts: never a Lua error."""
    from worker.protocol import HostResult, PortResult, Service

    addresses = [f"127.0.0.{n}" for n in range(71, 79)]
    servers = []
    try:
        for seed, address in enumerate(addresses):
            servers.append(UdpMemcached(address, 11211, UDP_REPLIES, garble=seed))
        targets = [HostResult(address, status="up", reason="user-set", srtt_us=200,
                              rttvar_us=5000, timeout_us=100000,
                              ports=[PortResult("udp", 11211, "open|filtered", "no-response",
                                                0, Service("memcache"))])
                   for address in addresses]
        sources = {"memcached-info": (REPO / "scripts" / "memcached-info.nse").read_text()}
        done = run(tmp_path, sources, targets, debugging=1)
    finally:
        for server in servers:
            server.close()
    assert "threw an error" not in done.lines(), done.lines()[-3000:]
    outputs = [s.output for t in targets for p in t.ports for s in p.scripts]
    assert not any("ERROR" in (o or "") for o in outputs)
    assert sum(len(server.requests) for server in servers) >= len(addresses)


def test_memcached_over_udp_equals_nmap(tmp_path):
    """nmap -sU (as root) and ours through the engine on the same UDP peers (our command
    line has no UDP scan)."""
    import os
    import xml.etree.ElementTree as ET

    from worker.protocol import HostResult, PortResult, Service

    assert os.geteuid() == 0, "nmap's UDP scan needs root (CI runs as root)"
    servers = []
    try:
        for address, how in UDP_HOSTS.items():
            servers.append(UdpMemcached(address, 11211, UDP_REPLIES, **how))
        nmap = shutil.which("nmap")
        assert nmap, "nmap is required"
        subprocess.run([nmap, "-sU", "-n", "-Pn", "-p", "11211", *UDP_HOSTS, "--script",
                        "memcached-info", "-oX", str(tmp_path / "udp.xml")],
                       capture_output=True, text=True, timeout=120, check=True, cwd=tmp_path)
        theirs = {}
        for host_element in ET.parse(tmp_path / "udp.xml").getroot().iter("host"):
            address = host_element.find("address").get("addr")
            for element in host_element.iter("script"):
                theirs[address] = element.get("output")
        targets = [HostResult(address, status="up", reason="user-set", srtt_us=200,
                              rttvar_us=5000, timeout_us=100000,  # as for loopback
                              ports=[PortResult("udp", 11211, "open|filtered", "no-response",
                                                0, Service("memcache"))])
                   for address in UDP_HOSTS]
        sources = {"memcached-info": (REPO / "scripts" / "memcached-info.nse").read_text()}
        started = time.monotonic()
        run(tmp_path, sources, targets)
        taken = time.monotonic() - started
    finally:
        for server in servers:
            server.close()
    ours = {t.address: s.output for t in targets for p in t.ports for s in p.scripts}
    assert ours == {"127.0.0.62": UDP_OUTPUT, "127.0.0.63": UDP_OUTPUT}
    # Nmap 7.93 reports an empty output ("Bug in memcached-info: no string output") where
    # no answer matches its requests; ours reports nothing.
    assert theirs == {**ours, "127.0.0.64": ""}
    assert taken < 5, taken
