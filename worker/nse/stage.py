"""The script scan inside a worker process: which scripts (selected and loaded here, from the
directories this worker is configured with), and the three phases, pre-scan, each host
group, post-scan, on one engine per configuration.

In the embedded default the coordinator calls ``prerule``, ``run_group`` (through
worker.group) and ``postrule`` of the same process, so the registry and Lua state carry over
from phase to phase exactly as in Nmap.
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from worker.datadir import DataPath
from worker.errors import UserError
from worker.nse import scriptargs, scriptdb, selection
from worker.nse.engine import Engine, EngineOptions
from worker.nse.hosts import HostContext, HostIndex
from worker.nse.profile import NMAP7, SEED
from worker.nsock.raw import considered_privileged
from worker.nse.scripts import Script, load_script
from worker.protocol import HostResult, ScanOptions, ScriptResult, VersionOptions
from worker.services import service_table_for


def _bundled(name: str) -> Path:
    """The project's own scripts/ or nselib/: in this checkout, or as installed data."""
    checkout = Path(__file__).resolve().parents[2] / name
    if checkout.is_dir():
        return checkout
    return Path(sys.prefix) / "share" / "nsecluster" / name


BUNDLED_SCRIPTS = _bundled("scripts")
# The raw-packet API (nse-spec §6.2): used directly by a script, it needs privilege.
_RAW_API = re.compile(r"\b(pcap_open|new_dnet|ethernet_open|ip_open)\b")
BUNDLED_NSELIB = _bundled("nselib")


class ScriptSearch:
    """Where this worker finds scripts, script.db and nselib modules (nse-spec §1.3, §2.6):
    --datadir, $NMAPDIR, ~/.nmap (Nmap data directories: their scripts run under the Nmap 7
    profile), then the bundled scripts/ and nselib/."""

    def __init__(self, datadir: str | None, environ, confined: bool = False):
        self.confined = confined  # a cluster worker: scripts only from its own directories
        home = environ.get("HOME")
        nmap_dirs = [Path(d) for d in (datadir, environ.get("NMAPDIR"),
                                       os.path.join(home, ".nmap") if home else None) if d]
        self.nmap_dirs = tuple(d for d in nmap_dirs if d.is_dir())
        self.datapath = DataPath.from_environment(datadir, environ, home)

    def script_dirs(self) -> list[Path]:
        return [d / "scripts" for d in self.nmap_dirs] + [BUNDLED_SCRIPTS]

    def nselib_dirs(self) -> list[Path]:
        return [d / "nselib" for d in self.nmap_dirs if (d / "nselib").is_dir()] + \
            [BUNDLED_NSELIB]

    def script_db(self) -> tuple[list, Path | None]:
        """The first scripts/script.db on the search path, as Nmap takes it."""
        for directory in self.script_dirs():
            db = directory / "script.db"
            if db.is_file():
                try:
                    text = db.read_text(encoding="utf-8", errors="replace")
                except OSError as exc:
                    raise UserError(f"Could not read {db}: {exc.strerror or exc}") from None
                return scriptdb.parse_script_db(text, str(db)), directory
        return [], None

    def find_path(self, item: str) -> Path | None:
        """An absolute path, else scripts/<item> in the data directories, else <item> from
        the current directory (nse-spec §2.6). A confined search (a cluster worker) looks
        only in the script directories it was configured with."""
        if self.confined:
            if os.path.isabs(item) or ".." in Path(item).parts:
                return None
            for directory in self.script_dirs():
                candidate = directory / item
                if candidate.exists():
                    return candidate
            return None
        if os.path.isabs(item):
            return Path(item) if os.path.exists(item) else None
        for directory in self.script_dirs():
            candidate = directory / item
            if candidate.exists():
                return candidate
        return Path(item) if os.path.exists(item) else None

    def profile_for(self, path: Path):
        resolved = path.resolve()
        for directory in self.nmap_dirs:
            if resolved.is_relative_to(directory.resolve()):
                return NMAP7
        return SEED


