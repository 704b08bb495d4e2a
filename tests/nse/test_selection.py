"""Script selection (nse-spec §2) and runlevels (§4.3), compared with nmap 7.93 through
``--script-help``, which selects and loads scripts but runs none (with ``-d2`` it logs how
each script was selected). Never ``-sL --script``: pre-scan scripts would run."""
from __future__ import annotations

import itertools
import os
import re
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.errors import UserError
from worker.nse.scriptdb import ScriptEntry, parse_script_db
from worker.nse.selection import (
    Item,
    Rule,
    SelectedScript,
    SelectionError,
    default_items,
    parse_rule,
    runlevels,
    script_id,
    select_scripts,
    split_items,
)

NMAP_SCRIPTS = Path("/usr/share/nmap/scripts")  # Debian's nmap-common
SCRIPT = ('description = "x"\ncategories = {"safe"}\ndependencies = {%s}\n'
          'prerule = function() return true end\naction = function() return "hi" end\n')


@pytest.fixture(scope="module")
def real_entries() -> list[ScriptEntry]:
    db = NMAP_SCRIPTS / "script.db"
    if not db.is_file():
        pytest.fail(f"{db} is required (.ci/setup installs Debian's nmap-common)")
    return parse_script_db(db.read_text(), str(db))


def nmap_search(*data_dirs: Path, cwd: Path | None = None):
    """Nmap's script search (nse-spec §2.6) over ``data_dirs``, then ``cwd``."""
    def find_path(item: str) -> Path | None:
        if os.path.isabs(item):
            return Path(item) if os.path.exists(item) else None
        for directory in data_dirs:
            if (directory / "scripts" / item).exists():
                return directory / "scripts" / item
        if cwd is not None and (cwd / item).exists():
            return Path(item)
        return None
    return find_path


def select_real(entries, *values: str) -> list[SelectedScript]:
    return list(select_scripts(split_items(values), entries,
                               nmap_search(NMAP_SCRIPTS.parent)))


def nmap_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "NMAPDIR"}
    env["HOME"] = str(home)  # no ~/.nmap
    return env


def help_ids(nmap: str, expression: str, *options: str, env=None) -> list[str] | str:
    """The ids ``nmap --script-help`` lists, or the selection error it gives."""
    result = subprocess.run([nmap, *options, "--script-help", expression], check=False,
                            capture_output=True, text=True, timeout=60, env=env)
    error = re.search(r"nse_main\.lua:\d+: (.*)", result.stdout + result.stderr)
    if error:
        return error.group(1)
    lines = result.stdout.splitlines()
    return [line for line, following in itertools.pairwise(lines)
            if following.startswith("Categories:")]


def nmap_selected(nmap: str, values: str, *options: str, cwd=None, env=None):
    """[(basename, selected_by, forced)] from ``nmap -d2 --script-help values``, in log
    order, or the selection error."""
    result = subprocess.run([nmap, "-d2", *options, "--script-help", values],
                            check=False, capture_output=True, text=True, timeout=120, cwd=cwd, env=env)
    output = result.stdout + result.stderr
    error = re.search(r"nse_main\.lua:\d+: (.*)", output)
    if error:
        return error.group(1)
    return [(name, how, bool(forced)) for name, how, forced in re.findall(
        r"NSE: Script (.+) was selected by (name|category|file path|directory)"
        r"( and forced to run)?\.", output)]


def ours_as_logged(selection) -> list[tuple[str, str, bool]]:
    return [(script.path.name, script.selected_by, script.forced) for script in selection]


def entry(name: str, *categories: str) -> ScriptEntry:
    return ScriptEntry(f"{name}.nse", categories)


# ---------------------------------------------------------------------------------------------
# The grammar

BANNER = entry("banner", "discovery", "safe")
TITLE = entry("http-title", "default", "discovery", "safe")
BRUTE = entry("http-brute", "brute", "intrusive")
SSH = entry("ssh-brute", "brute", "intrusive")
DOTTED = entry("a.b", "x")
PERCENT = entry("a%b", "x")
ENTRIES = [BANNER, TITLE, BRUTE, SSH, DOTTED, PERCENT]


def matching(text: str) -> list[str] | None:
    rule = parse_rule(text)
    return None if rule is None else [e.id for e in ENTRIES if rule.matches(e)]


