"""The worker's event loop, in the manner of Nmap's nsock.

How this works: file descriptors are watched with epoll (level-triggered); each watched fd has
a read callback and/or a write callback that the loop calls when the fd is ready (an owner
unwatches or forgets its fd before closing it). Changes to what is watched go into a change
list that epoll gets once, just before the loop waits (as in nsock and libevent): a socket
that stops waiting to write and starts waiting to read in one turn costs one epoll_ctl, not
two, and one closed in the turn costs none. Timers sit in a heap keyed by deadline; a
cancelled timer stays in the heap and is skipped when it comes up (cheaper than removing it).
``call_soon`` callbacks run on the next iteration, in order. Other threads hand work in with
``call_soon_threadsafe``, which wakes the loop through an eventfd.

One loop per worker process (``process_loop``): the port scanner, the resolver and, later, the
script engine all share it, and nothing running on it may block.
"""
from __future__ import annotations

import gc
import heapq
import itertools
import os
import select
import threading
import time
from collections import deque
from collections.abc import Callable

_READ = select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR
_WRITE = select.EPOLLOUT | select.EPOLLHUP | select.EPOLLERR


class Timer:
    __slots__ = ("deadline_ms", "callback", "cancelled")

    def __init__(self, deadline_ms: float, callback: Callable[[], None]):
        self.deadline_ms = deadline_ms
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True
        self.callback = None


