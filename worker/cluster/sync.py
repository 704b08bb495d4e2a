"""``nmap.mutex`` and ``nmap.condvar`` across every process of a scan, in Redis.

How this works. Only string-named mutexes and condition variables can be shared between
processes (an object is a different object in each process), so those live in Redis and the
rest stay in this process's ``MemorySync``. A lock is an owner key with a lease plus a FIFO
list of waiters; every change is one Lua script on the server, so two processes never both
take a lock. Owners and waiters are named ``<process>:<coroutine>:<thread>``; a process is
alive while its key exists. When a lock is handed to a waiter of another process, or a
condition variable wakes one, the server publishes the waiter's name on that process's
channel; a listener thread passes it to the event loop. Leases, liveness and the waiters'
queues are refreshed by a timer on the loop while this process holds or waits for anything,
and the same timer asks for locks whose holder died: its lease lapses and the queue moves on.
"""
from __future__ import annotations

import functools
import hashlib
import itertools
import logging
import threading
import uuid

import redis

from worker.cluster.keys import scan_prefix
from worker.nse.api.base import ScriptError
from worker.nse.api.sync import MemorySync

log = logging.getLogger("nsecluster.cluster")

_HAND_OVER = """
local function hand_over()
  while true do
    local waiter = redis.call('LPOP', KEYS[2])
    if not waiter then return false end
    local process = string.match(waiter, '^([^:]+):')
    if redis.call('EXISTS', ARGV[2] .. process) == 1 then
      redis.call('SET', KEYS[1], waiter, 'PX', ARGV[3])
      redis.call('PUBLISH', ARGV[1] .. process, 'lock ' .. waiter .. ' ' .. KEYS[1])
      return waiter
    end
  end
end
"""
# KEYS: owner, queue. ARGV: channel prefix, alive prefix, lease ms, me, mode, my process.
_LOCK = _HAND_OVER + """
redis.call('SET', ARGV[2] .. ARGV[6], '1', 'PX', ARGV[3])
local owner = redis.call('GET', KEYS[1]) or hand_over()
if not owner then
  redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[3])
  return 1
end
if ARGV[5] == 'lock' then
  redis.call('RPUSH', KEYS[2], ARGV[4])
  redis.call('PEXPIRE', KEYS[2], 86400000)
end
return 0
"""
# KEYS: owner, queue. ARGV: channel prefix, alive prefix, lease ms, me. The new owner or ''.
_DONE = _HAND_OVER + """
if redis.call('GET', KEYS[1]) ~= ARGV[4] then return false end
redis.call('DEL', KEYS[1])
return hand_over() or ''
"""
# KEYS: owner, queue. ARGV: channel prefix, alive prefix, lease ms, waiter, its process.
# A waiter asks after its lock: a lapsed holder's queue moves on, and a waiter that fell out
# of the queue (its process was briefly thought dead) joins it again. The owner, or ''.
_POKE = _HAND_OVER + """
redis.call('SET', ARGV[2] .. ARGV[5], '1', 'PX', ARGV[3])
local owner = redis.call('GET', KEYS[1]) or hand_over()
if owner ~= ARGV[4] and not redis.call('LPOS', KEYS[2], ARGV[4]) then
  redis.call('RPUSH', KEYS[2], ARGV[4])
  redis.call('PEXPIRE', KEYS[2], 86400000)
end
return owner or ''
"""
# KEYS: owner. ARGV: me, lease ms.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
# KEYS: the condition variable's waiters. ARGV: channel prefix, alive prefix, mode.
# 'signal' wakes the latest waiter of a living process, 'broadcast' every one.
_WAKE = """
local woken = {}
while true do
  local waiter = redis.call('RPOP', KEYS[1])
  if not waiter then break end
  local process = string.match(waiter, '^([^:]+):')
  if redis.call('EXISTS', ARGV[2] .. process) == 1 then
    redis.call('PUBLISH', ARGV[1] .. process,
               (ARGV[3] == 'signal' and 'wake ' or 'wakeall ') .. waiter)
    woken[#woken + 1] = waiter
    if ARGV[3] == 'signal' then break end
  end
end
return woken
"""