@pytest.mark.parametrize("text, expected", [
    ("safe", ["banner", "http-title"]),
    ("SAFE", ["banner", "http-title"]),  # categories: case-insensitive
    ("Banner", []),  # file names: case-sensitive
    ("banner", ["banner"]),
    ("banner.nse", ["banner"]),
    ("banner.NSE", []),
    ("banner.nse.nse", []),
    ("http-*", ["http-title", "http-brute"]),
    ("*.nse", ["banner", "http-title", "http-brute", "ssh-brute", "a.b", "a%b"]),
    ("*-brute", ["http-brute", "ssh-brute"]),
    ("a.b", ["a.b"]),  # magic characters are literal
    ("a?b", []),
    ("a%b", ["a%b"]),
    ("a*b", ["a.b", "a%b"]),
    ("all", ["banner", "http-title", "http-brute", "ssh-brute", "a.b", "a%b"]),
    ("ALL", ["banner", "http-title", "http-brute", "ssh-brute", "a.b", "a%b"]),
    ("true", ["banner", "http-title", "http-brute", "ssh-brute", "a.b", "a%b"]),
    ("false", []),
    ("not all", []),
    ("not safe", ["http-brute", "ssh-brute", "a.b", "a%b"]),
    # precedence: or looser than and; not binds tightest
    ("brute or safe and default", ["http-title", "http-brute", "ssh-brute"]),
    ("(brute or safe) and default", ["http-title"]),
    ("not safe and brute", ["http-brute", "ssh-brute"]),
    ("not (safe or brute)", ["a.b", "a%b"]),
    ("not not banner", ["banner"]),
    ("http-* and not brute", ["http-title"]),
    ("safe and discovery and not http-*", ["banner"]),
    ("(default or brute) and not ssh-*", ["http-title", "http-brute"]),
    ("not(all)or(banner)", ["banner"]),  # keywords before '(' and after ')'
    ("banner and(safe)", ["banner"]),
    ("  banner\tand\nsafe\r", ["banner"]),
    ("TRUE and banner", ["banner"]),
    ("banner and (false or true)", ["banner"]),
    ("((((banner))))", ["banner"]),
    # keywords need whitespace, '(', ')', ',' or the end after them: otherwise they are globs
    ("andx", []),
    ("notbanner", []),
    ("or-x", []),
    ("all*", []),
])
def test_grammar(text, expected):
    assert matching(text) == expected


@pytest.mark.parametrize("text", [
    "http-title and", "and", "not", "(banner", "banner)", "()", "banner banner", "a not b",
    "banner or", "or banner", "banner and and safe", "", "   ", "b\u00e4nner", "ban\x7fner",
    "banner\x00", "falſe",  # U+017F is not an ASCII letter: no keyword, no token
])
def test_unparsable_items_are_none(text):
    assert parse_rule(text) is None


def test_rule_reports_how_it_matched():
    assert parse_rule("safe").match(BANNER) == "category"
    assert parse_rule("banner").match(BANNER) == "name"
    assert parse_rule("banner").match(TITLE) is None
    # a glob that matches anywhere in the expression makes it "by name", as in Nmap
    assert parse_rule("(false and banner) or safe").match(BANNER) == "name"
    assert parse_rule("safe or banner").match(BANNER) == "name"
    assert parse_rule("not http-title").match(BANNER) == "category"
    assert parse_rule("all").match(BANNER) == "category"
    assert isinstance(parse_rule("all"), Rule)


def test_deep_nesting_does_not_overflow():
    assert matching("(" * 5000 + "banner" + ")" * 5000) == ["banner"]
    assert matching("not " * 5001 + "banner") == ["http-title", "http-brute", "ssh-brute",
                                                  "a.b", "a%b"]
    assert parse_rule("(" * 5000 + "banner") is None


@settings(max_examples=1000, deadline=None)
@given(st.text())
def test_arbitrary_text_gives_rule_or_none(text):
    rule = parse_rule(text)
    assert rule is None or isinstance(rule, Rule)
    if rule is not None:
        for e in ENTRIES:
            assert rule.match(e) in (None, "name", "category")


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.sampled_from(list("()*., \tabnotrdlsfeu")
                                + ["and", "or", "not", "all", "safe", "banner"]), max_size=30))
def test_grammar_like_text_gives_rule_or_none(parts):
    rule = parse_rule("".join(parts))
    if rule is not None:
        for e in ENTRIES:
            rule.match(e)


# ---------------------------------------------------------------------------------------------
# Items and defaults


def test_split_items():
    assert split_items(["a,b", " +c , ,d ", "+ e", "", ",", "++f"]) == [
        Item("a", False), Item("b", False), Item("c", True), Item("d", False),
        Item(" e", True), Item("+f", True)]
    assert split_items(["x and (y or z)"]) == [Item("x and (y or z)", False)]