class EventLoop:
    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._epoll = select.epoll()
        self._handlers: dict[int, list] = {}  # fd -> [mask, on_read, on_write] wanted
        self._registered: dict[int, int] = {}  # fd -> the mask epoll has
        self._changed: set[int] = set()  # fds whose wanted mask may differ from epoll's
        self._unwatched: set[int] = set()  # unwatched since the last change list went out
        self._timers: list = []  # heap of (deadline_ms, seq, Timer)
        self._seq = itertools.count()
        self._ready: deque[Callable[[], None]] = deque()
        self._threadsafe: deque[Callable[[], None]] = deque()
        self._wakeup_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.watch(self._wakeup_fd, on_read=self._drain_wakeups)
        self._owner_pid = os.getpid()

    # -- time -------------------------------------------------------------------------------
    def now_ms(self) -> float:
        return self._clock() * 1000.0

    # -- fds ---------------------------------------------------------------------------------
    def watch(self, fd: int, on_read: Callable | None = None,
              on_write: Callable | None = None) -> None:
        """Set the callbacks for ``fd`` (replacing earlier ones); None stops that direction."""
        mask = (_READ if on_read else 0) | (_WRITE if on_write else 0)
        if not mask:
            self.unwatch(fd)
            return
        entry = self._handlers.get(fd)
        if entry is None:
            self._handlers[fd] = [mask, on_read, on_write]
        else:
            entry[0], entry[1], entry[2] = mask, on_read, on_write
        if self._registered.get(fd) != mask:
            self._changed.add(fd)

    def unwatch(self, fd: int) -> None:
        """Stop watching ``fd``. Its owner may close it now: should the number come back
        for a new file before the loop turns, that file is registered afresh."""
        if self._handlers.pop(fd, None) is not None or fd in self._registered:
            self._changed.add(fd)
            self._unwatched.add(fd)

    def forget(self, fd: int) -> None:
        """Drop ``fd``'s callbacks without telling epoll: for an fd about to be closed, which
        leaves the epoll set by itself (one system call fewer per short-lived socket)."""
        self._handlers.pop(fd, None)
        self._registered.pop(fd, None)
        self._changed.discard(fd)
        self._unwatched.discard(fd)

    def _apply_changes(self) -> None:
        """Bring epoll's set to what ``_handlers`` wants. An fd epoll refuses (closed behind
        our back) gets its callbacks called, so that its owner's next system call finds out."""
        epoll, registered, refused = self._epoll, self._registered, []
        for fd in self._changed:
            entry = self._handlers.get(fd)
            want = entry[0] if entry is not None else 0
            have = registered.get(fd, 0)
            if want == have and (not want or fd not in self._unwatched):
                continue  # (an fd unwatched this turn may be a new file by now: re-arm it)
            try:
                if not want:
                    del registered[fd]
                    epoll.unregister(fd)
                elif not have:
                    try:
                        epoll.register(fd, want)
                    except FileExistsError:  # an fd number reused before we heard of it
                        epoll.modify(fd, want)
                    registered[fd] = want
                else:
                    try:
                        epoll.modify(fd, want)
                    except FileNotFoundError:  # closed and reused: the new file is not in
                        epoll.register(fd, want)
                    registered[fd] = want
            except (OSError, ValueError):
                registered.pop(fd, None)
                if want:
                    refused.append(entry)
        self._changed.clear()
        self._unwatched.clear()
        for entry in refused:
            for callback in (entry[1], entry[2]):
                if callback is not None:
                    self.call_soon(callback)

    def _max_events(self) -> int:
        return max(len(self._registered), 64)  # every ready fd in one wait, not 1,023 a turn

    def watched_count(self) -> int:
        return len(self._handlers) - 1  # minus the wake-up fd

    # -- callbacks and timers ---------------------------------------------------------------
    def call_soon(self, callback: Callable[[], None]) -> None:
        self._ready.append(callback)

    def call_soon_threadsafe(self, callback: Callable[[], None]) -> None:
        self._threadsafe.append(callback)
        os.eventfd_write(self._wakeup_fd, 1)

    def call_later(self, delay_ms: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(self.now_ms() + max(0.0, delay_ms), callback)
        heapq.heappush(self._timers, (timer.deadline_ms, next(self._seq), timer))
        return timer

    def _drain_wakeups(self) -> None:
        try:
            os.eventfd_read(self._wakeup_fd)
        except BlockingIOError:
            pass
        while self._threadsafe:
            self._ready.append(self._threadsafe.popleft())

    # -- running ----------------------------------------------------------------------------
    def run_once(self, max_wait_ms: float = 1000.0) -> None:
        """Wait for I/O or the next timer (at most ``max_wait_ms``) and run what is due."""
        if self._ready:
            wait_ms = 0.0
        else:
            wait_ms = max_wait_ms
            timers = self._timers
            while timers and timers[0][2].cancelled:
                heapq.heappop(timers)
            if timers:
                wait_ms = min(wait_ms, max(0.0, timers[0][0] - self.now_ms()))
        if self._changed:
            self._apply_changes()
            if self._ready:
                wait_ms = 0.0
        events = self._epoll.poll(wait_ms / 1000.0 if wait_ms > 0 else 0, self._max_events())
        handlers = self._handlers
        for fd, mask in events:
            entry = handlers.get(fd)
            if entry is None:
                continue
            if mask & _READ and entry[1] is not None:
                entry[1]()
                entry = handlers.get(fd)  # the read callback may have unwatched or closed it
                if entry is None:
                    continue
            if mask & _WRITE and entry[2] is not None:
                entry[2]()
        self._run_due_timers()
        for _ in range(len(self._ready)):  # only what was queued before this pass
            self._ready.popleft()()

    def _run_due_timers(self) -> None:
        timers = self._timers
        if not timers:
            return
        now = self.now_ms()
        while timers and timers[0][0] <= now:
            timer = heapq.heappop(timers)[2]
            if not timer.cancelled:
                callback = timer.callback
                timer.cancel()
                callback()

    def run_until(self, done: Callable[[], bool], max_wait_ms: float = 1000.0) -> None:
        while not done():
            self.run_once(max_wait_ms)

    def close(self) -> None:
        self._epoll.close()
        os.close(self._wakeup_fd)
        self._handlers.clear()
        self._registered.clear()
        self._changed.clear()
        self._unwatched.clear()


_process_loop: EventLoop | None = None
_process_loop_lock = threading.Lock()


def process_loop() -> EventLoop:
    """This process's loop, created on first use (and again in a forked child)."""
    global _process_loop
    with _process_loop_lock:
        if _process_loop is None or _process_loop._owner_pid != os.getpid():
            _process_loop = EventLoop()
            _collect_for_scanning()
        return _process_loop


def _collect_for_scanning() -> None:
    """A scan's live objects (probes, script threads, their sockets and callbacks) grow by
    the ten thousand and stay until their host group ends. Python's full collections over
    them cost a fifth of the script phase (bench/nse.py) and find nothing: the hot paths
    make no reference cycles. Young collections stay as they are; full ones wait for 100
    middle ones instead of 10."""
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, 100)
