"""The modules Nmap builds in C (nse-spec §10), provided by the engine in Python.

Each module here has a Lua face (worker/nse/lua/<name>.lua) and a Python half (this package,
``functions()`` -> {name: lua_api function}). Each is loaded at start-up into
``package.loaded`` and made a global, as Nmap does.
"""
from __future__ import annotations
