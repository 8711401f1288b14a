"""Every ```python block of README.md, CONTRIBUTING.md and the documentation pages (docs/*.md)
runs as written, each as a script in a fresh process.

A block that needs an optional module carries an HTML comment on the line just before it,
``<!-- needs: dask -->`` (several: ``<!-- needs: dask, distributed -->``), and is skipped
unless those modules import. A block that cannot run on its own (it needs a cluster, say) is
marked ``<!-- not-runnable: why -->`` and skipped; there should be few of those.
"""

from __future__ import annotations

import functools
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import run_python

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
# The pages whose examples must run: the README, the contributors' guide and the docs site.
DOCUMENTS = [README, ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]

_FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
_MARK = re.compile(r"<!--\s*(needs|not-runnable)\s*:\s*(.*?)\s*-->\s*\Z", re.DOTALL)


@dataclass(frozen=True)
class Block:
    line: int
    code: str
    needs: tuple[str, ...] = ()
    not_runnable: str | None = None


def python_blocks(text: str) -> list[Block]:
    """The ```python blocks of ``text``, with the marker on the line just before each."""
    blocks = []
    for match in _FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        mark = _MARK.search(before)
        line = text.count("\n", 0, match.start()) + 1
        if mark is None:
            blocks.append(Block(line, match.group(1)))
        elif mark.group(1) == "needs":
            blocks.append(
                Block(line, match.group(1), needs=tuple(m.strip() for m in mark.group(2).split(",")))
            )
        else:
            blocks.append(Block(line, match.group(1), not_runnable=mark.group(2) or "marked not runnable"))
    return blocks


@functools.cache
def importable(module: str) -> bool:
    """Whether ``module`` imports, tried in a fresh process (numpy's import starts threads)."""
    done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, timeout=120)
    return done.returncode == 0


BLOCKS = python_blocks(README.read_text())
# (document, block) for every page; a missing page (an sdist without docs/) has none.
ALL_BLOCKS = [
    (path.relative_to(ROOT).as_posix(), block)
    for path in DOCUMENTS
    if path.is_file()
    for block in python_blocks(path.read_text())
]


def test_the_parser_sees_markers():
    text = (
        "a\n<!-- needs: dask, numpy -->\n```python\nx = 1\n```\n\n```python\ny = 2\n```\n"
        "<!-- not-runnable: a cluster -->\n```python\nz\n```\n"
    )
    blocks = python_blocks(text)
    assert [b.needs for b in blocks] == [("dask", "numpy"), (), ()]
    assert [b.not_runnable for b in blocks] == [None, None, "a cluster"]
    assert blocks[0].code == "x = 1\n" and blocks[0].line == 3


def test_readme_is_short_and_its_examples_all_run():
    assert len(README.read_text().splitlines()) <= 300
    assert len(BLOCKS) >= 3
    assert all(b.not_runnable is None and not b.needs for b in BLOCKS)


def test_docs_have_python_blocks_and_few_unrunnable_ones():
    if not (ROOT / "docs" / "index.md").is_file():
        pytest.skip("no docs/ in this tree")
    assert len(ALL_BLOCKS) >= 20
    assert sum(b.not_runnable is not None for _, b in ALL_BLOCKS) <= 2


@pytest.mark.timeout(400)
@pytest.mark.parametrize(("document", "block"), ALL_BLOCKS, ids=[f"{doc}:{b.line}" for doc, b in ALL_BLOCKS])
def test_documented_block_runs(document: str, block: Block, tmp_path: Path):
    where = f"{document}:{block.line}"
    if block.not_runnable:
        pytest.skip(f"{where} is marked not runnable: {block.not_runnable}")
    missing = [module for module in block.needs if not importable(module)]
    if missing:
        pytest.skip(f"{where} needs {', '.join(missing)}")
    script = tmp_path / f"block_line{block.line}.py"
    script.write_text(block.code)
    done = run_python("", str(script), timeout=360, cwd=tmp_path)
    assert done.returncode == 0, (
        f"{where} failed (exit {done.returncode})\n{block.code}\n"
        f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-5000:]}"
    )