def select(options: ScanOptions, search: ScriptSearch):
    """The selected scripts (paths, flags) for ``options`` — raises UserError with Nmap's
    messages for names that match nothing, duplicates and so on."""
    config = options.scripts
    items = selection.default_items(config.script_scan, config.version_scan,
                                    list(config.rules))
    entries, db_dir = search.script_db()
    return selection.select_scripts(items, entries, search.find_path, db_dir,
                                    allow_unmatched=("version",) if config.version_scan else ())


def parse_args(options: ScanOptions) -> dict:
    return scriptargs.parse_script_args(options.scripts.args).as_lua_ready()


def load_selected(engine: Engine, chosen, search: ScriptSearch, verbosity: int) -> list[Script]:
    scripts: list[Script] = []
    for item in chosen:
        script = load_script(engine.runtime, str(item.path), search.profile_for(item.path),
                             engine.log, verbose=verbosity >= 1)
        if script is None:
            continue
        script.forced, script.by_name = item.forced, item.by_name
        scripts.append(script)
    levels = selection.runlevels([s.id for s in scripts],
                                 {s.id: list(s.dependencies) for s in scripts})
    for script in scripts:
        script.runlevel = levels[script.id]
    return scripts


class ScriptStage:
    """One scan's script scan in this process."""

    def __init__(self, options: ScanOptions, engine: Engine, search: ScriptSearch):
        self.options = options
        self.engine = engine
        self.search = search
        config = options.scripts
        timing = options.timing
        script_timeout = config.timeout_ms or (600_000 if timing.level == 5 else 0)
        self.engine_options = EngineOptions(
            debugging=options.debugging, verbosity=options.verbosity,
            timing_level=timing.level, script_timeout_ms=script_timeout,
            host_timeout_ms=timing.host_timeout_ms, min_parallelism=timing.min_parallelism,
            max_parallelism=timing.max_parallelism, trace=config.trace,
            privileged=considered_privileged(options.privilege),
            version_intensity=(options.version or VersionOptions()).intensity,
            version_scan=options.version is not None,
            script_args=parse_args(options),
            interface=options.interface)
        engine.configure(self.engine_options)
        chosen = select(options, search)
        for warning in chosen.warnings:  # e.g. a script.db entry whose file is missing
            engine.log(warning)
        self.scripts = load_selected(engine, chosen, search, options.verbosity)
        if options.verbosity or options.debugging:
            engine.log(f"NSE: Loaded {len(self.scripts)} scripts for scanning.")

    def raw_scripts(self) -> list[str]:
        """The selected scripts that open pcap captures or dnet handles: in a cluster their
        host groups go to privileged workers."""
        found = []
        for script in self.scripts:
            try:
                source = Path(script.path).read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            if _RAW_API.search(source):
                found.append(script.id)
        return sorted(found)

    def _own_settings(self) -> None:
        """A worker process's engine serves scans in turn: this scan's settings first."""
        if self.engine.options is not self.engine_options:
            self.engine.configure(self.engine_options)

    def prerule(self) -> list[ScriptResult]:
        if not self.options.scripts.script_scan:
            return []
        return self._phase("prerule", "Script Pre-scanning.")

    def postrule(self) -> list[ScriptResult]:
        if not self.options.scripts.script_scan:
            return []
        return self._phase("postrule", "Script Post-scanning.")

    def scan(self, hosts: list[HostResult]) -> None:
        """hostrule and portrule threads over the group's hosts that are up."""
        up = [h for h in hosts if h.status == "up" and not h.timed_out]
        wanted = [s for s in self.scripts if s.rules & {"hostrule", "portrule"}]
        if not up or not wanted:
            return
        if self.options.verbosity or self.options.debugging:
            self.engine.log(f"NSE: Script scanning {up[0].address}." if len(up) == 1 else
                            f"NSE: Script scanning {len(up)} hosts.")
        deadline = None
        if self.options.timing.host_timeout_ms:
            deadline = self.engine.loop.now_ms() + self.options.timing.host_timeout_ms
        index = HostIndex([HostContext(number, result, self.engine.runtime,
                                       deadline_ms=deadline)
                           for number, result in enumerate(up, 1)])
        self._own_settings()
        self.engine.run_pass("scan", wanted, index)

    def _phase(self, phase: str, message: str) -> list[ScriptResult]:
        wanted = [s for s in self.scripts if phase in s.rules]
        if not wanted:
            return []
        if self.options.verbosity or self.options.debugging:
            self.engine.log(f"NSE: {message}")
        self._own_settings()
        return self.engine.run_pass(phase, wanted)

    def take_new_targets(self) -> list[str]:
        targets, self.engine.new_targets = self.engine.new_targets, []
        return targets


