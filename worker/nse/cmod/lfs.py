"""``lfs``: the small file-system module NSE ships (nse-spec §10: dir, link, mkdir, rmdir,
get_path_separator), over Python's os. Failures come back as LuaFileSystem reports them:
``nil, message`` (and the errno for link), never a raise, except for an unreadable dir."""
from __future__ import annotations

import os

from worker.nse.api.base import ScriptError, lua_api
from worker.nse.runtime import text


def _path(value, position: int, function: str) -> bytes:
    """A path argument as the bytes the os calls take (a number as Lua would write it)."""
    if not isinstance(value, (bytes, int, float)) or isinstance(value, bool):
        raise ScriptError(f"bad argument #{position} to '{function}' (string expected)")
    return value if isinstance(value, bytes) else str(value).encode()


def _failure(exc: OSError, with_errno: bool = False):
    message = (exc.strerror or str(exc)).encode()
    return (None, message, exc.errno) if with_errno else (None, message)


def functions() -> dict:
    @lua_api
    def listdir(path=None):
        path = _path(path, 1, "dir")
        try:
            names = os.listdir(path)
        except OSError as exc:
            raise ScriptError(f"cannot open {text(path)}: {exc.strerror}") from None
        # readdir's view (os.listdir leaves out "." and ".."); NUL ends each name, as no
        # file name holds one
        return b"".join(name + b"\0" for name in [b".", b".."] + names)

    @lua_api
    def mkdir(path=None):
        try:
            os.mkdir(_path(path, 1, "mkdir"), 0o777)
        except OSError as exc:
            return _failure(exc)
        return True

    @lua_api
    def rmdir(path=None):
        try:
            os.rmdir(_path(path, 1, "rmdir"))
        except OSError as exc:
            return _failure(exc)
        return True

    @lua_api
    def link(old=None, new=None, symbolic=None):
        old, new = _path(old, 1, "link"), _path(new, 2, "link")
        try:
            if symbolic is not None and symbolic is not False:
                os.symlink(old, new)
            else:
                os.link(old, new)
        except OSError as exc:
            return _failure(exc, with_errno=True)
        return True

    @lua_api
    def get_path_separator():
        return os.sep.encode()

    return {"listdir": listdir, "mkdir": mkdir, "rmdir": rmdir, "link": link,
            "get_path_separator": get_path_separator}
