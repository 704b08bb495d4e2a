"""Script arguments: ``--script-args-file`` and ``--script-args`` (nse-spec §3), parsed as Nmap
7.93 parses them, and ``stdnse.get_script_args``' lookup rules as the Python reference.

The text is the body of a table constructor:

- fields are separated by ``,`` or a newline; whitespace, newlines included, before a field is
  skipped, so blank lines add nothing, but an empty field is ``""`` (``x=y,,`` is
  ``{"", "", x="y"}``, a trailing newline adds one ``""``);
- a field is ``key=value`` or a bare value, appended to the array part; keys are strings,
  quoted or not, and may be empty (``=a`` is ``{[""]="a"}``);
- a value is ``{...}`` (a nested table, ``{}`` being ``{""}``) or a string: ``'...'`` or
  ``"..."``, where a backslash escapes the quote or a backslash and is kept before anything
  else, may span lines; an unclosed quote is not a quote (``a="x`` gives ``'"x'``);
  unquoted text stops at newline, ``,``, ``{``, ``}`` or ``=`` and loses surrounding
  horizontal whitespace (space, tab, VT, FF, CR); every scalar is a string;
- after a value only horizontal whitespace may come before the separator;
- a ``}`` that closes no nested table ends the text: the rest is ignored (``a=b},c=d`` is
  ``{a="b"}``), as in Nmap, which parses ``"{" .. text .. "}"``.
Anything else raises ScriptArgsError ``arguments did not parse!``.
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from worker.errors import UserError

PARSE_ERROR = "arguments did not parse!"
_SPACE = " \t\v\f\r"  # horizontal: everything C's isspace() accepts but newline
_UNQUOTED_END = re.compile(r"[\n,{}=]")


class ScriptArgsError(UserError):
    """Script arguments that do not parse, or an arguments file that is not a file."""


Value = Union[str, "ScriptArgs"]


@dataclass(frozen=True, slots=True)
class ScriptArgs:
    """A parsed table: its fields in order, ``(key, value)`` with key None for array items;
    a value is a string or a nested ScriptArgs. Duplicates are kept here; the later one wins
    in ``as_lua_ready``."""

    fields: tuple[tuple[str | None, Value], ...] = ()

    def as_lua_ready(self) -> dict[int | str, object]:
        """The table as Python dicts: array items under 1..n, named fields under their string
        keys (the last duplicate wins), nested tables as dicts. The engine makes it a Lua
        table (``nmap.registry.args``)."""
        table: dict[int | str, object] = {}
        position = 0
        for key, value in self.fields:
            converted = value.as_lua_ready() if isinstance(value, ScriptArgs) else value
            if key is None:
                position += 1
                table[position] = converted
            else:
                table[key] = converted
        return table


def _skip(text: str, i: int, chars: str) -> int:
    while i < len(text) and text[i] in chars:
        i += 1
    return i


def _string(text: str, i: int) -> tuple[str, int]:
    """The scalar at ``i``: a closed quoted string, else unquoted text (trimmed)."""
    if i < len(text) and text[i] in "'\"":
        quote, out, j = text[i], [], i + 1
        while j < len(text):
            char = text[j]
            if char == quote:
                return "".join(out), j + 1
            if char == "\\" and j + 1 < len(text) and text[j + 1] in (quote, "\\"):
                out.append(text[j + 1])
                j += 2
            else:
                out.append(char)
                j += 1
    end = _UNQUOTED_END.search(text, i)
    end = len(text) if end is None else end.start()
    return text[i:end].strip(_SPACE), end


def parse_script_args(text: str) -> ScriptArgs:
    """The table ``text`` describes (see the module docstring); ``""`` is the empty table.
    Raises ScriptArgsError("arguments did not parse!")."""
    if text == "":
        return ScriptArgs()
    # Each open table: (its fields, the key it has in its parent, or None for an array item).
    open_tables: list[tuple[list[tuple[str | None, Value]], str | None]] = [([], None)]
    i, n = 0, len(text)
    want_field = True
    while True:
        fields = open_tables[-1][0]
        if want_field:
            i = _skip(text, i, _SPACE + "\n")
            key = None
            if i < n and text[i] == "{":
                open_tables.append(([], None))
                i += 1
                continue
            value, i = _string(text, i)
            after = _skip(text, i, _SPACE)
            if after < n and text[after] == "=":
                key = value
                i = _skip(text, after + 1, _SPACE)
                if i < n and text[i] == "{":
                    open_tables.append(([], key))
                    i += 1
                    continue
                value, i = _string(text, i)
            fields.append((key, value))
            want_field = False
            continue
        i = _skip(text, i, _SPACE)
        if i < n and text[i] in ",\n":
            i += 1
            want_field = True
        elif i < n and text[i] == "}" and len(open_tables) > 1:
            done, key = open_tables.pop()
            open_tables[-1][0].append((key, ScriptArgs(tuple(done))))
            i += 1
        elif i >= n or text[i] == "}":
            if len(open_tables) > 1:
                raise ScriptArgsError(PARSE_ERROR)
            return ScriptArgs(tuple(open_tables[0][0]))
        else:
            raise ScriptArgsError(PARSE_ERROR)


def combine_args(file_text: str | None, cli_text: str | None) -> str:
    """The text Nmap parses: the arguments file's content (from ``read_args_file``), ``,``,
    then ``--script-args`` (even when absent: a file alone gives a trailing ``""`` item);
    without a file, just ``--script-args``."""
    if file_text is None:
        return cli_text or ""
    return f"{file_text},{cli_text or ''}"


def read_args_file(path_or_name: str,
                   find_data_file: Callable[[str], Path | None]) -> str:
    """The content of ``--script-args-file``: an absolute path as is, anything else through
    ``find_data_file`` (Nmap's data directories; the current directory is not searched).
    Trailing commas at the very end are removed; a final newline stays. Raises
    ScriptArgsError ``no path to file/directory: <name> is not a file`` or
    ``<path> is not a file`` (a directory), as Nmap does."""
    if os.path.isabs(path_or_name):
        path = Path(path_or_name) if os.path.exists(path_or_name) else None
    else:
        path = find_data_file(path_or_name)
    if path is None:
        raise ScriptArgsError(f"no path to file/directory: {path_or_name} is not a file")
    if not path.is_file():
        raise ScriptArgsError(f"{path} is not a file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ScriptArgsError(f"{path} is not a file: {exc.strerror or exc}") from None
    return re.sub(",+\\Z", "", data.decode("utf-8", "surrogateescape"))


def get_script_args(args: ScriptArgs | Mapping[object, object],
                    *names: str | Sequence[str]) -> tuple[object, ...]:
    """``stdnse.get_script_args(...)``: one value per argument (None when absent). An argument
    is a name or a sequence of alternative names; for each name in order: ``args[name]``,
    else ``1`` if the array part holds ``name``, else, if it has a dot, the same two checks
    with the part after the last dot. The first alternative that finds something wins.
    ``args`` is a ScriptArgs or its ``as_lua_ready()`` dict; tables come back as dicts."""
    table = args.as_lua_ready() if isinstance(args, ScriptArgs) else args
    array = []
    while len(array) + 1 in table:  # ipairs
        array.append(table[len(array) + 1])

    def lookup(name: str) -> object:
        value = table.get(name)
        if value is not None:
            return value
        return 1 if any(isinstance(item, str) and item == name for item in array) else None

    results = []
    for argument in names:
        found = None
        for name in [argument] if isinstance(argument, str) else list(argument):
            found = lookup(name)
            if found is None and "." in name:
                found = lookup(name.rsplit(".", 1)[1])
            if found is not None:
                break
        results.append(found)
    return tuple(results)
