"""The reliability suite checks itself: every test here has a time limit, and tests/conftest.py's
leftover check (no worker threads, no sub-interpreters after a test) applies here and works."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from rel_support import HERE, TESTS, run_python

pytestmark = pytest.mark.timeout(120)


def test_leftover_check_and_time_limit_apply_to_every_reliability_test(request):
    assert "no_leftovers" in request.fixturenames
    ini_timeout = float(request.config.getini("timeout") or 0)
    items = [item for item in request.session.items if Path(str(item.path)).parent == HERE]
    assert items
    for item in items:
        assert "no_leftovers" in item.fixturenames, item.nodeid
        marker = item.get_closest_marker("timeout")
        assert (marker is not None and marker.args and marker.args[0] > 0) or ini_timeout > 0, item.nodeid


@pytest.mark.slow
def test_leftover_check_fails_a_test_that_leaves_a_pool_or_an_interpreter(tmp_path):
    """Runs pytest on two leaky tests, with tests/conftest.py's fixture: both must fail."""
    (tmp_path / "conftest.py").write_text(
        textwrap.dedent(f"""
        import importlib.util, sys
        spec = importlib.util.spec_from_file_location("sp_tests_conftest", {str(TESTS / "conftest.py")!r})
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        no_leftovers = module.no_leftovers
    """)
    )
    (tmp_path / "test_leaky.py").write_text(
        textwrap.dedent("""
        import subinterpreter_parallelism as sp

        KEPT = []

        def test_leaves_a_pool():
            pool = sp.InterpreterPoolExecutor(1)
            assert pool.submit(pow, 2, 3).result(timeout=30) == 8
            KEPT.append(pool)  # never shut down

        def test_leaves_an_interpreter():
            try:
                import _interpreters as interpreters
            except ImportError:
                import _xxsubinterpreters as interpreters
            KEPT.append(interpreters.create())

        def test_clean():
            with sp.InterpreterPoolExecutor(1) as pool:
                assert pool.submit(pow, 2, 3).result(timeout=30) == 8
    """)
    )
    result = run_python(
        "",
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:randomly",
        str(tmp_path / "test_leaky.py"),
        timeout=110,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "ERROR at teardown of test_leaves_a_pool" in output, output
    assert "threads left behind" in output or "native threads left behind" in output, output
    assert "ERROR at teardown of test_leaves_an_interpreter" in output, output
    assert "sub-interpreters left behind" in output, output
    assert "3 passed, 2 errors" in output, output
