"""The bundled script.db is what --script-updatedb writes for the bundled scripts, and
selection by category finds them."""
from __future__ import annotations

from conftest import run_nsecluster

from coordinator.updatedb import script_db_text
from worker.nse.stage import BUNDLED_SCRIPTS, ScriptSearch


def test_the_bundled_script_db_is_up_to_date():
    search = ScriptSearch(None, {})  # no Nmap data directory: only the bundled scripts
    expected = script_db_text(BUNDLED_SCRIPTS, search)
    assert (BUNDLED_SCRIPTS / "script.db").read_text() == expected, (
        "scripts/script.db is stale: run 'nsecluster scan --script-updatedb'")
    names = {path.name for path in BUNDLED_SCRIPTS.glob("*.nse")}
    assert all(f'filename = "{name}"' in expected for name in names)


def test_categories_select_the_bundled_scripts(tmp_path):
    done = run_nsecluster("scan", "--script-help", "default", env={"HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    listed = {line for line in done.stdout.splitlines() if line and not line.startswith(" ")}
    db = (BUNDLED_SCRIPTS / "script.db").read_text()
    defaults = {line.split('"')[1][:-4] for line in db.splitlines() if '"default"' in line}
    assert defaults and defaults <= listed
