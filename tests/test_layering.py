"""The architecture's rules, checked on the source: the worker does not depend on the
coordinator, and the sans-IO cores import no I/O library (design.md practice 1)."""
import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
IO_LIBRARIES = {"socket", "asyncio", "redis", "celery", "scapy", "selectors", "ssl"}
SANS_IO = ["coordinator/targets.py", "coordinator/ports.py", "coordinator/grouping.py",
           "coordinator/timing.py", "coordinator/plan.py", "coordinator/output",
           "worker/protocol.py", "worker/scan/ultra.py", "worker/nse/engine.py",
           "worker/nse/scripts.py", "worker/nse/ops.py", "worker/nse/profile.py",
           "worker/nse/selection.py", "worker/nse/scriptdb.py", "worker/nse/scriptargs.py"]


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def python_files(relative: str):
    path = REPO / relative
    return sorted(path.rglob("*.py")) if path.is_dir() else [path]


def test_worker_never_imports_the_coordinator():
    offenders = {str(path.relative_to(REPO)): sorted(m for m in imported_modules(path)
                                                     if m.split(".")[0] == "coordinator")
                 for path in python_files("worker")}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_sans_io_cores_import_no_io_library():
    found = {}
    for relative in SANS_IO:
        for path in python_files(relative):
            if not path.exists():
                continue
            bad = sorted(m for m in imported_modules(path) if m.split(".")[0] in IO_LIBRARIES)
            if bad:
                found[str(path.relative_to(REPO))] = bad
    assert found == {}
