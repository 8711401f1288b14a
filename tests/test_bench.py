"""Smoke tests of the benchmark suite's plumbing (python/subinterpreter_parallelism/_suite/benchmarks/),
with tiny sizes.

They check that cells run in fresh processes and return well-formed records, that the report,
the targets, the README section and the plot are produced from them, and that the command
line finds the suite. They do not check any speed.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from subinterpreter_parallelism.bench import SUITE_ROOT

ROOT = Path(__file__).resolve().parent.parent
if str(SUITE_ROOT) not in sys.path:
    sys.path.insert(0, str(SUITE_ROOT))

from benchmarks import plan, report, suite
from benchmarks.seed_design import unavailable_reason


def _params(workload: str) -> dict[str, Any]:
    params = plan.build_params(quick=True, cores=2, unit_cost=1e-7)[workload]
    if workload == "tiny":
        params.update(submit_count=50, main_count=20, map_count=2_000, map_count_per_item=50, seed_count=2)
    if workload == "data":
        params.update(sizes=[1_000, 100_000], trips=[2, 1])
    if workload == "queue":
        params.update(handoffs=5, handoff_warmups=1, handoff_min=2, pairs=200, repeats=1)
    if workload == "cancel":
        params.update(repeats=1)
    return params


def _valid(record: dict[str, Any]) -> bool:
    base = {"workload", "case", "competitor"} <= record.keys()
    outcome = ("samples" in record and record["samples"] and "unit" in record) or "na" in record
    return bool(base and outcome)


@pytest.mark.parametrize("workload", ["tiny", "data", "queue", "cancel", "startup"])
def test_this_project_cell_returns_records(workload: str) -> None:
    records, stderr = suite.run_cell(workload, "this", _params(workload), timeout=60)
    assert records, stderr
    assert all(_valid(r) for r in records), (records, stderr)
    assert all("error" not in r for r in records), records


def test_tiny_cell_measures_a_main_function() -> None:
    records, _ = suite.run_cell("tiny", "this", _params("tiny"), timeout=60)
    cases = {r["case"]: r for r in records}
    assert set(cases) == {"submit", "submit __main__", "map", "map chunked"}
    assert cases["map"]["extra"]["items"] == 2_000


def test_library_workloads_give_the_same_results_everywhere() -> None:
    """Each library workload runs cold then warm, and every competitor computes the same results
    (the checksum of the outputs): the workers really ran the libraries."""
    missing = [
        name
        for name in ("markdown", "pygments", "sqlglot", "dateutil", "networkx")
        if importlib.util.find_spec(name) is None
    ]
    if missing:
        pytest.skip(f"the `bench` extra is not installed ({', '.join(missing)} missing)")
    params = {**plan.build_params(quick=True, cores=2, unit_cost=1e-7)["libraries"], "scale": 0.05}
    checksums: dict[str, dict[str, int]] = {}
    for key in ("serial", "this"):
        records, stderr = suite.run_cell("libraries", key, params, timeout=120)
        assert all("error" not in r for r in records), (records, stderr)
        assert [r["case"] for r in records] == [
            f"{name} {kind}" for name in plan.LIBRARY_NAMES for kind in ("cold", "warm")
        ]
        checksums[key] = {r["case"]: r["extra"]["checksum"] for r in records}
    assert checksums["serial"] == checksums["this"]
    records, _ = suite.run_cell("libraries", "seed", {**params, "libraries": ["dateutil"]}, timeout=60)
    assert [r.get("na", "")[:24] for r in records] == ["a new interpreter per ca"] * 2


def test_widths_cell_measures_each_width() -> None:
    params = plan.build_params(quick=True, cores=2, unit_cost=1e-7, widths=[1, 3])["widths"]
    params.update(
        hold_s=0.01,
        short={**params["short"], "tasks_per_worker": 2},
        long={**params["long"], "tasks_per_worker": 1},
    )
    records, stderr = suite.run_cell("widths", "this", params, timeout=120)
    assert all(_valid(r) and "error" not in r for r in records), (records, stderr)
    metrics = {(r["extra"]["workers"], r["extra"]["metric"]) for r in records}
    assert metrics == {
        (w, m)
        for w in (1, 3)
        for m in (
            "first result",
            "all started",
            "memory per worker",
            "interpreter start-up per worker",
            "short tasks",
            "long tasks",
        )
    }
    startup = [r for r in records if r["extra"]["metric"] == "interpreter start-up per worker"]
    assert [r["extra"]["count"] for r in startup] == [1, 3]  # every worker's interpreter, from stats()
    serial, _ = suite.run_cell("widths", "serial", params, timeout=60)
    assert {r["extra"]["metric"] for r in serial} == {"short tasks", "long tasks"}


def test_scaling_run_from_the_command_line(tmp_path: Path) -> None:
    out, png = tmp_path / "s.json", tmp_path / "s.png"
    command = [
        sys.executable,
        "-m",
        "subinterpreter_parallelism",
        "bench",
        "--scaling",
        "--quick",
        "--widths",
        "2,1",
        "--competitors",
        "serial,this",
        "--json",
        str(out),
    ]
    plot = importlib.util.find_spec("matplotlib") is not None
    proc = subprocess.run(
        command + (["--plot", str(png)] if plot else []),
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    results = json.loads(out.read_text())
    assert {r["workload"] for r in results["records"]} == {"widths", "table-widths"}
    assert results["params"]["widths"]["widths"] == [1, 2]
    assert results["params"]["table-widths"]["widths"] == [1, 2]
    assert [t["target"][:27] for t in results["targets"]] == [
        "new pool of 2 workers, firs",
        "new pool of 16 workers, fir",
        "memory per worker at 16 wor",
        "shared table at 16 workers:",
    ]
    assert "| 2 workers: first result |" in proc.stdout
    if plot:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = subprocess.run([*command[:-2], "--widths", "0,2"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "at least 1" in bad.stderr


def test_library_inputs_are_deterministic() -> None:
    from benchmarks.libraries import LIBRARIES

    for library in LIBRARIES:
        assert library.calls(0.05) == library.calls(0.05), library.name
    sizes = {library.name: len(library.calls(1.0)) for library in LIBRARIES}
    assert sizes == {"markdown": 160, "pygments": 20, "sqlglot": 100, "dateutil": 20, "networkx": 4}
    assert sum(len(batch) for (batch,) in LIBRARIES[3].calls(1.0)) == 5_000


def test_process_pool_cell_and_not_applicable_cases() -> None:
    records, stderr = suite.run_cell("cancel", "fork", _params("cancel"), timeout=60)
    assert [r.get("na", "") for r in records] == ["cannot stop a running task: cancel() returned False"] * 2
    assert "DeprecationWarning" not in stderr  # the fork happened before any thread existed


def test_failing_cell_becomes_an_error_record() -> None:
    records, _ = suite.run_cell("startup", "no-such-competitor", {"workers": 1, "repeats": 1}, timeout=60)
    assert len(records) == 1 and "KeyError" in records[0]["error"]


def test_rounds_merge_into_one_record_per_case() -> None:
    def rec(key: str, **fields: Any) -> dict[str, Any]:
        return {"workload": "cpu", "case": "warm", "competitor": key, **fields}

    merged = suite.merge_rounds(
        [
            rec("a", samples=[1.0], cpu_percent=[150.0]),
            rec("b", error="boom"),
            rec("a", samples=[2.0]),
            rec("b", samples=[3.0]),
            rec("a", error="late"),
        ]
    )
    a, b = merged
    assert a["samples"] == [1.0, 2.0] and a["cpu_percent"] == [150.0, None] and a["rounds"] == 2
    assert a["round_errors"] == ["late"]
    assert b["samples"] == [3.0] and b["round_errors"] == ["boom"]


@pytest.mark.skipif(unavailable_reason() is not None, reason="no private interpreter modules")
def test_seed_design_runs_calls_in_new_interpreters() -> None:
    # In a fresh process with the suite on PYTHONPATH, as the cells run it: the new
    # interpreters import `benchmarks.workloads` from there (they do not inherit sys.path).
    import os

    from conftest import run_python

    done = run_python(
        """
        import pytest
        from benchmarks.seed_design import SeedDesignExecutor
        from benchmarks.workloads import make_payload, tiny

        executor = SeedDesignExecutor(2)
        try:
            assert [f.result(timeout=30) for f in [executor.submit(tiny, i) for i in range(3)]] == [1, 2, 3]
            assert executor.submit(len, make_payload(300)).result(timeout=30) == 300
            with pytest.raises(TypeError):
                executor.submit(lambda: 1)
        finally:
            executor.shutdown()
        print("ok")
    """,
        env={"PYTHONPATH": os.pathsep.join([str(SUITE_ROOT), os.environ.get("PYTHONPATH", "")])},
    )
    assert done.returncode == 0 and done.stdout == "ok\n", done.stderr


def _fake_results() -> dict[str, Any]:
    """Results shaped like a run's, with made-up samples, to test the rendering alone."""
    params = plan.build_params(quick=False, cores=2, unit_cost=1e-7)
    records: list[dict[str, Any]] = []

    def add(workload: str, case: str, key: str, value: float, unit: str = "s", better: str = "lower") -> None:
        records.append(
            {
                "workload": workload,
                "case": case,
                "competitor": key,
                "unit": unit,
                "better": better,
                "samples": [value, value * 1.1],
                "cpu_percent": [190.0, None],
                "extra": {"bytes": 100_000_000} if workload == "data" else {},
            }
        )

    for key, factor in (("serial", 2.0), ("fork", 1.1), ("backport", 1.2), ("this", 1.0)):
        add("cpu", "warm", key, 1.2 * factor)
        add("scaling", "1 workers", key, 3.0, "tasks/s", "higher")
        if key != "serial":
            add("scaling", "2 workers", key, 6.0 / factor, "tasks/s", "higher")
            add("data", "100 MB", key, 0.1 * factor * 4)
    for key, value in (
        ("serial", 1e-7),
        ("threads", 1e-5),
        ("fork", 1e-4),
        ("backport", 5e-5),
        ("this", 5e-6),
    ):
        add("tiny", "submit", key, value)
        add("tiny", "map", key, value / 10)
    for key, value in (("fork", 6e-7), ("this", 5e-7)):  # a chunk size that suits fork better
        add("tiny", "map chunked", key, value)
    for key, value in (("backport", 9e-5), ("this", 3e-5)):
        add("tiny", "submit __main__", key, value)
    add("startup", "first result", "this", 0.02)
    add("queue", "hand-off", "this", 30e-6)
    add("queue", "put+get", "this", 1.5e-6)
    add("cancel", "cancelled", "this", 0.004)
    records.append({"workload": "cancel", "case": "cancelled", "competitor": "fork", "na": "cannot"})
    records.append({"workload": "memory", "case": "*", "competitor": "fork", "error": "timed out after 9 s"})
    return {
        "mode": "full",
        "duration_s": 1.0,
        "params": params,
        "records": records,
        "competitors": {
            "serial": "serial",
            "threads": "threads",
            "fork": "fork",
            "backport": "backport",
            "this": "this",
        },
        "skipped": {"loky": "not installed"},
        "machine": {
            "cpu_model": "Test CPU",
            "cpu_count": 2,
            "usable_cpus": 2,
            "python": "3.13.0",
            "build": {"swift": "6"},
            "load_average": [0.1, 0, 0],
            "date": "today",
        },
    }


