"""UltraScan's rate-limit mode (UDP) against a simulated target whose ICMP answers are rate
limited as Linux limits them: a burst of six, then one a second. Sans-IO: a simulated clock,
no sockets; the UDP namespace tests check the same against the real kernel and Nmap."""
from __future__ import annotations

import heapq
import itertools

import pytest

from worker.protocol import Timing
from worker.scan.ultra import UltraScan

SILENCE = ("open|filtered", "no-response")


class LimitedTarget:
    """Open ports always answer; closed ports answer while the ICMP allowance lasts."""

    def __init__(self, open_ports, closed_ports, interval_ms=1000.0, burst=6):
        self.open, self.closed = set(open_ports), set(closed_ports)
        self.interval, self.cap = interval_ms, burst * interval_ms
        self.tokens, self.last = self.cap, 0.0

    def answer(self, port: int, now: float):
        if port in self.open:
            return ("open", "udp-response")
        if port not in self.closed:
            return None
        if self.interval:
            self.tokens = min(self.cap, self.tokens + now - self.last)
            self.last = now
            if self.tokens < self.interval:
                return None
            self.tokens -= self.interval
        return ("closed", "port-unreach")


def simulate(target: LimitedTarget, ports, timing=Timing(), rtt_ms=0.5, rate_limited=True):
    """Runs one host's scan to the end; returns (results, simulated milliseconds)."""
    now = 0.0
    scan = UltraScan([("host", ports)], timing, now, silence=SILENCE,
                     answers_rate_limited=rate_limited)
    events, order = [], itertools.count()
    for _ in range(200_000):
        if scan.finished:
            break
        for probe in scan.ready_probes(now):
            outcome = target.answer(probe.port, now)
            if outcome is not None:
                heapq.heappush(events, (now + rtt_ms, next(order), "reply", probe, outcome))
            heapq.heappush(events, (now + scan.timeout_ms(probe.host), next(order), "timeout",
                                    probe, None))
        wake = scan.next_wakeup_ms(now)
        if events and (wake is None or events[0][0] <= wake):
            now, _, kind, probe, outcome = heapq.heappop(events)
            if kind == "reply":
                scan.on_reply(probe, now, *outcome)
            else:
                scan.on_timeout(probe, now)  # ignored when the probe was answered
        elif wake is not None:
            now = wake
        else:
            raise AssertionError("the scan waits for nothing but is not finished")
    assert scan.finished
    return scan.hosts[0].results, now


def test_closed_ports_stay_closed_under_the_default_limit():
    closed = range(3001, 3029)
    results, elapsed = simulate(LimitedTarget({7, 1000}, closed), [7, 1000, *closed])
    assert results == {7: ("open", "udp-response"), 1000: ("open", "udp-response"),
                       **{p: ("closed", "port-unreach") for p in closed}}
    # One answer a second after the burst: about 22 s is the least it can take.
    assert 21_000 < elapsed < 40_000


def test_silent_and_limited_ports_are_told_apart():
    closed, silent = range(3001, 3031), range(4001, 4029)
    results, elapsed = simulate(LimitedTarget((), closed), [*closed, *silent])
    assert results == {**{p: ("closed", "port-unreach") for p in closed},
                       **{p: SILENCE for p in silent}}
    assert elapsed < 80_000  # about a second per closed port, and one more per silent one


def test_a_fast_limit_is_measured_not_assumed():
    """Linux's limit for all peers together (1000 a second, bursts of 50), with the per-peer
    one off: a recheck measures the larger allowance, and the scan stays quick."""
    closed = range(1, 1001)
    results, elapsed = simulate(LimitedTarget((), closed, interval_ms=1, burst=50),
                                list(closed))
    assert set(results.values()) == {("closed", "port-unreach")}
    assert elapsed < 5_000


def test_a_target_that_does_not_limit_costs_at_most_one_recheck():
    closed, silent = range(1, 200), range(200, 230)
    results, elapsed = simulate(LimitedTarget({500}, closed, interval_ms=0),
                                [*closed, *silent, 500])
    assert results[500] == ("open", "udp-response")
    assert all(results[p] == ("closed", "port-unreach") for p in closed)
    assert all(results[p] == SILENCE for p in silent)
    assert elapsed < 3_000  # the retries of the silent ports, plus one recheck


def test_a_silent_host_is_not_rechecked():
    results, elapsed = simulate(LimitedTarget((), ()), list(range(1, 50)))
    assert set(results.values()) == {SILENCE}
    assert elapsed == simulate(LimitedTarget((), ()), list(range(1, 50)),
                               rate_limited=False)[1]


@pytest.mark.parametrize("interval_ms", [100.0, 500.0])
def test_faster_limits_are_followed_too(interval_ms):
    closed = range(1, 61)
    results, _ = simulate(LimitedTarget((), closed, interval_ms=interval_ms), list(closed))
    assert set(results.values()) == {("closed", "port-unreach")}
