"""Sleeping: ``nmap.socket.sleep`` (what ``stdnse.sleep`` calls) and ``nmap.socket.loop``."""
from __future__ import annotations

from worker.nse.api.base import PENDING, ScriptError, lua_api, lua_number_text


def lua_number(value, function: str) -> float:
    """A number argument as Lua reads it: numbers, and strings that convert."""
    if isinstance(value, bytes):
        try:
            return float(value)
        except ValueError:
            pass
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    got = "no value" if value is None else type(value).__name__
    raise ScriptError(f"bad argument #1 to '{function}' (number expected, got {got})")


def register(engine) -> dict:
    @lua_api
    def sleep(seconds=None):
        seconds = lua_number(seconds, "nmap.socket.sleep")
        if seconds < 0:
            raise ScriptError(f"argument to sleep ({lua_number_text(seconds)}) must not be "
                              f"negative\n")
        token = engine.ops.begin(engine.current.id)
        timer = engine.loop.call_later(seconds * 1000.0, lambda: engine.ops.complete(token))
        engine.ops.set_cancel(token, timer.cancel)
        return PENDING, token

    @lua_api
    def loop(milliseconds=None):
        """Run the loop for a while: the scheduler turns it between resumes anyway."""
        lua_number(milliseconds, "nmap.socket.loop")
        return None

    return {"sleep": sleep, "loop": loop}
