"""``--script-updatedb``: rebuild scripts/script.db from the scripts beside it, then exit.

The directory is the first Nmap data directory that has scripts/ (--datadir, $NMAPDIR,
~/.nmap), else the bundled scripts. Every *.nse file directly in it is loaded for its
categories; one that does not load stops the update with the loader's message, and the old
script.db stays as it was (Nmap leaves a partial file behind).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from worker.errors import UserError


def run_script_updatedb(args, environ: dict) -> int:
    from worker.nse.stage import ScriptSearch

    search = ScriptSearch(args.datadir, environ)
    directory = next((d for d in search.script_dirs() if d.is_dir()), None)
    if directory is None:
        raise UserError("no scripts directory to update")
    print("NSE: Updating rule database.")
    _write_atomically(directory / "script.db", script_db_text(directory, search))
    print("NSE: Script Database updated successfully.")
    return 0


def script_db_text(directory: Path, search) -> str:
    """script.db for the *.nse files directly in ``directory``, loaded for their categories."""
    from worker.nse.engine import Engine
    from worker.nse.scriptdb import ScriptEntry, format_script_db
    from worker.nse.scripts import ScriptLoadError, load_script
    from worker.nsock.loop import EventLoop

    messages: list[str] = []
    engine = Engine(EventLoop(), log=messages.append, datapath=search.datapath,
                    nselib_dirs=search.nselib_dirs())
    entries = []
    for path in sorted(directory.glob("*.nse")):
        try:
            script = load_script(engine.runtime, str(path), search.profile_for(path),
                                 messages.append)
        except ScriptLoadError as exc:
            for line in messages:
                print(line, file=sys.stderr)
            raise UserError(f"script database not updated: {exc}") from None
        if script is not None:
            entries.append(ScriptEntry(path.name, tuple(script.categories)))
    return format_script_db(entries)


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".new")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    except OSError as exc:
        raise UserError(f"Could not write {path}: {exc.strerror or exc}") from None