_engines: dict[tuple, Engine] = {}
_stages: dict[str, ScriptStage] = {}  # by scan, oldest first
_MAX_STAGES = 8  # a cluster worker serves many scans; only the post-scan phase ends one
_shared_state: tuple = (None, None)  # (registry backend, sync factory) for new engines
_worker_datadir: tuple[bool, str | None] = (False, None)  # (confined, the worker's --datadir)


def use_shared_state(registry, sync_factory) -> None:
    """Engines made from now on share the registry and locks through these backends (the
    cluster's Redis ones) instead of this process's memory."""
    global _shared_state
    _shared_state = (registry, sync_factory)


def worker_datadir() -> str | None:
    return _worker_datadir[1]


def confine_to_worker_dirs(datadir: str | None) -> None:
    """A cluster worker: scripts, nselib and data come from ``datadir`` (the worker's own
    --datadir) and the bundled directories, never from paths a job names."""
    global _worker_datadir
    _worker_datadir = (True, datadir)


def stage_for(scan_id: str, options: ScanOptions, loop, log=None,
              environ=None) -> ScriptStage | None:
    """This process's stage for scan ``scan_id`` (made on first use), or None without a
    script scan."""
    if options.scripts is None:
        return None
    stage = _stages.get(scan_id)
    if stage is None:
        confined, worker_datadir = _worker_datadir
        search = ScriptSearch(worker_datadir if confined else options.datadir,
                              os.environ if environ is None else environ, confined=confined)
        key = (id(loop), tuple(search.nselib_dirs()))
        engine = _engines.get(key)
        if engine is None:
            registry, sync = _shared_state
            engine = _engines[key] = Engine(loop, log=log, datapath=search.datapath,
                                            nselib_dirs=search.nselib_dirs(),
                                            services=service_table_for(options.datadir),
                                            registry=registry, sync=sync)
        elif log is not None:
            engine.log = log
        while len(_stages) >= _MAX_STAGES:
            del _stages[next(iter(_stages))]
        stage = _stages[scan_id] = ScriptStage(options, engine, search)
    return stage


def script_activity(scan_id: str) -> tuple[int, list[str], int]:
    """(script threads running, the scripts they run, the hosts they run against) for scan
    ``scan_id`` in this process."""
    stage = _stages.get(scan_id)
    if stage is None:
        return 0, [], 0
    threads = list(stage.engine.threads.values())
    hosts = {thread.host.address for thread in threads if thread.host is not None}
    return len(threads), sorted({thread.script.id for thread in threads}), len(hosts)


def finish(scan_id: str) -> None:
    _stages.pop(scan_id, None)


def run_prerule(scan_id: str, options: ScanOptions, loop, log=None):
    """The pre-scan phase: (results, targets its scripts added, scripts needing raw access)."""
    stage = stage_for(scan_id, options, loop, log)
    if stage is None:
        return [], [], []
    return stage.prerule(), stage.take_new_targets(), stage.raw_scripts()


def run_postrule(scan_id: str, options: ScanOptions, loop, log=None) -> list[ScriptResult]:
    """The post-scan phase; the scan's stage is released afterwards."""
    stage = stage_for(scan_id, options, loop, log)
    try:
        return stage.postrule() if stage is not None else []
    finally:
        finish(scan_id)
