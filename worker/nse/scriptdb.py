"""scripts/script.db: which categories each script is in (nse-spec §1.4).

The file is Lua source, one ``Entry { filename = "x.nse", categories = { "a", "b", } }`` per
line. Nmap runs it with ``loadfile``; here a small tokenizer reads the subset of Lua that such a
file uses (table constructors of names, strings and numbers, ``,``/``;`` separators, comments)
and never evaluates anything. Messages follow Nmap's:

- text that is not a sequence of ``Entry {...}`` calls:
  ``database appears to be corrupt or out of date; please update using: nmap --script-updatedb``
- an entry without a string ``filename`` or a table ``categories``:
  ``script database appears corrupt, try `nmap --script-updatedb```
- a category that is not a string: ``bad entry in script database``
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from worker.errors import UserError

SYNTAX_MESSAGE = ("database appears to be corrupt or out of date; "
                  "please update using: nmap --script-updatedb")
CORRUPT_MESSAGE = "script database appears corrupt, try `nmap --script-updatedb`"
BAD_ENTRY_MESSAGE = "bad entry in script database"


class ScriptDbError(UserError):
    """script.db does not parse or has an entry Nmap would reject."""


@dataclass(frozen=True, slots=True)
class ScriptEntry:
    """One script.db line: the file's basename and its lower-cased categories."""

    filename: str
    categories: tuple[str, ...]

    @property
    def id(self) -> str:
        """The script id: the basename without ``.nse`` (nse-spec §1.2)."""
        base = self.filename.rsplit("/", 1)[-1]
        return base.removesuffix(".nse")


# ---------------------------------------------------------------------------------------------
# Tokenizer for the Lua subset

_SPACE = re.compile(r"[ \t\n\v\f\r]+")
_LONG_BRACKET = re.compile(r"\[(=*)\[")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"0[xX][0-9A-Fa-f]+|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t",
                   "v": "\v", "\\": "\\", '"': '"', "'": "'", "\n": "\n"}


class _Syntax(Exception):
    def __init__(self, position: int):
        self.position = position


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "name", "string", "number", "punct"
    value: object
    position: int


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        space = _SPACE.match(text, i)
        if space:
            i = space.end()
            continue
        if text.startswith("--", i):
            long = _LONG_BRACKET.match(text, i + 2)
            if long:
                end = text.find("]" + long.group(1) + "]", long.end())
                if end < 0:
                    raise _Syntax(i)
                i = end + len(long.group(1)) + 2
            else:
                newline = text.find("\n", i)
                i = n if newline < 0 else newline + 1
            continue
        char = text[i]
        if char in "{}=,;":
            tokens.append(_Token("punct", char, i))
            i += 1
        elif char in "\"'":
            value, end = _short_string(text, i)
            tokens.append(_Token("string", value, i))
            i = end
        elif char == "[" and _LONG_BRACKET.match(text, i):
            long = _LONG_BRACKET.match(text, i)
            close = "]" + long.group(1) + "]"
            end = text.find(close, long.end())
            if end < 0:
                raise _Syntax(i)
            start = long.end() + (1 if text.startswith("\n", long.end()) else 0)
            tokens.append(_Token("string", text[start:end], i))
            i = end + len(close)
        elif _NAME.match(text, i):
            match = _NAME.match(text, i)
            tokens.append(_Token("name", match.group(), i))
            i = match.end()
        elif _NUMBER.match(text, i):
            match = _NUMBER.match(text, i)
            tokens.append(_Token("number", match.group(), i))
            i = match.end()
        else:
            raise _Syntax(i)
    return tokens


def _short_string(text: str, start: int) -> tuple[str, int]:
    """A Lua ``'...'`` or ``"..."`` literal at ``start``: (value, index after it)."""
    quote, out, i, n = text[start], [], start + 1, len(text)
    while i < n:
        char = text[i]
        if char == quote:
            return "".join(out), i + 1
        if char == "\n":
            break
        if char != "\\":
            out.append(char)
            i += 1
            continue
        i += 1
        if i >= n:
            break
        escape = text[i]
        if escape in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[escape])
            i += 1
        elif escape == "z":
            i += 1
            while i < n and text[i] in " \t\n\v\f\r":
                i += 1
        elif escape == "x" and re.fullmatch(r"[0-9A-Fa-f]{2}", text[i + 1:i + 3]):
            out.append(chr(int(text[i + 1:i + 3], 16)))
            i += 3
        elif escape in "0123456789":
            digits = re.match(r"[0-9]{1,3}", text[i:]).group()
            if int(digits) > 255:
                raise _Syntax(i)
            out.append(chr(int(digits)))
            i += len(digits)
        elif escape == "u" and (match := re.match(r"u\{([0-9A-Fa-f]+)\}", text[i:])):
            code = int(match.group(1), 16)
            if code > 0x10FFFF:
                raise _Syntax(i)
            out.append(chr(code))
            i += match.end()
        else:
            raise _Syntax(i)
    raise _Syntax(start)


