"""``nmap.mutex`` and ``nmap.condvar`` (nse-spec §7.2): FIFO locks owned by coroutines,
condition variables that wake the most recent waiter on signal.

The state sits behind a backend: ``MemorySync`` here (one process); the cluster's Redis
backend implements the same methods so the engine does not change.
"""
from __future__ import annotations

from collections import deque

from worker.nse.api.base import NOTHING, PENDING, ScriptError, lua_api


class MemorySync:
    """Locks and condition variables of one process. Owners are (coroutine id, thread id)."""

    def __init__(self, ops):
        self.ops = ops
        self.owners: dict[str, tuple[int, int]] = {}
        self.waiters: dict[str, deque[tuple[int, int, int]]] = {}  # key -> (co, thread, token)
        self.sleepers: dict[str, list[tuple[int, int]]] = {}  # condvar key -> (thread, token)

    # -- mutexes ----------------------------------------------------------------------------
    def lock(self, key: str, co: int, thread: int) -> int | None:
        """None when taken now; otherwise a token completed when the lock is handed over."""
        if key not in self.owners:
            self.owners[key] = (co, thread)
            return None
        token = self.ops.begin(thread)
        self.waiters.setdefault(key, deque()).append((co, thread, token))
        return token

    def trylock(self, key: str, co: int, thread: int) -> bool:
        if key in self.owners:
            return False
        self.owners[key] = (co, thread)
        return True

    def done(self, key: str, co: int) -> None:
        owner = self.owners.get(key)
        if owner is None or owner[0] != co:
            raise ScriptError("do not have a lock on this mutex")
        self._hand_over(key)

    def running(self, key: str) -> int | None:
        owner = self.owners.get(key)
        return owner[0] if owner else None

    def _hand_over(self, key: str) -> None:
        queue = self.waiters.get(key)
        while queue:
            co, thread, token = queue.popleft()
            if self.ops.is_pending(token):  # skip waiters whose thread died meanwhile
                self.owners[key] = (co, thread)
                self.ops.complete(token)
                return
        self.owners.pop(key, None)
        self.waiters.pop(key, None)

    # -- condition variables ------------------------------------------------------------------
    def wait(self, key: str, thread: int) -> int:
        token = self.ops.begin(thread)
        self.sleepers.setdefault(key, []).append((thread, token))
        return token

    def signal(self, key: str) -> None:
        sleepers = self.sleepers.get(key)
        while sleepers:
            _, token = sleepers.pop()  # the most recent waiter (nse-spec §7.2)
            if self.ops.complete(token):
                return

    def broadcast(self, key: str) -> None:
        for _, token in self.sleepers.pop(key, []):
            self.ops.complete(token)

    # -- a thread's end ---------------------------------------------------------------------
    def release_thread(self, thread: int) -> None:
        """Locks held by any coroutine of ``thread`` pass on, as if it called "done"."""
        for key, owner in list(self.owners.items()):
            if owner[1] == thread:
                self._hand_over(key)


def register(engine) -> dict:
    backend = engine.sync_backend
    watched: set[int] = set()

    def caller():
        thread = engine.current
        if thread is None:
            raise ScriptError("mutexes and condition variables work only in script threads")
        if thread.id not in watched:  # the thread's end releases what it holds
            watched.add(thread.id)
            thread.add_close_handler(lambda: (watched.discard(thread.id),
                                              backend.release_thread(thread.id)))
        return thread

    @lua_api
    def mutex_lock(key: bytes, co: int):
        token = backend.lock(key.decode("utf-8", "surrogateescape"), co, caller().id)
        return (PENDING, token) if token is not None else NOTHING

    @lua_api
    def mutex_trylock(key: bytes, co: int):
        return backend.trylock(key.decode("utf-8", "surrogateescape"), co, caller().id)

    @lua_api
    def mutex_done(key: bytes, co: int):
        backend.done(key.decode("utf-8", "surrogateescape"), co)
        return NOTHING

    @lua_api
    def mutex_running(key: bytes):
        return backend.running(key.decode("utf-8", "surrogateescape"))

    registered: dict[int, set[str]] = {}  # thread -> condvars its end broadcasts

    @lua_api
    def condvar_register(key: bytes):
        thread = engine.current
        if thread is None:
            return
        name = key.decode("utf-8", "surrogateescape")
        keys = registered.get(thread.id)
        if keys is None:
            keys = registered[thread.id] = set()

            def broadcast_all(thread_id=thread.id):
                for each in registered.pop(thread_id, ()):
                    backend.broadcast(each)
            thread.add_close_handler(broadcast_all)
        keys.add(name)  # nse-spec §7.2: the registering thread's end broadcasts it

    @lua_api
    def condvar_wait(key: bytes):
        return PENDING, backend.wait(key.decode("utf-8", "surrogateescape"), caller().id)

    @lua_api
    def condvar_signal(key: bytes):
        backend.signal(key.decode("utf-8", "surrogateescape"))

    @lua_api
    def condvar_broadcast(key: bytes):
        backend.broadcast(key.decode("utf-8", "surrogateescape"))

    return {"mutex_lock": mutex_lock, "mutex_trylock": mutex_trylock,
            "mutex_done": mutex_done, "mutex_running": mutex_running,
            "condvar_register": condvar_register, "condvar_wait": condvar_wait,
            "condvar_signal": condvar_signal, "condvar_broadcast": condvar_broadcast}
