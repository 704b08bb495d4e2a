"""Running real NSE scripts through the engine in tests: real Lua, real event loop, real
sockets; only the host list is built by hand instead of by a port scan."""
from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from worker.nse.engine import Engine, EngineOptions
from worker.nse.hosts import HostContext, HostIndex
from worker.nse.profile import SEED
from worker.nse.scripts import load_script
from worker.nsock.loop import EventLoop
from worker.protocol import HostResult, PortResult, Service

REPO = Path(__file__).resolve().parent.parent
NSELIB = REPO / "nselib"


@dataclass
class Run:
    engine: Engine
    log: list[str]
    results: list = field(default_factory=list)  # pre/post-scan results of the last pass

    def lines(self) -> str:
        return "\n".join(self.log)


def make_engine(**options) -> tuple[Engine, list[str]]:
    log: list[str] = []
    engine = Engine(EventLoop(), log=log.append, nselib_dirs=[NSELIB])
    engine.configure(EngineOptions(**options))
    return engine, log


def write_script(directory: Path, name: str, source: str) -> Path:
    path = directory / f"{name}.nse"
    path.write_text(textwrap.dedent(source))
    return path


def load(engine: Engine, path: Path, profile=SEED, **attributes):
    script = load_script(engine.runtime, str(path), profile, engine.log)
    for key, value in attributes.items():
        setattr(script, key, value)
    return script


def host(address="127.0.0.1", ports=(), **fields) -> HostResult:
    """A scanned host; ``ports`` are (number, state) or (number, state, service name)."""
    results = []
    for spec in ports:
        number, state, *name = spec
        results.append(PortResult("tcp", number, state,
                                  "syn-ack" if state == "open" else "conn-refused", 0,
                                  Service(name[0]) if name else None))
    return HostResult(address, status="up", reason="syn-ack", ports=results, **fields)


def hosts_index(engine: Engine, results: list[HostResult]) -> HostIndex:
    return HostIndex([HostContext(i, r, engine.runtime) for i, r in enumerate(results, 1)])


def run(tmp_path: Path, sources: dict[str, str], hosts=(), phase="scan", engine=None,
        profile=SEED, attributes=None, **options) -> Run:
    """Write and load ``sources`` (name -> script text), run one pass over ``hosts``."""
    if engine is None:
        engine, log = make_engine(**options)
    else:
        log = []
        engine.log = log.append
    scripts = [load(engine, write_script(tmp_path, name, text), profile,
                    **(attributes or {}).get(name, {}))
               for name, text in sources.items()]
    index = hosts_index(engine, list(hosts)) if phase == "scan" else None
    results = engine.run_pass(phase, scripts, index)
    return Run(engine, log, results)


def port_output(result: HostResult, number: int) -> dict[str, str]:
    """{script id: output} of one port."""
    for port in result.ports:
        if port.portid == number:
            return {s.id: s.output for s in port.scripts}
    raise KeyError(number)


# The output helpers of the library tests' Lua checks: p(...) records one " | "-joined line,
# done() returns the lines with bytes outside printable ASCII as \xHH.
LUA_OUTPUT = r'''
local out = {}
local function p(...)
  local t = table.pack(...)
  for i = 1, t.n do t[i] = tostring(t[i]) end
  out[#out + 1] = table.concat(t, " | ")
end
local function done()
  return (table.concat(out, "\n"):gsub("[^\n\32-\126]",
    function(c) return ("\\x%02X"):format(c:byte()) end))
end
'''


def _lua_check_source(body: str) -> str:
    return ('description = "test"\ncategories = {"safe"}\n'
            'prerule = function() return true end\n'
            f'action = function()\n{textwrap.dedent(body)}\nend\n')


def run_lua(tmp_path: Path, body: str, profile=SEED, name="lua-check", **options) -> str:
    """Run ``body`` (Lua statements that end in ``return <string>``) as the action of a prerule
    script in a real engine, so it may require nselib modules and use sockets, sleeps and
    threads. Returns the output; a Lua error fails the test with its traceback."""
    source = _lua_check_source(body)
    options.setdefault("debugging", 1)  # an error's traceback goes to the log
    done = run(tmp_path, {name: source}, phase="prerule", profile=profile, **options)
    if not done.results:
        raise AssertionError(f"the Lua check returned nothing:\n{done.lines()}")
    (result,) = done.results
    return result.output


def run_lua_nmap(tmp_path: Path, body: str, name="lua-check", timeout=60) -> str:
    """The same check under the installed ``nmap`` with Nmap's own nselib: how Nmap behaves,
    observed (never read), to compare ours with. A Lua error fails with nmap's debug log.
    The text is nmap's XML output attribute, where bytes outside printable ASCII arrive as
    ``\\xHH``: a body that returns such bytes should hex-escape them itself."""
    import shutil
    import subprocess
    import xml.etree.ElementTree as ET

    nmap = shutil.which("nmap")
    if nmap is None:
        raise AssertionError("nmap is required (Debian package nmap; .ci/setup installs it)")
    script = tmp_path / f"{name}.nse"
    script.write_text(_lua_check_source(body))
    xml_path = tmp_path / f"{name}.xml"
    done = subprocess.run([nmap, "--unprivileged", "-d", "-n", "--script", str(script),
                           "-oX", str(xml_path)], capture_output=True, text=True,
                          timeout=timeout, cwd=tmp_path)  # not beside our nselib
    for element in ET.parse(xml_path).getroot().iter("script"):
        if element.get("id") == name:
            return element.get("output")
    raise AssertionError(f"nmap gave no output for the check:\n{done.stdout}\n{done.stderr}")
