"""``nmap.registry`` in Redis: one table per scan for every process of the scan.

Each Lua table of the registry is a node, stored as one Redis hash
``nsecluster:{scan}:reg:{node}``: fields are typed keys (``s`` + string, ``i`` + integer,
``n`` + float, ``t``/``f`` for booleans), values are msgpack, and a nested table is an
extension value naming its node. The Lua side (worker/nse/lua/shared_table.lua) makes the
proxies; this side reads and writes. A write of a whole table lands in one transaction, so
another process never sees half of it. Every key expires ``ttl_s`` after its last write, and
``delete`` removes the scan's registry when the scan ends.
"""
from __future__ import annotations

import functools
import itertools
import uuid

import msgpack
import redis

from worker.cluster.keys import scan_prefix, unlink_matching
from worker.nse.api.base import ScriptError, lua_api
from worker.nse.runtime import LUA_DIR

NODE_EXT = 1  # msgpack extension type of a reference to another node
ROOT = b"root"

# A border of the hash's integer keys (what # means for a Lua table): probe 1, 2, 4, ...
# then bisect; all on the server, one round trip whatever the length.
_BORDER = """
local function has(i) return redis.call('HEXISTS', KEYS[1], 'i' .. string.format('%d', i)) == 1 end
if not has(1) then return 0 end
local low, high = 1, 2
while has(high) do
  low, high = high, high * 2
  if high > 2^50 then return low end
end
while high - low > 1 do
  local middle = math.floor((low + high) / 2)
  if has(middle) then low = middle else high = middle end
end
return low
"""


# Appends at the first free integer index from ARGV[1]: two processes appending at once
# both land. KEYS: the hash. ARGV: first index, value, ttl.
_APPEND = """
local i = tonumber(ARGV[1])
while redis.call('HSETNX', KEYS[1], 'i' .. string.format('%d', i), ARGV[2]) == 0 do
  i = i + 1
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return i
"""


class RegistryUnavailable(ScriptError):
    pass


def _shared_state_errors(fn):
    """Redis trouble becomes the script's error with the reason, never an internal error."""
    @functools.wraps(fn)
    def wrapper(*args):
        try:
            return fn(*args)
        except redis.RedisError as exc:
            raise RegistryUnavailable(f"nmap.registry: shared state unavailable ({exc})") from exc
    return lua_api(wrapper)


def encode_key(key) -> bytes:
    if isinstance(key, bytes):
        return b"s" + key
    if isinstance(key, bool):
        return b"t" if key else b"f"
    if isinstance(key, int):
        return b"i%d" % key
    if isinstance(key, float):
        if key != key:
            raise ScriptError("index is NaN")
        if key.is_integer():  # Lua stores t[2.0] as t[2]
            return b"i%d" % int(key)
        return b"n" + repr(key).encode()
    raise ScriptError("nmap.registry keys must be strings, numbers or booleans")


def decode_key(field: bytes):
    kind, rest = field[:1], field[1:]
    if kind == b"s":
        return rest
    if kind == b"i":
        return int(rest)
    if kind == b"n":
        return float(rest)
    return kind == b"t"


class _NodeRef(bytes):
    pass


def _node_ref(node: bytes) -> bytes:
    return msgpack.packb(msgpack.ExtType(NODE_EXT, node))


def _decode_value(raw: bytes):
    return msgpack.unpackb(raw, raw=False, ext_hook=lambda code, data: _NodeRef(data)
                           if code == NODE_EXT else msgpack.ExtType(code, data))


