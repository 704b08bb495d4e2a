"""Port selection: -p syntax and semantics, --top-ports, -F, default ports."""
from __future__ import annotations

import pytest
from conftest import nmap_scaninfo
from hypothesis import given, settings
from hypothesis import strategies as st

from coordinator.errors import UserError
from coordinator.ports import (
    DUPLICATE_WARNING,
    PortSelection,
    default_ports,
    fast_ports,
    parse_port_spec,
    top_ports,
)
from worker.protocol import PortSet, format_ranges, merge_ranges
from worker.services import ServiceTable

TABLE = ServiceTable.parse_nmap_services("""\
ftp-data\t20/tcp\t0.001079
ftp\t21/tcp\t0.197667
ftp\t21/udp\t0.004844
ssh\t22/tcp\t0.182286
domain\t53/tcp\t0.048463
domain\t53/udp\t0.213496
http\t80/tcp\t0.484143
http\t80/udp\t0.035767
http\t80/sctp\t0.000000
snmp\t161/udp\t0.433467
https\t443/tcp\t0.208669
https\t443/udp\t0.000000
mercantile\t3398/udp\t0.000000
http-proxy\t8080/tcp\t0.042052
unknown\t9000/tcp\t0.000000
""", "fixture")

SYSTEM_TABLE = ServiceTable.parse_system_services(
    "ssh 22/tcp\nhttp 80/tcp www\ndomain 53/udp\nx11 6000/tcp\n", "/etc/services")

ALL = ("tcp", "udp", "sctp")


def ports(spec: str, protocol: str = "tcp", protocols=None) -> list[int]:
    return sorted(parse_port_spec(spec, TABLE, protocols).ports(protocol))


# --------------------------------------------------------------------------------------------
# Numbers and ranges


@pytest.mark.parametrize("spec, expected", [
    ("22", [22]),
    ("22,80", [22, 80]),
    ("80,22,22-23", [22, 23, 80]),
    ("1-5", [1, 2, 3, 4, 5]),
    ("-5", [1, 2, 3, 4, 5]),  # "-b" starts at 1: port 0 only when named
    ("65530-", [65530, 65531, 65532, 65533, 65534, 65535]),
    ("0", [0]),
    ("0-2", [0, 1, 2]),
    ("080", [80]),
    ("80-80", [80]),
    ("80,", [80]),  # one trailing comma is accepted, as by Nmap
    (" 80 , 81 ", [80, 81]),
])
def test_numbers_and_ranges(spec, expected):
    assert ports(spec) == expected


def test_a_bare_dash_is_every_port_but_zero():
    selection = parse_port_spec("-", TABLE)
    assert selection.any == frozenset(range(1, 65536))
    assert selection.for_protocols(["tcp"]) == PortSet(tcp=((1, 65535),))
    assert parse_port_spec("0-", TABLE).for_protocols(["tcp"]) == PortSet(tcp=((0, 65535),))


# --------------------------------------------------------------------------------------------
# Protocol prefixes


def test_prefixes_apply_until_the_next_prefix():
    selection = parse_port_spec("21,T:22,23-24,U:53,S:80,T:25", TABLE)
    assert selection.tcp == {22, 23, 24, 25}
    assert selection.udp == {53} and selection.sctp == {80}
    assert selection.any == {21}
    assert selection.for_protocols(["tcp", "udp"]) == PortSet.from_ports(
        tcp=[21, 22, 23, 24, 25], udp=[21, 53])


def test_unprefixed_ports_apply_only_to_the_protocols_asked_for():
    selection = parse_port_spec("80,U:53", TABLE)
    assert selection.for_protocols(["tcp"]) == PortSet(tcp=((80, 80),))
    assert selection.for_protocols(["udp"]) == PortSet(udp=((53, 53), (80, 80)))
    assert selection.ports("sctp") == {80}


def test_a_prefix_alone_at_the_end_adds_nothing():
    selection = parse_port_spec("T:22,U:", TABLE)
    assert selection.tcp == {22} and selection.udp == set()


def test_chained_prefixes_use_the_last():
    assert parse_port_spec("T:U:80", TABLE).udp == {80}


