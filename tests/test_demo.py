"""The demo (`make demo`, `python demo.py`, `python -m subinterpreter_parallelism demo`): its
tables, verdicts, the load, and the fairness of what its workers import. No speed is checked."""

from __future__ import annotations

import ast
import importlib.util
import json
import multiprocessing
import re
import sys
from pathlib import Path

import pytest

from conftest import run_python
from subinterpreter_parallelism import _demo_sections as sections
from subinterpreter_parallelism._demo_table import TABLE_MODULE, TableRow, table_verdicts
from subinterpreter_parallelism.bench import SUITE_ROOT

ROOT = Path(__file__).resolve().parent.parent

# In a fresh process: the demo forks process pools, which must not happen in a process that
# has an own-GIL interpreter pool (see the README's caveats).
DEMO = """
import os, sys
from subinterpreter_parallelism import demo
load = float(sys.argv[1])
os.getloadavg = lambda: (load, load / 2, load / 4)
os.cpu_count = lambda: 4
raise SystemExit(demo.main(sys.argv[2:]))
"""


@pytest.mark.timeout(180)
@pytest.mark.parametrize("load, busy", [(1.5, False), (2.5, True)])
def test_demo_prints_the_load_and_warns_when_busy(load, busy):
    done = run_python(
        DEMO, argv=[str(load), "--seed-only", "--tasks", "2", "--n", "1000", "--workers", "1"], timeout=150
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "| sub-interpreters (this project) |" in out
    expected = f"load average (1, 5, 15 min) at start: {load:.2f}, {load / 2:.2f}, {load / 4:.2f} on 4 CPUs"
    assert expected in out
    warning = f"warning: this machine is busy: load average {load:.2f} on 4 CPUs"
    assert (warning in out) is busy
    assert out.index(expected) < out.index("| method |")
    if busy:
        assert out.index(warning) < out.index("| method |")


@pytest.mark.timeout(600)
def test_quick_demo_shows_every_row_and_section(tmp_path):
    """`python demo.py --quick` as a user runs it: part 1 with a start-up per parallel row and
    the Swift row labelled as a reference, part 2's six sections each with a verdict, the
    summary, and the load at start and end."""
    done = run_python("", str(ROOT / "demo.py"), "--quick", "--workers", "2", timeout=540)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    rows = {line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("| ")}
    default = "forkserver" if sys.version_info >= (3, 14) else "fork"
    expected_rows = [
        f"multiprocessing ({default}, the default start method)",
        "sub-interpreters (this project)",
        "threads (ThreadPoolExecutor)",
        "serial (one task at a time)",
        "reference: the same loop in Swift, not Python (threads)",
    ]
    if sys.version_info >= (3, 14):
        expected_rows += ["multiprocessing (fork)", "stdlib InterpreterPoolExecutor"]
    for row in expected_rows:
        assert row in rows, (row, out)
    for row in expected_rows[:3]:  # the parallel Python rows show their start-up in ms
        assert rows[row].split("|")[2].strip().endswith("ms"), rows[row]
    assert '["benchmarks.workloads", "cpu_timed", ("int loop", 300000)]' in out
    titles = [
        "many small tasks",
        "a data-heavy task",
        "start-up against spawn and forkserver",
        "memory per worker",
        "a big read-only table that every worker reads",
        "cancelling a running task",
    ]
    for number, title in enumerate(titles, 1):
        assert f"### 2.{number} {title}" in out
    assert out.count("\nverdict: ") == len(titles) + 1  # part 1's and one per section
    assert "| this project (cancel() stopped it) |" in out
    assert "| threads (cancel() returned False: it ran to its end) |" in out
    summary = out[out.index("## Summary of this run") :]
    for label in (
        "- ahead of every alternative: ",
        "- even (within 5%) with the best alternative: ",
        "- behind",
    ):
        assert label in summary
    counted = sum(
        int(line.split(": ")[1].split(":")[0]) for line in summary.splitlines() if line.startswith("- ")
    )
    assert counted == len(titles) + 2  # part 1's, one per section, two for the table's two figures
    assert "a big read-only table: new pool to first result" in summary
    assert "a big read-only table: memory per worker" in summary
    assert "load average (1, 5, 15 min) at start: " in out and "load average (1, 5, 15 min) at end: " in out


# The regression of issue 26: the demo's workers imported the demo module itself (argparse,
# platform, dataclasses, concurrent.futures.process), 60-95 ms per worker that the process rows
# never paid. The module named in the sub-interpreter row's calls must import nothing heavy,
# and not this package (which would load its native extension into every spawned process).
RECORD_CALLS = """
import json, os, sys
import subinterpreter_parallelism as sp
from subinterpreter_parallelism import demo
original = sp.parallel
modules = set()
def recording(*calls, **options):
    modules.update(call[0] for call in calls)
    return original(*calls, **options)
sp.parallel = recording
demo.main(["--seed-only", "--tasks", "2", "--n", "1000", "--workers", "1"])
print("MODULES", json.dumps(sorted(modules)))
"""

LIGHT = """
import importlib, json, sys
before = set(sys.modules)
importlib.import_module(sys.argv[1])
print(json.dumps(sorted(set(sys.modules) - before)))
"""


@pytest.mark.timeout(180)
def test_the_demos_task_module_imports_nothing_heavy():
    done = run_python(RECORD_CALLS, timeout=150)
    assert done.returncode == 0, done.stderr
    modules = json.loads(done.stdout.split("MODULES ", 1)[1])
    assert modules
    for module in modules:
        loaded = run_python(LIGHT, argv=[module], env={"PYTHONPATH": str(SUITE_ROOT)}, timeout=60)
        assert loaded.returncode == 0, loaded.stderr
        new = json.loads(loaded.stdout)
        heavy = [m for m in new if m in {"argparse", "platform", "dataclasses", "concurrent.futures.process"}]
        ours = [m for m in new if m.split(".")[0] == "subinterpreter_parallelism"]
        assert not heavy and not ours, (module, new)


def test_the_table_module_imports_nothing_heavy():
    """The worker side of the shared-table section is light too: it is imported in every
    worker of every way, and its imports would count in their first result and memory."""
    loaded = run_python(LIGHT, argv=[TABLE_MODULE], env={"PYTHONPATH": str(SUITE_ROOT)}, timeout=60)
    assert loaded.returncode == 0, loaded.stderr
    new = json.loads(loaded.stdout)
    assert TABLE_MODULE in new
    heavy = [m for m in new if m in {"argparse", "platform", "dataclasses", "concurrent.futures.process"}]
    ours = [m for m in new if m.split(".")[0] == "subinterpreter_parallelism"]
    assert not heavy and not ours, new


# The shared-table section alone, with a small table (one pool per way) to keep it short.
TABLE_SECTION = """
from subinterpreter_parallelism import _demo_table
_demo_table.SIZES[True] = (30_000, 3_000, 1)
verdicts = _demo_table.shared_table(2, True, print, "2.5")
print("VERDICTS", [(v.title, v.word) for v in verdicts])
"""

FIGURE = r"[0-9.]+ (us|ms|s)"


@pytest.mark.timeout(240)
def test_shared_table_section_measures_every_way():
    """Every way gets the table its own way and shows both figures; the caller's share is shown
    where the caller holds the table (fork's dict, the SharedMap), and the verdict names both
    figures. The PSS figures see the copies: a worker that loads its own dict adds at least
    most of the dict that the caller's copy took (in a child process or in an interpreter of
    this process alike)."""
    done = run_python(TABLE_SECTION, timeout=200)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "### 2.5 a big read-only table that every worker reads" in out
    assert "30,000 entries" in out and "3,000 random keys" in out and "median of 1 pools" in out
    assert "load average (1, 5, 15 min) now: " in out
    lines = [line for line in out.splitlines() if line.startswith("| ") and not line.startswith("| way")]
    rows = {line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[2:-1]] for line in lines}
    fork = sections.process_way("fork").label
    loader = sections.process_way(
        "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    ).label
    own = ["this project, a dict per worker", loader]
    if sys.version_info >= (3, 14):
        own.append("stdlib InterpreterPoolExecutor")
    assert set(rows) == {fork, "this project, SharedMap", *own}, out
    assert lines[-1].startswith("| this project, SharedMap |")
    for label, (how, caller, first, first_vs, added, added_vs) in rows.items():
        assert re.fullmatch(FIGURE, first) and re.fullmatch("[0-9.]+ MB", added), (label, first, added)
        if label in (fork, "this project, SharedMap"):
            assert re.fullmatch(FIGURE + ", -?[0-9.]+ MB", caller), (label, caller)
        else:
            assert caller == "—" and how == "its own dict, loaded from the pickle", label
        assert (first_vs == added_vs == "—") is (label == "this project, SharedMap")
    dict_mb = float(rows[fork][1].split(", ")[1].split()[0])
    assert dict_mb > 1, rows[fork]
    for label in own:
        assert float(rows[label][4].split()[0]) >= 0.8 * dict_mb, (label, rows[label], dict_mb)
    assert re.search(
        r"\nThe table: a [0-9.]+ MB pickle; [0-9.]+ MB as a SharedMap, built from the dict in ", out
    )
    assert out.count("\nverdict: ") == 1
    verdict = out.split("\nverdict: ", 1)[1].splitlines()[0]
    assert verdict.startswith("new pool to first result: ") and ". Memory per worker: " in verdict
    verdicts = ast.literal_eval(out.split("VERDICTS ", 1)[1])
    assert [title for title, _ in verdicts] == [
        "a big read-only table: new pool to first result",
        "a big read-only table: memory per worker",
    ]
    assert all(word in ("ahead", "even", "behind") for _, word in verdicts)


def test_the_table_section_gives_a_verdict_per_figure():
    """Fork's inherited dict can give the first result sooner while a SharedMap takes less
    memory: the section then counts once behind and once ahead, each figure with its line."""
    this, fork, server = _way("this project", True), _way("fork"), _way("forkserver")
    rows = [
        TableRow(fork, "inherited", (0.5, 50e6), 0.02, 20e6),
        TableRow(server, "own", None, 0.4, 60e6),
        TableRow(this, "handle", (0.001, 20e6), 0.1, 5e6),
    ]
    first, memory = table_verdicts(rows)
    assert (first.title, first.word, memory.title, memory.word) == (
        "a big read-only table: new pool to first result",
        "behind",
        "a big read-only table: memory per worker",
        "ahead",
    )
    assert first.ratio == pytest.approx(0.2) and memory.ratio == pytest.approx(4.0)
    assert first.text == (
        "new pool to first result: behind: this project 100.0 ms, fork 20.0 ms; ahead of forkserver; "
        "behind fork (5.00x)"
    )
    assert memory.text == (
        "memory per worker: ahead of every alternative: this project 5.0 MB, the best other (fork) "
        "20.0 MB, 4.00x"
    )


def _way(label: str, subject: bool = False) -> sections.Way:
    return sections.Way(label, lambda workers: None, subject=subject)  # type: ignore[arg-type, return-value]


def test_verdict_words_and_lines():
    assert sections.verdict_word(1.06) == "ahead"
    assert sections.verdict_word(1.04) == "even" and sections.verdict_word(1 / 1.04) == "even"
    assert sections.verdict_word(1 / 1.06) == "behind"
    this, fork, spawn, threads = _way("this project", True), _way("fork"), _way("spawn"), _way("threads")
    lines: list[str] = []
    ahead = sections._verdict("t", [(fork, 2.0), (threads, 3.0), (this, 1.0)], "s", lines.append)
    assert ahead.word == "ahead" and ahead.ratio == 2.0
    assert (
        lines[-1]
        == "\nverdict: ahead of every alternative: this project 1.00 s, the best other (fork) 2.00 s, 2.00x"
    )
    mixed = sections._verdict(
        "t", [(fork, 0.5), (threads, 1.02), (spawn, 3.0), (this, 1.0)], "s", lines.append
    )
    assert mixed.word == "behind"
    assert lines[-1] == (
        "\nverdict: behind: this project 1.00 s, fork 500.0 ms; ahead of spawn; even with threads; behind fork (2.00x)"
    )
    even = sections._verdict("t", [(fork, 1.03e6), (this, 1.0e6)], "B", lines.append)
    assert even.word == "even" and "| fork | 1.0 MB | 1.03x ours |" in lines


def test_a_figure_of_zero_is_behind_without_dividing_by_it():
    """An alternative's figure can be 0 (a PSS growth lost in the noise): ours is behind it,
    and the verdict says so instead of failing on ours / 0."""
    this, fork = _way("this project", True), _way("fork")
    word, text, ratio = sections.compare([(fork, 0.0), (this, 2e6)], "B")
    assert (word, ratio) == ("behind", 0.0)
    assert text == "behind: this project 2.0 MB, fork 0.0 MB; behind fork (0.0 MB)"


def test_plot_is_written(tmp_path):
    if importlib.util.find_spec("matplotlib") is None:  # not imported here: see below
        pytest.skip("matplotlib is not installed")
    results = {
        "python": "3.13.0",
        "cpus": 2,
        "tasks": 8,
        "n": 1000,
        "workers": 2,
        "rows": [
            {"method": "sub-interpreters (this project)", "total_s": [1.0], "startup_s": [0.02]},
            {"method": "serial (one task at a time)", "total_s": [2.0], "startup_s": []},
        ],
        "verdicts": [
            {"title": "many small tasks", "word": "ahead", "ratio": 3.0, "text": ""},
            {"title": "start-up", "word": "behind", "ratio": 0.3, "text": ""},
        ],
        "load_average": [(1.0, 1.0, 1.0), (1.2, 1.0, 1.0)],
    }
    data, path = tmp_path / "results.json", tmp_path / "demo.png"
    data.write_text(json.dumps(results))
    # In a fresh process: matplotlib (numpy's thread pool) leaves a native thread behind.
    code = (
        "import json, pathlib, sys; from subinterpreter_parallelism._demo_plot import plot; "
        "plot(json.loads(pathlib.Path(sys.argv[1]).read_text()), sys.argv[2])"
    )
    done = run_python(code, argv=[str(data), str(path)], timeout=120)
    assert done.returncode == 0, done.stderr
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_seed_verdict_compares_the_parallel_rows_and_says_when_threads_won():
    from subinterpreter_parallelism.demo import Row, seed_verdict

    mp = Row("multiprocessing (fork, the default start method)", total_s=[1.0, 1.2, 1.1])
    ours = Row("sub-interpreters (this project)", total_s=[1.0, 1.0, 1.0])
    threads = Row("threads (ThreadPoolExecutor)", parallel=False, total_s=[2.0, 2.0, 2.0])
    serial = Row("serial (one task at a time)", parallel=False, total_s=[2.0, 2.0, 2.0])
    swift = Row("reference: the same loop in Swift, not Python (threads)", python=False, total_s=[0.01])
    verdict = seed_verdict([mp, ours, threads, serial, swift], runs=3)
    assert verdict.word == "ahead" and verdict.ratio == pytest.approx(1.1)
    assert verdict.text == (
        "ahead: sub-interpreters took 1.00 s, multiprocessing (fork, the default start method) 1.10 s "
        "(1.10x; per run 1.00, 1.20, 1.10)"
    )
    threads.total_s = [0.5]
    verdict = seed_verdict([mp, ours, threads, serial, swift], runs=1)
    assert verdict.word == "ahead"  # threads are not a parallel row
    assert "threads (ThreadPoolExecutor) beat every parallel row (0.50 s): no core was free" in verdict.text


def test_start_all_waits_until_every_worker_has_answered():
    """A worker that came up early can take both ready() tasks of a pool of 2: the demo asks
    again with a longer hold until both workers answered, and keeps each one's first start."""
    from concurrent.futures import Future

    class EarlyWorkerPool:
        def __init__(self):
            self.holds = []

        def submit(self, fn, hold):
            self.holds.append(hold)
            answer = 2 if len(self.holds) == 4 else 1  # worker 2 answers only the 4th task
            future = Future()
            future.set_result((answer, answer, float(len(self.holds))))
            return future

    pool = EarlyWorkerPool()
    first = sections._start_all(pool, 2, 0.01)  # type: ignore[arg-type]
    assert first == {(1, 1): 1.0, (2, 2): 4.0}
    assert pool.holds == [0.01, 0.01, 0.02, 0.02]
