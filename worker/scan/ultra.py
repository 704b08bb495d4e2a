"""Probe scheduling for host discovery and port scans, in the manner of Nmap's ultra_scan.

Sans-IO: this module decides which probe to send when, and what an answer or a silence means;
the caller does the sending and reports back. Times are milliseconds from an injected clock.

How this works:
- Every host has a congestion window (``cwnd``), and the whole group has one too; a probe goes
  out only while both have room. Each answer grows the windows (by one below ``ssthresh``,
  "slow start", by 1/cwnd above it). A *drop* (a probe that timed out although the host answered
  probes sent after it) halves the windows, at most once per round trip.
- A probe's timeout comes from the host's smoothed round-trip time: srtt + 4*rttvar, clamped to
  the timing template's min/max; before any sample, from the group's estimate or the initial
  timeout.
- Silence is retried, but only as many times as this host has ever needed (the highest try that
  got an answer, plus one, capped by --max-retries): a host that answers first try does not get
  ten retransmissions per filtered port.
- --min-rate lets probes out beyond the windows while the scan is slower than the rate;
  --max-rate and --scan-delay hold them back.
- In discovery mode a host is finished by its first answer; its other probes are abandoned.
- ``answers_rate_limited`` (UDP: Linux sends ICMP port unreachable about once a second per
  peer after a burst of six, and at most 1000 a second in all): silence may be a dropped
  answer, not a silent port. An answer that needed retries, or a try lost while later probes
  were answered, raises the tries every port gets (ports already given up with fewer get the
  rest). Once the host has nothing left to send, a few given-up ports are asked again after a
  pause long enough for the target's allowance to refill (a "recheck"). Answers prove the
  limit and measure it (one answer after a one-second pause: one a second): the host's send
  delay becomes that pace (at most --max-scan-delay) and every given-up port is asked once
  more at it, without spending a try; then the next recheck. The host is done when a recheck
  gets no answer. So a closed port is not called open|filtered because its ICMP was dropped,
  and a host that does not limit costs one recheck at most.
"""
from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Hashable, Iterable

from worker.protocol import Timing

# Our windows: start small, grow fast on a quiet network, cap by template. The caps mirror the
# spirit of Nmap's (serial for T0-T2) and keep a connect scan within the fd budget.
INITIAL_CWND = 10.0
INITIAL_SSTHRESH = 75.0
DEFAULT_MAX_CWND = {0: 1, 1: 1, 2: 1, 3: 300, 4: 500, 5: 1000}
# Rate-limit mode: the recheck's pause (Linux's default allowance refills one ICMP answer per
# 1000 ms) and how many given-up ports it asks again.
RECHECK_AFTER_MS = 1050
RECHECK_PORTS = 8
_NOTHING: list = []  # shared empty result; callers only iterate it


class Probe:
    __slots__ = ("host", "port", "tryno", "sent_ms", "handle")

    def __init__(self, host: "HostScan", port: int, tryno: int, sent_ms: float):
        self.host = host
        self.port = port
        self.tryno = tryno
        self.sent_ms = sent_ms
        self.handle = None  # the I/O side's state (socket, timer)


class RttEstimator:
    __slots__ = ("srtt_us", "rttvar_us")

    def __init__(self):
        self.srtt_us: float | None = None
        self.rttvar_us: float | None = None

    def sample(self, rtt_us: float) -> None:
        if rtt_us < 1.0:
            rtt_us = 1.0
        srtt = self.srtt_us
        if srtt is None:
            self.srtt_us, self.rttvar_us = rtt_us, rtt_us / 2
        else:
            delta = rtt_us - srtt
            self.rttvar_us += ((delta if delta >= 0 else -delta) - self.rttvar_us) / 4
            self.srtt_us = srtt + delta / 8

    def timeout_ms(self, timing: Timing) -> float | None:
        if self.srtt_us is None:
            return None
        raw = (self.srtt_us + 4 * self.rttvar_us) / 1000.0
        return min(max(raw, timing.min_rtt_timeout_ms), timing.max_rtt_timeout_ms)


