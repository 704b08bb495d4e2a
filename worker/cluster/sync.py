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

import hashlib
import logging
import threading
import uuid

import redis

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
      redis.call('PUBLISH', ARGV[1] .. process, 'lock ' .. waiter)
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
# KEYS: owner, queue. ARGV: channel prefix, alive prefix, lease ms. The owner, '' if none.
_POKE = _HAND_OVER + """
return redis.call('GET', KEYS[1]) or hand_over() or ''
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


class RedisSync:
    """The ``SyncBackend`` of one process for scan ``scan_id``; ``loop`` runs its timer and
    receives other processes' hand-overs."""

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
        self._held: dict[str, tuple[int, int]] = {}  # key -> (co, thread) holding it here
        self._queued: dict[str, tuple[str, int, int, int]] = {}  # waiter -> (key, co, thread, token)
        self._sleeping: dict[str, tuple[str, int, int]] = {}  # waiter -> (key, thread, token)
        self._timer = None
        self._listener: threading.Thread | None = None
        self._stopping = threading.Event()

    def use_scan(self, scan_id: str) -> None:
        """Serve scan ``scan_id`` from now on; called between scans, when nothing is held."""
        self._prefix = f"nsecluster:{scan_id}:sync:"

    # -- names ------------------------------------------------------------------------------
    @staticmethod
    def _shared(key: str) -> bool:
        return key.startswith("s:")  # "o:" keys name objects, which exist in one process

    def _keys(self, key: str) -> list[str]:
        digest = hashlib.sha1(key.encode("utf-8", "surrogateescape")).hexdigest()
        return [f"{self._prefix}mx:{digest}:owner", f"{self._prefix}mx:{digest}:queue"]

    def _cv_key(self, key: str) -> str:
        return f"{self._prefix}cv:{hashlib.sha1(key.encode('utf-8', 'surrogateescape')).hexdigest()}"

    def _name(self, *parts) -> str:
        return ":".join([self.process, *map(str, parts)])

    def _server_args(self) -> list:
        return [self._channel_prefix, self._alive_prefix, self.lease_ms]

    # -- mutexes ----------------------------------------------------------------------------
    def lock(self, key: str, co: int, thread: int) -> int | None:
        if not self._shared(key):
            return self.local.lock(key, co, thread)
        self._listen()
        me = self._name(co, thread)
        if self._lock_script(keys=self._keys(key),
                             args=[*self._server_args(), me, "lock", self.process]):
            self._took(key, co, thread)
            return None
        token = self.ops.begin(thread)
        self._queued[me] = (key, co, thread, token)
        self._keep_alive()
        return token

    def trylock(self, key: str, co: int, thread: int) -> bool:
        if not self._shared(key):
            return self.local.trylock(key, co, thread)
        me = self._name(co, thread)
        if self._lock_script(keys=self._keys(key),
                             args=[*self._server_args(), me, "try", self.process]):
            self._took(key, co, thread)
            return True
        return False

    def done(self, key: str, co: int) -> None:
        if not self._shared(key):
            return self.local.done(key, co)
        held = self._held.get(key)
        if held is None or held[0] != co:
            raise ScriptError("do not have a lock on this mutex")
        del self._held[key]
        self._release(key, self._name(*held))

    def running(self, key: str) -> int | None:
        """The holding coroutine when it is one of this process's; None otherwise."""
        if not self._shared(key):
            return self.local.running(key)
        held = self._held.get(key)
        return held[0] if held else None

    def _took(self, key: str, co: int, thread: int) -> None:
        self._held[key] = (co, thread)
        self._keep_alive()

    def _release(self, key: str, owner: str) -> None:
        """Give up ``owner``'s lock; a waiter of ours that the server picks is woken now, or
        passed over (and the lock released again) when its thread has died."""
        for _ in range(1 + len(self._queued)):  # each turn removes one of our waiters
            new_owner = self._done_script(keys=self._keys(key),
                                          args=[*self._server_args(), owner])
            if new_owner is None:  # our lease lapsed and the lock moved on without us
                log.warning("lost the lease on mutex %r before releasing it", key)
                return
            waiter = self._queued.pop(new_owner.decode(), None)
            if waiter is None:
                return  # free now, or handed to another process
            if self.ops.is_pending(waiter[3]):
                self._took(key, waiter[1], waiter[2])
                self.ops.complete(waiter[3])
                return
            owner = new_owner.decode()

    # -- condition variables ------------------------------------------------------------------
    def wait(self, key: str, thread: int) -> int:
        if not self._shared(key):
            return self.local.wait(key, thread)
        self._listen()
        token = self.ops.begin(thread)
        me = self._name("cv", thread, token)
        self._sleeping[me] = (key, thread, token)
        pipe = self.client.pipeline()
        pipe.set(self._alive_prefix + self.process, 1, px=self.lease_ms)
        pipe.rpush(self._cv_key(key), me)
        pipe.pexpire(self._cv_key(key), 86_400_000)
        pipe.execute()
        self._keep_alive()
        return token

    def signal(self, key: str) -> None:
        if not self._shared(key):
            return self.local.signal(key)
        for _ in range(1 + len(self._sleeping)):  # each turn passes over one dead waiter of ours
            woken = self._wake_script(keys=[self._cv_key(key)],
                                      args=[self._channel_prefix, self._alive_prefix, "signal"])
            if not woken or self._woke(woken[0].decode()):
                return

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
        for key, (co, owner_thread) in list(self._held.items()):
            if owner_thread == thread:
                del self._held[key]
                self._release(key, self._name(co, owner_thread))
        for waiter, (key, _, waiter_thread, _) in list(self._queued.items()):
            if waiter_thread == thread:
                del self._queued[waiter]
                self.client.lrem(self._keys(key)[1], 0, waiter)
        for waiter, (key, sleeper_thread, _) in list(self._sleeping.items()):
            if sleeper_thread == thread:
                del self._sleeping[waiter]
                self.client.lrem(self._cv_key(key), 0, waiter)

    # -- messages from other processes --------------------------------------------------------
    def _message(self, text: str) -> None:
        kind, _, waiter = text.partition(" ")
        if kind in ("wake", "wakeall"):
            sleeping = self._sleeping.get(waiter)
            if sleeping is not None and not self._woke(waiter) and kind == "wake":
                self.signal(sleeping[0])  # its thread died: the signal goes to the next waiter
        elif kind == "lock":
            queued = self._queued.pop(waiter, None)
            if queued is None:
                return  # already taken in _release, or its thread ended: see release_thread
            key, co, thread, token = queued
            if self.ops.is_pending(token):
                self._took(key, co, thread)
                self.ops.complete(token)
            else:
                self._release(key, waiter)

    def _listen(self) -> None:
        """Subscribe to this process's channel (once), before the first wait is queued."""
        if self._listener is not None:
            return
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(self._channel)
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
        """Renew what we hold and our liveness; ask after locks we wait for, in case their
        holder died or a hand-over message was lost."""
        self._timer = None
        if not (self._held or self._queued or self._sleeping):
            return
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.set(self._alive_prefix + self.process, 1, px=self.lease_ms)
            for key, (co, thread) in self._held.items():
                self._renew_script(keys=self._keys(key)[:1],
                                   args=[self._name(co, thread), self.lease_ms], client=pipe)
            waiting = list(self._queued.items())
            for _, (key, _, _, _) in waiting:
                self._poke_script(keys=self._keys(key), args=self._server_args(), client=pipe)
            results = pipe.execute()
            for (waiter, _), owner in zip(waiting, results[1 + len(self._held):]):
                if owner.decode() == waiter:
                    self._message("lock " + waiter)
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
