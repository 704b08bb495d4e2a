"""JSON Lines output (-oJ): every record matches the schema documented in docs/json-schema.md,
nothing is lost, and every finished host is on disk before the next one arrives."""
from __future__ import annotations

import json
import re
from functools import partial
from pathlib import Path

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from output_support import make_info, make_port, render_report

from coordinator.output import JsonWriter, open_writers
from coordinator.output.jsonout import SCHEMA, structured_json
from coordinator.output.model import RunStats
from worker.protocol import HostResult, ScriptResult, Service

DOC = Path(__file__).resolve().parents[2] / "docs" / "json-schema.md"
T0 = 1795730241.25


def documented_schema() -> dict:
    text = DOC.read_text()
    section = text[text.index("## Machine-readable schema"):]
    return json.loads(re.search(r"```json\n(.*?)\n```", section, re.S).group(1))


@pytest.fixture(scope="module")
def validator():
    schema = documented_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


info = partial(make_info, command_line="nsecluster -oJ - 127.0.0.1", start_time=T0,
               udp_ranges=((160, 189),))
port = make_port


def rich_hosts():
    ssh = Service("ssh", "probed", 10, "OpenSSH", "8.4p1", "protocol 2.0", ostype="Linux",
                  cpe=["cpe:/a:openbsd:openssh:8.4p1"])
    tport = ScriptResult("tport", "\n  first\n  name: x", [["name", "x"], [None, "first"],
                                                            ["list", [[None, "a"], [None, "b"]]]])
    ports = [port(22, "open", ttl=64, service=ssh, scripts=[tport]),
             port(80, "open", service=Service("http", tunnel="ssl"))]
    ports += [port(n, "closed", "reset", ttl=64 if n % 2 else 0, service=Service("x"))
              for n in range(1, 60) if n != 22]
    ports += [port(n, "open|filtered", proto="udp") for n in range(160, 190)]
    return [
        HostResult("127.0.0.1", targetname="vm", reason="syn-ack",
                   hostnames=[("vm", "user"), ("localhost", "PTR")], ports=ports,
                   start_time=T0, end_time=T0 + 1.5, srtt_us=47, rttvar_us=36,
                   timeout_us=100000,
                   scripts=[ScriptResult("bin", "\xff\udcfe", None)]),
        HostResult("127.0.0.9", status="down", reason="no-response"),
        HostResult("127.0.0.10", status="skipped", timed_out=True, reason="user-set",
                   ports=[port(1)]),
        HostResult("::1", reason="syn-ack", ports=[port(22, "open", service=Service("ssh"))],
                   srtt_us=12),
    ]


def render(scan, hosts, stats=None, pre=(), post=()) -> list[dict]:
    text = render_report(JsonWriter, scan, hosts, stats, pre, post, end_time=T0 + 2,
                         elapsed_s=2.0)
    assert text.isascii() and text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def test_every_record_matches_the_documented_schema(validator):
    records = render(info(verbosity=1, version_scan=True, script_scan=True), rich_hosts(),
                     RunStats(T0 + 2, 2.0, 4, 3, 1, interrupted=True),
                     pre=[ScriptResult("tpre", "x", [[None, "p1"]])],
                     post=[ScriptResult("tpost", "done")])
    for record in records:
        validator.validate(record)
    assert [r["type"] for r in records] == ["scan", "prescript", "host", "host", "host", "host",
                                            "postscript", "done"]
    assert records[0]["schema"] == SCHEMA == "nsecluster/1"
    assert records[-1]["exit"] == "error" and records[-1]["interrupted"] is True


def test_schema_rejects_what_the_doc_does_not_describe(validator):
    record = render(info(), rich_hosts()[:1])[1]
    record["surprise"] = 1
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(record)
    # and every field the doc's schema requires is one the tables name
    doc = DOC.read_text()
    schema = documented_schema()
    for name in ("scan", "host", "port", "service", "script", "done"):
        for field in schema["$defs"][name]["required"]:
            assert f"`{field}`" in doc, (name, field)


def test_host_record_fields():
    host = render(info(verbosity=1), rich_hosts())[1]
    assert host["address"] == "127.0.0.1" and host["family"] == 4
    assert host["targetname"] == "vm"
    assert host["hostnames"] == [{"name": "vm", "type": "user"},
                                 {"name": "localhost", "type": "PTR"}]
    assert host["times"] == {"srtt_us": 47, "rttvar_us": 36, "timeout_us": 100000}
    assert host["end_time"] == T0 + 1.5
    ssh = host["ports"][0]
    assert ssh["portid"] == 22 and ssh["reason_ttl"] == 64
    assert ssh["service"]["product"] == "OpenSSH" and ssh["service"]["cpe"] == [
        "cpe:/a:openbsd:openssh:8.4p1"]
    assert ssh["scripts"][0]["structured"] == {"1": "first", "name": "x", "list": ["a", "b"]}
    assert host["ports"][1]["service"]["tunnel"] == "ssl"
    # non-UTF-8 bytes become \xHH text; real characters stay
    assert host["scripts"][0]["output"] == "\xff\\xFE"


