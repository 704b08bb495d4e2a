"""Where the seed document and Nmap 7.x disagree (nse-spec §11), in one place.

A script runs under the seed profile (the user's source document, the default) unless it was
loaded from an Nmap data directory (--datadir, NMAPDIR, ~/.nmap, an Nmap install), where it
runs under the Nmap 7 profile so Nmap's own scripts behave as they do under Nmap. Everything
both profiles share (the registry living for the whole scan included) is not here.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    # receive_lines/receive_bytes: timeout or EOF after partial data returns the data (7.x)
    # rather than the error (seed).
    partial_reads_succeed: bool
    # receive_buf's leftover survives other I/O calls (7.x); the seed clears it.
    receive_buf_persists: bool
    # receive_buf: keeppattern required, bad delimiters raise (7.x); seed returns error strings.
    receive_buf_strict: bool
    # send/receive/get_info on an unconnected socket raise (7.x) or return an error (seed).
    raise_when_unconnected: bool
    unconnected_send_error: str
    closed_twice_error: str
    # connect() with a protocol other than tcp/udp/ssl: raise (7.x) or return this error.
    bad_protocol_error: str | None
    # set_timeout floor in ms (seed: 10); None: no floor, -1 means no timeout (7.x).
    timeout_floor_ms: int | None
    # get_port_state: numeric strings accepted as port numbers (seed example {number="80"}).
    port_number_strings: bool
    # host.os: array of name strings (seed) or of {name, classes} tables (7.x).
    os_as_tables: bool
    # Nmap 7's capture API (7.x): pcap_open(device, snaplen, promisc:boolean, bpf), every
    # packet delivered, pcap_receive with the capture time as a fifth value; else the seed's
    # (a hash function and pcap_register, four values).
    pcap_time: bool
    # An uncaught new_try exception's reason is shown at -v (seed) or only at -d (7.x).
    try_reason_at_verbosity: bool
    # connect("ssl")/reconnect_ssl without SSL support: the returned message.
    no_ssl_error: str = "sorry, you don't have OpenSSL"
    # receive_buf failing on a read keeps what that call read in the buffer (seed: nothing a
    # peer sent is lost) or drops it (7.x: the buffer holds what it held when the call began).
    receive_buf_keeps_failed_read: bool = False
    # dnet (nse-spec §7.1, §11.17): sending or closing without an open device raises this...
    dnet_not_open_error: str = "dnet ethernet interface is not open"
    # ... the open error is an argument error (7.x) or a plain one (seed), ethernet_send
    # returns a status (7.x) or nothing (seed), and ethernet_close raises when nothing is
    # open (seed) or never (7.x).
    dnet_7x: bool = True


SEED = Profile(
    name="seed",
    partial_reads_succeed=False,
    receive_buf_persists=False,
    receive_buf_strict=False,
    raise_when_unconnected=False,
    unconnected_send_error="Trying to send through a closed socket",
    closed_twice_error="Trying to close a closed socket",
    bad_protocol_error="invalid connection method",
    timeout_floor_ms=10,
    port_number_strings=True,
    os_as_tables=False,
    pcap_time=False,
    try_reason_at_verbosity=True,
    no_ssl_error="Sorry, you don't have OpenSSL.",
    receive_buf_keeps_failed_read=True,
    dnet_not_open_error="dnet is not valid opened ethernet interface",
    dnet_7x=False,
)

NMAP7 = Profile(
    name="nmap7",
    partial_reads_succeed=True,
    receive_buf_persists=True,
    receive_buf_strict=True,
    raise_when_unconnected=True,
    unconnected_send_error="socket must be connected",
    closed_twice_error="socket already closed",
    bad_protocol_error=None,
    timeout_floor_ms=None,
    port_number_strings=False,
    os_as_tables=True,
    pcap_time=True,
    try_reason_at_verbosity=False,
)

PROFILES = {p.name: p for p in (SEED, NMAP7)}