class HostScan:
    __slots__ = ("key", "pending", "retries", "outstanding", "results", "cwnd", "ssthresh", "queued",
                 "rtt", "max_good_tryno", "last_reply_sent_ms", "last_drop_ms", "next_send_ms",
                 "deadline_ms", "done", "finished_ms", "timed_out", "up", "up_reason",
                 "work_total", "work_done", "send_delay_ms", "given_up", "reason_ttls",
                 "answered_total", "last_answer_ms", "rechecked_at", "recheck_ports",
                 "recheck_answers", "rate_proven")

    def __init__(self, key: Hashable, ports: Iterable[int], deadline_ms: float | None):
        self.key = key
        self.pending: deque[int] = deque(ports)
        self.retries: deque[tuple[int, int]] = deque()
        self.outstanding: set[Probe] = set()
        self.results: dict[int, tuple[str, str]] = {}
        self.cwnd = INITIAL_CWND
        self.ssthresh = INITIAL_SSTHRESH
        self.rtt = RttEstimator()
        self.max_good_tryno = 0  # highest try number that ever got an answer from this host
        self.last_reply_sent_ms = -1.0  # send time of the latest-sent probe that was answered
        self.last_drop_ms = -1.0
        self.next_send_ms = 0.0
        self.deadline_ms = deadline_ms
        self.done = not self.pending
        self.queued = False  # in UltraScan's queue of hosts with probes to send
        self.finished_ms: float | None = None
        self.timed_out = False
        self.up = False
        self.up_reason: str | None = None
        self.work_total = len(self.pending)
        self.work_done = 0
        self.send_delay_ms = 0.0  # this host's own scan delay (rate-limit slowdown)
        self.given_up: dict[int, int] = {}  # port -> last try, of silent ports (rate-limit mode)
        self.answered_total = 0
        self.last_answer_ms = -1.0
        self.rechecked_at = 0  # answered_total when the last recheck went out
        self.recheck_ports: set[int] = set()  # asked again in the current recheck
        self.recheck_answers = 0
        self.rate_proven = False  # a recheck showed the target limits its answers
        self.reason_ttls: dict[int, int] = {}  # port -> TTL of its answer, when the prober saw it

    def has_work(self) -> bool:
        return bool(self.pending or self.retries)


