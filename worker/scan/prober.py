"""What every UltraScan prober does the same way, whatever its probes are: send what the
windows allow in bounded slices of the loop, wake up when a window opens or a retry is due,
expire hosts past --host-timeout, and withdraw every probe at the end."""
from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import TypeVar

from worker.nsock.loop import EventLoop
from worker.scan.ultra import Probe, UltraScan

_PUMP_SLICE_MS = 20
RECEIVE_BURST = 512  # packets read from a socket per wake-up, at most
T = TypeVar("T")


def received(receive: Callable[[], T]) -> Iterator[T]:
    """What ``receive()`` (one non-blocking read of a socket) returns, a burst at most, until
    it raises: BlockingIOError when nothing more is waiting, or another OSError (EINTR is
    retried by Python itself, PEP 475)."""
    for _ in range(RECEIVE_BURST):
        try:
            packet = receive()
        except OSError:
            return
        yield packet


class Prober:
    """Drives one UltraScan to completion on ``loop``; subclasses say how a probe goes out
    (``_launch``) and how one is withdrawn (``_close``)."""

    def __init__(self, loop: EventLoop, scan: UltraScan):
        self.loop = loop
        self.scan = scan
        self._closed = False
        self._pump_queued = False
        self._wakeup_timer = None
        self._expiry_timer = None

    def run(self) -> None:
        if self.scan.timing.host_timeout_ms > 0:
            self._schedule_expiry()
        self._pump()
        try:
            self.loop.run_until(lambda: self.scan.finished)
        finally:
            self.abandon_all()

    def abandon_all(self) -> None:
        """Withdraw every probe still out (normal end, Ctrl-C, host timeout); callbacks still
        queued on the shared loop find this prober closed and do nothing."""
        self._closed = True
        for host in self.scan.hosts:
            for probe in list(host.outstanding):
                self._close(probe)
        for timer in (self._wakeup_timer, self._expiry_timer):
            if timer is not None:
                timer.cancel()

    def _launch(self, probe: Probe) -> None:
        raise NotImplementedError

    def _close(self, probe: Probe) -> None:
        raise NotImplementedError

    # -- sending ----------------------------------------------------------------------------
    def _queue_pump(self) -> None:
        if not self._pump_queued:
            self._pump_queued = True
            self.loop.call_soon(self._pump)

    def _pump(self) -> None:
        """Send what the windows allow. Answers that arrive while sending (loopback answers
        inside connect) free room at once, so keep going, for a bounded slice of time."""
        self._pump_queued = False
        if self._closed:
            return
        scan, loop = self.scan, self.loop
        deadline = loop.now_ms() + _PUMP_SLICE_MS
        while True:
            probes = scan.ready_probes(loop.now_ms())
            if not probes:
                break
            for probe in probes:
                if not probe.host.done:  # an earlier probe of this batch may have finished it
                    self._launch(probe)
            if loop.now_ms() >= deadline:
                self._queue_pump()  # let timers and other sockets have the loop
                return
        if self._wakeup_timer is None and not scan.finished:
            wake = scan.next_wakeup_ms(loop.now_ms())
            if wake is not None:
                self._wakeup_timer = loop.call_later(wake - loop.now_ms(), self._on_wakeup)

    def _on_wakeup(self) -> None:
        self._wakeup_timer = None
        self._pump()

    def _schedule_expiry(self) -> None:
        def check():
            for probe in self.scan.expire(self.loop.now_ms()):
                self._close(probe)
            if not self.scan.finished:
                self._expiry_timer = self.loop.call_later(100, check)
                self._queue_pump()
        self._expiry_timer = self.loop.call_later(100, check)


class RawProber(Prober):
    """A prober whose answers come in on shared raw sockets: each probe out waits under a
    key its answer will carry (address, port, ...) until the answer or its timeout."""

    def __init__(self, loop: EventLoop, scan: UltraScan):
        super().__init__(loop, scan)
        self._waiting: dict = {}  # key -> the probe its answer is for

    def _wait_key(self, probe: Probe):
        raise NotImplementedError

    def _await_answer(self, probe: Probe) -> None:
        """Start the probe's timeout; a retry replaces the try before it."""
        probe.handle = self.loop.call_later(self.scan.timeout_ms(probe.host),
                                            functools.partial(self._on_timeout, probe))
        key = self._wait_key(probe)
        previous = self._waiting.get(key)
        if previous is not None and previous is not probe:
            self._close(previous)
        self._waiting[key] = probe

    def _answer(self, key, outcome: tuple[str, str], ttl: int, extra=None) -> bool:
        """The answer under ``key`` arrived: its probe's outcome, and the answer's TTL as
        Nmap reports it (reason_ttl). False when no probe waits for it."""
        probe = self._waiting.pop(key, None)
        if probe is None:
            return False
        self._reply(probe, outcome, ttl, extra)
        return True

    def _reply(self, probe: Probe, outcome: tuple[str, str], ttl: int = 0, extra=None) -> None:
        """Record ``probe``'s outcome (an answer, or what the kernel said when sending)."""
        self._cancel_timer(probe)
        probe.host.reason_ttls[probe.port] = ttl
        for abandoned in self.scan.on_reply(probe, self.loop.now_ms(), *outcome):
            self._close(abandoned)
        self._answered(probe, outcome, ttl, extra)

    def _answered(self, probe: Probe, outcome: tuple[str, str], ttl: int, extra) -> None:
        """Hook, after an outcome is recorded: ``extra`` is what ``_answer`` was given."""

    def _on_timeout(self, probe: Probe) -> None:
        probe.handle = None
        self._stop_waiting(probe)
        self.scan.on_timeout(probe, self.loop.now_ms())
        self._queue_pump()

    def _cancel_timer(self, probe: Probe) -> None:
        timer, probe.handle = probe.handle, None
        if timer is not None:
            timer.cancel()

    def _stop_waiting(self, probe: Probe) -> None:
        key = self._wait_key(probe)
        if self._waiting.get(key) is probe:
            del self._waiting[key]

    def _close(self, probe: Probe) -> None:
        self._cancel_timer(probe)
        self._stop_waiting(probe)
