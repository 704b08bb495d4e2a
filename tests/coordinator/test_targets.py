"""Target specifications: Nmap's forms, lazy expansion, exclusions, names, -iL files."""
from __future__ import annotations

import io
import ipaddress
import itertools
import subprocess
import time
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordinator.errors import UserError
from coordinator.targets import (
    Exclusions,
    HostnameSpec,
    IPv4RangeSpec,
    IPv6NetworkSpec,
    TargetNotScanned,
    TargetStream,
    parse_excludes,
    parse_target_spec,
    read_exclude_file,
    read_target_file,
    validate_tokens,
)
from worker.protocol import Target


def addresses(spec_text: str) -> list[str]:
    return [t.address for t in parse_target_spec(spec_text).expand()]


def dict_resolver(table: dict[str, list[str]], calls: list[str] | None = None):
    """A resolver answering from ``table``; unknown names fail as a real lookup would."""
    def resolve(name: str) -> list[str]:
        if calls is not None:
            calls.append(name)
        if name not in table:
            raise LookupError(f"no such name {name}")
        return table[name]
    return resolve


def no_resolver(name: str) -> list[str]:
    raise AssertionError(f"resolver called for {name!r}")


def stream(tokens, excludes=(), resolve=no_resolver, **kwargs):
    errors: list[str] = []
    targets = list(TargetStream(tokens, excludes, resolve, errors.append, **kwargs))
    return targets, errors


# --------------------------------------------------------------------------------------------
# IPv4 forms


