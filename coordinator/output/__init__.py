"""Output formats and the factory that opens them.

``open_writers(specs, info)`` opens every requested output at once (so a bad path fails before
any scanning) and returns an ``OutputSet`` that passes each event to every writer::

    outputs = open_writers([("xml", "scan.xml"), ("normal", "-")], info)
    with outputs:
        outputs.begin()
        outputs.prescript(results)
        for host in finished_hosts:
            outputs.host(host)        # written and flushed at once
        outputs.postscript(results)
        outputs.end(stats)            # also after Ctrl-C (stats.interrupted)

Formats: "normal" (-oN), "xml" (-oX), "grepable" (-oG), "json" (-oJ), "interactive" (the screen)
and "all" (-oA: a base name that becomes NAME.nmap, NAME.xml and NAME.gnmap). A destination of
"-" means standard output, which is never closed. Unless told otherwise the set adds the screen
output when no format writes to "-", as Nmap does.
"""
from __future__ import annotations

import sys
from collections.abc import Iterable

from coordinator.errors import UserError
from worker.protocol import HostResult, ScriptResult

from .model import RunStats, ScanInfo

TYPE_CHECKING = False  # importing typing costs start-up time; type checkers read this
if TYPE_CHECKING:
    from typing import TextIO

DEFAULT_STYLESHEET = "https://svn.nmap.org/nmap/docs/nmap.xsl"
# Each format's module loads only when a scan asks for that format.
_WRITER_CLASSES = {"normal": (".normal", "NormalWriter"),
                   "interactive": (".normal", "InteractiveWriter"),
                   "xml": (".xml", "XmlWriter"), "grepable": (".grepable", "GrepableWriter"),
                   "json": (".jsonout", "JsonWriter"), "": (".normal", "Writer")}
_LAZY = {cls: (module, cls) for module, cls in _WRITER_CLASSES.values()}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, cls = _LAZY[name]
        return getattr(importlib.import_module(module, __name__), cls)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["FORMATS", "GrepableWriter", "InteractiveWriter", "JsonWriter", "NormalWriter",
           "OutputSet", "RunStats", "ScanInfo", "Writer", "XmlWriter", "open_writers"]

FORMATS = ("normal", "xml", "grepable", "json", "interactive")
# How Nmap names each kind in "Failed to open ... output file" (grepable is "machine").
_LABELS = {"normal": "normal", "xml": "XML", "grepable": "machine", "json": "JSON",
           "interactive": "interactive"}
_ALL_SUFFIXES = (("normal", ".nmap"), ("xml", ".xml"), ("grepable", ".gnmap"))


class _Entry:
    __slots__ = ("writer", "stream", "owned", "label", "destination", "broken")

    def __init__(self, writer, stream, owned, label, destination):
        self.writer, self.stream, self.owned = writer, stream, owned
        self.label, self.destination, self.broken = label, destination, False


class OutputSet:
    """Every open output of one scan; each call goes to each writer in order.

    A writer whose stream fails (disk full, closed pipe) is dropped so the others still get
    every host; the first failure is then raised as a UserError (a closed standard output is
    dropped silently, as when the screen output is piped into ``head``)."""

    def __init__(self, entries: list[_Entry], info: ScanInfo):
        self._entries = entries
        self.info = info
        self._closed = False

    @property
    def writers(self) -> list:
        return [e.writer for e in self._entries]

    def _each(self, method: str, *args) -> None:
        failure = None
        for entry in self._entries:
            if entry.broken:
                continue
            try:
                getattr(entry.writer, method)(*args)
            except OSError as exc:
                entry.broken = True
                if entry.owned or not isinstance(exc, BrokenPipeError):
                    failure = failure or UserError(
                        f"Failed to write {entry.label} output file {entry.destination}: "
                        f"{exc.strerror or exc}")
        if failure is not None:
            raise failure

    def begin(self, info: ScanInfo | None = None) -> None:
        if info is not None:
            self.info = info
        self._each("begin", self.info)

    def prescript(self, results: list[ScriptResult]) -> None:
        self._each("prescript", results)

    def host(self, host: HostResult) -> None:
        self._each("host", host)

    def postscript(self, results: list[ScriptResult]) -> None:
        self._each("postscript", results)

    def end(self, stats: RunStats) -> None:
        self._each("end", stats)

    def close(self) -> None:
        """Close the files this set opened; standard output is only flushed."""
        if self._closed:
            return
        self._closed = True
        for entry in self._entries:
            try:
                if entry.owned:
                    entry.stream.close()
                elif not entry.broken:
                    entry.stream.flush()
            except OSError:
                pass

    def __enter__(self) -> "OutputSet":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _expand(specs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    out = []
    for fmt, destination in specs:
        if fmt == "all":
            if destination == "-":
                raise UserError("Cannot display multiple output types to stdout.")
            out.extend((kind, destination + suffix) for kind, suffix in _ALL_SUFFIXES)
        elif fmt in FORMATS:
            out.append((fmt, destination))
        else:
            raise UserError(f"Unknown output format {fmt!r}")
    return out


def _make_writer(fmt: str, stream: TextIO, xml_stylesheet: str | None):
    writer_class = __getattr__(_WRITER_CLASSES[fmt][1])
    if fmt == "xml":
        return writer_class(stream, stylesheet=xml_stylesheet)
    return writer_class(stream)


def open_writers(specs: Iterable[tuple[str, str]], info: ScanInfo, *,
                 stdout: TextIO | None = None, interactive: bool = True,
                 xml_stylesheet: str | None = DEFAULT_STYLESHEET) -> OutputSet:
    """Open each (format, destination); add the screen output when nothing else writes to "-"
    (``interactive=False`` turns that off). Raises UserError, with nothing left open, when a
    file cannot be opened."""
    stdout = stdout if stdout is not None else sys.stdout
    wanted = _expand(specs)
    if interactive and not any(dest == "-" for _, dest in wanted):
        wanted.insert(0, ("interactive", "-"))
    entries: list[_Entry] = []
    try:
        for fmt, destination in wanted:
            if destination == "-":
                stream, owned = stdout, False
            else:
                try:
                    stream = open(destination, "w", encoding="utf-8", newline="\n")
                except OSError as exc:
                    detail = f": {exc.strerror} ({exc.errno})" if exc.strerror else ""
                    raise UserError(f"Failed to open {_LABELS[fmt]} output file {destination} "
                                    f"for writing{detail}") from None
                owned = True
            entries.append(_Entry(_make_writer(fmt, stream, xml_stylesheet), stream, owned,
                                  _LABELS[fmt], destination))
    except BaseException:
        for entry in entries:
            if entry.owned:
                entry.stream.close()
        raise
    return OutputSet(entries, info)