class RedisRegistry:
    """The registry of scan ``scan_id`` in the Redis that ``client`` talks to."""

    def __init__(self, client: redis.Redis, scan_id: str, ttl_s: int = 86400):
        self.client, self.ttl_s = client, ttl_s
        self.use_scan(scan_id)
        self._node_ids = (b"%s.%d" % (uuid.uuid4().hex[:12].encode(), n)
                          for n in itertools.count(1))
        self._border = client.register_script(_BORDER)
        self._append_script = client.register_script(_APPEND)
        self._batch = None
        self._tables = {}  # id(runtime) -> its root proxy

    def use_scan(self, scan_id: str) -> None:
        """Serve scan ``scan_id`` from now on (a worker process runs many scans, one at a
        time; the tables scripts hold are proxies, so they follow)."""
        self.scan_id = scan_id
        self._prefix = f"{scan_prefix(scan_id)}reg:".encode()

    def lua_table(self, runtime):
        table = self._tables.get(id(runtime))
        if table is None:
            store = runtime.table({
                "get": self._get, "put": self._put, "put_node": self._put_node,
                "new_node": self._new_node, "begin": self._begin, "commit": self._commit,
                "abort": self._abort, "length": self._length, "append": self._append,
                "append_node": self._append_node, "claim": self._claim,
                "items": functools.partial(self._items, runtime)})
            make = runtime.load_file(LUA_DIR / "shared_table.lua", store, runtime.bridge[b"RAISE"])
            table = self._tables[id(runtime)] = make(ROOT)
        return table

    def delete(self) -> int:
        """Remove the scan's registry; the number of Redis keys removed."""
        return unlink_matching(self.client, self._prefix + b"*")

    def _key(self, node: bytes) -> bytes:
        return self._prefix + node

    # -- the store the Lua proxies call ------------------------------------------------------
    @_shared_state_errors
    def _get(self, node, key):
        raw = self.client.hget(self._key(node), encode_key(key))
        if raw is None:
            return False, None
        value = _decode_value(raw)
        return (True, bytes(value)) if isinstance(value, _NodeRef) else (False, value)

    @_shared_state_errors
    def _new_node(self):
        return next(self._node_ids)

    @_shared_state_errors
    def _begin(self):
        self._batch = self.client.pipeline(transaction=True)
        return True

    @_shared_state_errors
    def _put(self, node, key, value):
        self._write(node, encode_key(key), None if value is None else
                    msgpack.packb(value, use_bin_type=True))
        return True

    @_shared_state_errors
    def _put_node(self, node, key, child):
        self._write(node, encode_key(key), _node_ref(child))
        return True

    @_shared_state_errors
    def _append(self, node, key, value):
        self._append_script(keys=[self._key(node)],
                            args=[key, msgpack.packb(value, use_bin_type=True), self.ttl_s])
        return True

    @_shared_state_errors
    def _append_node(self, node, key, child):
        self._append_script(keys=[self._key(node)], args=[key, _node_ref(child), self.ttl_s])
        return True

    @_shared_state_errors
    def _claim(self, node, key, child):
        """Link ``child`` under ``key`` unless a table is already there: the node to fill."""
        field, ref = encode_key(key), _node_ref(child)
        if self.client.hsetnx(self._key(node), field, ref):
            self.client.expire(self._key(node), self.ttl_s)
            return child
        existing = self.client.hget(self._key(node), field)
        value = _decode_value(existing) if existing is not None else None
        if isinstance(value, _NodeRef):
            return bytes(value)  # another process created it first: share that one
        self._write(node, field, ref)
        return child

    def _write(self, node: bytes, field: bytes, raw: bytes | None) -> None:
        target = self._batch if self._batch is not None else self.client.pipeline()
        if raw is None:
            target.hdel(self._key(node), field)
        else:
            target.hset(self._key(node), field, raw)
            target.expire(self._key(node), self.ttl_s)
        if target is not self._batch:
            target.execute()

    @_shared_state_errors
    def _commit(self):
        batch, self._batch = self._batch, None
        if batch is not None:
            batch.execute()
        return True

    @lua_api
    def _abort(self):
        batch, self._batch = self._batch, None
        if batch is not None:
            batch.reset()
        return True

    @_shared_state_errors
    def _length(self, node):
        return int(self._border(keys=[self._key(node)]))

    @_shared_state_errors
    def _items(self, runtime, node):
        flat = []
        for field, raw in self.client.hgetall(self._key(node)).items():
            value = _decode_value(raw)
            is_node = isinstance(value, _NodeRef)
            flat += [decode_key(field), is_node, bytes(value) if is_node else value]
        return runtime.lua.table_from(flat)
