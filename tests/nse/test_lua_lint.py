"""Our Lua compiles, and reaches no global it does not mean to: a misspelt name in Lua is a
nil at run time, not an error, so the compiler's listing is checked instead."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LUA_FILES = sorted([*(REPO / "worker" / "nse" / "lua").glob("*.lua"),
                    *(REPO / "nselib").rglob("*.lua")])
STANDARD = {"_G", "assert", "collectgarbage", "coroutine", "debug", "error", "getmetatable",
            "io", "ipairs", "load", "loadfile", "math", "next", "os", "package", "pairs",
            "pcall", "print", "rawequal", "rawget", "rawlen", "rawset", "require", "select",
            "setmetatable", "string", "table", "tonumber", "tostring", "type", "utf8",
            "xpcall", "nmap"}
GLOBAL_ACCESS = re.compile(r'[GS]ETTABUP\s.*;\s*_ENV\s+"(\w+)"')
SCRIPTS = sorted((REPO / "scripts").glob("*.nse"))
# What a script defines for the engine and what the engine gives it (nse-spec §1.2).
SCRIPT_GLOBALS = {"description", "author", "license", "categories", "dependencies",
                  "portrule", "hostrule", "prerule", "postrule", "action", "SCRIPT_NAME",
                  "SCRIPT_TYPE", "SCRIPT_PATH"}


def luac() -> str:
    path = shutil.which("luac5.4")
    if path is None:
        pytest.fail("luac5.4 is required (Debian package lua5.4; .ci/setup installs it)")
    return path


def globals_of(path: Path) -> set[str]:
    listing = subprocess.run([luac(), "-l", "-l", "-p", str(path)], capture_output=True,
                             text=True, check=True).stdout
    return set(GLOBAL_ACCESS.findall(listing))


@pytest.mark.parametrize("path", LUA_FILES, ids=lambda p: p.name)
def test_compiles_and_uses_only_standard_globals(path):
    names = globals_of(path)
    assert names <= STANDARD, f"{path.name} reaches undeclared globals: {names - STANDARD}"


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_bundled_scripts_use_only_standard_and_script_globals(path):
    names = globals_of(path)
    allowed = STANDARD | SCRIPT_GLOBALS
    assert names <= allowed, f"{path.name} reaches undeclared globals: {names - allowed}"