@pytest.mark.parametrize("spec, expected", [
    ("192.168.0.1", ["192.168.0.1"]),
    ("127.0.1-3.1-2", ["127.0.1.1", "127.0.1.2", "127.0.2.1", "127.0.2.2", "127.0.3.1",
                       "127.0.3.2"]),
    ("127.0.0.1,3,5-7", ["127.0.0.1", "127.0.0.3", "127.0.0.5", "127.0.0.6", "127.0.0.7"]),
    # Lists come out in numeric order, each address once.
    ("127.0.0.5,1-3", ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.5"]),
    ("127.0.0.1-3,2-4", ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"]),
    ("127.0.0.1,1", ["127.0.0.1"]),
    ("127.0.0.-3", ["127.0.0.0", "127.0.0.1", "127.0.0.2", "127.0.0.3"]),
    ("127.0.0.250-", [f"127.0.0.{n}" for n in range(250, 256)]),
    ("127.0.0.-0", ["127.0.0.0"]),
    ("127.0.0.010", ["127.0.0.10"]),  # leading zeros are decimal in a range
    ("127.0.0.0001", ["127.0.0.1"]),
    ("10.0.0.5/30", ["10.0.0.4", "10.0.0.5", "10.0.0.6", "10.0.0.7"]),
    ("10.0.0.1/32", ["10.0.0.1"]),
    ("10.0.0.1/031", ["10.0.0.0", "10.0.0.1"]),
    # A netmask widens every octet of a range (Nmap 7.93 does this).
    ("127.0.0.1-2/31", ["127.0.0.0", "127.0.0.1", "127.0.0.2", "127.0.0.3"]),
    ("127.0-1.0.1/31", ["127.0.0.0", "127.0.0.1", "127.1.0.0", "127.1.0.1"]),
    ("0-1.255.255.254-", ["0.255.255.254", "0.255.255.255", "1.255.255.254", "1.255.255.255"]),
])
def test_ipv4_forms_expand_in_nmap_order(spec, expected):
    assert addresses(spec) == expected
    assert parse_target_spec(spec).count() == len(expected)


def test_star_and_bare_dash_are_the_whole_octet():
    assert addresses("127.0.0.*") == [f"127.0.0.{n}" for n in range(256)]
    assert addresses("127.0.0.-") == addresses("127.0.0.*")
    assert addresses("*.0.0.1")[:3] == ["0.0.0.1", "1.0.0.1", "2.0.0.1"]


def test_literal_addresses_carry_no_target_name():
    assert list(parse_target_spec("127.0.0.1").expand()) == [Target("127.0.0.1", None)]


@pytest.mark.parametrize("spec, address", [
    ("127.1", "127.0.0.1"), ("127.010", "127.0.0.8"), ("2130706433", "127.0.0.1"),
    ("0x7f.0.0.1", "127.0.0.1"), ("127.0.0.0x1", "127.0.0.1"), ("0377.0.0.1", "255.0.0.1"),
    ("0", "0.0.0.0"),
])
def test_inet_aton_forms_are_decoded_without_a_resolver(spec, address):
    # Nmap hands these to getaddrinfo and reports them like names: "127.1 (127.0.0.1)".
    targets, errors = stream([spec])
    assert targets == [Target(address, spec)] and errors == []
    assert parse_target_spec(spec).count() == 1


def test_inet_aton_form_with_netmask():
    targets, _ = stream(["127.1/30"])
    assert targets == [Target("127.0.0.0"), Target("127.0.0.1", "127.1"), Target("127.0.0.2"),
                       Target("127.0.0.3")]


# --------------------------------------------------------------------------------------------
# IPv6


@pytest.mark.parametrize("spec, expected", [
    ("::1", ["::1"]),
    ("2001:DB8:0:0::1", ["2001:db8::1"]),
    ("::1/126", ["::", "::1", "::2", "::3"]),
    ("2001:db8::ff/126", ["2001:db8::fc", "2001:db8::fd", "2001:db8::fe", "2001:db8::ff"]),
    ("fe80::1%lo/127", ["fe80::%lo", "fe80::1%lo"]),  # the zone is needed to reach them
])
def test_ipv6_forms(spec, expected):
    assert addresses(spec) == expected
    assert isinstance(parse_target_spec(spec), IPv6NetworkSpec)


def test_ipv6_network_counts_without_expanding():
    spec = parse_target_spec("2001:db8::/32")
    assert spec.count() == 2 ** 96
    assert [t.address for t in itertools.islice(spec.expand(), 2)] == ["2001:db8::",
                                                                       "2001:db8::1"]
    assert spec.contains(ipaddress.ip_address("2001:db8:ffff::1"))
    assert not spec.contains(ipaddress.ip_address("2001:db9::"))
    assert not spec.contains(ipaddress.ip_address("10.0.0.1"))


# --------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize("token, message", [
    ("127.0.0.300", 'Invalid target specification "127.0.0.300": octet 300 is out of range'),
    ("127.0.0.3-1", 'Invalid target specification "127.0.0.3-1": octet range 3-1 is backwards'),
    ("1.2.3.4.5", 'Invalid target specification "1.2.3.4.5"'),
    ("127.0.0.1,", 'Invalid target specification "127.0.0.1,": bad octet'),
    ("127..0.1", 'Invalid target specification "127..0.1"'),
    ("127.0.0.1-256", 'octet 256 is out of range'),
    ("127.0.0.1/33", 'Illegal netmask in "127.0.0.1/33": must be 0 to 32 for IPv4'),
    ("::1/129", 'Illegal netmask in "::1/129": must be 0 to 128 for IPv6'),
    ("127.0.0.1/", 'Invalid target specification "127.0.0.1/": expected a number of netmask'),
    ("127.0.0.1/-1", "expected a number of netmask bits"),
    ("127.0.0.1/24/2", "expected a number of netmask bits"),
    ("127.0.0.1/99999999999999999999", "Illegal netmask"),
    ("[::1]", 'Invalid target specification "[::1]"'),
    ("::1-3", 'Invalid target specification "::1-3": not an IPv6 address'),
    ("localhost:80", 'Invalid target specification "localhost:80": not an IPv6 address (ports '
                     'are given with -p, not host:port)'),
    ("-foo", 'Invalid target specification "-foo"'),
    ("foo-", 'Invalid target specification "foo-"'),
    ("foo..bar", 'Invalid target specification "foo..bar"'),
    ("a" * 64 + ".com", "not an IP address, range or valid host name"),
    ("bücher.example", "host names must be ASCII"),
    ("", 'Invalid target specification ""'),
    ("a b", 'Invalid target specification "a b"'),
    ("a\nb", r'Invalid target specification "a\nb"'),
    ("localhost/129", 'Illegal netmask in "localhost/129"'),
])
def test_bad_tokens_raise_one_line_user_errors(token, message):
    with pytest.raises(UserError) as caught:
        parse_target_spec(token)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_name_netmask_is_checked_against_the_scan_family():
    assert parse_target_spec("localhost/120").prefix_length == 120  # family not known yet
    with pytest.raises(UserError, match='Illegal netmask in "localhost/120"'):
        parse_target_spec("localhost/120", family=4)
    assert parse_target_spec("localhost/120", family=6).prefix_length == 120


