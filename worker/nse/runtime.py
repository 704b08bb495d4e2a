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
        lupa = _import_lupa()

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
        # What stdnse needs from the engine (threads, sleep, silent_require): any stdnse gets
        # it set on its module table as it loads; our nselib's also reads thread_info here.
        stdnse_part = self.load_file(LUA_DIR / "stdnse_engine.lua", self.kernel, nmap,
                                     api_table[b"thread_info"])
        self.globals[b"package"][b"loaded"][b"nsecluster.engine"] = self.table({
            "thread_info": api["thread_info"]})
        self.kernel.install_searcher(lambda name: _found(find_module(text(name))),
                                     stdnse_part)
        self.kernel.make_strict()

    def _install_cmodules(self) -> None:
        """The modules Nmap builds in C (nse-spec §10): ours in Python (worker/nse/cmod) and
        LPeg, the real C library, from the system. Nmap also makes each a global."""
        from worker.nse.cmod import lfs, openssl, zlib

        openssl_api = self.table(openssl.functions())
        self.kernel.bignum = self.load_file(LUA_DIR / "bignum.lua", self.kernel, openssl_api)
        parts = {"openssl": (openssl_api, self.kernel.bignum),
                 "zlib": (self.table(zlib.functions()), self.table(zlib.CONSTANTS)),
                 "lfs": (self.table(lfs.functions()),)}
        package = self.globals[b"package"]
        modules = {name: self.load_file(LUA_DIR / f"{name}.lua", self.kernel, *args)
                   for name, args in parts.items()}
        lpeg = find_lpeg()
        if lpeg is not None:
            open_lpeg = package[b"loadlib"](str(lpeg).encode(), b"luaopen_lpeg")
            if open_lpeg is not None:
                modules["lpeg"] = open_lpeg()
        package[b"cpath"] = b""  # no other C module: none from the current directory
        for name, module in modules.items():
            package[b"loaded"][name.encode()] = module
            self.globals[name.encode()] = module

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


def _import_lupa():
    """lupa's Lua 5.4 with its C API visible to C modules loaded later (LPeg links against
    whichever Lua loaded it, as Lua modules do), so it is imported with RTLD_GLOBAL."""
    import sys

    module = sys.modules.get("lupa.lua54")
    if module is None:
        import lupa

        with lupa.allow_lua_module_loading():
            import lupa.lua54 as module
    return module


def find_lpeg() -> Path | None:
    """The LPeg C module built for Lua 5.4 (Debian: lua-lpeg), or None."""
    import sysconfig

    triplet = sysconfig.get_config_var("MULTIARCH") or ""
    for directory in (f"/usr/lib/{triplet}/lua/5.4", "/usr/local/lib/lua/5.4",
                      "/usr/lib64/lua/5.4", "/usr/lib/lua/5.4"):
        candidate = Path(directory) / "lpeg.so"
        if candidate.is_file():
            return candidate
    return None


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
