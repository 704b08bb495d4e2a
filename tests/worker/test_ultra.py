"""UltraScan's decisions, driven by hand with a fake clock (it is sans-IO: no sockets here)."""
from worker.protocol import Timing
from worker.scan.ultra import INITIAL_CWND, UltraScan

T3 = Timing()


def drain(scan, now, answer):
    """Send everything allowed at ``now`` and answer each probe with answer(probe)."""
    sent = scan.ready_probes(now)
    for probe in sent:
        outcome = answer(probe)
        if outcome is None:
            scan.on_timeout(probe, now + 1)
        else:
            scan.on_reply(probe, now + 1, *outcome)
    return sent


def test_windows_start_small_and_grow_with_answers():
    scan = UltraScan([("h", range(1, 2001))], T3, 0.0)
    first = scan.ready_probes(0.0)
    assert len(first) == int(INITIAL_CWND)
    assert scan.ready_probes(0.0) == []  # window full until something comes back
    for probe in first:
        scan.on_reply(probe, 1.0, "closed", "conn-refused")
    second = scan.ready_probes(1.0)
    assert len(second) == 2 * int(INITIAL_CWND)  # slow start doubles per round trip


def test_every_port_gets_a_state_and_the_scan_finishes():
    scan = UltraScan([("a", [22, 80, 443]), ("b", [22, 80, 443])], T3, 0.0)
    open_ports = {("a", 22), ("b", 443)}
    now = 0.0
    for _ in range(20):
        drain(scan, now, lambda p: ("open", "syn-ack") if (p.host.key, p.port) in open_ports
              else ("closed", "conn-refused"))
        now += 2
        if scan.finished:
            break
    assert scan.finished
    results = {h.key: h.results for h in scan.hosts}
    assert results["a"] == {22: ("open", "syn-ack"), 80: ("closed", "conn-refused"),
                            443: ("closed", "conn-refused")}
    assert results["b"][443] == ("open", "syn-ack")
    assert scan.progress() == (6, 6)


def test_silent_port_is_retried_only_as_often_as_the_host_ever_needed():
    scan = UltraScan([("h", [1, 2, 3])], T3, 0.0)
    probes = scan.ready_probes(0.0)
    tries = {1: 0, 2: 0, 3: 0}
    now = 0.0
    for _ in range(50):
        for probe in probes:
            tries[probe.port] += 1
            if probe.port == 2:
                scan.on_timeout(probe, now + scan.timeout_ms(probe.host))
            else:
                scan.on_reply(probe, now + 1, "closed", "conn-refused")
        if scan.finished:
            break
        now += 2000
        probes = scan.ready_probes(now)
    assert scan.finished
    # Answers came on the first try, so the silent port gets one retransmission, not ten.
    assert tries == {1: 1, 2: 2, 3: 1}
    assert scan.hosts[0].results[2] == ("filtered", "no-response")


def test_max_retries_zero_means_one_try():
    scan = UltraScan([("h", [7])], Timing(max_retries=0), 0.0)
    (probe,) = scan.ready_probes(0.0)
    scan.on_timeout(probe, 1000.0)
    assert scan.finished
    assert scan.hosts[0].results[7] == ("filtered", "no-response")


def test_rtt_sets_the_probe_timeout_within_template_bounds():
    timing = Timing(initial_rtt_timeout_ms=1000, min_rtt_timeout_ms=100, max_rtt_timeout_ms=500)
    scan = UltraScan([("h", range(1, 100))], timing, 0.0)
    host = scan.hosts[0]
    assert scan.timeout_ms(host) == 1000  # no sample yet: the initial timeout
    for probe in scan.ready_probes(0.0):
        scan.on_reply(probe, 0.2, "closed", "conn-refused")  # 200 µs round trips
    assert scan.timeout_ms(host) == 100  # clamped up to the minimum
    for probe in scan.ready_probes(10.0):
        scan.on_reply(probe, 10.0 + 3000, "closed", "conn-refused")  # 3 s round trips
    assert scan.timeout_ms(host) == 500  # clamped down to the maximum