def test_error_messages_stay_short_for_huge_tokens():
    with pytest.raises(UserError) as caught:
        parse_target_spec("!" * 100_000)
    assert len(str(caught.value)) < 300


# --------------------------------------------------------------------------------------------
# Laziness


def test_a_slash_8_is_never_expanded():
    tracemalloc.start()
    started = time.perf_counter()
    spec = parse_target_spec("10.0.0.0/8")
    first = [t.address for t in itertools.islice(spec.expand(), 5)]
    targets = list(itertools.islice(TargetStream(["127.0.0.0/8", "10.0.0.0/8"], (), no_resolver,
                                                 print), 5))
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert first == ["10.0.0.0", "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"]
    assert [t.address for t in targets] == [f"127.0.0.{n}" for n in range(5)]
    assert spec.count() == 16_777_216
    assert elapsed < 0.5 and peak < 1_000_000


def test_the_whole_ipv4_space_is_countable_and_iterable():
    spec = parse_target_spec("0.0.0.0/0")
    assert spec.count() == 2 ** 32
    assert [t.address for t in itertools.islice(spec.expand(), 3)] == ["0.0.0.0", "0.0.0.1",
                                                                       "0.0.0.2"]
    assert parse_target_spec("*.*.*.*").count() == 2 ** 32


def test_excluding_a_slash_16_from_a_slash_8_jumps_over_it():
    tracemalloc.start()
    started = time.perf_counter()
    targets = TargetStream(["10.0.0.0/8"], ["10.0.0.0/16", "10.1.0.1"], no_resolver, print)
    first = [t.address for t in itertools.islice(targets, 3)]
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert first == ["10.1.0.0", "10.1.0.2", "10.1.0.3"]
    assert elapsed < 0.2 and peak < 1_000_000


def test_excluding_almost_everything_skips_without_walking():
    started = time.perf_counter()
    targets = TargetStream(["0.0.0.0/0"], ["0.0.0.0/1", "128.0.0.0/2", "192.0.0.0/3",
                                           "224-255.0-255.0-254.*"], no_resolver, print)
    first = [t.address for t in itertools.islice(targets, 3)]
    assert time.perf_counter() - started < 0.5
    assert first == ["224.0.255.0", "224.0.255.1", "224.0.255.2"]


def test_ranges_with_holes_skip_excluded_runs():
    targets, _ = stream(["10.0-1.0-3.*"], ["10.0-1.1-2.*", "10.0-1.0.1-254"])
    assert [t.address for t in targets] == [
        "10.0.0.0", "10.0.0.255", *(f"10.0.3.{n}" for n in range(256)),
        "10.1.0.0", "10.1.0.255", *(f"10.1.3.{n}" for n in range(256))]


def test_exclusion_membership_does_not_expand():
    exclusions = Exclusions([parse_target_spec("10.0.0.0/8"),
                             parse_target_spec("172.16-31.*.1-254"),
                             parse_target_spec("2001:db8::/32")])
    started = time.perf_counter()
    assert exclusions.contains(ipaddress.ip_address("10.200.3.4"))
    assert exclusions.contains("172.20.9.77")
    assert not exclusions.contains("172.20.9.255")
    assert not exclusions.contains("172.32.0.1")
    assert exclusions.contains("2001:db8:1::5")
    assert not exclusions.contains("11.0.0.0")
    assert time.perf_counter() - started < 0.05