def test_default_items():
    assert default_items(True, False, []) == [Item("default", False)]
    assert default_items(True, True, []) == [Item("default", False), Item("version", False)]
    assert default_items(False, True, []) == [Item("version", False)]
    assert default_items(True, False, [Item("x", True)]) == [Item("x", True)]
    assert default_items(True, True, [Item("x", False)]) == [Item("x", False),
                                                             Item("version", False)]
    # raw --script values: an option whose items are all empty selects nothing [obs]
    assert default_items(True, False, [","]) == []
    assert default_items(True, True, [""]) == [Item("version", False)]
    assert default_items(True, False, ["+a,b"]) == [Item("a", True), Item("b", False)]
    assert default_items(False, False, []) == []


def test_script_id_as_nmap_derives_it():
    # observed: SCRIPT_NAME and the output id of scripts given by path [obs]
    assert script_id("/usr/share/nmap/scripts/http-title.nse") == "http-title"
    assert script_id("./t.lua") == "t"
    assert script_id("./a.b.lua") == "a.b"
    assert script_id("./x.nse.bak") == "x.nse"
    assert script_id("d.x/y") == "d"
    assert script_id("./d.x/y.nse") == "y"
    assert script_id("/tmp/dep/noext") == "/tmp/dep/noext"
    assert script_id("./.hidden") == "./.hidden"


# ---------------------------------------------------------------------------------------------
# Selection against a synthetic database and directory


@pytest.fixture
def tree(tmp_path):
    """A data directory with scripts/{aaa,bbb}.nse in script.db and scripts/sub/."""
    scripts = tmp_path / "data" / "scripts"
    (scripts / "sub").mkdir(parents=True)
    for name in ("aaa.nse", "bbb.nse", "sub/ccc.nse", "sub/ddd.nse", "sub/aaa.nse",
                 "sub/x.lua", "sub/y.NSE", "sub/z.nse.bak"):
        (scripts / name).write_text(SCRIPT % "")
    (scripts / "sub" / "inner.nse").mkdir()
    (scripts / "script.db").write_text(
        'Entry { filename = "aaa.nse", categories = { "safe", } }\n'
        'Entry { filename = "bbb.nse", categories = { "default", } }\n'
        'Entry { filename = "gone.nse", categories = { "gone", } }\n')
    (tmp_path / "cwd").mkdir()
    (tmp_path / "cwd" / "eee.nse").write_text(SCRIPT % "")
    (tmp_path / "cwd" / "cdir").mkdir()
    (tmp_path / "cwd" / "cdir" / "fff.nse").write_text(SCRIPT % "")
    return tmp_path


def select_tree(tree, *values: str, **options):
    data = tree / "data"
    entries = parse_script_db((data / "scripts" / "script.db").read_text(), "db")
    old = os.getcwd()
    os.chdir(tree / "cwd")
    try:
        return select_scripts(split_items(values), entries, nmap_search(data, cwd=tree / "cwd"),
                              **options)
    finally:
        os.chdir(old)


def described(selection) -> list[tuple[str, str, bool]]:
    return [(script.id, script.selected_by, script.forced) for script in selection]


def test_database_then_files_then_directories(tree):
    selection = select_tree(tree, "cdir/,eee,all")
    assert described(selection) == [("aaa", "category", False), ("bbb", "category", False),
                                     ("eee", "file path", False),
                                     ("fff", "directory", False)]
    assert [s.by_name for s in selection] == [False, False, True, False]
    assert selection.scripts[0].entry == ScriptEntry("aaa.nse", ("safe",))
    assert selection.scripts[0].path == tree / "data" / "scripts" / "aaa.nse"
    assert selection.scripts[2].entry is None and selection.scripts[2].path == Path("eee.nse")
    assert selection.ids == ["aaa", "bbb", "eee", "fff"]


def test_directory_loads_its_nse_files_sorted(tree):
    selection = select_tree(tree, "sub/")
    # only regular files ending in .nse; sorted (Nmap: lfs.dir order); the directory
    # inner.nse is skipped (Nmap tries to load it and fails with "Is a directory")
    assert described(selection) == [("aaa", "directory", False), ("ccc", "directory", False),
                                    ("ddd", "directory", False)]
    assert not any(s.by_name for s in selection)


def test_directory_needs_a_slash(tree):
    with pytest.raises(SelectionError) as caught:
        select_tree(tree, "sub")
    path = tree / "data" / "scripts" / "sub"
    assert str(caught.value) == f"directory '{path}' found, but will not match without '/'"
    with pytest.raises(SelectionError, match="^directory 'cdir' found, but will not match"):
        select_tree(tree, "cdir")
    assert isinstance(caught.value, UserError)


