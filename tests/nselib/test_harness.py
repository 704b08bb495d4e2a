"""The harness nselib tests use: Lua run by the engine as a script action."""
import pytest
from nse_support import run_lua

from worker.nse.profile import NMAP7, SEED


@pytest.mark.parametrize("profile", [SEED, NMAP7], ids=["seed", "nmap7"])
def test_run_lua_returns_the_output_and_reports_errors(tmp_path, profile):
    assert run_lua(tmp_path, 'local stdnse = require "stdnse"\nreturn stdnse.tohex and "x" '
                             'or "y"', profile) in ("x", "y")
    with pytest.raises(AssertionError, match="boom"):
        run_lua(tmp_path, 'error("boom")', profile)


def test_run_lua_nmap_runs_the_same_check_under_nmap(tmp_path):
    from nse_support import run_lua_nmap

    body = 'return tostring(#"abc") .. type(nmap.clock)'
    assert run_lua_nmap(tmp_path, body) == run_lua(tmp_path, body) == "3function"
    with pytest.raises(AssertionError, match="boom"):
        run_lua_nmap(tmp_path, 'error("boom")')