def test_reading_a_target_file_is_lazy():
    lines_read = []

    class Source:
        def __iter__(self):
            for n in itertools.count():
                lines_read.append(n)
                yield f"10.0.{n // 256 % 256}.{n % 256}\n"

    first = list(itertools.islice(TargetStream(read_target_file("-", Source()), (),
                                               no_resolver, print), 3))
    assert [t.address for t in first] == ["10.0.0.0", "10.0.0.1", "10.0.0.2"]
    assert len(lines_read) == 3


# --------------------------------------------------------------------------------------------
# Exclusions


def test_exclusions_remove_addresses_from_every_form():
    targets, _ = stream(["127.0.0.0-9"], ["127.0.0.1", "127.0.0.4/31", "127.0.0.8-9"])
    assert [t.address for t in targets] == ["127.0.0.0", "127.0.0.2", "127.0.0.3", "127.0.0.6",
                                            "127.0.0.7"]


def test_exclusions_apply_to_every_token_and_family():
    targets, _ = stream(["10.0.0.1-3", "::1/126", "10.0.0.2"], ["10.0.0.2", "::2"],
                        family=None)
    assert [t.address for t in targets] == ["10.0.0.1", "10.0.0.3", "::", "::1", "::3"]


def test_excluding_everything_yields_nothing():
    targets, errors = stream(["192.168.1.0/24"], ["192.168.0.0/16"])
    assert targets == [] and errors == []


def test_an_excluded_name_removes_all_its_addresses():
    resolve = dict_resolver({"multi": ["127.0.0.1", "127.0.0.5", "127.0.0.7", "::1"]})
    targets, _ = stream(["127.0.0.0-9"], ["multi"], resolve)
    assert [t.address for t in targets] == ["127.0.0.0", "127.0.0.2", "127.0.0.3", "127.0.0.4",
                                            "127.0.0.6", "127.0.0.8", "127.0.0.9"]


def test_an_excluded_name_with_netmask_removes_its_network():
    targets, _ = stream(["127.0.0.0-9"], ["localhost/31"],
                        dict_resolver({"localhost": ["127.0.0.1"]}))
    assert [t.address for t in targets] == [f"127.0.0.{n}" for n in range(2, 10)]


def test_an_excluded_name_that_does_not_resolve_stops_the_scan():
    with pytest.raises(UserError, match='Failed to resolve excluded host "nosuch.test".'):
        list(TargetStream(["127.0.0.1"], ["nosuch.test"], dict_resolver({}), print))


def test_bad_exclusion_syntax_is_rejected_at_construction():
    with pytest.raises(UserError, match="127.0.0.300"):
        TargetStream(["127.0.0.1"], ["127.0.0.300"], no_resolver, print)


def test_exclude_option_splits_on_every_comma_like_nmap():
    # nmap --exclude 127.0.0.1,3 excludes 127.0.0.1 and "3", which is 0.0.0.3.
    assert parse_excludes("127.0.0.1,3") == ["127.0.0.1", "3"]
    targets, _ = stream(["127.0.0.0-4", "0.0.0.3"], parse_excludes("127.0.0.1,3"))
    assert [t.address for t in targets] == ["127.0.0.0", "127.0.0.2", "127.0.0.3", "127.0.0.4"]
    assert parse_excludes("10.0.0.0/8, ::1") == ["10.0.0.0/8", "::1"]


@pytest.mark.parametrize("text, message", [
    ("127.0.0.1,,127.0.0.2", 'Empty entry in --exclude list "127.0.0.1,,127.0.0.2"'),
    (",", 'Empty --exclude list ","'),
    ("", 'Empty --exclude list ""'),
    ("127.0.0.1 127.0.0.5", 'Invalid target specification "127.0.0.1 127.0.0.5"'),
    ("10.0.0.0/40", 'Illegal netmask in "10.0.0.0/40"'),
])
def test_bad_exclude_lists(text, message):
    with pytest.raises(UserError) as caught:
        parse_excludes(text)
    assert message in str(caught.value)


