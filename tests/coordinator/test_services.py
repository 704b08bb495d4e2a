"""The service table: nmap-services and /etc/services formats, queries, loading order."""
from __future__ import annotations

import marshal
import os
from pathlib import Path

import pytest
from conftest import nmap_scaninfo

from coordinator.errors import UserError
from worker.datadir import DataPath
from worker.services import ServiceTable, load_service_table

NMAP_SERVICES_FIXTURE = """\
# Fields in this file are: Service name, portnum/protocol, open-frequency, optional comments
#
tcpmux\t1/tcp\t0.001995\t# TCP Port Service Multiplexer
echo\t7/tcp\t0.004855
echo\t7/udp\t0.024679
discard\t9/sctp\t0.000010
ssh\t22/tcp\t0.182286\t# Secure Shell Login
telnet\t23/tcp\t0.221265
domain\t53/tcp\t0.048463
domain\t53/udp\t0.213496
www-old\t80/tcp\t0.000100\t# a rarer name for port 80
http\t80/tcp\t0.484143\t# World Wide Web HTTP
http\t80/udp\t0.035767
http\t80/sctp\t0.000000
snmp\t161/udp\t0.433467
https\t443/tcp\t0.208669
unknown\t1001/tcp\t0.000000
unknown\t1000/tcp\t0.000000
http-alt\t8080/tcp\t0.033000
this line is malformed
toobig\t99999/tcp\t0.1
badfreq\t1234/tcp\tabc
badproto\t1235/icmp\t0.1
"""

SYSTEM_SERVICES_FIXTURE = """\
# /etc/services style
tcpmux\t\t1/tcp\t\t\t\t# TCP port service multiplexer
ssh\t\t22/tcp\t\t\t\t# SSH Remote Login Protocol
smtp\t\t25/tcp\t\tmail
http\t\t80/tcp\t\twww\t\t# WorldWideWeb HTTP
kerberos\t88/tcp\t\tkerberos5 krb5 kerberos-sec\t# Kerberos v5
kerberos\t88/udp\t\tkerberos5 krb5 kerberos-sec
x11\t\t6000/tcp\tx11-0
"""


@pytest.fixture
def nmap_table() -> ServiceTable:
    return ServiceTable.parse_nmap_services(NMAP_SERVICES_FIXTURE, "fixture")


@pytest.fixture
def system_table() -> ServiceTable:
    return ServiceTable.parse_system_services(SYSTEM_SERVICES_FIXTURE, "/etc/services")


def test_nmap_services_names_and_frequencies(nmap_table):
    assert nmap_table.has_frequencies and nmap_table.source == "fixture"
    assert nmap_table.name("tcp", 22) == "ssh"
    assert nmap_table.name("udp", 53) == "domain"
    assert nmap_table.name("sctp", 9) == "discard"
    assert nmap_table.name("udp", 22) is None
    assert nmap_table.name("tcp", 80) == "http"  # the more frequent of two names


def test_malformed_lines_are_skipped(nmap_table):
    assert nmap_table.known_ports("tcp") == {1, 7, 22, 23, 53, 80, 443, 1000, 1001, 8080}
    assert nmap_table.known_ports("udp") == {7, 53, 80, 161}
    assert nmap_table.known_ports("sctp") == {9, 80}
    assert nmap_table.known_ports("icmp") == frozenset()


def test_top_orders_by_frequency_then_port(nmap_table):
    assert nmap_table.top(3, "tcp") == [80, 23, 443]
    assert nmap_table.top(100, "tcp") == [80, 23, 443, 22, 53, 8080, 7, 1, 1000, 1001]
    assert nmap_table.top(2, "udp") == [161, 53]
    assert nmap_table.top(0, "tcp") == []


@pytest.mark.parametrize("pattern, protocol, expected", [
    ("http", "tcp", {80}),
    ("http*", "tcp", {80, 443, 8080}),
    ("HTTP*", "tcp", {80, 443, 8080}),  # case-insensitive, as Nmap matches "hTTP"
    ("h*P", "tcp", {80}),
    ("?ttp", "tcp", {80}),
    ("*", "sctp", {9, 80}),
    ("www*", "tcp", {80}),  # any name of the port matches, not only the preferred one
    ("http", "udp", {80}),
    ("ht.p", "tcp", set()),  # "." is literal, not a regex wildcard
    ("nosuch", "tcp", set()),
])
def test_ports_matching(nmap_table, pattern, protocol, expected):
    assert nmap_table.ports_matching(pattern, protocol) == expected


def test_system_services_format(system_table):
    assert not system_table.has_frequencies
    assert system_table.name("tcp", 88) == "kerberos"
    assert system_table.known_ports("tcp") == {1, 22, 25, 80, 88, 6000}
    assert system_table.known_ports("udp") == {88}
    assert system_table.ports_matching("krb5", "udp") == {88}  # aliases count as names
    assert system_table.ports_matching("www", "tcp") == {80}
    assert system_table.ports_matching("x11*", "tcp") == {6000}