# --------------------------------------------------------------------------------------------
# Service names and brackets


@pytest.mark.parametrize("spec, protocol, expected", [
    ("http", "tcp", [80]),
    ("http", "udp", [80]),
    ("http*", "tcp", [80, 443, 8080]),
    ("hTTP", "tcp", [80]),  # Nmap: a lowercase first letter, then case-insensitive
    ("?ttp", "tcp", [80]),
    ("ftp*", "tcp", [20, 21]),
    ("*", "udp", [21, 53, 80, 161, 443, 3398]),
    ("T:http*", "udp", []),
    ("U:http*", "udp", [80, 443]),
    ("[1-100]", "tcp", [20, 21, 22, 53, 80]),
    ("[1-100]", "udp", [21, 53, 80]),
    ("[-60]", "tcp", [20, 21, 22, 53]),
    ("[400-]", "tcp", [443, 8080, 9000]),
    ("[*]", "sctp", [80]),
    ("[http]", "tcp", [80]),
    ("T:[1-25]", "tcp", [20, 21, 22]),
    ("[1-21,8000-9000]", "tcp", [20, 21, 8080, 9000]),  # brackets may span commas
    ("[1-21],443", "tcp", [20, 21, 443]),
    ("ssh,22", "tcp", [22]),
])
def test_service_names_and_brackets(spec, protocol, expected):
    assert ports(spec, protocol) == expected


def test_unprefixed_names_are_looked_up_per_protocol():
    selection = parse_port_spec("domain,snmp", TABLE)
    assert selection.any == frozenset()
    assert selection.for_protocols(["tcp", "udp"]) == PortSet.from_ports(tcp=[53],
                                                                         udp=[53, 161])


def test_a_name_must_match_in_a_scanned_protocol():
    # mercantile is UDP-only: fine when UDP is scanned, an error for a TCP-only scan.
    assert ports("mercantile", "udp", ["tcp", "udp"]) == [3398]
    with pytest.raises(UserError) as caught:
        parse_port_spec("mercantile", TABLE, ["tcp"])
    assert str(caught.value) == ('Found no matches for the service mask "mercantile" and your '
                                 'specified protocols')
    with pytest.raises(UserError, match="service mask \"mercantile\""):
        parse_port_spec("T:mercantile", TABLE)
    assert ports("U:mercantile", "udp", ["tcp"]) == [3398]  # prefixed: a warning, not an error


def test_names_work_with_the_system_services_file():
    assert sorted(parse_port_spec("www,x11*", SYSTEM_TABLE).ports("tcp")) == [80, 6000]


# --------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize("spec, message", [
    ("80-70", "Your port range 80-70 is backwards. Did you mean 70-80?"),
    ("-0", "Your port range 1-0 is backwards. Did you mean 0-1?"),
    ("65536", 'Ports specified must be between 0 and 65535 inclusive; got "65536"'),
    ("1-65536", "Ports specified must be between 0 and 65535 inclusive"),
    ("99999999999999999999999", "Ports specified must be between 0 and 65535 inclusive"),
    ("80,,81", 'Invalid port specification "80,,81". Your port specifications are illegal.  '
               'Example of proper form: "-100,200-1024,T:3000-4000,U:60000-"'),
    (",80", 'Invalid port specification ",80"'),
    ("", 'Invalid port specification ""'),
    ("T:,80", 'Invalid port specification "T:,80"'),
    ("HTTP", 'Invalid port specification "HTTP"'),
    ("0x50", 'Invalid port specification "0x50"'),
    ("+80", 'Invalid port specification "+80"'),
    ("1-http", 'Invalid port specification "1-http"'),
    ("1-10-20", 'Invalid port specification "1-10-20"'),
    ("8 0", 'Invalid port specification "8 0"'),
    ("3com-tsmux", 'Invalid port specification "3com-tsmux"'),
    ("foo", "Found no matches for the service mask \"foo\" and your specified protocols"),
    ("http,foo", "Found no matches for the service mask \"foo\""),
    ("X:80", "Error parsing port list: Unknown protocol specifier \"X\" (use T:, U: or S:)."),
    ("t:80", "Unknown protocol specifier \"t\""),
    ("80]", "Unexpected ] character in port/protocol specification"),
    ("[80", 'Missing "]" in port specification "[80"'),
    ("[[80]]", 'Nested "[" in port specification "[[80]]"'),
    ("8[0", 'Misplaced bracket in port specification "8[0"'),
    ("8[0]", "Unexpected ] character in port/protocol specification"),
    ("[]", 'Invalid port specification "[]"'),
    ("T:", "No ports specified -- If you really don't want to scan any ports use ping scan..."),
    ("8\n0", r'Invalid port specification "8\n0"'),
])
def test_bad_specs_raise_one_line_user_errors(spec, message):
    with pytest.raises(UserError) as caught:
        parse_port_spec(spec, TABLE)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


