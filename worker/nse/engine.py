"""The script engine: selected scripts become threads, threads run on the event loop, their
results land in the scan's results.

How this works (nse-spec §4):
- One Engine per worker process: one Lua state, the nmap module, the registry and the lock
  state, shared by every phase of every scan the process runs.
- A phase (pre-scan, one host group, post-scan) is a ``ScriptPass``. It walks the runlevels in
  order; in each, it creates threads lazily (host order; hostrule threads, then port x script)
  while fewer than the concurrency limit exist, resumes every runnable thread once, kills
  waiting threads past their deadline, and turns the loop for I/O. Runlevel N+1 starts when
  every thread of runlevel N has ended; worker threads left alone at the end are abandoned.
- ``resume`` is the only place a thread runs. Its outcome is one of: waiting on an operation,
  done (the action's result), killed (timeout), an uncaught ``try`` (silent), an error, or a
  stray plain yield; ``_finish`` is the one classifier.
"""
from __future__ import annotations

import heapq
import itertools
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from worker.nse.backends import RegistryBackend, SyncBackend
from worker.nse.ops import Operations
from worker.nse.profile import SEED
from worker.nse.runtime import LuaRuntime, text
from worker.nse.scripts import Script
from worker.nsock.names import Lookups
from worker.protocol import ScriptResult

ERROR_OUTPUT = "ERROR: Script execution failed (use -d to debug)"
DEFAULT_CONCURRENCY = 1000
_TURN_MS = 50  # the loop's wait when no thread is runnable (nse-spec §4.2 step 4)


@dataclass(frozen=True)
class EngineOptions:
    """What the engine needs from the scan's configuration."""

    debugging: int = 0
    verbosity: int = 0
    timing_level: int = 3
    script_timeout_ms: int = 0  # 0: none
    host_timeout_ms: int = 0
    min_parallelism: int = 0
    max_parallelism: int = 0
    trace: bool = False
    version_intensity: int = 7
    version_scan: bool = False  # -sV: nmap.port_is_excluded answers from the probe file
    address_family: int = 4
    privileged: bool = False
    script_args: dict = field(default_factory=dict, hash=False, compare=False)
    interface: str | None = None  # -e, for nmap.get_interface()


class Thread:
    """One (script, rule, host[, port]) coroutine, or a worker thread of one."""

    __slots__ = ("id", "script", "kind", "host", "port", "_base", "is_worker", "args",
                 "state", "token", "started_ms", "deadline_ms", "close_handlers", "early",
                 "pass_")

    def __init__(self, thread_id: int, script: Script, kind: str, host, port, base,
                 started_ms: float, pass_):
        self.id = thread_id
        self.script = script
        self.kind = kind
        self.host = host  # HostContext or None
        self.port = port  # the port's PortResult, or None
        self._base = base  # None for a base thread (no self-reference: no cycle to collect)
        self.is_worker = base is not None
        self.args: tuple = ()
        self.state = "runnable"  # runnable | waiting | done
        self.token: int | None = None  # the operation a waiting thread waits for
        self.started_ms = started_ms
        self.deadline_ms: float | None = None
        self.close_handlers: list = []
        self.early: tuple | None = None  # (token, results) of an operation done before the
        # thread yielded for it
        self.pass_ = pass_

    @property
    def base(self) -> "Thread":
        """A worker's base thread; a base thread is its own."""
        return self._base or self

    def add_close_handler(self, handler) -> None:
        """``handler()`` runs once when the thread ends, however it ends."""
        self.close_handlers.append(handler)

    def target_text(self) -> str:
        """Nmap's "against" text: ' against name (ip:port)', ' against ip:port', ' against ip'."""
        if self.host is None:
            return ""
        where = self.host.address
        if self.port is not None:
            where = f"{where}:{self.port.portid}"
        name = self.host.result.targetname
        return f" against {name} ({where})" if name else f" against {where}"

    def label(self, debugging: int) -> str:
        if debugging >= 2:
            return f"{self.script.id} {'W' if self.is_worker else 'M'}:{id(self):x}"
        return self.script.id


