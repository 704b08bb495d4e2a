"""The `nmap` module's Python half: one module per API area, one registration table.

``build(engine)`` collects every area's functions by the name the Lua side (lua/nmap.lua,
lua/socket.lua, lua/dnet.lua) calls them; ``AREAS`` is the table the API test checks against
the documented API.
"""
from __future__ import annotations

import importlib

AREAS = ("info", "targets", "sync", "registry", "timers", "sockets", "rawnet")


def build(engine) -> dict:
    functions: dict = {}
    for area in AREAS:
        module = importlib.import_module(f"worker.nse.api.{area}")
        for name, function in module.register(engine).items():
            if name in functions:
                raise RuntimeError(f"API function {name!r} registered twice ({area})")
            functions[name] = function
    return functions
