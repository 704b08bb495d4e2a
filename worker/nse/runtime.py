"""The Lua state: one per worker process, shared by every script of every scan it runs.

lupa runs with ``encoding=None``: Lua strings arrive in Python as ``bytes`` and Python must
hand Lua ``bytes`` (a Python ``str`` would arrive as opaque userdata). ``lua_value`` and
``py_value`` convert plain data both ways. Scripts never see Python: the ``python`` global is
removed and attribute access on Python objects is refused.
"""
from __future__ import annotations

from pathlib import Path

from worker.nse.api.base import NOTHING, PENDING, RAISE

LUA_DIR = Path(__file__).resolve().parent / "lua"


class LuaRuntime:
    """A Lua 5.4 state with the engine's kernel loaded (worker/nse/lua/kernel.lua)."""

    def __init__(self, bridge: dict):
        import lupa.lua54 as lupa  # the script engine loads Lua only when scripts run

        self.lupa = lupa
        self.lua = lupa.LuaRuntime(encoding=None, unpack_returned_tuples=True,
                                   register_eval=False, register_builtins=False,
                                   attribute_filter=_no_attributes)
        self.globals = self.lua.globals()
        self.globals[b"python"] = None
        self._load = self.lua.eval(
            "function(src, name, ...) return assert(load(src, name, 't'))(...) end")
        self.bridge = self.table({**bridge, "PENDING": PENDING, "RAISE": RAISE,
                                  "NOTHING": NOTHING})
        self.kernel = self.load_file(LUA_DIR / "kernel.lua", self.bridge)
        self.LuaError = lupa.LuaError

    def install_nmap(self, api: dict, find_module) -> None:
        """Build the ``nmap`` module from the Python API, make ``require`` find nselib
        modules through ``find_module(name) -> path | None``, then make globals strict."""
        api_table = self.table(api)

        def load_part(name, *args):
            return self.load_file(LUA_DIR / text(name), *args)

        self._install_cmodules()
        nmap, nmap7 = self.load_file(LUA_DIR / "nmap.lua", self.kernel, api_table, load_part)
        self.kernel.set_nmap7_view(nmap7)
        self.globals[b"nmap"] = nmap
        self.globals[b"package"][b"loaded"][b"nmap"] = nmap
        # What nselib's stdnse needs from the engine (threads, the silent_require error).
        self.globals[b"package"][b"loaded"][b"nsecluster.engine"] = self.table({
            "new_thread": self.kernel.new_worker, "base": self.kernel.base,
            "host_port": self.kernel.host_port,
            "thread_info": api["thread_info"], "SILENT_REQUIRE": self.kernel.SILENT_REQUIRE})
        self.kernel.install_searcher(lambda name: _found(find_module(text(name))))
        self.kernel.make_strict()

    def _install_cmodules(self) -> None:
        """The modules Nmap builds in C (worker/nse/cmod), loaded on first ``require``. The
        BIGNUM type is shared with certificate tables, so it is there from the start."""
        from worker.nse.cmod import openssl, zlib

        openssl_api = self.table(openssl.functions())
        self.kernel.bignum = self.load_file(LUA_DIR / "bignum.lua", self.kernel, openssl_api)
        parts = {"openssl": (openssl_api, self.kernel.bignum),
                 "zlib": (self.table(zlib.functions()), self.table(zlib.CONSTANTS))}
        preload = self.globals[b"package"][b"preload"]
        as_lua_function = self.lua.eval("function(f) return function() return f() end end")
        for name, args in parts.items():
            def loader(name=name, args=args):
                return self.load_file(LUA_DIR / f"{name}.lua", self.kernel, *args)
            preload[name.encode()] = as_lua_function(loader)  # require wants a Lua function

    def load_file(self, path: Path, *args):
        return self._load(path.read_bytes(), b"@" + str(path).encode(), *args)

    def table(self, mapping: dict | None = None):
        """A Lua table from a dict with str or int keys (values converted by lua_value)."""
        if not mapping:
            return self.lua.table()
        return self.lua.table_from({_key(k): self.lua_value(v) for k, v in mapping.items()})

    def lua_value(self, value):
        """Python plain data to Lua: str -> bytes, dict/list/tuple -> tables (lists from 1)."""
        if isinstance(value, str):
            return value.encode("utf-8", "surrogateescape")
        if isinstance(value, dict):
            return self.table(value)
        if isinstance(value, (list, tuple)):
            return self.lua.table_from([self.lua_value(v) for v in value])
        return value

    def is_table(self, value) -> bool:
        return self.lupa.lua_type(value) == "table"

    def is_function(self, value) -> bool:
        return self.lupa.lua_type(value) == "function"


def _found(path):
    return str(path).encode("utf-8", "surrogateescape") if path is not None else None


def _key(key):
    return key.encode() if isinstance(key, str) else key


def _no_attributes(obj, name, is_setting):
    raise AttributeError("Lua code may not access Python attributes")


def text(value) -> str:
    """A Lua string (bytes) as text for Python-side messages; anything else via str()."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return str(value)


def py_value(runtime: LuaRuntime, value, depth: int = 0):
    """Lua plain data to Python (tables to dicts keyed by str/int); for results and args."""
    if isinstance(value, bytes):
        return text(value)
    if runtime.is_table(value):
        if depth > 64:
            return "<table>"
        return {(text(k) if isinstance(k, bytes) else k): py_value(runtime, v, depth + 1)
                for k, v in value.items()}
    return value
