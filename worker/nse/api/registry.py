"""``nmap.registry``: one table for the whole scan (nse-spec §7.4), shared by every phase.

The memory backend is a plain Lua table of this process's Lua state; the cluster supplies a
backend whose table lives in Redis. Either way the engine asks the backend, never Redis.
"""
from __future__ import annotations


class MemoryRegistry:
    def __init__(self):
        self.table = None

    def lua_table(self, runtime):
        if self.table is None:
            self.table = runtime.table()
        return self.table


def register(engine) -> dict:
    backend = engine.registry_backend

    def registry():
        return backend.lua_table(engine.runtime)

    return {"registry": registry}
