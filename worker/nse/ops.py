"""Operations a script thread waits on: one token per wait, completed by I/O callbacks.

``begin`` hands out a token for the calling thread; whatever does the I/O calls ``complete``
(once) with the results the thread should see. A thread that dies while waiting (timeout,
host timeout, end of scan) has its operations cancelled: their cancel callbacks stop the I/O
and a late completion is ignored.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable


class Operations:
    def __init__(self, wake: Callable[[int, int, tuple], None]):
        self._wake = wake  # (thread id, token, results) -> None
        self._tokens = itertools.count(1)
        self._pending: dict[int, tuple[int, Callable[[], None] | None]] = {}
        self._by_thread: dict[int, set[int]] = {}  # thread id -> its pending tokens

    def begin(self, thread_id: int, on_cancel: Callable[[], None] | None = None) -> int:
        token = next(self._tokens)
        self._pending[token] = (thread_id, on_cancel)
        tokens = self._by_thread.get(thread_id)
        if tokens is None:
            self._by_thread[thread_id] = {token}
        else:
            tokens.add(token)
        return token

    def set_cancel(self, token: int, on_cancel: Callable[[], None]) -> None:
        entry = self._pending.get(token)
        if entry is not None:
            self._pending[token] = (entry[0], on_cancel)

    def complete(self, token: int, *results) -> bool:
        """Wake the waiting thread with ``results``; False if the wait was cancelled."""
        entry = self._pending.pop(token, None)
        if entry is None:
            return False
        self._forget(entry[0], token)
        self._wake(entry[0], token, results)
        return True

    def is_pending(self, token: int) -> bool:
        return token in self._pending

    def cancel_thread(self, thread_id: int) -> None:
        for token in sorted(self._by_thread.pop(thread_id, ())):  # in the order begun
            entry = self._pending.pop(token, None)  # an earlier cancel may have completed it
            if entry is not None and entry[1] is not None:
                entry[1]()

    def _forget(self, thread_id: int, token: int) -> None:
        tokens = self._by_thread.get(thread_id)
        if tokens is not None:
            tokens.discard(token)
            if not tokens:
                del self._by_thread[thread_id]

    def __len__(self) -> int:
        return len(self._pending)