# ---------------------------------------------------------------------------------------------
# Parser: Entry { field, ... } calls, values being strings, numbers, names or tables


class _Parser:
    def __init__(self, text: str, source: str):
        self.text, self.source = text, source
        self.tokens = _tokens(text)
        self.index = 0

    def error(self, message: str, position: int) -> ScriptDbError:
        line = self.text.count("\n", 0, position) + 1
        return ScriptDbError(f"{self.source}:{line}: {message}")

    def peek(self) -> _Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self, kind: str, value: object = None) -> _Token:
        token = self.peek()
        if token is None or token.kind != kind or (value is not None and token.value != value):
            raise _Syntax(token.position if token else len(self.text))
        self.index += 1
        return token

    def entries(self) -> list[ScriptEntry]:
        entries = []
        while self.peek() is not None:
            start = self.take("name", "Entry").position
            fields = self.table()
            entries.append(self.entry(fields, start))
            if self.peek() is not None and self.peek().value == ";":
                self.index += 1
        return entries

    def table(self) -> list[tuple[object, object]]:
        """A table constructor: [(key or None for array items, value)]."""
        self.take("punct", "{")
        fields: list[tuple[object, object]] = []
        while True:
            token = self.peek()
            if token is None:
                raise _Syntax(len(self.text))
            if token.value == "}" and token.kind == "punct":
                self.index += 1
                return fields
            after = self.tokens[self.index + 1] if self.index + 1 < len(self.tokens) else None
            if token.kind == "name" and after is not None and after.value == "=" \
                    and after.kind == "punct":
                self.index += 2
                fields.append((token.value, self.value()))
            else:
                fields.append((None, self.value()))
            token = self.peek()
            if token is not None and token.kind == "punct" and token.value in ",;":
                self.index += 1
            elif token is None or token.value != "}":
                raise _Syntax(token.position if token else len(self.text))

    def value(self) -> object:
        token = self.peek()
        if token is None:
            raise _Syntax(len(self.text))
        if token.kind == "punct" and token.value == "{":
            return self.table()
        if token.kind in ("string", "number") or (
                token.kind == "name" and token.value in ("true", "false", "nil")):
            self.index += 1
            return token.value if token.kind == "string" else (token.kind, token.value)
        raise _Syntax(token.position)

    def entry(self, fields: list[tuple[object, object]], position: int) -> ScriptEntry:
        named = {key: value for key, value in fields if key is not None}
        filename, categories = named.get("filename"), named.get("categories")
        if not isinstance(filename, str) or not isinstance(categories, list):
            raise self.error(CORRUPT_MESSAGE, position)
        array = [value for key, value in categories if key is None]
        if not all(isinstance(value, str) for value in array):
            raise self.error(BAD_ENTRY_MESSAGE, position)
        return ScriptEntry(filename, tuple(value.lower() for value in array))


def parse_script_db(text: str, source: str) -> list[ScriptEntry]:
    """The entries of script.db ``text`` in file order; ``source`` names the file in errors.
    Raises ScriptDbError with Nmap's messages (see the module docstring)."""
    try:
        parser = _Parser(text, source)
        return parser.entries()
    except _Syntax as exc:
        line = text.count("\n", 0, exc.position) + 1
        raise ScriptDbError(f"{source}:{line}: {SYNTAX_MESSAGE}") from None


def _quote(value: str) -> str:
    """A Lua double-quoted literal; control characters as 3-digit decimal escapes."""
    out = []
    for char in value:
        if char in '"\\':
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\{ord(char):03d}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def format_script_db(entries: Iterable[ScriptEntry]) -> str:
    """script.db text as ``--script-updatedb`` writes it: one line per entry, sorted by
    filename, categories lower-cased and sorted, each followed by a comma."""
    lines = []
    for entry in sorted(entries, key=lambda e: e.filename):
        categories = "".join(f"{_quote(c)}, " for c in sorted(c.lower() for c in
                                                              entry.categories))
        lines.append(f"Entry {{ filename = {_quote(entry.filename)}, "
                     f"categories = {{ {categories}}} }}\n")
    return "".join(lines)