def test_exclude_file_keeps_octet_lists_and_comments(tmp_path):
    path = tmp_path / "excl.txt"
    path.write_text("127.0.0.5 #comment 127.0.0.6\n127.0.0.7,8\n\n  127.0.0.9\t127.0.0.2-3 # x\n")
    excludes = read_exclude_file(str(path))
    assert excludes == ["127.0.0.5", "127.0.0.7,8", "127.0.0.9", "127.0.0.2-3"]
    targets, _ = stream(["127.0.0.0-9"], excludes)
    assert [t.address for t in targets] == ["127.0.0.0", "127.0.0.1", "127.0.0.4", "127.0.0.6"]


def test_exclude_file_errors(tmp_path):
    with pytest.raises(UserError, match=r"Failed to open exclude file .*nosuch.txt for "
                                        r"reading: No such file or directory"):
        read_exclude_file(str(tmp_path / "nosuch.txt"))
    bad = tmp_path / "bad.txt"
    bad.write_text("127.0.0.1\n127.0.0.999\n")
    with pytest.raises(UserError, match="127.0.0.999"):
        read_exclude_file(str(bad))


# --------------------------------------------------------------------------------------------
# Names


def test_a_name_scans_its_first_address_and_reports_the_others():
    resolved = []
    resolve = dict_resolver({"multi": ["127.0.0.1", "::1", "127.0.0.5", "127.0.0.1"]})
    targets = list(TargetStream(["multi"], (), resolve, print, on_resolved=resolved.append))
    assert targets == [Target("127.0.0.1", "multi", ("::1", "127.0.0.5"))]
    assert [(r.name, r.address, r.other_addresses) for r in resolved] == [
        ("multi", "127.0.0.1", ("::1", "127.0.0.5"))]


def test_with_ipv6_a_name_scans_its_first_ipv6_address():
    resolved = []
    resolve = dict_resolver({"multi": ["127.0.0.1", "::1", "127.0.0.5"]})
    targets = list(TargetStream(["multi"], (), resolve, print, family=6,
                                on_resolved=resolved.append))
    assert [(t.address, t.targetname) for t in targets] == [("::1", "multi")]
    assert resolved[0].other_addresses == ("127.0.0.1", "127.0.0.5")


def test_name_with_netmask_names_only_its_own_address():
    targets, _ = stream(["localhost/30"], resolve=dict_resolver({"localhost": ["127.0.0.1"]}))
    assert targets == [Target("127.0.0.0"), Target("127.0.0.1", "localhost"),
                       Target("127.0.0.2"), Target("127.0.0.3")]


def test_unresolvable_names_are_reported_and_the_stream_goes_on():
    calls: list[str] = []
    targets, errors = stream(["nosuch.test", "127.0.0.1", "host.test"],
                             resolve=dict_resolver({"host.test": ["192.0.2.7"]}, calls))
    assert targets == [Target("127.0.0.1"), Target("192.0.2.7", "host.test")]
    assert errors == ['Failed to resolve "nosuch.test".']
    assert calls == ["nosuch.test", "host.test"]


def test_a_name_without_an_address_of_the_scan_family():
    errors: list[str] = []
    targets = list(TargetStream(["six"], (), dict_resolver({"six": ["::1"]}), errors.append))
    assert targets == []
    assert errors == ["Warning: Hostname six resolves, but not to any IPv4 address. "
                      "Try scanning with -6", 'Failed to resolve "six".']
    warnings: list[str] = []
    list(TargetStream(["four"], (), dict_resolver({"four": ["127.0.0.1"]}), errors.append,
                      family=6, on_warning=warnings.append))
    assert warnings == ["Warning: Hostname four resolves, but not to any IPv6 address. "
                        "Try scanning without -6"]


