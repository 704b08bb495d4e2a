"""Reverse DNS: the message code (fuzzed) and the resolver against a real UDP DNS server
that the test runs on loopback."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from peers import DnsServer, encode_name, reply_for

from worker.dns import (
    DnsFormatError,
    ReverseResolver,
    parse_hosts,
    parse_ptr_reply,
    parse_resolv_conf,
    ptr_name,
    ptr_query,
)
from worker.nsock.loop import EventLoop


def resolve_all(servers, addresses, port, hosts=None, timeout_ms=300):
    loop = EventLoop()
    found = {}
    resolver = ReverseResolver(loop, servers, hosts or {}, found.__setitem__,
                               timeout_ms=timeout_ms, port=port)
    resolver.lookup(addresses)
    for _ in range(200):
        if resolver.idle:
            break
        loop.run_once(50)
    resolver.close()
    loop.close()
    return found


def test_query_and_reply_round_trip():
    query = ptr_query(0x1234, "127.0.0.1")
    assert query[:2] == b"\x12\x34"
    assert encode_name("1.0.0.127.in-addr.arpa") in query
    assert parse_ptr_reply(reply_for(query, ["host.example."])) == (0x1234, 0, ["host.example"])
    assert parse_ptr_reply(reply_for(query, ["a.b"], compress=False))[2] == ["a.b"]
    assert ptr_name("::1").endswith("ip6.arpa")


def test_rejects_queries_loops_and_truncation():
    query = ptr_query(1, "127.0.0.1")
    with pytest.raises(DnsFormatError):
        parse_ptr_reply(query)  # a query, not a response
    looped = bytearray(reply_for(query, ["x"]))
    rdata_at = len(looped) - 3  # the answer's rdata is the last 3 bytes: \x01 x \x00
    looped[rdata_at:] = b"\xc0" + bytes([rdata_at]) + b"\x00"  # a name pointing at itself
    with pytest.raises(DnsFormatError):
        parse_ptr_reply(bytes(looped))
    with pytest.raises(DnsFormatError):
        parse_ptr_reply(reply_for(query, ["x.y"])[:-3])


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_parse_or_raise_format_error(data):
    try:
        parse_ptr_reply(data)
    except DnsFormatError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=40), st.integers(min_value=0, max_value=200))
def test_mangled_replies_parse_or_raise_format_error(noise, cut):
    good = reply_for(ptr_query(7, "127.0.0.9"), ["one.example", "two.example"])
    for data in (good[:cut] + noise, good[:12] + noise + good[12:]):
        try:
            parse_ptr_reply(data)
        except DnsFormatError:
            pass


def test_hosts_and_resolv_conf_parsing():
    hosts = parse_hosts("127.0.0.1 localhost vm\n# c\n::1 ip6-localhost\nbad line\n"
                        "127.0.0.1 second\n")
    assert hosts == {"127.0.0.1": "localhost", "::1": "ip6-localhost"}
    assert parse_resolv_conf("nameserver 127.0.0.53\nsearch x\nnameserver nope\n"
                             "nameserver ::1 # c\n") == ["127.0.0.53", "::1"]


def test_resolver_names_hosts_from_a_real_server():
    server = DnsServer("127.53.0.1", {"1.0.8.127.in-addr.arpa": "one.test.",
                                      "2.0.8.127.in-addr.arpa": "two.test."}).start()
    try:
        found = resolve_all(["127.53.0.1"], ["127.8.0.1", "127.8.0.2", "127.8.0.3"],
                            server.port)
    finally:
        server.close()
    assert found == {"127.8.0.1": "one.test", "127.8.0.2": "two.test", "127.8.0.3": None}


def test_hosts_file_answers_without_a_query():
    server = DnsServer("127.53.0.2", {}).start()
    try:
        found = resolve_all(["127.53.0.2"], ["127.8.1.1"], server.port,
                            hosts={"127.8.1.1": "from-hosts"})
    finally:
        server.close()
    assert found == {"127.8.1.1": "from-hosts"}
    assert server.queries == []


def test_silent_server_times_out_then_the_next_server_answers():
    silent = DnsServer("127.53.0.3", {}, silent={"1.1.8.127.in-addr.arpa"}).start()
    # One resolver talks to every server on one port.
    good = DnsServer("127.53.0.4", {"1.1.8.127.in-addr.arpa": "late.test"},
                     port=silent.port).start()
    try:
        found = resolve_all(["127.53.0.3", "127.53.0.4"], ["127.8.1.1"], silent.port)
    finally:
        silent.close()
        good.close()
    assert found == {"127.8.1.1": "late.test"}
    assert silent.queries and good.queries


def test_nobody_answering_gives_no_name_in_bounded_time():
    server = DnsServer("127.53.0.5", {}, silent={"5.1.8.127.in-addr.arpa"}).start()
    try:
        found = resolve_all(["127.53.0.5"], ["127.8.1.5"], server.port, timeout_ms=100)
    finally:
        server.close()
    assert found == {"127.8.1.5": None}
