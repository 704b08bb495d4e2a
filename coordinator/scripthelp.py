"""``--script-help``: describe the scripts an expression selects, then exit (nse-spec §2.9)."""
from __future__ import annotations

import os
import sys


def run_script_help(args, environ: dict) -> int:
    from worker.nse.engine import Engine, EngineOptions
    from worker.nse.selection import default_items, select_scripts
    from worker.nse.stage import ScriptSearch, load_selected
    from worker.nsock.loop import EventLoop

    search = ScriptSearch(args.datadir, environ)
    entries, db_dir = search.script_db()
    chosen = select_scripts(default_items(False, False, [args.script_help]), entries,
                            search.find_path, db_dir)
    engine = Engine(EventLoop(), log=lambda line: print(line, file=sys.stderr),
                    datapath=search.datapath, nselib_dirs=search.nselib_dirs())
    engine.configure(EngineOptions())  # libraries read nmap.registry.args as they load
    for script in load_selected(engine, chosen, search, verbosity=0):
        print()
        print(script.id)
        print("Categories: " + " ".join(script.categories))
        if script.profile.name == "nmap7":
            print(f"https://nmap.org/nsedoc/scripts/{script.id}.html")
        else:
            print(os.path.abspath(script.path))
        # The description as written, each line indented: its own final newline (or the
        # lack of one) decides how it meets the next script's blank line.
        sys.stdout.write("".join(f"  {line}" if line.strip("\n") else line
                                 for line in script.description.splitlines(keepends=True)))
    return 0