@pytest.mark.parametrize("values, item", [
    ("nothing", "nothing"), ("not all", "not all"), ("'banner'", "'banner'"),
    ("aaa,http-title and", "http-title and"), ("++aaa", "+aaa"), ("+ zzz", " zzz"),
    ("version", "version"), ("Aaa", "Aaa"),
])
def test_unmatched_item(tree, values, item):
    with pytest.raises(SelectionError) as caught:
        select_tree(tree, values)
    assert str(caught.value) == f"'{item}' did not match a category, filename, or directory"


def test_allowed_unmatched_item(tree):
    assert select_tree(tree, "version", allow_unmatched=("version",)).ids == []
    assert select_tree(tree, "aaa,version", allow_unmatched=("version",)).ids == ["aaa"]
    with pytest.raises(SelectionError, match="'x' did not match"):
        select_tree(tree, "x,version", allow_unmatched=("version",))


def test_duplicate_ids(tree):
    with pytest.raises(SelectionError) as caught:
        select_tree(tree, "aaa,sub/")
    assert str(caught.value) == "duplicate script ID: 'aaa'"
    with pytest.raises(SelectionError, match="^duplicate script ID: 'aaa'$"):
        select_tree(tree, "sub/aaa.nse,aaa")


def test_same_file_twice_loads_once(tree):
    absolute = str(tree / "data" / "scripts" / "aaa.nse")
    assert described(select_tree(tree, f"aaa,{absolute}")) == [("aaa", "name", False)]
    assert select_tree(tree, "sub/,sub/").ids == ["aaa", "ccc", "ddd"]
    assert select_tree(tree, "eee,eee.nse").ids == ["eee"]
    assert select_tree(tree, "aaa,aaa.nse,aa*").ids == ["aaa"]


def test_missing_database_file_is_a_warning(tree):
    selection = select_tree(tree, "gone,aaa")
    assert selection.ids == ["aaa"]
    assert selection.warnings == (
        "Warning: Could not load 'gone.nse': no path to file/directory: gone.nse",)


def test_db_dir_is_tried_first(tree):
    data = tree / "data" / "scripts"
    entries = [ScriptEntry("aaa.nse", ("safe",))]
    selection = select_scripts([Item("safe", False)], entries, lambda _: None, data)
    assert selection.scripts[0].path == data / "aaa.nse"


def test_force_flags_and_first_item_wins(tree):
    # a text given twice is one item whose flag is the last one [obs: banner,+banner forces]
    assert described(select_tree(tree, "aaa,+aaa")) == [("aaa", "name", True)]
    assert described(select_tree(tree, "+aaa,aaa")) == [("aaa", "name", False)]
    assert described(select_tree(tree, "aaa,safe,+aaa")) == [("aaa", "name", True)]
    # different texts: the first that matches decides "how" and "forced"
    assert described(select_tree(tree, "+safe,aaa")) == [("aaa", "category", True)]
    assert described(select_tree(tree, "aaa,+safe")) == [("aaa", "name", False)]
    assert described(select_tree(tree, "safe,+ safe")) == [("aaa", "category", False)]
    assert described(select_tree(tree, "eee,+eee")) == [("eee", "file path", True)]
    assert described(select_tree(tree, "+sub/")) == [("aaa", "directory", True),
                                                     ("ccc", "directory", True),
                                                     ("ddd", "directory", True)]


def test_every_entry_is_matched_against_every_item(tree):
    selection = select_tree(tree, "aaa,default")
    assert described(selection) == [("aaa", "name", False), ("bbb", "category", False)]


# ---------------------------------------------------------------------------------------------
# Runlevels


def test_runlevels():
    assert runlevels(["a"], {}) == {"a": 1}
    assert runlevels(["a", "b", "c"], {"a": ["b"], "b": ["c"], "c": []}) == {
        "a": 3, "b": 2, "c": 1}
    # unselected dependencies are ignored
    assert runlevels(["a", "b"], {"a": ["b", "zz"], "b": ["c"]}) == {"a": 2, "b": 1}
    assert runlevels(["a", "b", "c", "d"], {"d": ["a", "c"], "c": ["b"], "a": []}) == {
        "a": 1, "b": 1, "c": 2, "d": 3}


@pytest.mark.parametrize("order, dependencies, chain", [
    (["a", "b", "c"], {"a": ["b"], "b": ["c"], "c": ["b"]}, "a->b->c->b"),
    (["c", "b", "a"], {"a": ["b"], "b": ["c"], "c": ["b"]}, "c->b->c"),
    (["d"], {"d": ["d"]}, "d->d"),
    (["h", "g", "f"], {"f": ["g"], "g": ["h"], "h": ["f"]}, "h->f->g->h"),
])
def test_circular_dependency(order, dependencies, chain):
    with pytest.raises(SelectionError) as caught:
        runlevels(order, dependencies)
    assert str(caught.value) == f"circular dependency in chain `{chain}`"


