"""``zlib``: Nmap's lzlib-style module over Python's zlib: one-shot compress/decompress,
checksums, and deflate/inflate streams driven from lua/zlib.lua. A stream's Python object is
held by its Lua table (opaque there), so it goes when the table is collected: no finalizer
has to call back into Python, which is not safe while a Lua state is being closed."""
from __future__ import annotations

import zlib

from worker.nse.api.base import ScriptError, lua_api

CONSTANTS = {
    "NO_COMPRESSION": 0, "BEST_SPEED": 1, "BEST_COMPRESSION": 9, "DEFAULT_COMPRESSION": -1,
    "FILTERED": 1, "HUFFMAN_ONLY": 2, "RLE": 3, "FIXED": 4, "DEFAULT_STRATEGY": 0,
    "MINIMUM_MEMLEVEL": 1, "MAXIMUM_MEMLEVEL": 9, "DEFAULT_MEMLEVEL": 8,
    "DEFAULT_WINDOWBITS": 15, "MINIMUM_WINDOWBITS": 8, "MAXIMUM_WINDOWBITS": 15,
    "GZIP_WINDOWBITS": 16, "RAW_WINDOWBITS": -1,
}
STREAM_ERROR = "failed to process zlib stream"


def _int(value, default: int) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        else default


def _window(bits) -> int:
    """lzlib's convention: GZIP_WINDOWBITS (16) and RAW_WINDOWBITS (-1) alone mean the
    largest window in that format."""
    bits = _int(bits, 15)
    if bits == 16:
        return 31
    if bits == -1:
        return -15
    return bits


def functions() -> dict:
    @lua_api
    def compress(data, level=None, method=None, bits=None, memlevel=None, strategy=None):
        try:
            packer = zlib.compressobj(_int(level, -1), _int(method, 8), _window(bits),
                                      _int(memlevel, 8), _int(strategy, 0))
            return packer.compress(bytes(data or b"")) + packer.flush()
        except (ValueError, zlib.error) as exc:
            raise ScriptError(STREAM_ERROR) from exc

    @lua_api
    def decompress(data, bits=None):
        try:
            unpacker = zlib.decompressobj(_window(bits))
            out = unpacker.decompress(bytes(data or b"")) + unpacker.flush()
        except (ValueError, zlib.error) as exc:
            raise ScriptError(STREAM_ERROR) from exc
        if not unpacker.eof:
            raise ScriptError(STREAM_ERROR)
        return out

    @lua_api
    def adler32(start=None, data=None):
        return float(zlib.adler32(bytes(data or b""), _int(start, 1)))

    @lua_api
    def crc32(start=None, data=None):
        return float(zlib.crc32(bytes(data or b""), _int(start, 0)))

    @lua_api
    def version():
        return zlib.ZLIB_RUNTIME_VERSION.encode()

    @lua_api
    def deflate_new(level=None, method=None, bits=None, memlevel=None, strategy=None,
                    dictionary=None):
        try:
            options = {"zdict": bytes(dictionary)} if dictionary else {}
            packer = zlib.compressobj(_int(level, -1), _int(method, 8), _window(bits),
                                      _int(memlevel, 8), _int(strategy, 0), **options)
        except (ValueError, zlib.error) as exc:
            raise ScriptError("call to deflateInit2 failed") from exc
        return packer

    @lua_api
    def deflate_write(packer, data):
        return packer.compress(bytes(data))

    @lua_api
    def deflate_flush(packer, finish):
        return packer.flush(zlib.Z_FINISH if finish else zlib.Z_SYNC_FLUSH)

    @lua_api
    def inflate_new(bits=None, dictionary=None):
        try:
            options = {"zdict": bytes(dictionary)} if dictionary else {}
            unpacker = zlib.decompressobj(_window(bits), **options)
        except (ValueError, zlib.error) as exc:
            raise ScriptError("call to inflateInit2 failed") from exc
        return unpacker

    @lua_api
    def inflate_feed(unpacker, data):
        """(output, ended, unused input) after feeding ``data``."""
        try:
            out = unpacker.decompress(bytes(data or b""))
        except zlib.error as exc:
            raise ScriptError(STREAM_ERROR) from exc
        return out, unpacker.eof, unpacker.unused_data

    return {"compress": compress, "decompress": decompress, "adler32": adler32,
            "crc32": crc32, "version": version, "deflate_new": deflate_new,
            "deflate_write": deflate_write, "deflate_flush": deflate_flush,
            "inflate_new": inflate_new, "inflate_feed": inflate_feed}
