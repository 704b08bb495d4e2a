"""Which scripts run: ``--script`` items, the rule grammar, paths and runlevels (nse-spec §2,
§4.3), as Nmap 7.93 does it.

Nmap details this module reproduces beyond the spec (observed with nmap 7.93):

- Items are keyed by their text after the ``+`` is removed: a text given twice is one item, at
  the place of its first occurrence, with the *last* occurrence's force flag
  (``banner,+banner`` forces; ``+banner,banner`` does not). Empty items are dropped.
- A script matched by several items takes ``forced`` and ``selected_by`` from the first of
  them (in item order).
- "Selected by name" means some filename glob of the matching item matches the script's id,
  wherever the glob stands in the expression: ``(false and banner) or safe`` selects
  ``banner`` by name (Nmap evaluates every token, no short-circuit).
- A database entry's file is looked up like a path item; a missing one is skipped with the
  warning ``Warning: Could not load '<file>': no path to file/directory: <file>``.
- A file chosen twice (through the database and as a path, or as two items) loads once.

Where Nmap's order is a hash order (path items, directory listings), this module uses item
order and sorted file names.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from worker.errors import UserError
from worker.nse.scriptdb import ScriptEntry


class SelectionError(UserError):
    """A ``--script`` item that selects nothing, a duplicate id or a dependency cycle."""


# ---------------------------------------------------------------------------------------------
# The rule grammar (nse-spec §2.4)

_WHITESPACE = " \t\n\v\f\r"
_KEYWORD = re.compile(r"(and|or|not|true|false|all)(?=[ \t\n\v\f\r(),]|\Z)",
                      re.IGNORECASE | re.ASCII)
_GLOB = re.compile(r"[\x21-\x27\x2a-\x7e]+")
_PRECEDENCE = {"or": 1, "and": 2}


@dataclass(frozen=True, slots=True)
class _Glob:
    category: str  # the token lower-cased, compared with the entry's categories
    pattern: re.Pattern

    @staticmethod
    def of(token: str) -> _Glob:
        name = token.removesuffix(".nse")
        regex = "".join(".*" if char == "*" else re.escape(char) for char in name)
        return _Glob(token.lower(), re.compile(regex, re.DOTALL))


@dataclass(frozen=True, slots=True)
class Rule:
    """One parsed ``--script`` item; ``program`` is the expression in postfix order."""

    text: str
    program: tuple[object, ...]

    def match(self, entry: ScriptEntry) -> str | None:
        """``"name"`` or ``"category"`` (how ``entry`` was selected), or None if the rule does
        not match it."""
        stack: list[bool] = []
        by_name = False
        for op in self.program:
            if isinstance(op, _Glob):
                named = op.pattern.fullmatch(entry.id) is not None
                by_name = by_name or named
                stack.append(named or op.category in entry.categories)
            elif op is True or op is False:
                stack.append(op)
            elif op == "not":
                stack.append(not stack.pop())
            else:
                right, left = stack.pop(), stack.pop()
                stack.append(left and right if op == "and" else left or right)
        if not stack[-1]:
            return None
        return "name" if by_name else "category"

    def matches(self, entry: ScriptEntry) -> bool:
        return self.match(entry) is not None


def _tokens(text: str) -> Iterator[object] | None:
    tokens: list[object] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char in _WHITESPACE:
            i += 1
        elif char in "()":
            tokens.append(char)
            i += 1
        elif keyword := _KEYWORD.match(text, i):
            word = keyword.group(1).lower()
            tokens.append(True if word in ("true", "all") else False if word == "false"
                          else word)
            i = keyword.end()
        elif glob := _GLOB.match(text, i):
            tokens.append(_Glob.of(glob.group()))
            i = glob.end()
        else:
            return None
    return iter(tokens)


def parse_rule(text: str) -> Rule | None:
    """The rule for one item, or None if ``text`` is not an expression of the grammar (such an
    item matches no database entry). Never raises; nesting depth is not limited."""
    tokens = _tokens(text)
    if tokens is None:
        return None
    output: list[object] = []
    pending: list[str] = []  # "(", "not", "and", "or"
    want_operand = True
    for token in tokens:
        if want_operand:
            if token in ("not", "("):
                pending.append(token)
                continue
            if not (isinstance(token, _Glob) or token is True or token is False):
                return None
            output.append(token)
            want_operand = False
        elif token in _PRECEDENCE:
            while pending and pending[-1] in _PRECEDENCE \
                    and _PRECEDENCE[pending[-1]] >= _PRECEDENCE[token]:
                output.append(pending.pop())
            pending.append(token)
            want_operand = True
            continue
        elif token == ")":
            while pending and pending[-1] != "(":
                output.append(pending.pop())
            if not pending:
                return None
            pending.pop()
        else:
            return None
        while pending and pending[-1] == "not":  # an operand is complete
            output.append(pending.pop())
    if want_operand or "(" in pending:
        return None
    output.extend(reversed(pending))
    return Rule(text, tuple(output))


# ---------------------------------------------------------------------------------------------
# Items


class Item(NamedTuple):
    """One ``--script`` item: its text (whitespace and the ``+`` removed) and the force flag."""

    text: str
    forced: bool


def split_items(values: Iterable[str]) -> list[Item]:
    """Every ``--script`` value split on every ``,`` (no escaping), each part stripped of
    whitespace; a leading ``+`` (after stripping) forces, and is removed. Empty parts are
    dropped; the text after ``+`` is not stripped again (``+ x`` is the item `` x``)."""
    items = []
    for value in values:
        for part in value.split(","):
            part = part.strip(_WHITESPACE)
            if part:
                forced = part.startswith("+")
                items.append(Item(part[1:] if forced else part, forced))
    return items


def default_items(script_scan: bool, version_scan: bool,
                  explicit_items: Sequence[Item | str]) -> list[Item]:
    """The items to select with (nse-spec §2.3): script scan (``-sC``, ``-A``, ``--script``)
    without ``--script`` → ``default``; ``-sV`` appends ``version`` (pass
    ``allow_unmatched=("version",)`` to ``select_scripts`` then).

    ``explicit_items`` is either the raw ``--script`` values (strings) or items from
    ``split_items``. Raw values reproduce Nmap exactly: ``--script ,`` is a ``--script`` with no
    items and selects nothing, while split items cannot tell it from no ``--script``."""
    given = len(explicit_items) > 0
    items = [item if isinstance(item, Item) else None for item in explicit_items]
    if None in items:
        items = split_items(str(value) for value in explicit_items)
    if script_scan and not given:
        items = [Item("default", False)]
    if version_scan:
        items.append(Item("version", False))
    return items


# ---------------------------------------------------------------------------------------------
# Selection

SELECTED_BY = ("name", "category", "file path", "directory")


@dataclass(frozen=True, slots=True)
class SelectedScript:
    """One chosen script: its file (None only for a database entry nobody looked up), the
    database entry it came from (None for paths), and how it was chosen."""

    id: str
    path: Path | None
    entry: ScriptEntry | None
    forced: bool
    selected_by: str  # one of SELECTED_BY

    @property
    def by_name(self) -> bool:
        """nse-spec §2.7: true for glob tokens and file paths, false for categories and
        directories (makes ``nmap.verbosity()`` +1 and ``version_intensity()`` 9)."""
        return self.selected_by in ("name", "file path")


@dataclass(frozen=True, slots=True)
class Selection:
    """The chosen scripts in load order, and warnings for the log (database entries whose
    file is missing). Iterating yields the scripts."""

    scripts: tuple[SelectedScript, ...]
    warnings: tuple[str, ...] = ()

    def __iter__(self) -> Iterator[SelectedScript]:
        return iter(self.scripts)

    def __len__(self) -> int:
        return len(self.scripts)

    @property
    def ids(self) -> list[str]:
        return [script.id for script in self.scripts]


_ID_NSE = re.compile(r"([^/]+)\.nse\Z", re.DOTALL)
_ID_EXTENSION = re.compile(r"([^/]+)\.[^.]*\Z", re.DOTALL)


def script_id(path: str) -> str:
    """A script's id (and ``SCRIPT_NAME``) from its path as Nmap 7.93 derives it: the last
    component without ``.nse``; else text before the last extension (``./t.lua`` → ``t``,
    ``d.x/y`` → ``d``); else the whole path (``/tmp/noext``)."""
    match = _ID_NSE.search(path) or _ID_EXTENSION.search(path)
    return match.group(1) if match else path


def select_scripts(items: Sequence[Item | tuple[str, bool]], entries: Sequence[ScriptEntry],
                   find_path: Callable[[str], Path | None], db_dir: Path | None = None, *,
                   allow_unmatched: Iterable[str] = ()) -> Selection:
    """The scripts ``items`` choose from ``entries`` (script.db order) and the file system.

    ``find_path(name)`` is Nmap's script search (absolute path, ``scripts/<name>`` in the data
    directories, then the current directory); it is called with an unmatched item, then with
    the item + ``.nse``, and with each chosen database entry's filename (after
    ``db_dir/<filename>`` when ``db_dir``, the directory of script.db, is given). Items in
    ``allow_unmatched`` (``version`` under ``-sV``) may match nothing.
    Order: database matches, then file paths (item order), then directory contents (item
    order, ``*.nse`` files in sorted order). Raises SelectionError with Nmap's messages."""
    flags: dict[str, bool] = {}
    for text, forced in items:
        flags[text] = forced  # first occurrence's place, last occurrence's flag
    rules = [(text, forced, parse_rule(text)) for text, forced in flags.items()]
    used: set[str] = set()
    warnings: list[str] = []
    chosen: list[SelectedScript] = []
    for entry in entries:
        first: tuple[bool, str] | None = None
        for text, forced, rule in rules:
            how = rule.match(entry) if rule is not None else None
            if how is not None:
                used.add(text)
                first = first or (forced, how)
        if first is None:
            continue
        path = db_dir / entry.filename if db_dir is not None else None
        if path is None or not path.is_file():
            path = find_path(entry.filename)
        if path is None:
            warnings.append(f"Warning: Could not load '{entry.filename}': "
                            f"no path to file/directory: {entry.filename}")
            continue
        chosen.append(SelectedScript(script_id(str(path)), path, entry, *first))

    allowed = set(allow_unmatched)
    files: list[SelectedScript] = []
    directories: list[SelectedScript] = []
    for text, forced, _ in rules:
        if text in used or text in allowed:
            continue
        path = find_path(text) or find_path(text + ".nse")
        if path is None:
            raise SelectionError(f"'{text}' did not match a category, filename, or directory")
        if not path.is_dir():
            files.append(SelectedScript(script_id(str(path)), path, None, forced, "file path"))
        elif not text.endswith("/"):
            raise SelectionError(f"directory '{path}' found, but will not match without '/'")
        else:
            for child in sorted(path.iterdir(), key=lambda p: p.name):
                if child.name.endswith(".nse") and child.is_file():
                    directories.append(SelectedScript(script_id(str(child)), child, None,
                                                       forced, "directory"))

    scripts: list[SelectedScript] = []
    paths: set[Path] = set()
    ids: set[str] = set()
    for script in chosen + files + directories:
        if script.path in paths:
            continue
        if script.id in ids:
            raise SelectionError(f"duplicate script ID: '{script.id}'")
        paths.add(script.path)
        ids.add(script.id)
        scripts.append(script)
    return Selection(tuple(scripts), tuple(warnings))


# ---------------------------------------------------------------------------------------------
# Runlevels (nse-spec §4.3)


def runlevels(selected: Iterable[str],
              dependencies: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """{id: runlevel}: 1 + the highest runlevel among the script's *selected* dependencies.
    A cycle raises SelectionError ``circular dependency in chain `a->b->a```, the chain
    starting at the first script (in ``selected`` order) whose dependencies reach it."""
    order = list(selected)
    chosen = set(order)

    def deps(name: str) -> list[str]:
        return [d for d in dependencies.get(name, ()) if d in chosen]

    levels: dict[str, int] = {}
    for start in order:
        if start in levels:
            continue
        path = [start]
        stack = [iter(deps(start))]
        while stack:
            for dep in stack[-1]:
                if dep in path:
                    chain = "->".join(path + [dep])
                    raise SelectionError(f"circular dependency in chain `{chain}`")
                if dep not in levels:
                    path.append(dep)
                    stack.append(iter(deps(dep)))
                    break
            else:
                node = path.pop()
                stack.pop()
                levels[node] = 1 + max((levels[d] for d in deps(node)), default=0)
    return levels
