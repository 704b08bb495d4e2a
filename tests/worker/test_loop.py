"""The event loop: readiness callbacks, timers, cross-thread wake-ups."""
import os
import socket
import threading
import time

from worker.nsock.loop import EventLoop, process_loop


def test_timers_fire_in_deadline_order_and_cancel():
    loop = EventLoop()
    fired = []
    loop.call_later(30, lambda: fired.append("c"))
    loop.call_later(10, lambda: fired.append("a"))
    cancelled = loop.call_later(20, lambda: fired.append("never"))
    loop.call_later(20, lambda: fired.append("b"))
    cancelled.cancel()
    loop.run_until(lambda: len(fired) == 3, max_wait_ms=100)
    assert fired == ["a", "b", "c"]


def test_timer_waits_at_least_its_delay():
    loop = EventLoop()
    done = []
    start = time.monotonic()
    loop.call_later(50, lambda: done.append(time.monotonic()))
    loop.run_until(lambda: done, max_wait_ms=1000)
    assert done[0] - start >= 0.049


def test_injected_clock_drives_timers():
    now = [100.0]
    loop = EventLoop(clock=lambda: now[0])
    fired = []
    loop.call_later(5000, lambda: fired.append(1))
    loop.run_once(0)
    assert fired == []
    now[0] += 5.0
    loop.run_once(0)
    assert fired == [1]


def test_read_and_write_readiness_callbacks():
    loop = EventLoop()
    a, b = socket.socketpair()
    a.setblocking(False)
    got = []
    loop.watch(a.fileno(), on_read=lambda: got.append(a.recv(100)))
    b.send(b"hello")
    loop.run_until(lambda: got, max_wait_ms=100)
    assert got == [b"hello"]
    writable = []
    loop.watch(a.fileno(), on_write=lambda: (writable.append(True),
                                             loop.unwatch(a.fileno())))
    loop.run_until(lambda: writable, max_wait_ms=100)
    assert writable == [True] and loop.watched_count() == 0
    a.close()
    b.close()


def test_fd_unwatched_closed_and_reused_in_one_turn_is_watched_afresh():
    """Changes reach epoll only when the loop turns: an fd unwatched and closed, whose
    number a new socket gets before then, must still be watched (with the same mask)."""
    loop = EventLoop()
    for _ in range(20):  # bounded: another thread of the test process may take the number
        a, b = socket.socketpair()
        loop.watch(a.fileno(), on_read=lambda: None)
        loop.run_once(0)
        number = a.fileno()
        loop.unwatch(number)
        a.close()  # epoll drops the closed file; no DEL has been sent yet
        c, d = socket.socketpair()
        if number in (c.fileno(), d.fileno()):
            break
        for sock in (b, c, d):
            sock.close()
        loop.run_once(0)
    reused = c if c.fileno() == number else d
    other = d if reused is c else c
    assert reused.fileno() == number
    got = []
    loop.watch(number, on_read=lambda: got.append(reused.recv(10)))
    other.send(b"x")
    for _ in range(50):  # bounded: a lost registration must fail, not hang
        loop.run_once(20)
        if got:
            break
    assert got == [b"x"]
    for sock in (b, c, d):
        sock.close()


def test_watch_then_unwatch_in_one_turn_never_reaches_epoll_and_closed_fds_are_refused():
    loop = EventLoop()
    a, b = socket.socketpair()
    called = []
    loop.watch(a.fileno(), on_read=lambda: called.append("read"))
    loop.unwatch(a.fileno())
    b.send(b"x")
    loop.run_once(0)
    assert called == [] and loop.watched_count() == 0
    number = a.fileno()
    a.close()
    loop.watch(number, on_read=lambda: called.append("refused"))  # epoll will say EBADF
    loop.run_once(0)
    loop.run_once(0)
    assert called == ["refused"]  # the owner hears of it, and its next call finds out why
    loop.forget(number)
    b.close()


def test_call_soon_runs_next_iteration_in_order():
    loop = EventLoop()
    order = []
    loop.call_soon(lambda: (order.append(1), loop.call_soon(lambda: order.append(3))))
    loop.call_soon(lambda: order.append(2))
    loop.run_once(0)
    assert order == [1, 2]
    loop.run_once(0)
    assert order == [1, 2, 3]


def test_call_soon_threadsafe_wakes_a_sleeping_loop():
    loop = EventLoop()
    got = []
    threading.Timer(0.05, lambda: loop.call_soon_threadsafe(lambda: got.append("x"))).start()
    start = time.monotonic()
    loop.run_until(lambda: got, max_wait_ms=5000)
    assert got == ["x"] and time.monotonic() - start < 2


def test_one_loop_per_process_and_a_new_one_after_fork():
    assert process_loop() is process_loop()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        same = process_loop() is not None and process_loop()._owner_pid == os.getpid()
        os.write(write, b"1" if same else b"0")
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"