def test_report_targets_and_readme(tmp_path: Path) -> None:
    results = _fake_results()
    results["targets"] = report.evaluate_targets(results)
    met = {t["target"]: t["met"] for t in results["targets"]}
    assert met["8 CPU-bound tasks of ~0.3 s: >= 1.85x serial throughput"] is True
    assert met["8 CPU-bound tasks: faster than ProcessPool (fork)"] is True
    assert met["20,000 tiny tasks via submit: >= 7x faster than the backport"] is True
    assert met["100 MB bytes argument + result: >= 3x faster than ProcessPool"] is False
    assert met["Queue hand-off median < 50 us"] is True
    assert met["20,000 tiny tasks via submit: per task <= 0.8x ThreadPoolExecutor's"] is True  # 0.5x
    assert met["tiny tasks of a `__main__` function: at least as fast as the stdlib pool"] is True
    # map: this 0.5 us (chunked) against fork's best, 0.6 us (chunked): 1.2x, short of 1.5x.
    assert met["map per item: >= 1.5x faster than a fork pool at its best chunk size"] is False
    text = report.render(results)
    assert "Test CPU" in text and "| 8 × py_factorial" in text and "skipped: loky" in text
    assert "1.1x faster than fork" in text
    assert "timeout" in text and "n/a" in text

    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{report.README_BEGIN}\nold\n{report.README_END}\nrest\n")
    report.update_readme(readme, results, "docs/plot.png")
    updated = readme.read_text()
    assert "old" not in updated and "intro" in updated and "rest" in updated
    assert "![" in updated and "Test CPU" in updated
    bare = tmp_path / "bare.md"
    bare.write_text("no markers")
    with pytest.raises(ValueError):
        report.update_readme(bare, results, None)
    with pytest.raises(ValueError):
        report.update_targets(bare, results)