def _shared_state_errors(fn):
    """Redis trouble is the script's error, with the reason (never an internal error)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except redis.RedisError as exc:
            raise ScriptError(f"nmap.mutex: shared state unavailable ({exc})") from exc
    return wrapper


class RedisSync:
    """The ``SyncBackend`` of one process for scan ``scan_id``; ``loop`` runs its timer and
    receives other processes' hand-overs. Every lock attempt and every wait has a name of
    its own (``<process>:<n>``), so a late message about an earlier attempt of the same
    coroutine cannot be mistaken for a new one."""

    def __init__(self, ops, loop, client: redis.Redis, scan_id: str, lease_ms: int = 10_000):
        self.ops, self.loop, self.client, self.lease_ms = ops, loop, client, lease_ms
        self.local = MemorySync(ops)
        self.process = uuid.uuid4().hex
        # A process's liveness and channel are its own, whatever scan it serves.
        self._channel_prefix = "nsecluster:sync:wake:"
        self._alive_prefix = "nsecluster:sync:alive:"
        self._channel = self._channel_prefix + self.process
        self.use_scan(scan_id)
        self._lock_script = client.register_script(_LOCK)
        self._done_script = client.register_script(_DONE)
        self._poke_script = client.register_script(_POKE)
        self._renew_script = client.register_script(_RENEW)
        self._wake_script = client.register_script(_WAKE)
        self._names = itertools.count(1)
        self._held: dict[str, tuple[int, int, str]] = {}  # key -> (co, thread, name) here
        self._queued: dict[str, tuple[str, int, int, int]] = {}  # name -> (key, co, thread, token)
        self._sleeping: dict[str, tuple[str, int, int]] = {}  # name -> (key, thread, token)
        self._timer = None
        self._listener: threading.Thread | None = None
        self._stopping = threading.Event()

    def use_scan(self, scan_id: str) -> None:
        """Serve scan ``scan_id`` from now on; called between scans, when nothing is held."""
        self._prefix = f"{scan_prefix(scan_id)}sync:"

    # -- names ------------------------------------------------------------------------------
    @staticmethod
    def _shared(key: str) -> bool:
        return key.startswith("s:")  # "o:" keys name objects, which exist in one process

    def _keys(self, key: str) -> list[str]:
        digest = hashlib.sha1(key.encode("utf-8", "surrogateescape")).hexdigest()
        return [f"{self._prefix}mx:{digest}:owner", f"{self._prefix}mx:{digest}:queue"]

    def _cv_key(self, key: str) -> str:
        return f"{self._prefix}cv:{hashlib.sha1(key.encode('utf-8', 'surrogateescape')).hexdigest()}"

    def _new_name(self) -> str:
        return f"{self.process}:{next(self._names)}"

    def _server_args(self) -> list:
        return [self._channel_prefix, self._alive_prefix, self.lease_ms]

    # -- mutexes ----------------------------------------------------------------------------
    @_shared_state_errors
    def lock(self, key: str, co: int, thread: int) -> int | None:
        if not self._shared(key):
            return self.local.lock(key, co, thread)
        self._listen()
        me = self._new_name()
        try:
            taken = self._lock_script(keys=self._keys(key),
                                      args=[*self._server_args(), me, "lock", self.process])
        except redis.RedisError:
            self._forget_waiter(key, me)  # the server may have queued it before failing
            raise
        if taken:
            self._took(key, co, thread, me)
            return None
        token = self.ops.begin(thread)
        self._queued[me] = (key, co, thread, token)
        self._keep_alive()
        return token

    @_shared_state_errors
    def trylock(self, key: str, co: int, thread: int) -> bool:
        if not self._shared(key):
            return self.local.trylock(key, co, thread)
        me = self._new_name()
        if self._lock_script(keys=self._keys(key),
                             args=[*self._server_args(), me, "try", self.process]):
            self._took(key, co, thread, me)
            return True
        return False

    @_shared_state_errors
    def done(self, key: str, co: int) -> None:
        if not self._shared(key):
            return self.local.done(key, co)
        held = self._held.get(key)
        if held is None or held[0] != co:
            raise ScriptError("do not have a lock on this mutex")
        del self._held[key]
        self._release(key, held[2])

    def running(self, key: str) -> int | None:
        """The holding coroutine when it is one of this process's; None otherwise (a holder
        in another process has no coroutine here)."""
        if not self._shared(key):
            return self.local.running(key)
        held = self._held.get(key)
        return held[0] if held else None

    def _took(self, key: str, co: int, thread: int, name: str) -> None:
        self._held[key] = (co, thread, name)
        self._keep_alive()

    def _release(self, key: str, owner: str) -> None:
        self._give_on(self._keys(key), owner)

    def _give_on(self, keys: list[str], owner: str) -> None:
        """Give up ``owner``'s lock (owner and queue keys ``keys``); a waiter of ours that
        the server picks is woken now, or passed over when its thread has died."""
        for _ in range(1 + len(self._queued)):  # each turn removes one of our waiters
            new_owner = self._done_script(keys=keys, args=[*self._server_args(), owner])
            if new_owner is None:  # not (or no longer) the owner: nothing to give up
                return
            owner = new_owner.decode()
            waiter = self._queued.pop(owner, None)
            if waiter is None:
                return  # free now, or handed to another process
            if self.ops.is_pending(waiter[3]):
                self._took(waiter[0], waiter[1], waiter[2], owner)
                self.ops.complete(waiter[3])
                return

    def _forget_waiter(self, key: str, name: str) -> None:
        """Take ``name`` out of the lock's queue, and give the lock on if it was just handed
        to it."""
        self._queued.pop(name, None)
        try:
            self.client.lrem(self._keys(key)[1], 0, name)
            self._release(key, name)
        except redis.RedisError as exc:
            log.warning("could not withdraw from mutex %r: %s", key, exc)

    # -- condition variables ------------------------------------------------------------------
    @_shared_state_errors
    def wait(self, key: str, thread: int) -> int:
        if not self._shared(key):
            return self.local.wait(key, thread)
        self._listen()
        token = self.ops.begin(thread)
        me = self._new_name()
        self._sleeping[me] = (key, thread, token)
        pipe = self.client.pipeline()
        pipe.set(self._alive_prefix + self.process, 1, px=self.lease_ms)
        pipe.rpush(self._cv_key(key), me)
        pipe.pexpire(self._cv_key(key), 86_400_000)
        pipe.execute()
        self._keep_alive()
        return token

    @_shared_state_errors
    def signal(self, key: str) -> None:
        if not self._shared(key):
            return self.local.signal(key)
        for _ in range(1 + len(self._sleeping)):  # each turn passes over one dead waiter of ours
            woken = self._wake_script(keys=[self._cv_key(key)],
                                      args=[self._channel_prefix, self._alive_prefix, "signal"])
            if not woken or self._woke(woken[0].decode()):
                return

    @_shared_state_errors
    def broadcast(self, key: str) -> None:
        if not self._shared(key):
            return self.local.broadcast(key)
        for waiter in self._wake_script(keys=[self._cv_key(key)],
                                        args=[self._channel_prefix, self._alive_prefix,
                                              "broadcast"]):
            self._woke(waiter.decode(), pass_on=False)

    def _woke(self, waiter: str, pass_on: bool = True) -> bool:
        """Wake ``waiter`` if it is ours; False when it was ours and its thread had died."""
        sleeping = self._sleeping.pop(waiter, None)
        if sleeping is None:
            return True  # another process's, or woken already
        return self.ops.complete(sleeping[2]) or not pass_on

    # -- a thread's end ---------------------------------------------------------------------
    def release_thread(self, thread: int) -> None:
        self.local.release_thread(thread)
        self._release_where(lambda owner_thread: owner_thread == thread)

    def release_all(self) -> None:
        """After a task failed part-way: give up every lock and wait of this process, so no
        lease is renewed for a thread that will never finish."""
        self.local = MemorySync(self.ops)
        self._release_where(lambda owner_thread: True)

    def _release_where(self, chosen) -> None:
        try:
            for key, (_, owner_thread, name) in list(self._held.items()):
                if chosen(owner_thread):
                    del self._held[key]
                    self._release(key, name)
            for name, (key, _, waiter_thread, _) in list(self._queued.items()):
                if chosen(waiter_thread):
                    self._forget_waiter(key, name)
            for name, (key, sleeper_thread, _) in list(self._sleeping.items()):
                if chosen(sleeper_thread):
                    del self._sleeping[name]
                    self.client.lrem(self._cv_key(key), 0, name)
        except redis.RedisError as exc:  # leases lapse on their own
            log.warning("could not release shared locks: %s", exc)

    # -- messages from other processes --------------------------------------------------------
    def _message(self, text: str) -> None:
        kind, _, name = text.partition(" ")
        if kind in ("wake", "wakeall"):
            sleeping = self._sleeping.get(name)
            if sleeping is not None and not self._woke(name) and kind == "wake":
                self.signal(sleeping[0])  # its thread died: the signal goes to the next waiter
        elif kind == "lock":
            name, _, owner_key = name.partition(" ")
            self._granted(name, [owner_key, owner_key[:-len(":owner")] + ":queue"])

    def _granted(self, name: str, keys: list[str]) -> None:
        """The server made wait ``name`` the owner of the lock at ``keys``."""
        queued = self._queued.pop(name, None)
        if queued is None:
            if not any(held[2] == name for held in self._held.values()):
                self._give_on(keys, name)  # its thread ended while it was handed over
            return
        key, co, thread, token = queued
        if self.ops.is_pending(token):
            self._took(key, co, thread, name)
            self.ops.complete(token)
        else:
            self._give_on(keys, name)

    def _listen(self) -> None:
        """Subscribe to this process's channel (once, confirmed) before the first wait."""
        if self._listener is not None:
            return
        pubsub = self.client.pubsub()
        pubsub.subscribe(self._channel)
        for _ in range(50):  # the confirmation, within about five seconds
            message = pubsub.get_message(timeout=0.1)
            if message and message["type"] == "subscribe":
                break
        self._listener = threading.Thread(target=self._receive, args=(pubsub,),
                                          name="nsecluster-sync", daemon=True)
        self._listener.start()

    def _receive(self, pubsub) -> None:
        while not self._stopping.is_set():
            try:
                message = pubsub.get_message(timeout=0.2)
            except (redis.RedisError, OSError, ValueError) as exc:
                if self._stopping.is_set():
                    break
                log.warning("sync channel: %s", exc)  # the periodic poke recovers what was missed
                self._stopping.wait(0.5)
                continue
            if message and message["type"] == "message":
                text = message["data"].decode("utf-8", "surrogateescape")
                self.loop.call_soon_threadsafe(lambda text=text: self._message(text))
        pubsub.close()

    # -- leases -----------------------------------------------------------------------------
    def _keep_alive(self) -> None:
        if self._timer is None:
            self._timer = self.loop.call_later(self.lease_ms / 3, self._tick)

    def _tick(self) -> None:
        """Renew what we hold and our liveness; ask after the locks we wait for (their holder
        may have died, a message may have been lost, we may have fallen out of the queue)
        and after the condition variables we sleep on (a wake-up whose message was lost
        still wakes: a spurious wake-up is allowed)."""
        self._timer = None
        if not (self._held or self._queued or self._sleeping):
            return
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.set(self._alive_prefix + self.process, 1, px=self.lease_ms)
            held = list(self._held.items())
            for key, (_, _, name) in held:
                self._renew_script(keys=self._keys(key)[:1], args=[name, self.lease_ms],
                                   client=pipe)
            waiting = list(self._queued.items())
            for name, (key, _, _, _) in waiting:
                self._poke_script(keys=self._keys(key),
                                  args=[*self._server_args(), name, self.process], client=pipe)
            sleeping = list(self._sleeping.items())
            for name, (key, _, _) in sleeping:
                pipe.lpos(self._cv_key(key), name)
            results = pipe.execute()
            polled = results[1 + len(held):]
            for (name, (key, _, _, _)), owner in zip(waiting, polled[:len(waiting)]):
                if owner.decode() == name:
                    self._granted(name, self._keys(key))
            for (name, _), position in zip(sleeping, polled[len(waiting):]):
                if position is None:
                    self._woke(name, pass_on=False)
        except redis.RedisError as exc:
            log.warning("could not renew shared locks: %s", exc)
        self._keep_alive()

    def close(self) -> None:
        self._stopping.set()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._listener is not None:
            self._listener.join(timeout=2)