# --------------------------------------------------------------------------------------------
# Warnings


@pytest.mark.parametrize("spec, protocols, warnings", [
    ("80", ["tcp"], []),
    ("ssh,22", ["tcp"], [DUPLICATE_WARNING]),
    ("1-10,5-20", ["tcp"], [DUPLICATE_WARNING]),
    ("T:80,80", ["tcp"], [DUPLICATE_WARNING]),
    ("80,U:80", ["tcp"], ['WARNING: Your ports include "U:" but you haven\'t specified UDP scan '
                          'with -sU.']),
    ("80,U:80", ["tcp", "udp"], [DUPLICATE_WARNING]),
    ("T:22,U:", ["tcp"], ['WARNING: Your ports include "U:" but you haven\'t specified UDP '
                          'scan with -sU.']),
    ("T:80", ["udp"], ['WARNING: Your ports include "T:" but you haven\'t specified any TCP '
                       'scan type.',
                       "WARNING: UDP scan was requested, but no udp ports were specified.  "
                       "Skipping this scan type."]),
    ("S:80", ["tcp"], ['WARNING: Your ports include "S:" but you haven\'t specified any SCTP '
                       'scan type.',
                       "WARNING: a TCP scan type was requested, but no tcp ports were "
                       "specified.  Skipping this scan type."]),
    ("T:80", ["tcp", "sctp"], ["WARNING: a SCTP scan type was requested, but no sctp ports "
                               "were specified.  Skipping this scan type."]),
    ("U:53", None, []),  # protocols unknown: no protocol warnings
])
def test_warnings(spec, protocols, warnings):
    assert list(parse_port_spec(spec, TABLE, protocols).warnings) == warnings


# --------------------------------------------------------------------------------------------
# --top-ports, -F, default


def test_top_ports_per_protocol():
    selection = top_ports(3, TABLE, ["tcp", "udp"])
    assert selection.tcp == {80, 443, 21} and selection.udp == {161, 53, 80}
    assert selection.for_protocols(["tcp", "udp"]) == PortSet.from_ports(
        tcp=[21, 80, 443], udp=[53, 80, 161])
    assert top_ports(1000, TABLE, ["tcp"]).tcp == TABLE.known_ports("tcp")


def test_top_ports_within_a_port_selection():
    # --top-ports with -p: the most frequent of the -p ports (Nmap does this).
    within = parse_port_spec("1-100", TABLE)
    assert top_ports(2, TABLE, ["tcp"], within).tcp == {80, 21}


@pytest.mark.parametrize("count", [0, -1])
def test_top_ports_needs_a_positive_count(count):
    with pytest.raises(UserError, match="--top-ports should be an integer 1 or greater"):
        top_ports(count, TABLE, ["tcp"])


def test_top_ports_needs_frequencies():
    with pytest.raises(UserError) as caught:
        top_ports(10, SYSTEM_TABLE, ["tcp"])
    message = str(caught.value)
    assert message.startswith("--top-ports needs Nmap's nmap-services file")
    assert "--datadir" in message and "\n" not in message


def test_fast_and_default_with_frequencies():
    assert fast_ports(TABLE, ["tcp"]) == top_ports(100, TABLE, ["tcp"])
    assert default_ports(TABLE, ["tcp", "udp"]) == top_ports(1000, TABLE, ["tcp", "udp"])