def test_resolver_answers_that_are_not_addresses_are_ignored():
    targets, errors = stream(["odd"], resolve=dict_resolver({"odd": ["garbage", "10.1.2.3"]}))
    assert targets == [Target("10.1.2.3", "odd")]
    targets, errors = stream(["empty"], resolve=dict_resolver({"empty": []}))
    assert targets == [] and errors == ['Failed to resolve "empty".']


def test_resolver_os_errors_count_as_failures():
    def resolve(name):
        raise OSError(-2, "Name or service not known")  # what socket.gaierror looks like
    targets, errors = stream(["host.test"], resolve=resolve)
    assert targets == [] and errors == ['Failed to resolve "host.test".']


def test_name_spec_before_and_after_resolution():
    spec = parse_target_spec("host.test/24")
    assert isinstance(spec, HostnameSpec) and spec.count() is None
    with pytest.raises(ValueError):
        spec.contains(ipaddress.ip_address("192.0.2.7"))
    resolved = spec.resolve(dict_resolver({"host.test": ["192.0.2.7"]}))
    assert resolved.count() == 256
    assert resolved.contains(ipaddress.ip_address("192.0.2.200"))
    assert not resolved.contains(ipaddress.ip_address("192.0.3.1"))
    with pytest.raises(TargetNotScanned, match='Failed to resolve "host.test".'):
        spec.resolve(dict_resolver({}))


@pytest.mark.parametrize("name", ["localhost", "LOCALHOST", "host-1.example.com",
                                  "example.com.", "a" * 63 + ".test", "under_score.lan",
                                  "1e100.net"])
def test_valid_host_names(name):
    spec = parse_target_spec(name)
    assert isinstance(spec, HostnameSpec) and spec.name == name and spec.literal is None


def test_family_mismatch_of_literal_addresses_is_reported_not_fatal():
    targets, errors = stream(["::1", "127.0.0.1"])
    assert targets == [Target("127.0.0.1")]
    assert errors == ['"::1" looks like an IPv6 target specification -- you have to use the '
                      '-6 option.']
    targets, errors = stream(["127.0.0.1", "::1"], family=6)
    assert targets == [Target("::1")]
    assert errors == ['"127.0.0.1" is an IPv4 target specification, but -6 scans IPv6 only.']


# --------------------------------------------------------------------------------------------
# The stream


def test_stream_keeps_command_line_order_and_duplicates():
    targets, _ = stream(["127.0.0.2", "127.0.0.1-2", "127.0.0.2"])
    assert [t.address for t in targets] == ["127.0.0.2", "127.0.0.1", "127.0.0.2", "127.0.0.2"]


def test_stream_raises_on_a_bad_token_when_it_reaches_it():
    produced = []
    with pytest.raises(UserError, match="127.0.0.300"):
        for target in TargetStream(["127.0.0.1", "127.0.0.300"], (), no_resolver, print):
            produced.append(target)
    assert produced == [Target("127.0.0.1")]


def test_validate_tokens_rejects_syntax_before_scanning():
    specs = validate_tokens(["127.0.0.1", "10.0.0.0/8", "host.test"])
    assert [type(s) for s in specs] == [IPv4RangeSpec, IPv4RangeSpec, HostnameSpec]
    with pytest.raises(UserError, match="1.2.3.4.5"):
        validate_tokens(["127.0.0.1", "1.2.3.4.5"])


def test_estimated_count():
    counted = TargetStream(["10.0.0.0/8", "127.0.0.1-2", "host.test", "host.test/30", "::/120"],
                           (), no_resolver, print, family=None)
    assert counted.estimated_count() == 16_777_216 + 2 + 1 + 4 + 256
    assert TargetStream(iter(["127.0.0.1"]), (), no_resolver, print).estimated_count() is None


# --------------------------------------------------------------------------------------------
# -iL