class Engine:
    """One per worker process. ``datapath`` finds data files (fetchfile); ``nselib_dirs`` are
    searched for ``require``d modules; ``services`` names ports; ``registry`` and ``sync`` are
    the shared-state backends (memory by default, Redis in a cluster): ``sync`` is made from
    the engine's operations, ``sync(ops) -> SyncBackend``, since its waits complete them."""

    def __init__(self, loop, log=None, datapath=None, nselib_dirs=(), services=None,
                 registry: RegistryBackend | None = None,
                 sync: Callable[[Operations], SyncBackend] | None = None):
        from worker.nse.api.registry import MemoryRegistry
        from worker.nse.api.sync import MemorySync

        self.loop = loop
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self.datapath = datapath
        self.nselib_dirs = tuple(Path(d) for d in nselib_dirs)
        self.services = services
        self.options = EngineOptions()
        self.default_profile = SEED
        self.current: Thread | None = None
        self.threads: dict[int, Thread] = {}
        self.ops = Operations(self._wake)
        self.registry_backend = registry or MemoryRegistry()
        self.sync_backend = (sync or MemorySync)(self.ops)
        self.new_targets: list[str] = []  # add_targets: the coordinator takes them
        self.new_targets_total = 0
        self._ids = itertools.count(1)
        self._runtime: LuaRuntime | None = None
        self.lookups = Lookups(loop)
        self.api: dict = {}
        self.hosts = None  # the current pass's HostIndex (api/targets.py)

    # -- the Lua state ----------------------------------------------------------------------
    @property
    def runtime(self) -> LuaRuntime:
        if self._runtime is None:
            self._runtime = self._start_runtime()
        return self._runtime

    def _start_runtime(self) -> LuaRuntime:
        from worker.nse import api

        runtime = LuaRuntime({"now_ms": self.loop.now_ms,
                              "action_started": self._action_started,
                              "spawn_worker": self._spawn_worker})
        self._runtime = runtime
        self.api = api.build(self)
        runtime.install_nmap(self.api, self.find_module)
        return runtime

    def configure(self, options: EngineOptions) -> None:
        """A scan's settings; the registry's ``args`` become its script arguments."""
        self.options = options
        registry = self.registry_backend.lua_table(self.runtime)
        registry[b"args"] = self.runtime.lua_value(options.script_args)

    def find_module(self, name: str) -> Path | None:
        relative = name.replace(".", "/") + ".lua"
        for directory in self.nselib_dirs:
            candidate = directory / relative
            if candidate.is_file():
                return candidate
        return None

    def service_name(self, protocol: str, port: int) -> str | None:
        return self.services.name(protocol, port) if self.services is not None else None


    def debug(self, level: int, line: str) -> None:
        if self.options.debugging >= level:
            self.log(f"NSE: {line}")

    # -- running a phase --------------------------------------------------------------------
    def run_pass(self, phase: str, scripts: list[Script], hosts=None) -> list[ScriptResult]:
        """Run ``phase`` ("prerule", "scan" or "postrule") to the end. Results of host and
        port scripts go into the host results; pre/post results are returned."""
        self.runtime  # noqa: B018 -- start Lua before the first thread
        previous, self.hosts = self.hosts, hosts
        try:
            return ScriptPass(self, phase, scripts, hosts).run()
        finally:
            self.hosts = previous

    def new_thread(self, script: Script, kind: str, host, port, base, pass_) -> Thread:
        thread = Thread(next(self._ids), script, kind, host, port, base,
                        base.started_ms if base else self.loop.now_ms(), pass_)
        self.threads[thread.id] = thread
        return thread

    def _wake(self, thread_id: int, token: int, results: tuple) -> None:
        thread = self.threads.get(thread_id)
        if thread is None:
            return
        if thread.state == "waiting" and thread.token == token:
            thread.args, thread.token = results, None
            thread.state = "runnable"
            thread.pass_.runnable.append(thread)
        elif thread is self.current:  # completed inside the call that started it
            thread.early = (token, results)

    def _action_started(self) -> None:
        thread = self.current
        if thread is not None:
            self.debug(1, f"Starting {thread.label(self.options.debugging)}"
                          f"{thread.target_text()}.")

    def _spawn_worker(self):
        """stdnse.new_thread, Python half: (id, deadline) for the worker the kernel creates."""
        parent = self.current
        if parent is None:
            return None
        worker = self.new_thread(parent.script, parent.kind, parent.host, parent.port,
                                 parent.base, parent.pass_)
        worker.deadline_ms = parent.base.deadline_ms  # workers inherit the base's clock
        parent.pass_.adopt_worker(worker)
        return worker.id, worker.deadline_ms


