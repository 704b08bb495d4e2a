"""Script files: compile, run once for metadata, validate (nse-spec §1.1-§1.2).

A loaded script keeps its closure generator: every thread runs the file again in a fresh
environment built from it, so file-level locals are per thread, as in Nmap.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from worker.errors import UserError
from worker.nse.profile import Profile
from worker.nse.runtime import LuaRuntime, text

RULES = ("prerule", "hostrule", "portrule", "postrule")


class ScriptLoadError(UserError):
    """A script that cannot be loaded ends the scan before it starts, as in Nmap."""


@dataclass(eq=False)
class Script:
    id: str
    path: str
    profile: Profile
    rules: frozenset[str]
    categories: tuple[str, ...] = ()
    dependencies: tuple[str, ...] = ()
    description: str = ""
    author: str = ""
    license: str = ""
    generator: object = field(default=None, repr=False)  # Lua: gen(env) -> main function
    forced: bool = False  # "+name": run the action wherever the script has a rule
    by_name: bool = False  # selected by name or file path (nse-spec §2.7)
    runlevel: int = 1


def script_id(path: str) -> str:
    """The basename without .nse; without .nse, without its last extension (nse-spec §1.2)."""
    name = Path(path).name
    if name.endswith(".nse"):
        return name[:-4]
    return name.rsplit(".", 1)[0] if "." in name else name


def load_script(runtime: LuaRuntime, path: str, profile: Profile, warn,
                verbose: bool = False) -> Script | None:
    """Load one script file; None when it is skipped quietly (stdnse.silent_require)."""
    if not path.endswith(".nse"):
        warn(f"Warning: Loading '{path}' -- the recommended file extension is '.nse'.")
    try:
        source = Path(path).read_bytes()
    except OSError as exc:
        raise ScriptLoadError(f"'{path}' could not be read: {exc.strerror or exc}") from None
    name = script_id(path)
    kernel = runtime.kernel
    generator = kernel.compile(source, path.encode("utf-8", "surrogateescape"))
    if not runtime.is_function(generator):
        _, message = _as_tuple(generator)
        warn(f"Failed to load {path}:\n{text(message)}")
        raise ScriptLoadError("could not load script")
    outcome = _as_tuple(kernel.load_script(generator, path.encode("utf-8", "surrogateescape"),
                                           name.encode("utf-8", "surrogateescape"),
                                           profile.name == "nmap7"))
    if outcome[0] == b"silent":
        if verbose:
            warn(f"Failed to load '{path}'.")
        return None
    if outcome[0] == b"error":
        warn(f"Failed to load {path}:\n{text(outcome[2]) or text(outcome[1])}")
        raise ScriptLoadError("could not load script")
    meta = kernel.metadata(outcome[1])
    return Script(id=name, path=path, profile=profile, generator=generator,
                  **_validated(path, runtime, meta))


def _validated(path: str, runtime: LuaRuntime, meta) -> dict:
    """nse-spec §1.1: the exact messages Nmap gives for a malformed script."""
    types = {text(k): text(v) for k, v in meta[b"types"].items()}

    def expect(field_name: str, expected: str) -> None:
        found = types.get(field_name)
        if found is not None and found != expected:
            raise ScriptLoadError(f"{path} field '{field_name}' is of improper type "
                                  f"'{found}', expected type '{expected}'")

    if "action" not in types:
        raise ScriptLoadError(f"{path} is missing required field: 'action'")
    expect("action", "function")
    expect("categories", "table")
    expect("dependencies", "table")
    for rule in RULES:
        if rule in types and types[rule] != "function":
            raise ScriptLoadError(f"{rule} must be a function!")
    rules = frozenset(rule for rule in RULES if rule in types)
    if not rules:
        raise ScriptLoadError(f"{path} is missing required function: 'rule'")
    lists = {}
    for field_name in ("categories", "dependencies"):
        values = meta[field_name.encode()]
        if values is False:
            raise ScriptLoadError(f"{path} has non-string entries in the '{field_name}' array")
        lists[field_name] = tuple(text(v) for v in values.values())
    return {"rules": rules, "categories": tuple(c.lower() for c in lists["categories"]),
            "dependencies": lists["dependencies"],
            **{name: text(meta[name.encode()] or b"") for name in
               ("description", "author", "license")}}


def _as_tuple(value) -> tuple:
    return value if isinstance(value, tuple) else (value,)