def test_target_file_tokens_and_comments(tmp_path):
    path = tmp_path / "targets.txt"
    path.write_text("127.0.0.1#c 127.0.0.2\n127.0.0.3# 127.0.0.4\n#127.0.0.5\n"
                    "  127.0.0.6\t\t10.0.0.1-3,7  \n\n127.0.0.8")
    assert list(read_target_file(str(path))) == ["127.0.0.1", "127.0.0.3", "127.0.0.6",
                                                 "10.0.0.1-3,7", "127.0.0.8"]


def test_target_file_from_stdin():
    stdin = io.StringIO("127.0.0.1 # one\nhost.test\n")
    assert list(read_target_file("-", stdin)) == ["127.0.0.1", "host.test"]
    binary_stdin = io.BytesIO(b"127.0.0.9\n")
    assert list(read_target_file("-", binary_stdin)) == ["127.0.0.9"]


def test_target_file_errors_at_open_time(tmp_path):
    missing = tmp_path / "nosuch.txt"
    with pytest.raises(UserError) as caught:
        read_target_file(str(missing))  # not iterated: the error comes from the call
    assert str(caught.value) == (f"Failed to open input file {missing} for reading: "
                                 f"No such file or directory")
    with pytest.raises(UserError, match="for reading: Is a directory"):
        read_target_file(str(tmp_path))


def test_target_file_with_undecodable_bytes_gives_a_user_error(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"127.0.0.1\nh\xf6st.test\n")
    with pytest.raises(UserError, match="Invalid target specification"):
        list(TargetStream(read_target_file(str(path)), (), no_resolver, print))


# --------------------------------------------------------------------------------------------
# Nmap as the reference


def nmap_list_scan(nmap: str, *args: str) -> list[str]:
    """Addresses ``nmap -sL -n`` lists. Only literal addresses are given, so nothing is
    resolved and no packet is sent."""
    result = subprocess.run([nmap, "-sL", "-n", *args], capture_output=True, text=True,
                            timeout=60, check=True)
    prefix = "Nmap scan report for "
    return [line[len(prefix):] for line in result.stdout.splitlines() if line.startswith(prefix)]


NMAP_SAMPLES = ["127.0.1-3.1-2", "127.0.0.5,1-3", "127.0.0.1-3,2-4", "127.0.0.-3",
                "127.0.0.250-", "127.0.0.*", "127.0.0.-,7", "10.0.0.5/30", "10.0.0.1/030",
                "127.0.0.1-2/31", "127.0.0-1.1/31", "0-1.255.255.254-", "192.168.0.0/23",
                "127.0.0.0001", "127.0.0.010"]


def test_ipv4_expansion_matches_nmap(nmap_path):
    assert nmap_list_scan(nmap_path, *NMAP_SAMPLES) == [
        a for spec in NMAP_SAMPLES for a in addresses(spec)]


def test_ipv6_expansion_matches_nmap(nmap_path):
    samples = ["::1", "::1/126", "2001:db8::ff/125", "2001:DB8:0:0::1"]
    assert nmap_list_scan(nmap_path, "-6", *samples) == [
        a for s in samples for a in addresses(s)]


def test_exclusions_match_nmap(nmap_path):
    excludes = "127.0.0.1,127.0.0.4/31,127.0.0.8-9"
    ours = TargetStream(["127.0.0.0-12"], parse_excludes(excludes), no_resolver, print)
    assert nmap_list_scan(nmap_path, "127.0.0.0-12", "--exclude", excludes) == [
        t.address for t in ours]


# --------------------------------------------------------------------------------------------
# Properties

octet_items = st.one_of(
    st.integers(0, 255).map(str),
    st.tuples(st.integers(0, 255), st.integers(0, 255)).map(
        lambda ab: f"{min(ab)}-{max(ab)}"),
    st.integers(0, 255).map(lambda b: f"-{b}"),
    st.integers(0, 255).map(lambda a: f"{a}-"),
)
octet_lists = st.lists(octet_items, min_size=1, max_size=3)


def octet_values(items: list[str]) -> set[int]:
    values: set[int] = set()
    for item in items:
        low, dash, high = item.partition("-")
        first = int(low) if low else 0
        last = (int(high) if high else 255) if dash else first
        values.update(range(first, last + 1))
    return values