class ScriptPass:
    def __init__(self, engine: Engine, phase: str, scripts: list[Script], hosts):
        self.engine = engine
        self.phase = phase
        self.scripts = scripts
        self.hosts = hosts
        self.runnable: deque[Thread] = deque()
        self.live: dict[int, Thread] = {}
        self.base_count = 0
        self.results: list[tuple[int, ScriptResult]] = []
        self.deadlines: list[tuple[float, int]] = []  # heap of (deadline, thread id)
        options = engine.options
        self.limit = max(DEFAULT_CONCURRENCY, options.min_parallelism)

    def run(self) -> list[ScriptResult]:
        levels = sorted({s.runlevel for s in self.scripts})
        try:
            for number, level in enumerate(levels, 1):
                if self.engine.options.verbosity >= 2 and len(levels) > 1:
                    self.engine.log(f"NSE: Starting runlevel {number} (of {len(levels)}) "
                                    "scan.")
                self._run_level([s for s in self.scripts if s.runlevel == level])
        except BaseException:  # Ctrl-C, a task's time limit: end every thread, locks and all
            self._abandon_orphans()
            raise
        return [result for _, result in sorted(self.results, key=lambda item: item[0])]

    # -- thread creation --------------------------------------------------------------------
    def _specs(self, scripts: list[Script]):
        """(script, kind, host, port) in Nmap's creation order (nse-spec §4.2)."""
        if self.phase in ("prerule", "postrule"):
            for script in scripts:
                if self.phase in script.rules:
                    yield script, self.phase, None, None
            return
        for host in self.hosts:
            if host.timed_out():
                continue
            for script in scripts:
                if "hostrule" in script.rules:
                    yield script, "hostrule", host, None
            port_scripts = [s for s in scripts if "portrule" in s.rules]
            if not port_scripts:
                continue
            for port in host.script_ports():  # the snapshot is taken now, per runlevel
                for script in port_scripts:
                    yield script, "portrule", host, port

    def _create(self, script: Script, kind: str, host, port) -> None:
        engine = self.engine
        thread = engine.new_thread(script, kind, host, port, None, self)
        deadlines = []
        if engine.options.script_timeout_ms > 0:
            deadlines.append(thread.started_ms + engine.options.script_timeout_ms)
        if host is not None and host.deadline_ms is not None:
            deadlines.append(host.deadline_ms)
        thread.deadline_ms = min(deadlines) if deadlines else None
        runtime = engine.runtime
        args = ()
        if host is not None:
            args = (runtime.kernel.copy_host(host.lua_table(script.profile)),)
            if port is not None:
                args += (host.port_table(port, script.profile),)
        runtime.kernel.script_thread(thread.id, script.generator,
                                     script.path.encode("utf-8", "surrogateescape"),
                                     script.id.encode("utf-8", "surrogateescape"),
                                     kind.encode(), script.forced,
                                     script.profile.name == "nmap7", *args)
        if thread.deadline_ms is not None:
            runtime.kernel.set_deadline(thread.id, thread.deadline_ms)
            heapq.heappush(self.deadlines, (thread.deadline_ms, thread.id))
        self.live[thread.id] = thread
        self.base_count += 1
        self.runnable.append(thread)
        if host is not None:
            host.threads += 1

    def adopt_worker(self, worker: Thread) -> None:
        self.live[worker.id] = worker
        if worker.deadline_ms is not None:
            heapq.heappush(self.deadlines, (worker.deadline_ms, worker.id))
        self.runnable.append(worker)  # starts on the next turn of the loop

    # -- the loop ---------------------------------------------------------------------------
    def _run_level(self, scripts: list[Script]) -> None:
        specs = self._specs(scripts)
        exhausted = False
        loop = self.engine.loop
        while True:
            while not exhausted and self.base_count < self.limit:
                spec = next(specs, None)
                if spec is None:
                    exhausted = True
                else:
                    self._create(*spec)
            if exhausted and self.base_count == 0:
                self._abandon_orphans()
                return
            self._expire(loop.now_ms())
            for _ in range(len(self.runnable)):
                thread = self.runnable.popleft()
                if thread.state == "runnable":
                    self._resume(thread)
            if self.runnable:
                loop.run_once(0)
            elif self.base_count and (exhausted or self.base_count >= self.limit):
                loop.run_once(_TURN_MS)  # else threads can start, or none are left to wait for

    def _resume(self, thread: Thread) -> None:
        engine = self.engine
        args, thread.args = thread.args, ()
        engine.current = thread
        try:
            outcome = engine.runtime.kernel.resume(thread.id, *args)
        finally:
            engine.current = None
        if not isinstance(outcome, tuple):
            outcome = (outcome,)
        status = outcome[0]
        if status == b"wait":
            token = outcome[1]
            early, thread.early = thread.early, None
            if early is not None and early[0] == token:
                thread.args = early[1]
                self.runnable.append(thread)
            else:
                thread.state, thread.token = "waiting", token
            return
        self._finish(thread, status, outcome[1:])

    def _expire(self, now_ms: float) -> None:
        """Kill the waiting threads past their deadline; a runnable one is killed once it
        waits again (its CPU deadline is the kernel's count hook)."""
        deadlines, later = self.deadlines, []
        while deadlines and deadlines[0][0] < now_ms:
            entry = heapq.heappop(deadlines)
            thread = self.live.get(entry[1])
            if thread is None:
                continue
            if thread.state == "waiting":
                self.engine.runtime.kernel.kill(thread.id)
                self._finish(thread, b"killed", ())
            else:
                later.append(entry)
        for entry in later:
            heapq.heappush(deadlines, entry)

    def _finish(self, thread: Thread, status: bytes, values: tuple) -> None:
        """Every way a thread ends, classified once (nse-spec §4.5)."""
        engine = self.engine
        debugging = engine.options.debugging
        label = thread.label(debugging)
        against = thread.target_text()
        result = None
        if status == b"done":
            kind = values[0] if values else b"none"
            if not thread.is_worker and kind in (b"text", b"structured"):
                result = ScriptResult(thread.script.id, text(values[1]),
                                      _structure(engine.runtime, values[2])
                                      if kind == b"structured" else None)
            if kind != b"rule-false":
                engine.debug(1, f"Finished {label}{against}.")
        elif status == b"try":
            reason = text(values[0]) if values and values[0] is not None else "nil"
            shown = 1 if thread.script.profile.try_reason_at_verbosity else None
            if debugging >= 1 or (shown and engine.options.verbosity >= shown):
                engine.log(f"NSE: Finished {label}{against}. Reason: {reason}")
        elif status == b"killed":
            engine.debug(1, f"{label}{against} timed out")
        elif status == b"error":
            if debugging >= 1:
                engine.log(f"NSE: {label}{against} threw an error!\n{text(values[1])}")
            elif not thread.is_worker:
                result = ScriptResult(thread.script.id, ERROR_OUTPUT)
        elif status == b"stray":
            engine.debug(1, f"{label} yielded unexpectedly and cannot be resumed.")
        if result is not None:
            self._record(thread, result)
        self._end(thread)

    def _record(self, thread: Thread, result: ScriptResult) -> None:
        if not result.output and result.structured is None:
            self.engine.log(f"Bug in {thread.script.id}: no string output.")
        if thread.kind == "portrule":
            thread.port.scripts.append(result)
        elif thread.kind == "hostrule":
            thread.host.result.scripts.append(result)
        else:
            self.results.append((thread.id, result))

    def _end(self, thread: Thread) -> None:
        thread.state = "done"
        engine = self.engine
        engine.ops.cancel_thread(thread.id)
        for handler in thread.close_handlers:
            handler()
        thread.close_handlers = []
        engine.threads.pop(thread.id, None)
        if self.live.pop(thread.id, None) is not None and not thread.is_worker:
            self.base_count -= 1
            if thread.host is not None:
                thread.host.threads -= 1

    def _abandon_orphans(self) -> None:
        for thread in list(self.live.values()):
            self.engine.runtime.kernel.kill(thread.id)
            self._end(thread)


def _structure(runtime: LuaRuntime, tree):
    """Lua result structure -> ScriptResult.structured: a string, or [[key|None, value], ...]."""
    if isinstance(tree, bytes):
        return text(tree)
    items = []
    for _, pair in sorted(tree.items()):
        key, value = pair[1], pair[2]
        items.append([None if key is False else text(key),
                      text(value) if isinstance(value, bytes) else _structure(runtime, value)])
    return items
