"""scripts/banner.nse beside Nmap's banner script, on greeters the test runs on 127.0.0.61:
short, long, binary, multi-line, whitespace-padded, empty, silent, late, chunked, TLS-only
and seeded random greetings, and a real OpenSSH server. Each scan runs once (ours and nmap
at the same time) and every port's result must equal Nmap's and the layout Nmap was
observed to use:

* bytes outside printable ASCII become ``\\xHH`` (uppercase), whitespace is cut off both
  ends, and a greeting of only whitespace (or none) gives no result;
* the text is cut into lines of 63 characters, then 71 (escapes may be split); a full line
  ends in a newline; at most ``1 + nmap.verbosity()`` lines are kept (a script selected by
  name adds one to the verbosity), the last of them ending in ``...`` when the text is longer;
* one read only: what the service sends first;
* the wait is ``banner.timeout`` (default 5 s) to connect plus as much again for the
  greeting, then the same over TLS, so a TLS-only service's greeting is found too.
"""
from __future__ import annotations

import random
import socket
import time

import pytest
from banner_peer import (BannerPeers, close_at_once, greet, hold, scan_both, silent,
                         start_sshd, stop_process)

ADDRESS = "127.0.0.61"
RANDOM = random.Random(61)
FUZZ = [bytes(RANDOM.randrange(256) for _ in range(RANDOM.randrange(1, 400)))
        for _ in range(6)]

GREETINGS = {
    "short": b"220 FTP version 1.0\r\n",
    "long": bytes(ord("a") + i % 26 for i in range(300)),
    "multi": b"line one\r\nline two\r\n" + b"x" * 100 + b"\r\nend\r\n",
    "binary": bytes(range(256)),
    "padded": b"\t  hello world \t\r\n\r\n",
    "vt": b"\x0b\x0cvertical\x0b\x0c",
    "nul": b"\x00\x00abc\x00",
    "spaces": b"   \r\n",
    "exact63": b"A" * 63,
    "exact64": b"B" * 64,
    "exact134": b"C" * 134,
    "exact135": b"D" * 135,
    "spacerun": b"x" + b" " * 8000 + b"y",  # trimming in linear time (one 8 KiB read)
    **{f"fuzz{i}": data for i, data in enumerate(FUZZ)},
}


def late(delay_s: float, data: bytes):
    def handler(conn, stopping):
        if not stopping.wait(delay_s):
            conn.sendall(data)
            hold(conn, stopping)
    return handler


def expected(data: bytes, lines: int) -> str | None:
    """Nmap's layout of a greeting, as observed."""
    data = data.strip(b" \t\r\n\x0b\x0c")
    if not data:
        return None
    text = "".join(chr(b) if 32 <= b <= 126 else f"\\x{b:02X}" for b in data)
    widths = [63] + [71] * (lines - 1)
    out, pos = [], 0
    for number, width in enumerate(widths, 1):
        if pos >= len(text):
            break
        if number == lines and len(text) - pos > width:
            out.append(text[pos:pos + width - 3] + "...\n")
            break
        piece = text[pos:pos + width]
        out.append(piece + "\n" if len(piece) == width else piece)
        pos += width
    return "".join(out)


@pytest.fixture(scope="module")
def peers(tmp_path_factory):
    owned = BannerPeers(ADDRESS, tmp_path_factory.mktemp("banner-tls"))
    yield owned
    owned.close()


SSHD_PORT = 2200


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    proc = start_sshd(ADDRESS, SSHD_PORT, tmp_path_factory.mktemp("sshd"))
    yield proc
    stop_process(proc)


@pytest.fixture(scope="module")
def default_scan(peers, sshd, tmp_path_factory):
    """Every greeting, the TLS-only one, a chunked and a late one, a real OpenSSH server,
    default arguments."""
    ports = {name: peers.serve(greet(data)).port for name, data in GREETINGS.items()}
    ports["sshd"] = SSHD_PORT
    ports["chunks"] = peers.serve(greet(b"first part|second part|third part", pieces=3,
                                        gap_s=1.5)).port
    ports["late"] = peers.serve(late(2.5, b"late hello\r\n")).port
    ports["empty"] = peers.serve(close_at_once).port
    (ours, _, _), (theirs, _, _) = scan_both(tmp_path_factory.mktemp("banner-default"),
                                             ADDRESS, ports.values(), "banner")
    return ports, ours, theirs


def output(results: dict, port: int) -> str | None:
    result = results.get((ADDRESS, port))
    return None if result is None else result.output