def test_a_drop_halves_the_window_once_per_round_trip():
    scan = UltraScan([("h", range(1, 5000))], T3, 0.0)
    host = scan.hosts[0]
    now = 0.0
    for _ in range(4):  # grow the window
        drain(scan, now, lambda p: ("closed", "conn-refused"))
        now += 1
    grown = host.cwnd
    batch = scan.ready_probes(now)
    early, late = batch[:3], batch[3:]
    for probe in late:  # answered probes sent at the same time as the lost ones
        scan.on_reply(probe, now + 1, "closed", "conn-refused")
    for probe in early:
        scan.on_timeout(probe, now + 100)
    assert host.cwnd <= grown / 2 + len(late)  # cut once...
    assert host.cwnd > grown / 4  # ...not three times


def test_discovery_finishes_host_at_first_answer_and_abandons_the_rest():
    scan = UltraScan([("up", [80, 443]), ("down", [80, 443])], T3, 0.0, discovery=True)
    probes = scan.ready_probes(0.0)
    assert len(probes) == 4
    up_probes = [p for p in probes if p.host.key == "up"]
    abandoned = scan.on_reply(up_probes[0], 1.0, "closed", "conn-refused")
    assert abandoned == [up_probes[1]]
    up = scan.hosts[0]
    assert up.done and up.up and up.up_reason == "conn-refused"
    now = 1.0
    for _ in range(10):
        for probe in [p for p in probes if p.host.key == "down"]:
            scan.on_timeout(probe, now + 1000)
        now += 2000
        probes = scan.ready_probes(now)
        if scan.finished:
            break
    down = scan.hosts[1]
    assert scan.finished and down.done and not down.up


def test_unreachable_is_not_an_answer_in_discovery():
    scan = UltraScan([("h", [80])], T3, 0.0, discovery=True)
    (probe,) = scan.ready_probes(0.0)
    scan.on_reply(probe, 1.0, "filtered", "host-unreach")
    assert scan.finished and not scan.hosts[0].up


def test_scan_delay_spaces_probes_to_one_host():
    scan = UltraScan([("h", [1, 2, 3])], Timing(scan_delay_ms=400), 0.0)
    assert len(scan.ready_probes(0.0)) == 1
    assert scan.ready_probes(100.0) == []
    assert scan.next_wakeup_ms(100.0) == 400.0
    assert len(scan.ready_probes(400.0)) == 1


def test_max_rate_holds_probes_back():
    scan = UltraScan([("h", range(1, 100))], Timing(max_rate=10), 0.0)
    assert len(scan.ready_probes(0.0)) == 1
    assert scan.ready_probes(50.0) == []
    assert scan.next_wakeup_ms(50.0) == 100.0
    assert len(scan.ready_probes(100.0)) == 1


def test_min_rate_sends_beyond_the_window():
    scan = UltraScan([("h", range(1, 1000))], Timing(min_rate=1000), 0.0)
    scan.ready_probes(0.0)  # fills the initial window
    # 100 ms in, 1000/s means 100 probes should be out, congestion window or not.
    assert len(scan.ready_probes(100.0)) > 50


def test_max_parallelism_caps_outstanding_probes():
    scan = UltraScan([("h", range(1, 1000))], Timing(max_parallelism=3), 0.0)
    for _ in range(5):
        for probe in scan.ready_probes(0.0):
            scan.on_reply(probe, 0.5, "closed", "conn-refused")
        assert scan.outstanding == 0
    assert len(scan.ready_probes(1.0)) == 3


def test_host_timeout_expires_host_and_returns_its_probes():
    scan = UltraScan([("h", range(1, 100))], Timing(host_timeout_ms=1000), 0.0)
    sent = scan.ready_probes(0.0)
    assert scan.expire(999.0) == []
    abandoned = scan.expire(1000.0)
    assert set(abandoned) == set(sent)
    assert scan.finished and scan.hosts[0].timed_out


def test_requeue_does_not_count_a_try():
    scan = UltraScan([("h", [5])], Timing(max_retries=0), 0.0)
    (probe,) = scan.ready_probes(0.0)
    scan.requeue(probe)
    (again,) = scan.ready_probes(1.0)
    assert again.port == 5 and again.tryno == 0
    scan.on_reply(again, 2.0, "closed", "conn-refused")
    assert scan.finished


def test_late_answer_for_abandoned_probe_is_ignored():
    scan = UltraScan([("h", [80, 443])], T3, 0.0, discovery=True)
    a, b = scan.ready_probes(0.0)
    scan.on_reply(a, 1.0, "open", "syn-ack")
    assert scan.on_reply(b, 2.0, "closed", "conn-refused") == []
    assert scan.outstanding == 0
