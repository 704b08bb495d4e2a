"""The one translation between Python and the Lua boundary (design.md practice 3).

API functions raise Python exceptions inside; Lua sees NSE values. ``lua_api`` turns
``ScriptError`` (the script misused the API) into a Lua error with exactly its message, and
any other exception (our bug) into a Lua error that says so, logged with its traceback.
A function that has to wait returns ``(PENDING, token)``; the Lua wrapper suspends on it.
"""
from __future__ import annotations

import functools
import logging
import re
import traceback

log = logging.getLogger("nsecluster.nse")


class ScriptError(Exception):
    """The script used the API wrongly; the message is the exact Lua error text."""


# Markers in the first return value. Byte strings: Lua compares strings by value, and no
# API result starts with a NUL byte.
PENDING = b"\x00nse-pending"  # (PENDING, token): the Lua wrapper suspends on token
RAISE = b"\x00nse-raise"  # (RAISE, message): the Lua wrapper calls error(message, 0)
NOTHING = b"\x00nse-nothing"  # the Lua wrapper returns no value at all (not even nil)


def lua_api(fn):
    """Wrap an API function called from Lua: NSE values out, never a Python exception."""
    @functools.wraps(fn)
    def wrapper(*args):
        try:
            return fn(*args)
        except ScriptError as exc:
            return RAISE, str(exc).encode("utf-8", "surrogateescape")
        except Exception as exc:  # our bug: the script sees one line, the log the traceback
            log.error("internal error in %s: %s", fn.__name__, traceback.format_exc())
            return RAISE, f"internal error in {fn.__name__}: {type(exc).__name__}: {exc}".encode()
    return wrapper


def arg_error(position: int, function: str, detail: str) -> ScriptError:
    """luaL_argerror's wording: bad argument #N to 'f' (detail)."""
    return ScriptError(f"bad argument #{position} to '{function}' ({detail})")


def lua_number_text(value: float) -> str:
    """A number as Lua prints a float (%.14g, ".0" on integral values): luaL_error's %f."""
    value = float(value)
    if value != value:
        return "nan" if str(value)[0] != "-" else "-nan"
    if value in (float("inf"), float("-inf")):
        return "inf" if value > 0 else "-inf"
    out = "%.14g" % value
    if re.fullmatch(r"-?\d+", out):
        out += ".0"
    return out
