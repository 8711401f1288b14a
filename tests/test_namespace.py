"""The package's public namespace is ``__all__``: ``dir()`` and ``help()`` show only it."""

from __future__ import annotations

import json
import re

from conftest import run_python

# A fresh process: another test may have imported joblib or loaded the lazy names already.
_REPORT = """
import json, pydoc, sys
import subinterpreter_parallelism as sp
text = pydoc.render_doc(sp, renderer=pydoc.plaintext)
print(json.dumps({"all": sp.__all__, "dir": dir(sp), "help": text,
                  "stray": [n for n in ("sys", "TYPE_CHECKING", "annotations") if hasattr(sp, n)]}))
"""


def _report() -> dict:
    done = run_python(_REPORT, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _section(text: str, title: str) -> str:
    """The indented lines under one of pydoc's upper-case headings (empty when absent)."""
    match = re.search(rf"^{title}\n((?:[ \t].*\n|\n)*)", text, re.MULTILINE)
    return match.group(1) if match else ""


def test_dir_is_the_public_api():
    report = _report()
    assert report["dir"] == sorted(report["all"])
    assert report["stray"] == []


def test_every_public_name_resolves_and_has_a_docstring():
    import subinterpreter_parallelism as sp

    for name in sp.__all__:
        value = getattr(sp, name)
        assert (getattr(value, "__doc__", None) or "").strip(), f"{name} has no docstring"


def test_help_lists_only_the_public_api():
    report = _report()
    text, public = report["help"], set(report["all"])
    functions = set(re.findall(r"^    (\w+)\(", _section(text, "FUNCTIONS"), re.MULTILINE))
    data = set(re.findall(r"^    (\w+) = ", _section(text, "DATA"), re.MULTILINE))
    assert functions and functions <= public, functions - public
    assert data <= public | {"__all__"}, data - public
    classes = _section(text, "CLASSES")
    # The classes' own entries (``class Name(...)``), not the bases pydoc lists in its tree.
    defined = set(re.findall(r"^    class (\w+)\(", classes, re.MULTILINE))
    assert defined and defined <= public, defined - public
    # No entry of the module's own names a helper (PACKAGE CONTENTS lists the submodules, as
    # for any package).
    own = "".join(_section(text, title) for title in ("CLASSES", "FUNCTIONS", "DATA"))
    assert not re.findall(r"^    (TYPE_CHECKING|annotations|sys|_[a-z]\w*)\b", own, re.MULTILINE)


def test_compat_keeps_the_names_it_held_before_the_split():
    """``compat`` re-exports what it held before it was split by feature: the same objects as
    their modules' (its tests now use those modules)."""
    from subinterpreter_parallelism import _refusal, check, compat, fallback, info

    homes = (_refusal, check, fallback, info)
    for name in compat.__all__:
        value = getattr(compat, name)
        assert any(getattr(home, name, None) is value for home in homes), name