@settings(max_examples=150, deadline=None)
@given(st.lists(octet_lists, min_size=4, max_size=4), st.data())
def test_octet_ranges_expand_to_the_cartesian_product(octets, data):
    spec_text = ".".join(",".join(items) for items in octets)
    spec = parse_target_spec(spec_text)
    value_sets = [sorted(octet_values(items)) for items in octets]
    assert spec.count() == len(value_sets[0]) * len(value_sets[1]) * len(value_sets[2]) * \
        len(value_sets[3])
    if spec.count() <= 2000:
        expected = [".".join(map(str, combo)) for combo in itertools.product(*value_sets)]
        assert [t.address for t in spec.expand()] == expected
    probe = data.draw(st.integers(0, 2 ** 32 - 1))
    octet_tuple = probe.to_bytes(4, "big")
    expected_member = all(o in values for o, values in zip(octet_tuple, value_sets))
    assert spec.contains(ipaddress.IPv4Address(probe)) == expected_member


@settings(max_examples=150, deadline=None)
@given(st.lists(octet_lists, min_size=4, max_size=4), st.integers(0, 2 ** 32 - 1))
def test_first_at_or_after_is_the_next_member(octets, start):
    spec = parse_target_spec(".".join(",".join(items) for items in octets))
    assert isinstance(spec, IPv4RangeSpec)
    found = spec.first_at_or_after(start)
    if found is not None:
        assert found >= start and spec.contains_value(found)
    # Nothing in between was skipped: walk back from the answer over a short window.
    upper = found if found is not None else 2 ** 32
    for value in range(max(start, upper - 300), upper):
        assert not spec.contains_value(value)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2 ** 32 - 1), st.integers(16, 32))
def test_cidr_blocks_match_the_ipaddress_module(value, prefix):
    address = ipaddress.IPv4Address(value)
    network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    spec = parse_target_spec(f"{address}/{prefix}")
    assert spec.count() == network.num_addresses
    assert [t.address for t in itertools.islice(spec.expand(), 3)] == [
        str(a) for a in itertools.islice(network, 3)]
    assert spec.interval() == (int(network.network_address), int(network.broadcast_address))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 255), st.integers(0, 32)), min_size=1, max_size=4),
       st.lists(octet_lists, min_size=4, max_size=4))
def test_exclusions_agree_with_brute_force(blocks, excluded_range):
    # Targets within 10.0.0.0/24 ... 10.0.3.0/24 so the brute force stays small.
    excludes = [f"10.0.{b % 4}.{b}/{max(prefix, 24)}" for b, prefix in blocks]
    excludes.append("10.0." + ".".join(",".join(items) for items in excluded_range[2:]))
    targets, _ = stream(["10.0.0-3.*"], excludes)
    networks = [ipaddress.ip_network(e, strict=False) for e in excludes[:-1]]
    ranged = parse_target_spec(excludes[-1])
    expected = [f"10.0.{c}.{d}" for c in range(4) for d in range(256)
                if not any(ipaddress.IPv4Address(f"10.0.{c}.{d}") in n for n in networks)
                and not ranged.contains(ipaddress.IPv4Address(f"10.0.{c}.{d}"))]
    assert [t.address for t in targets] == expected


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=40))
def test_arbitrary_text_raises_only_user_errors(text):
    try:
        spec = parse_target_spec(text)
    except UserError as exc:
        assert "\n" not in str(exc)
        return
    if spec.count() is not None and spec.count() < 10_000:
        for target in spec.expand(dict_resolver({})):
            ipaddress.ip_address(target.address)


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="0123456789.,-*/:xX%abf ", max_size=30))
def test_address_like_text_raises_only_user_errors(text):
    try:
        spec = parse_target_spec(text)
    except UserError:
        return
    count = spec.count()
    if count is not None and count < 10_000:
        for target in spec.expand(dict_resolver({})):
            ipaddress.ip_address(target.address)