def test_ports_and_extraports_together_keep_every_port():
    hosts = rich_hosts()
    record = render(info(), hosts[:1])[1]
    got = {(p["protocol"], p["portid"], p["state"], p["reason"], p["reason_ttl"])
           for p in record["ports"]}
    for extra in record["extraports"]:
        assert extra["count"] == sum(r["count"] for r in extra["reasons"])
        for r in extra["reasons"]:
            for low, high in r["ports"]:
                got |= {(r["protocol"], n, extra["state"], r["reason"], r["reason_ttl"])
                        for n in range(low, high + 1)}
    want = {(p.protocol, p.portid, p.state, p.reason, p.reason_ttl) for p in hosts[0].ports}
    assert got == want
    assert [e["state"] for e in record["extraports"]] == ["closed", "open|filtered"]
    # reasons are split by TTL so none is lost
    assert {(r["reason"], r["reason_ttl"]) for r in record["extraports"][0]["reasons"]} == {
        ("reset", 64), ("reset", 0)}


def test_reported_hosts_follow_the_xml_rules():
    types = [r.get("status") for r in render(info(), rich_hosts())[1:-1]]
    assert types == ["up", "skipped", "up"]  # down hosts need -v
    records = render(info(verbosity=1), rich_hosts())
    skipped = records[3]
    assert skipped["timed_out"] is True and skipped["ports"] == [] and skipped["extraports"] == []
    assert records[4]["family"] == 6
    ping = render(info(scan_type="none", tcp_ranges=(), udp_ranges=()), rich_hosts()[:1])[1]
    assert ping["ports"] == [] and ping["extraports"] == []


@pytest.mark.parametrize("tree, expected", [
    (None, None),
    ([], []),
    ([[None, "a"], [None, [[None, "b"]]]], ["a", ["b"]]),
    ([["k", "v"], ["t", [["x", "1"]]]], {"k": "v", "t": {"x": "1"}}),
    ([["k", "v"], [None, "a"], [None, "b"]], {"1": "a", "2": "b", "k": "v"}),
    ([[None, "a"], ["1", "clash"], ["z", "ok"]], {"1": "a", "z": "ok"}),
])
def test_structured_values_become_json(tree, expected):
    assert structured_json(tree) == expected


leaf = st.text(max_size=5)
tree = st.recursive(st.lists(st.tuples(st.none() | st.text(min_size=1, max_size=3), leaf)
                             .map(list), max_size=4),
                    lambda children: st.lists(
                        st.tuples(st.none() | st.text(min_size=1, max_size=3),
                                  leaf | children).map(list), max_size=4),
                    max_leaves=20)


@settings(max_examples=100, deadline=None)
@given(tree)
def test_any_structured_value_serialises_and_validates(validator, value):
    record = render(info(), [HostResult("127.0.0.1", scripts=[ScriptResult("s", "o", value)])])[1]
    validator.validate(record)
    assert record["scripts"][0]["structured"] == structured_json(value)


def test_a_killed_scan_keeps_every_finished_host(tmp_path):
    path = tmp_path / "scan.json"
    outputs = open_writers([("json", str(path))], info(), interactive=False)
    outputs.begin()
    written = 0
    for h in rich_hosts():
        outputs.host(h)
        written += h.status != "down"  # down hosts are reported only with -v
        # what a process killed now leaves behind: complete lines, every finished host
        records = [json.loads(line) for line in path.read_text().splitlines()]
        assert [r["type"] for r in records] == ["scan"] + ["host"] * written
    outputs.end(RunStats(T0, 1.0, 4, 3, 1, error="worker lost"))
    outputs.close()
    done = json.loads(path.read_text().splitlines()[-1])
    summary = done.pop("summary")
    assert done == {"type": "done", "end_time": T0, "elapsed_s": 1.0,
                    "hosts": {"up": 3, "down": 1, "total": 4}, "exit": "error",
                    "interrupted": False, "error": "worker lost"}
    assert re.fullmatch(r"Nmap done at \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}; "
                        r"4 IP addresses \(3 hosts up\) scanned in 1\.00 seconds", summary)
