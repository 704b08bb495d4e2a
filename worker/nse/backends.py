"""The shared-state backends the engine talks to (design.md practice 7).

The engine never holds scan-wide state itself: ``nmap.registry`` comes from a
``RegistryBackend`` and ``nmap.mutex``/``nmap.condvar`` from a ``SyncBackend``. The memory
implementations (api/registry.py, api/sync.py) serve one process; the cluster's Redis
implementations serve many, and drop in through ``Engine(registry=backend, sync=factory)``.
tests/nse/test_backends.py is the suite every implementation must pass.

Waiting is expressed with the engine's operation tokens (worker/nse/ops.py): a call that
cannot finish now returns a token from ``ops.begin(thread)``, and the backend calls
``ops.complete(token)`` when the wait is over, from the loop. A token whose thread died is no
longer pending (``ops.is_pending``) and must be passed over.
"""
from __future__ import annotations

from typing import Protocol


class RegistryBackend(Protocol):
    def lua_table(self, runtime):
        """The registry table scripts see as ``nmap.registry`` (the same one every call)."""


class SyncBackend(Protocol):
    """Mutexes and condition variables keyed by text. Owners are (coroutine id, thread id):
    a lock belongs to the coroutine that took it; a thread's end releases what any of its
    coroutines held."""

    def lock(self, key: str, co: int, thread: int) -> int | None:
        """Take the lock: None when taken now, else a token completed when it is handed over
        (first come, first served)."""

    def trylock(self, key: str, co: int, thread: int) -> bool:
        """Take the lock only if it is free."""

    def done(self, key: str, co: int) -> None:
        """Release; raises ScriptError("do not have a lock on this mutex") when ``co`` does
        not hold it."""

    def running(self, key: str) -> int | None:
        """The coroutine id holding the lock, or None."""

    def wait(self, key: str, thread: int) -> int:
        """Sleep on the condition variable: a token completed by signal or broadcast."""

    def signal(self, key: str) -> None:
        """Wake the most recent waiter still alive (nse-spec §7.2)."""

    def broadcast(self, key: str) -> None:
        """Wake every waiter."""

    def release_thread(self, thread: int) -> None:
        """Pass on every lock held by any coroutine of ``thread``, as if it called done."""
