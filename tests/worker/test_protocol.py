"""Wire messages: every job and result survives encoding unchanged; anything malformed is a
ProtocolError, never another exception, never a half-built object."""
import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.group import run_group
from worker.nsock.loop import EventLoop
from worker.protocol import (
    GroupJob,
    GroupResult,
    HostResult,
    PortResult,
    PhaseJob,
    PhaseResult,
    PortRun,
    PortSet,
    ProtocolError,
    ScanOptions,
    ScriptResult,
    Service,
    Target,
    Timing,
    decode,
    encode,
    from_wire,
    to_wire,
)


def sample_job():
    return GroupJob("scan-1", 3, (Target("127.0.0.1"), Target("::1", "ip6-localhost",
                                                               ("127.0.0.1",))),
                    ScanOptions(ports=PortSet.from_ports(tcp=[22, 80, 81, 82], udp=[53]),
                                randomize_ports=False, host_discovery=False,
                                reverse_dns="always", dns_servers=("127.0.0.53",),
                                timing=Timing(level=4, max_retries=2, min_rate=10.5),
                                verbosity=2, debugging=1, privilege="unprivileged",
                                interface="eth9", spoof_mac="02:11:22:33:44:55"))


def sample_result():
    host = HostResult(
        "127.0.0.1", "localhost", "up", "syn-ack", 64, [("localhost", "user"), ("lh", "PTR")],
        ["::1"],
        ports=[PortResult("tcp", 22, "open", "syn-ack", 64,
                          Service("ssh", "probed", 10, product="OpenSSH", version="9.2",
                                  tunnel=None, cpe=["cpe:/a:openbsd:openssh:9.2"]),
                          [ScriptResult("banner", "SSH-2.0", [[None, "a"], ["k", [["x", "y"]]]])])],
        port_runs=[PortRun("tcp", "closed", "conn-refused", 0, ((1, 21), (23, 65535)))],
        start_time=1.5, end_time=2.5, srtt_us=50, rttvar_us=20, timeout_us=100000,
        scripts=[ScriptResult("host-script", "out", None)],
        mac_address="02:00:00:AA:BB:CC", mac_vendor="Some Vendor")
    down = HostResult("127.0.0.2", status="down", reason="no-response")
    return GroupResult("scan-1", 3, [host, down], interrupted=True)


def test_job_and_result_round_trip():
    assert decode(encode(sample_job())) == sample_job()
    assert decode(encode(sample_result())) == sample_result()


def test_phase_messages_round_trip_and_unknown_phases_are_refused():
    job = PhaseJob("scan-1", "prerule", sample_job().options)
    result = PhaseResult("scan-1", "postrule", [ScriptResult("shared", "2 hosts", [["n", "2"]])],
                         ["127.0.0.9"])
    assert decode(encode(job)) == job
    assert decode(encode(result)) == result
    wire = to_wire(job)
    wire["phase"] = "hostrule"
    with pytest.raises(ProtocolError, match="unknown phase 'hostrule'"):
        from_wire(wire)


def test_real_scan_results_round_trip(listeners):
    open_port = listeners.listen("127.9.0.1")
    job = GroupJob("s", 0, (Target("127.9.0.1"), Target("127.9.0.2")),
                   ScanOptions(ports=PortSet.from_ports(tcp=range(1, 2000)) if open_port < 2000
                               else PortSet.from_ports(tcp=[*range(1, 2000), open_port]),
                               reverse_dns="never"))
    result = run_group(job, loop=EventLoop())
    assert decode(encode(result)) == result
    assert any(p.portid == open_port and p.state == "open" for p in result.hosts[0].ports)


def test_other_versions_and_kinds_are_refused():
    wire = to_wire(sample_job())
    with pytest.raises(ProtocolError, match="version"):
        decode(msgpack.packb({**wire, "v": 2}))
    with pytest.raises(ProtocolError, match="kind"):
        decode(msgpack.packb({**wire, "kind": "pickle"}))
    with pytest.raises(ProtocolError):
        decode(b"\xc1 not msgpack")


@pytest.mark.parametrize("path, bad", [
    (("targets",), [["not-an-ip", None, []]]),
    (("options", "ports", "tcp"), [[10, 5]]),
    (("options", "ports", "tcp"), [[1, 70000]]),
    (("options", "scan_type"), "xmas"),
    (("options", "timing", "max_retries"), "ten"),
    (("options", "dns_servers"), ["dns.example"]),
    (("options", "privilege"), "root"),
    (("group",), True),
])
def test_malformed_jobs_name_the_field(path, bad):
    wire = to_wire(sample_job())
    node = wire
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = bad
    with pytest.raises(ProtocolError):
        decode(msgpack.packb(wire))


def _mutations(wire):
    """Every way of replacing one value in the message with junk."""
    junk = [None, -1, "x", [], {}, [[1]], 1.5, True]
    stack = [(wire, key) for key in (wire if isinstance(wire, dict) else range(len(wire)))]
    while stack:
        node, key = stack.pop()
        original = node[key]
        for value in junk:
            node[key] = value
            yield wire
        node[key] = original
        if isinstance(original, dict):
            stack.extend((original, k) for k in original)
        elif isinstance(original, list):
            stack.extend((original, i) for i in range(len(original)))


def test_every_single_field_corruption_is_accepted_or_a_protocol_error():
    for sample in (sample_job(), sample_result()):
        for corrupted in _mutations(to_wire(sample)):
            try:
                decode(msgpack.packb(corrupted))
            except ProtocolError:
                pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_are_a_protocol_error_or_a_message(data):
    try:
        decode(data)
    except ProtocolError:
        pass


def test_deeply_nested_script_structure_is_refused_not_a_crash():
    result = sample_result()
    tree = [[None, "leaf"]]
    for _ in range(200):  # deeper than any script output, within msgpack's own limit
        tree = [["k", tree]]
    result.hosts[0].scripts = [ScriptResult("deep", "x", tree)]
    with pytest.raises(ProtocolError):
        decode(msgpack.packb(to_wire(result)))


def test_script_text_that_is_not_utf8_crosses_the_wire_unchanged():
    """Lua strings become text with surrogateescape: a server's binary reply in an output
    (Nmap's mysql-variables on MariaDB) must survive the cluster's msgpack, which carries
    only UTF-8 strings, byte for byte, in the output and the structure alike."""
    binary = b"caf\xe9 \xff\x00end".decode("utf-8", "surrogateescape")
    result = sample_result()
    result.hosts[0].scripts = [ScriptResult("bin", f"out: {binary}",
                                            [[f"key{binary}", binary], [None, [[None, "ok"]]]])]
    back = decode(encode(result))
    (script,) = back.hosts[0].scripts
    assert script.output == f"out: {binary}"
    assert script.structured == [[f"key{binary}", binary], [None, [[None, "ok"]]]]
    assert script.output.encode("utf-8", "surrogateescape") == b"out: caf\xe9 \xff\x00end"
    plain = PhaseResult("scan-1", "prerule", [ScriptResult("s", "text", "just text")])
    assert decode(encode(plain)).scripts == plain.scripts