def test_fast_and_default_without_frequencies():
    # Nmap with only /etc/services: -F scans the named ports, the default adds 1-1024.
    assert fast_ports(SYSTEM_TABLE, ["tcp"]).tcp == {22, 80, 6000}
    default = default_ports(SYSTEM_TABLE, ["tcp", "udp"])
    assert default.tcp == set(range(1, 1025)) | {6000}
    assert default.udp == set(range(1, 1025))


# --------------------------------------------------------------------------------------------
# Nmap as the reference (the real table)


def nmap_tcp_ports(nmap: str, *options: str) -> set[int] | None:
    """TCP ports ``nmap -sT`` would scan, or None when Nmap rejects the options."""
    return nmap_scaninfo(nmap, "-sT", "--unprivileged", *options).get("tcp")


NMAP_SPECS = ["22", "-100", "65000-", "-", "0", "T:80-90,U:53,100", "http*", "hTTP",
              "h*P", "?ttp", "[1-1024]", "[60000-]", "[1-10],ftp*", "ssh,22", "x11", "*",
              "unknown", "T:22,U:", "80,", "80-70", "65536", "80,,81", "HTTP", "foo",
              "mercantile", "X:80", "T:", "1-10-20", "0x50"]


def test_port_specs_match_nmap(nmap_path, real_table):
    for spec in NMAP_SPECS:
        expected = nmap_tcp_ports(nmap_path, "-p", spec)
        try:
            ours = set(parse_port_spec(spec, real_table, ["tcp"]).ports("tcp"))
        except UserError:
            ours = None
        assert ours == expected, spec


def test_top_fast_and_default_match_nmap(nmap_path, real_table):
    assert nmap_tcp_ports(nmap_path, "-F") == fast_ports(real_table, ["tcp"]).tcp
    assert nmap_tcp_ports(nmap_path) == default_ports(real_table, ["tcp"]).tcp
    assert nmap_tcp_ports(nmap_path, "--top-ports", "20", "-p", "1-100") == \
        top_ports(20, real_table, ["tcp"], parse_port_spec("1-100", real_table)).tcp


# --------------------------------------------------------------------------------------------
# Properties

port_sets = st.sets(st.integers(0, 65535), min_size=1, max_size=60)


@settings(max_examples=200, deadline=None)
@given(port_sets)
def test_formatted_ranges_parse_back_to_the_same_ports(ports_):
    spec = format_ranges(merge_ranges(ports_))
    selection = parse_port_spec(spec, TABLE)
    assert selection.any == ports_
    assert selection.for_protocols(["tcp", "udp"]) == PortSet.from_ports(tcp=ports_,
                                                                         udp=ports_)


@settings(max_examples=200, deadline=None)
@given(port_sets, port_sets, st.sets(st.integers(0, 65535), max_size=20))
def test_prefixed_sets_round_trip(tcp, udp, anywhere):
    spec = ",".join(filter(None, [format_ranges(merge_ranges(anywhere)),
                                  "T:" + format_ranges(merge_ranges(tcp)),
                                  "U:" + format_ranges(merge_ranges(udp))]))
    selection = parse_port_spec(spec, TABLE)
    assert (selection.tcp, selection.udp, selection.any) == (tcp, udp, anywhere)
    assert selection.ports("tcp") == tcp | anywhere
    assert selection.ports("sctp") == anywhere


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=30), st.sampled_from([None, ("tcp",), ("tcp", "udp"), ALL]))
def test_arbitrary_text_raises_only_user_errors(text, protocols):
    try:
        selection = parse_port_spec(text, TABLE, protocols)
    except UserError as exc:
        assert "\n" not in str(exc)
        return
    assert isinstance(selection, PortSelection)
    assert all(0 <= p <= 65535 for proto in ALL for p in selection.ports(proto))


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="0123456789-,TUSX:[]*?htp ", max_size=25))
def test_port_like_text_raises_only_user_errors(text):
    try:
        parse_port_spec(text, TABLE, ("tcp",))
    except UserError:
        pass
