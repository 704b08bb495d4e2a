"""Where Nmap's data files live: the ordered list of directories searched for ``nmap-services``,
and later ``scripts/`` and ``nselib/``.

Order: ``--datadir``, ``$NMAPDIR``, ``~/.nmap``, then the install prefixes. The prefixes come from
``$NSECLUSTER_NMAP_PREFIXES`` (colon-separated) so a test, or a machine with Nmap installed
somewhere unusual, can say where to look; an empty value means "no installed Nmap".
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

DEFAULT_PREFIXES = ("/usr/local/share/nmap", "/usr/share/nmap")
PREFIXES_VARIABLE = "NSECLUSTER_NMAP_PREFIXES"


@dataclass(frozen=True, slots=True)
class DataPath:
    directories: tuple[Path, ...]

    @staticmethod
    def from_environment(datadir: str | None = None,
                         environ: Mapping[str, str] | None = None,
                         home: str | None = None) -> "DataPath":
        environ = os.environ if environ is None else environ
        candidates: list[str] = []
        if datadir:
            candidates.append(datadir)
        if environ.get("NMAPDIR"):
            candidates.append(environ["NMAPDIR"])
        if home:
            candidates.append(os.path.join(home, ".nmap"))
        prefixes = environ.get(PREFIXES_VARIABLE)
        if prefixes is None:
            candidates.extend(DEFAULT_PREFIXES)
        else:
            candidates.extend(p for p in prefixes.split(":") if p)
        unique: dict[Path, None] = {}  # ordered set: a directory named twice is searched once
        for candidate in candidates:
            unique.setdefault(Path(candidate), None)
        return DataPath(tuple(unique))

    def _candidates(self, name: str) -> Iterator[Path]:
        for directory in self.directories:
            yield directory / name

    def find(self, name: str) -> Path | None:
        """The first ``<dir>/<name>`` that is a regular file, or None."""
        return next(iter(self.find_all(name)), None)

    def find_all(self, name: str) -> list[Path]:
        return [path for path in self._candidates(name) if path.is_file()]

    def find_directory(self, name: str) -> Path | None:
        """The first ``<dir>/<name>`` that is a directory (``scripts``, ``nselib``), or None."""
        return next((path for path in self._candidates(name) if path.is_dir()), None)


_loaded: dict[tuple, object] = {}


def cached_data(name: str, datadir: str | None, load: Callable[[DataPath, Mapping[str, str]], T],
                environ: Mapping[str, str] | None = None) -> T:
    """``load(data path, environment)``, once per process for each data file ``name`` and each
    setting that can change where it is found (--datadir, $NMAPDIR, $HOME, the prefixes)."""
    environ = os.environ if environ is None else environ
    key = (name, datadir, environ.get("NMAPDIR"), environ.get("HOME"),
           environ.get(PREFIXES_VARIABLE))
    value = _loaded.get(key)
    if value is None:
        value = _loaded[key] = load(
            DataPath.from_environment(datadir, environ, environ.get("HOME")), environ)
    return value