@pytest.mark.parametrize("name", sorted(GREETINGS))
def test_greeting_layout_equals_nmaps(default_scan, name):
    ports, ours, theirs = default_scan
    port = ports[name]
    assert output(ours, port) == output(theirs, port)
    assert output(ours, port) == expected(GREETINGS[name], 2)
    if port in ours:
        assert ours[(ADDRESS, port)].structure == []  # plain text, no <elem>


def test_concrete_layouts(default_scan):
    ports, ours, _ = default_scan
    assert output(ours, ports["short"]) == "220 FTP version 1.0"
    assert output(ours, ports["padded"]) == "hello world"
    assert output(ours, ports["nul"]) == "\\x00\\x00abc\\x00"
    assert output(ours, ports["exact63"]) == "A" * 63 + "\n"
    assert output(ours, ports["exact64"]) == "B" * 63 + "\nB"
    assert output(ours, ports["exact135"]) == "D" * 63 + "\n" + "D" * 68 + "...\n"
    assert output(ours, ports["binary"]).startswith("\\x00\\x01")
    assert output(ours, ports["binary"]).split("\n")[0].endswith("\\x0E\\x0")  # split escape
    assert output(ours, ports["spaces"]) is None


def test_real_openssh_server(default_scan):
    ports, ours, theirs = default_scan
    assert output(ours, SSHD_PORT) == output(theirs, SSHD_PORT)
    assert output(ours, SSHD_PORT).startswith("SSH-2.0-OpenSSH_")
    assert "\\x0D" not in output(ours, SSHD_PORT)  # the CRLF is dropped


def test_chunked_late_and_empty_services(default_scan):
    ports, ours, theirs = default_scan
    for name, want in (("chunks", "first part|"), ("late", "late hello"), ("empty", None)):
        assert output(ours, ports[name]) == output(theirs, ports[name]) == want, name


def test_banner_timeout_bounds_the_wait(peers, tmp_path):
    """banner.timeout=1s: silent (plain and TLS) and late services give nothing, in about
    2 s per attempt instead of 10; a TLS-only service, silent in plain TCP, is asked again
    over TLS and its greeting found."""
    ports = [peers.serve(silent).port, peers.serve(silent, tls=True).port,
             peers.serve(late(3.5, b"too late\r\n")).port, peers.serve(close_at_once).port,
             peers.serve(greet(b"TLS hello banner\r\n"), tls=True).port,
             peers.serve(greet(b"in time\r\n")).port]
    (ours, taken, _), (theirs, _, _) = scan_both(tmp_path, ADDRESS, ports, "banner",
                                                 args="banner.timeout=1s")
    assert output(ours, ports[-1]) == output(theirs, ports[-1]) == "in time"
    assert output(ours, ports[-2]) == output(theirs, ports[-2]) == "TLS hello banner"
    for port in ports[:-2]:
        assert output(ours, port) is None and output(theirs, port) is None
    assert taken < 12, taken


def test_verbosity_and_common_ports(peers, tmp_path):
    """-vv gives four lines (verbosity 2, plus 1 for a script named); banner.ports=common
    keeps the usual text-protocol ports only."""
    long = GREETINGS["long"]
    binary = GREETINGS["binary"]
    for number in (21, 25):
        with socket.socket() as probe:  # the well-known ports must be free on our address
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((ADDRESS, number))
    p21 = peers.serve(greet(long), port=21).port
    p25 = peers.serve(greet(binary), port=25).port
    other = peers.serve(greet(b"not common\r\n")).port
    (ours, _, _), (theirs, _, _) = scan_both(tmp_path, ADDRESS, [p21, p25, other], "banner",
                                             args="banner.ports=common", extra=["-vv"])
    for port, data in ((p21, long), (p25, binary)):
        assert output(ours, port) == output(theirs, port) == expected(data, 4)
        assert output(ours, port).count("\n") == 4
    assert output(ours, other) is None and output(theirs, other) is None


def test_banner_ports_argument_picks_ports(peers, tmp_path):
    wanted = peers.serve(greet(b"wanted\r\n")).port
    unwanted = peers.serve(greet(b"unwanted\r\n")).port
    started = time.monotonic()
    (ours, _, _), (theirs, _, _) = scan_both(tmp_path, ADDRESS, [wanted, unwanted], "banner",
                                             args=f"banner.ports=T:{wanted}")
    assert output(ours, wanted) == output(theirs, wanted) == "wanted"
    assert output(ours, unwanted) is None and output(theirs, unwanted) is None
    assert time.monotonic() - started < 60