class UltraScan:
    """Schedules connect-style probes to many hosts. ``discovery=True`` stops at the first
    answer per host (ping); otherwise every port gets a final state."""

    def __init__(self, targets: Iterable[tuple[Hashable, Iterable[int]]], timing: Timing,
                 now_ms: float, discovery: bool = False, fd_budget: int = 4000,
                 silence: tuple[str, str] = ("filtered", "no-response"),
                 answers_rate_limited: bool = False):
        self.timing = timing
        self.discovery = discovery
        self.silence = silence  # a port's outcome when no try was answered
        self.answers_rate_limited = answers_rate_limited
        deadline = now_ms + timing.host_timeout_ms if timing.host_timeout_ms > 0 else None
        self.hosts = [HostScan(key, ports, deadline) for key, ports in targets]
        for host in self.hosts:
            if host.done:  # nothing to ask this host
                host.finished_ms = now_ms
        self._active = sum(not h.done for h in self.hosts)
        self._queue: deque[HostScan] = deque()  # hosts with probes to send, round robin
        for host in self.hosts:
            self._enqueue(host)
        cap = timing.max_parallelism or DEFAULT_MAX_CWND.get(timing.level, 300)
        self.max_cwnd = float(max(1, min(cap, fd_budget)))
        self.min_cwnd = float(max(1, min(timing.min_parallelism, self.max_cwnd)))
        self.fd_budget = max(1, fd_budget)
        self.cwnd = min(max(INITIAL_CWND, self.min_cwnd), self.max_cwnd)
        self.ssthresh = INITIAL_SSTHRESH
        self.rtt = RttEstimator()
        self.last_drop_ms = -1.0
        self.outstanding = 0
        self.started_ms = now_ms
        self.probes_sent = 0
        self._tokens = 1.0  # --max-rate bucket
        self._tokens_ms = now_ms
        self._replies = 0

    # -- state queries ----------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        return self._active == 0

    def progress(self) -> tuple[int, int]:
        """(units finished, units in all): ports, or hosts in discovery."""
        return (sum(h.work_done for h in self.hosts), sum(h.work_total for h in self.hosts))

    def timeout_ms(self, host: HostScan) -> float:
        own = host.rtt.timeout_ms(self.timing)
        if own is not None:
            return own
        group = self.rtt.timeout_ms(self.timing)
        return group if group is not None else float(self.timing.initial_rtt_timeout_ms)

    # -- deciding what to send --------------------------------------------------------------
    def ready_probes(self, now_ms: float) -> list[Probe]:
        probes: list[Probe] = []
        queue = self._queue
        if not queue:
            return probes
        timing = self.timing
        below_min_rate = timing.min_rate > 0 and (
            self.probes_sent < timing.min_rate * (now_ms - self.started_ms) / 1000.0)
        group_room = (self.fd_budget if below_min_rate else int(self.cwnd)) - self.outstanding
        group_room = min(group_room, self.fd_budget - self.outstanding)
        if timing.max_rate > 0:
            group_room = min(group_room, self._take_tokens(now_ms))
        scan_delay = timing.scan_delay_ms
        append = probes.append
        # Each host once per call at most, so a host held back by its own window or by
        # --scan-delay costs one look, not a loop.
        for _ in range(len(queue)):
            if group_room <= 0:
                break
            host = queue.popleft()
            host.queued = False
            if host.done:
                continue
            if host.next_send_ms > now_ms:
                self._enqueue(host)
                continue
            room = group_room if below_min_rate else int(host.cwnd) - len(host.outstanding)
            if room > group_room:
                room = group_room
            delay = host.send_delay_ms if host.send_delay_ms > scan_delay else scan_delay
            if delay and room > 1:
                room = 1
            if room <= 0:
                self._enqueue(host)
                continue
            add = host.outstanding.add
            retries = host.retries
            while room and retries:
                port, tryno = retries.popleft()
                probe = Probe(host, port, tryno, now_ms)
                add(probe)
                append(probe)
                room -= 1
                group_room -= 1
            pending = host.pending
            for _ in range(min(room, len(pending))):
                probe = Probe(host, pending.popleft(), 0, now_ms)
                add(probe)
                append(probe)
                group_room -= 1
            if delay:
                host.next_send_ms = now_ms + delay
            self._enqueue(host)
        if timing.max_rate > 0:
            self._tokens -= len(probes)
        self.outstanding += len(probes)
        self.probes_sent += len(probes)
        return probes

    def _take_tokens(self, now_ms: float) -> int:
        """--max-rate as a token bucket: refill at the rate, hold at most 10 ms worth."""
        rate = self.timing.max_rate
        burst = max(1.0, rate / 100.0)
        self._tokens = min(burst, self._tokens + (now_ms - self._tokens_ms) * rate / 1000.0)
        self._tokens_ms = now_ms
        return int(self._tokens)

    def _enqueue(self, host: HostScan) -> None:
        if not host.queued and not host.done and (host.pending or host.retries):
            host.queued = True
            self._queue.append(host)

    def next_wakeup_ms(self, now_ms: float) -> float | None:
        """When work held back only by time (--scan-delay, --max-rate) may go out."""
        times = [h.next_send_ms for h in self._queue if h.next_send_ms > now_ms]
        if self._queue and self.timing.max_rate > 0 and self._tokens < 1:
            times.append(now_ms + (1 - self._tokens) * 1000.0 / self.timing.max_rate)
        return min(times) if times else None

    # -- what came back ---------------------------------------------------------------------
    def on_reply(self, probe: Probe, now_ms: float, state: str, reason: str) -> list[Probe]:
        """An answer. Returns probes the caller must abandon (the host is finished)."""
        host = probe.host
        outstanding = host.outstanding
        if probe not in outstanding:
            return _NOTHING  # already abandoned
        outstanding.discard(probe)
        self.outstanding -= 1
        rtt_us = (now_ms - probe.sent_ms) * 1000.0
        host.rtt.sample(rtt_us)
        self._replies += 1
        if self._replies & 7 == 1:  # the group estimate only seeds new hosts: a sample in 8
            self.rtt.sample(rtt_us)
        # After a recheck proved a rate limit, a port answering its n-th try says how many
        # tries it burnt before we slowed down, not how many a port needs now.
        more_tries_needed = probe.tryno > host.max_good_tryno and not host.rate_proven
        if more_tries_needed:
            host.max_good_tryno = probe.tryno
        if probe.sent_ms > host.last_reply_sent_ms:
            host.last_reply_sent_ms = probe.sent_ms
        max_cwnd = self.max_cwnd
        cwnd = host.cwnd
        if cwnd < max_cwnd:
            cwnd += 1.0 if cwnd < host.ssthresh else 1.0 / cwnd
            host.cwnd = cwnd if cwnd < max_cwnd else max_cwnd
        cwnd = self.cwnd
        if cwnd < max_cwnd:
            cwnd += 1.0 if cwnd < self.ssthresh else 1.0 / cwnd
            self.cwnd = cwnd if cwnd < max_cwnd else max_cwnd
        if self.discovery:
            if state in ("open", "closed"):  # any answer from the host's TCP stack: it is up
                host.up, host.up_reason = True, reason
                host.results[probe.port] = (state, reason)  # a port scan may reuse it
                return self._finish(host, now_ms)
            host.results[probe.port] = (state, reason)  # e.g. unreachable: not an answer
            self._maybe_done(host, now_ms)
            return _NOTHING
        host.results[probe.port] = (state, reason)
        host.work_done += 1
        if self.answers_rate_limited:
            self._note_answer(host, probe, now_ms, more_tries_needed)
        self._maybe_done(host, now_ms)
        return _NOTHING

    def on_timeout(self, probe: Probe, now_ms: float) -> None:
        host = probe.host
        if not self._forget(probe):
            return
        if probe.sent_ms < host.last_reply_sent_ms:
            self._drop(host, probe.sent_ms)
            if (self.answers_rate_limited and probe.tryno == host.max_good_tryno
                    and probe.tryno < self.timing.max_retries and not host.rate_proven):
                # Lost although the host answers later probes: the next try may get through.
                host.max_good_tryno += 1
                self._more_tries_needed(host)
        if probe.tryno < self._tries_allowed(host):
            host.retries.append((probe.port, probe.tryno + 1))
            self._enqueue(host)
        else:
            host.results[probe.port] = self.silence
            if self.answers_rate_limited:
                host.given_up[probe.port] = probe.tryno
                if probe.port in host.recheck_ports:
                    host.recheck_ports.discard(probe.port)
                    if not host.recheck_ports:
                        self._recheck_done(host)
            if not self.discovery:
                host.work_done += 1
            self._maybe_done(host, now_ms)

    def requeue(self, probe: Probe) -> None:
        """Send this probe again without counting a try (e.g. a loopback self-connect)."""
        if self._forget(probe):
            probe.host.retries.appendleft((probe.port, probe.tryno))
            self._enqueue(probe.host)

    def expire(self, now_ms: float) -> list[Probe]:
        """Finish hosts past --host-timeout; returns their probes for the caller to abandon."""
        abandoned: list[Probe] = []
        for host in self.hosts:
            if host.deadline_ms is not None and now_ms >= host.deadline_ms and not host.done:
                host.timed_out = True
                abandoned.extend(self._finish(host, now_ms))
        return abandoned

    # -- internals --------------------------------------------------------------------------
    def _note_answer(self, host: HostScan, probe: Probe, now_ms: float,
                     more_tries_needed: bool) -> None:
        """Rate-limit mode: see ``answers_rate_limited`` in the module's notes."""
        host.answered_total += 1
        host.last_answer_ms = now_ms
        if probe.port in host.recheck_ports:  # silent before, answers after a pause: limited
            host.recheck_ports.discard(probe.port)
            host.recheck_answers += 1
            if not host.recheck_ports:
                self._recheck_done(host)
        if more_tries_needed:
            self._more_tries_needed(host)

    def _more_tries_needed(self, host: HostScan) -> None:
        """The host now gets more tries per port: ports given up with fewer get the rest."""
        self._revisit(host, self._tries_allowed(host))

    def _tries_allowed(self, host: HostScan) -> int:
        """The tries a port of ``host`` gets now: one more than the latest try answered, at
        least 1, at most --max-retries."""
        return min(self.timing.max_retries, max(1, host.max_good_tryno + 1))

    def _take_back(self, host: HostScan, ports: list[int], next_try) -> None:
        """Given-up ``ports`` go back to the retries, each with try ``next_try(its last)``:
        their results withdrawn, their work not done after all."""
        for port in ports:
            host.retries.append((port, next_try(host.given_up.pop(port))))
            del host.results[port]
        host.work_done -= len(ports)

    def _revisit(self, host: HostScan, tries: int) -> None:
        """Ports given up after fewer than ``tries`` tries get their next one."""
        self._take_back(host, [port for port, last in host.given_up.items() if last < tries],
                        lambda last: last + 1)
        self._enqueue(host)

    def _recheck(self, host: HostScan) -> bool:
        """Rate-limit mode, host idle: ask a few given-up ports again after a pause, if the
        host answered anything since the last recheck. True: the host is not done yet."""
        if host.answered_total == host.rechecked_at:  # nothing since (or ever: both start 0)
            return False
        ports = list(itertools.islice(host.given_up, RECHECK_PORTS))
        host.rechecked_at = host.answered_total
        host.recheck_ports = set(ports)
        host.recheck_answers = 0
        final = self._tries_allowed(host)
        # Not a try: the ports' tries were spent while answers were lost.
        self._take_back(host, ports, lambda last: max(last, final))
        host.next_send_ms = max(host.next_send_ms, host.last_answer_ms + RECHECK_AFTER_MS)
        self._enqueue(host)
        return True

    def _recheck_done(self, host: HostScan) -> None:
        answers = host.recheck_answers
        if not answers:
            return  # the given-up ports are silent: the host ends
        host.rate_proven = True
        pace = min(self.timing.max_scan_delay_ms, RECHECK_AFTER_MS / answers)
        host.send_delay_ms = max(host.send_delay_ms, pace)
        host.next_send_ms = max(host.next_send_ms, host.last_answer_ms + host.send_delay_ms)
        # Once each, not a try: their tries were spent while answers were being lost.
        final = self._tries_allowed(host)
        self._take_back(host, list(host.given_up), lambda last: max(last, final))
        self._enqueue(host)

    def _forget(self, probe: Probe) -> bool:
        host = probe.host
        if probe not in host.outstanding:
            return False  # already abandoned
        host.outstanding.discard(probe)
        self.outstanding -= 1
        return True

    def _drop(self, host: HostScan, sent_ms: float) -> None:
        # Once per round trip: only probes sent after the last cut may cut again.
        if sent_ms > host.last_drop_ms:
            host.ssthresh = max(host.cwnd / 2, 2.0)
            host.cwnd = max(host.cwnd / 2, self.min_cwnd)
            host.last_drop_ms = sent_ms + 0.001
        if sent_ms > self.last_drop_ms:
            self.ssthresh = max(self.cwnd / 2, 2.0)
            self.cwnd = max(self.cwnd / 2, self.min_cwnd)
            self.last_drop_ms = sent_ms + 0.001

    def _finish(self, host: HostScan, now_ms: float) -> list[Probe]:
        abandoned = list(host.outstanding)
        self.outstanding -= len(abandoned)
        host.outstanding.clear()
        host.pending.clear()
        host.retries.clear()
        self._mark_done(host, now_ms)
        return abandoned

    def _maybe_done(self, host: HostScan, now_ms: float) -> None:
        if not host.outstanding and not host.has_work() and not host.done:
            if self.answers_rate_limited and host.given_up and self._recheck(host):
                return
            self._mark_done(host, now_ms)

    def _mark_done(self, host: HostScan, now_ms: float) -> None:
        host.done = True
        host.finished_ms = now_ms
        host.work_done = host.work_total
        self._active -= 1