def test_long_chain_does_not_overflow():
    names = [f"s{i}" for i in range(5000)]
    levels = runlevels(names, {a: [b] for a, b in itertools.pairwise(names)})
    assert levels["s0"] == 5000 and levels["s4999"] == 1


# ---------------------------------------------------------------------------------------------
# Nmap as the reference


@pytest.mark.parametrize("expression", [
    "default", "safe and discovery", "(default or vuln) and not intrusive", "http-*",
    "ssh-* and not brute", '"ssh-* and not brute"', "ALL", "Default", "not all", "andx",
    "*.nse", "http-title.nse", "http-title.NSE", "not(all)or(banner)", "Banner",
    "http-title and", "vuln and not dos and notx", "ssh-*-*", "not not banner",
    "brute or safe and default", "not default and not intrusive and http-*",
    "(((http-title)))", "TRUE and banner", "true and (false or banner)", "not \tbanner",
    "smb-vuln-* or ms*", "*-brute and not (http-* or ssh-*)", "a*", "version",
])
def test_expressions_match_nmap(nmap_path, real_entries, tmp_path, expression):
    expected = help_ids(nmap_path, expression, env=nmap_env(tmp_path))
    try:
        ours = [s.id for s in select_real(real_entries, expression)]
    except SelectionError as error:
        ours = str(error)
    assert ours == expected


@pytest.mark.parametrize("values", [
    "banner,safe and http-title,http-* and safe,+ssh-hostkey,dns-nsid or default",
    "default or address-info", "address-info or default", "(false and address-info) or default",
    "not acarsd-info and safe", "all and address-info",
    "banner,+banner", "+banner,banner", "+safe,banner", "safe,+banner", "banner,safe,+banner",
    "safe,banner,+safe", "safe,+ safe", "safe,+SAFE", "+discovery,banner,safe",
    " +banner ", "banner,,,http-title", "++banner",
])
def test_selected_by_and_forced_match_nmap(nmap_path, real_entries, tmp_path, values):
    expected = nmap_selected(nmap_path, values, env=nmap_env(tmp_path))
    try:
        ours = ours_as_logged(select_scripts(split_items([values]), real_entries,
                                             nmap_search(NMAP_SCRIPTS.parent)))
    except SelectionError as error:
        ours = str(error)
    assert ours == expected


@pytest.mark.parametrize("values", [
    "sub", "sub/", "sub/ccc", "aaa,sub/ccc.nse", "aaa,sub/", "eee", "cdir/", "cdir",
    "./eee.nse", "ee*", "eee,+eee", "+eee,eee", "eee.nse,eee", "gone,aaa", "sub/,sub/",
    "nothing", "aaa,bbb,default",
])
def test_paths_match_nmap(nmap_path, tree, values):
    (tree / "data" / "scripts" / "sub" / "inner.nse").rmdir()  # Nmap fails on it
    data = tree / "data"
    expected = nmap_selected(nmap_path, values, "--datadir", str(data), cwd=tree / "cwd",
                             env=nmap_env(tree))
    try:
        ours = ours_as_logged(select_tree(tree, values))
    except SelectionError as error:
        ours = str(error)
    if isinstance(expected, list):  # Nmap logs path items and directories in hash order
        expected, ours = sorted(expected), sorted(ours)
    assert ours == expected


def test_cycle_chain_matches_nmap(nmap_path, tmp_path):
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    dependencies = {"a": ["b"], "b": ["c"], "c": ["b"], "d": []}
    for name, deps in dependencies.items():
        (scripts / f"{name}.nse").write_text(SCRIPT % ", ".join(f'"{d}"' for d in deps))
    (scripts / "script.db").write_text("".join(
        f'Entry {{ filename = "{name}.nse", categories = {{ "safe", }} }}\n'
        for name in dependencies))
    result = subprocess.run([nmap_path, "--datadir", str(tmp_path), "--script-help", "safe"],
                            check=False, capture_output=True, text=True, timeout=60,
                            env=nmap_env(tmp_path))
    expected = re.search(r"nse_main\.lua:\d+: (.*)", result.stdout + result.stderr).group(1)
    with pytest.raises(SelectionError) as caught:
        runlevels(["a", "b", "c", "d"], dependencies)
    assert str(caught.value) == expected == "circular dependency in chain `a->b->c->b`"
