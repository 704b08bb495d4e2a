"""The modules Nmap builds in C (nse-spec §10), provided by the engine in Python.

Each module here has a Lua face (worker/nse/lua/<name>.lua) and a Python half (this package,
``functions()`` -> {name: lua_api function}). They are installed in ``package.preload``: a
script pays for one only when it requires it.
"""
from __future__ import annotations