def test_figures_and_targets_go_to_separate_pages(tmp_path: Path) -> None:
    """The users' page gets the figures only; the targets, met or not, go to the contributors'."""
    results = _fake_results()
    results["targets"] = report.evaluate_targets(results)
    page, guide = tmp_path / "benchmarks.md", tmp_path / "CONTRIBUTING.md"
    page.write_text(f"# Benchmarks\n{report.README_BEGIN}\n{report.README_END}\nafter\n")
    guide.write_text(f"# Contributing\n{report.TARGETS_BEGIN}\nold\n{report.TARGETS_END}\nafter\n")
    report.update_readme(page, results, None)
    report.update_targets(guide, results)
    figures, targets = page.read_text(), guide.read_text()
    assert "| 8 × py_factorial" in figures and "Test CPU" in figures
    assert "| target | measured | met |" not in figures and "Queue hand-off median < 50 us" not in figures
    assert "| target | measured | met |" in targets and "Queue hand-off median < 50 us" in targets
    assert "Test CPU" in targets and "old" not in targets and "| 8 × py_factorial" not in targets
    assert figures.endswith("after\n") and targets.endswith("after\n")


def test_plot_is_written(tmp_path: Path) -> None:
    if importlib.util.find_spec("matplotlib") is None:
        pytest.skip("matplotlib is not installed")
    # In a fresh process: matplotlib leaves a native thread behind, which the leak check forbids.
    data, path = tmp_path / "r.json", tmp_path / "plot.png"
    data.write_text(json.dumps(_fake_results()))
    code = (
        "import json, pathlib, sys; from benchmarks.plot import plot; "
        "plot(json.loads(pathlib.Path(sys.argv[1]).read_text()), pathlib.Path(sys.argv[2]))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(data), str(path)],
        cwd=SUITE_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_command_line_runs_a_small_suite(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "subinterpreter_parallelism",
            "bench",
            "--quick",
            "--only",
            "startup,cancel",
            "--competitors",
            "serial,threads,this",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "## Summary (medians)" in proc.stdout and "| new pool of 2 workers" in proc.stdout
    results = json.loads(out.read_text())
    assert results["machine"]["build"] and results["targets"]
    assert {r["competitor"] for r in results["records"]} == {"serial", "threads", "this"}


def test_bench_runs_from_an_installed_package(tmp_path: Path) -> None:
    """What an install holds (setuptools' build_py: the packages pyproject.toml lists, plus the
    built extension) runs the suite, away from the source tree."""
    import os
    import shutil

    from subinterpreter_parallelism import _native

    if not (ROOT / "setup.py").is_file():
        pytest.skip("not run from a source tree")
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    native = Path(_native.__file__)  # this Python's build (a clone may hold several)
    shutil.copyfile(native, site / "subinterpreter_parallelism" / native.name)
    env = {**os.environ, "PYTHONPATH": str(site)}
    where = subprocess.run(
        [sys.executable, "-c", "import subinterpreter_parallelism.bench as b; print(b.find_suite_root())"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=env,
    )
    assert where.stdout.strip() == str(site / "subinterpreter_parallelism" / "_suite"), where.stderr
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "subinterpreter_parallelism",
            "bench",
            "--quick",
            "--only",
            "startup",
            "--competitors",
            "serial,this",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert "| new pool of 2 workers" in proc.stdout


def test_command_line_renders_a_saved_run(tmp_path: Path) -> None:
    saved, readme = tmp_path / "r.json", tmp_path / "README.md"
    saved.write_text(json.dumps(_fake_results()))
    readme.write_text(f"# x\n{report.README_BEGIN}\n{report.README_END}\n")
    guide = tmp_path / "CONTRIBUTING.md"
    guide.write_text(f"# y\n{report.TARGETS_BEGIN}\n{report.TARGETS_END}\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "subinterpreter_parallelism",
            "bench",
            "--load",
            str(saved),
            "--readme",
            str(readme),
            "--targets",
            str(guide),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Test CPU" in proc.stdout and "| 8 × py_factorial" in readme.read_text()
    assert "| target | measured | met |" in guide.read_text()
    assert "| target | measured | met |" not in readme.read_text()


def test_command_line_rejects_unknown_names() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "subinterpreter_parallelism", "bench", "--only", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "unknown workload" in proc.stderr


def test_bench_command_explains_a_missing_suite(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from subinterpreter_parallelism import bench

    assert bench.find_suite_root() == SUITE_ROOT
    monkeypatch.setattr(bench, "find_suite_root", lambda: None)
    assert bench.main(["--quick"]) == 2
    assert "missing from this installation" in capsys.readouterr().err


def _suite_imports() -> dict[str, set[str]]:
    """Module -> the suite's modules it imports, anywhere in it (lazy imports count too)."""
    import ast

    package = SUITE_ROOT / "benchmarks"
    names = {path.stem for path in package.glob("*.py")}
    graph: dict[str, set[str]] = {}
    for path in package.glob("*.py"):
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level == 1 or base.startswith("benchmarks"):
                    parts = base.removeprefix("benchmarks").strip(".").split(".")
                    if parts[0]:
                        found.add(parts[0])
                    else:  # from . import x
                        found |= {alias.name for alias in node.names if alias.name in names}
            elif isinstance(node, ast.Import):
                found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("benchmarks.")}
        graph[path.stem] = (found & names) - {path.stem}
    return graph


def test_the_suite_has_no_import_cycle() -> None:
    graph = _suite_imports()
    assert graph["report"] and graph["suite"]  # the parser sees imports at all
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            raise AssertionError(f"import cycle: {' -> '.join([*path[path.index(module) :], module])}")
        if module in done:
            return
        for target in sorted(graph[module]):
            visit(target, [*path, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])


def test_scenarios_and_report_ask_for_abilities_not_names() -> None:
    """What a competitor can do is declared in competitors.py; scenarios and the report ask
    for an ability, never compare a competitor's key with a name."""
    import re

    pattern = re.compile(r"\bkey\s*(==|!=|in|not in)\s*[(\"']")
    package = SUITE_ROOT / "benchmarks"
    scenarios = sorted(path.name for path in package.glob("scenarios_*.py"))
    assert len(scenarios) >= 8  # the glob sees the scenario modules
    for name in ("scenarios.py", *scenarios, "records.py", "results.py", "summary.py", "targets.py",
                 "report.py", "plot.py", "cell.py"):  # fmt: skip
        text = (package / name).read_text()
        assert not pattern.search(text), (name, pattern.search(text))


def test_competitors_declare_their_abilities() -> None:
    from benchmarks.competitors import COMPETITORS, Ability, by_key

    assert len({c.key for c in COMPETITORS}) == len(COMPETITORS)
    assert [c.key for c in COMPETITORS if c.can(Ability.SUBJECT)] == ["this"]
    serial = by_key("serial")
    assert not serial.can(Ability.PARALLEL) and serial.why_not(Ability.PARALLEL) == "no pool"
    assert by_key("fork").can(Ability.PROCESSES) and by_key("fork").can(Ability.INHERITS_IMPORTS)
    assert not by_key("seed").can(Ability.MAP) and by_key("seed").why_not(Ability.MAP) == "no map of its own"
    for competitor in COMPETITORS:
        assert competitor.can(Ability.QUEUES) == (competitor.queues is not None), competitor.key


def test_a_saved_run_reports_the_abilities_it_recorded() -> None:
    results = _fake_results()
    # A run that declared serial parallel: the report believes the file, not today's registry.
    results["abilities"] = {
        "serial": ["parallel", "map"],
        "fork": ["processes"],
        "backport": [],
        "this": ["subject", "parallel"],
    }
    r = report.Results(results)
    assert r.case_for("scaling", "2 workers", "serial") == "2 workers"
    assert r.having(report.Ability.PROCESSES) == ("fork",)
    assert r.subject == "this"
    without = report.Results(_fake_results())  # an older file: today's abilities
    assert without.case_for("scaling", "2 workers", "serial") == "1 workers"


@pytest.mark.slow
def test_quick_suite_end_to_end(tmp_path: Path) -> None:
    """The whole --quick suite, every competitor (about a minute on 2 cores); the plot too
    where matplotlib (the `bench` extra) is installed."""
    import importlib.util

    plot = importlib.util.find_spec("matplotlib") is not None
    command = [
        sys.executable,
        "-m",
        "subinterpreter_parallelism",
        "bench",
        "--quick",
        "--json",
        str(tmp_path / "r.json"),
    ]
    if plot:
        command += ["--plot", str(tmp_path / "r.png")]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    results = json.loads((tmp_path / "r.json").read_text())
    errors = [r for r in results["records"] if "error" in r and not r["error"].startswith("hangs")]
    assert not errors, errors
    if plot:
        assert (tmp_path / "r.png").stat().st_size > 10_000


# -- (k) CPU time per task (cpu_per_task.py, cpu_report.py) ------------------------------------


def test_cpu_per_task_runs_every_competitor_and_reports() -> None:
    """Every competitor's cell (bare interpreters and the paired cell included) returns one
    CPU time per task, perf's counters where perf can count here, and the report and target
    come from them. No speed is checked."""
    from benchmarks import cpu_per_task, cpu_report

    params = {"task_s": 0.002, "tasks": 2, "workers": 2, "rounds": 1, "pairs": 2}
    data = cpu_per_task.run(params, log=sys.stderr, variants=("default", "gc off"))
    assert not [c for c in data["cells"] if "error" in c], data["cells"]
    expected = {"this", "bare", "fork", "forkserver"} | ({"stdlib"} if sys.version_info >= (3, 14) else set())
    assert set(data["competitors"]) == expected
    for cell in data["cells"]:
        if cell["competitor"] == "paired":
            assert len(cell["paired"]["this"]) == len(cell["paired"]["bare"]) == 2
            assert all(len(batch) == 2 for side in cell["paired"].values() for batch in side)
        else:
            assert len(cell["cpu_s"]) == 2 and all(s > 0 for s in cell["cpu_s"])
            if data["perf"] and cell["competitor"] != "paired":
                assert set(cell["counters"]) == set(cpu_per_task.PERF_EVENTS), cell
    text = "\n".join(cpu_report.render({"cpu_per_task": data}))
    assert "### (k) CPU time per task" in text and "| int loop |" in text
    assert "this / bare, paired in one process" in text and "Variant **gc off**" in text
    (target,) = cpu_report.targets({"cpu_per_task": data})
    assert target["met"] in (True, False) and "int loop" in target["measured"]


def test_perf_stat_output_is_parsed() -> None:
    from benchmarks import cpu_per_task

    text = (
        "# started on Mon Dec  7 16:55:46 2026\n\n"
        "152.85,msec,task-clock,152849922,100.00,0.297,CPUs utilized\n"
        "27,,context-switches,152849922,100.00,176.644,/sec\n"
        "<not counted>,,cpu-migrations,0,100.00,,\n"
        "10102,,page-faults,152849922,100.00,66.091,K/sec\n"
    )
    assert cpu_per_task._parse_perf(text) == {
        "task-clock": 152.85,
        "context-switches": 27.0,
        "page-faults": 10102.0,
    }


def test_bare_interpreters_run_batches_and_report_errors() -> None:
    from benchmarks import cpu_per_task

    bare = cpu_per_task.BareInterpreters(2)
    try:
        traces = bare.batch("int loop", 100, 4)
        assert len(traces) == 4 and {t[0] for t in traces} == {workloads_factorial(100)}
        assert len({t[3] for t in traces}) == 2  # two threads, one per interpreter
        with pytest.raises(RuntimeError, match="a bare interpreter failed"):
            bare.batch("no such loop", 100, 2)
    finally:
        bare.close()


def workloads_factorial(n: int) -> int:
    from benchmarks.workloads import py_factorial

    return py_factorial(n)