def test_top_needs_frequencies(system_table):
    with pytest.raises(UserError) as caught:
        system_table.top(10, "tcp")
    message = str(caught.value)
    assert "--top-ports needs Nmap's nmap-services" in message and "--datadir" in message
    assert "/etc/services" in message and "\n" not in message


# --------------------------------------------------------------------------------------------
# Loading


def datapath_of(*directories: Path) -> DataPath:
    environ = {"NSECLUSTER_NMAP_PREFIXES": ":".join(map(str, directories))}
    return DataPath.from_environment(None, environ, None)


def test_load_prefers_nmap_services_from_the_data_path(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir(), second.mkdir()
    (second / "nmap-services").write_text(NMAP_SERVICES_FIXTURE)
    system = tmp_path / "services"
    system.write_text(SYSTEM_SERVICES_FIXTURE)
    table = load_service_table(datapath_of(first, second), str(system))
    assert table.source == str(second / "nmap-services")
    assert table.has_frequencies and table.warnings == ()


def test_load_falls_back_to_the_system_services_file(tmp_path):
    system = tmp_path / "services"
    system.write_text(SYSTEM_SERVICES_FIXTURE)
    table = load_service_table(datapath_of(), str(system))
    assert table.source == str(system) and not table.has_frequencies
    assert table.name("tcp", 25) == "smtp"
    assert table.warnings == (f"Unable to find nmap-services!  Resorting to {system}",)


def test_load_without_any_table_gives_an_empty_one(tmp_path):
    table = load_service_table(datapath_of(tmp_path), str(tmp_path / "missing"))
    assert len(table) == 0 and table.source == "" and not table.has_frequencies
    assert table.name("tcp", 80) is None and len(table.warnings) == 1


def test_load_tolerates_undecodable_bytes(tmp_path):
    (tmp_path / "nmap-services").write_bytes(b"caf\xe9\t80/tcp\t0.5\nssh\t22/tcp\t0.2\n")
    table = load_service_table(datapath_of(tmp_path))
    assert table.name("tcp", 22) == "ssh" and table.top(1, "tcp") == [80]


# --------------------------------------------------------------------------------------------
# The real file, and Nmap as the reference


def test_real_table_basics(real_table):
    assert real_table.name("tcp", 80) == "http" and real_table.name("udp", 161) == "snmp"
    assert real_table.top(1, "tcp") == [80]
    assert sorted(real_table.top(10, "tcp")) == [21, 22, 23, 25, 80, 110, 139, 443, 445, 3389]


@pytest.mark.parametrize("count", [1, 10, 100, 1000, 4000])
def test_top_matches_nmap_top_ports(nmap_path, real_table, count):
    assert nmap_scaninfo(nmap_path, "-sT", "--unprivileged", "--top-ports", str(count)) == {
        "tcp": set(real_table.top(count, "tcp"))}


@pytest.mark.skipif(os.geteuid() != 0, reason="nmap -sU needs root")
@pytest.mark.parametrize("count", [10, 100, 1000])
def test_udp_top_matches_nmap_top_ports(nmap_path, real_table, count):
    assert nmap_scaninfo(nmap_path, "-sU", "--top-ports", str(count)) == {
        "udp": set(real_table.top(count, "udp"))}


def test_parsed_tables_are_cached_and_refreshed_when_the_file_changes(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    services = data / "nmap-services"
    services.write_text("http\t80/tcp\t0.48\nssh\t22/tcp\t0.18\ndomain\t53/udp\t0.2\n")
    cache = tmp_path / "cache"
    first = load_service_table(datapath_of(data), cache_dir=str(cache))
    assert first.name("tcp", 80) == "http"
    entries = list(cache.glob("services-*-tcp.marshal"))
    assert len(entries) == 1
    # A second scan reads the cached table, not the file: prove it by planting a name there.
    identity, table = marshal.loads(entries[0].read_bytes())
    table[80] = ("from-cache", 0.48)
    entries[0].write_bytes(marshal.dumps((identity, table)))
    assert load_service_table(datapath_of(data), cache_dir=str(cache)).name("tcp", 80) \
        == "from-cache"
    # An edited services file is parsed again.
    services.write_text("www\t80/tcp\t0.48\nssh\t22/tcp\t0.18\n# edited\n")
    assert load_service_table(datapath_of(data), cache_dir=str(cache)).name("tcp", 80) == "www"
    # A damaged or foreign entry is ignored, never trusted.
    for entry in cache.glob("services-*-tcp.marshal"):
        entry.write_bytes(b"\x00garbage")
    assert load_service_table(datapath_of(data), cache_dir=str(cache)).name("tcp", 22) == "ssh"


def test_an_unwritable_cache_costs_nothing_but_time(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "nmap-services").write_text("http\t80/tcp\t0.48\n")
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    table = load_service_table(datapath_of(data), cache_dir=str(blocker / "cache"))
    assert table.name("tcp", 80) == "http"
