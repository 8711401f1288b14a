"""Workers that behave like the caller's program: logging, warnings and output (forwarding.py).

Each behaviour is checked under pytest's capture (capsys/capfd, caplog, recwarn) and in a
fresh process. The tasks live in a helper module written next to this file's temporary
directory (importing this test module in a worker would import pytest there).
"""

from __future__ import annotations

import logging
import re
import shutil
import sys
import tempfile
import threading
import warnings
from pathlib import Path

import pytest

import subinterpreter_parallelism as sp
from conftest import TESTS, run_python

HELPER_SOURCE = '''\
"""Tasks for test_forwarding (written by it at import). Imports stay inside the functions:
one test checks that a fresh worker has not imported logging or warnings."""
import sys


def say(*lines, stream="stdout", end="\\n"):
    out = getattr(sys, stream)
    for line in lines:
        print(line, end=end, file=out)
    return len(lines)


def say_many(tag, count, width):
    for i in range(count):
        print(f"<{tag}:{i}:" + "x" * width + ">")
    return count


def say_from_thread(text):
    import threading

    thread = threading.Thread(target=print, args=(text,))
    thread.start()
    thread.join()
    return "joined"


def say_partial(text):
    from subinterpreter_parallelism import _native

    print(text, end="")
    return _native.worker_index()


def write_long(n):
    sys.stdout.write("y" * n)
    return n


def stream_facts():
    return type(sys.stdout).__name__, sys.stdout.isatty(), sys.stdout.encoding


def write_bytes(*chunks, stream="stdout"):
    buffer = getattr(sys, stream).buffer
    return [buffer.write(chunk) for chunk in chunks]


def text_then_bytes():
    print("text ", end="")
    sys.stdout.buffer.write(b"then bytes\\n")
    sys.stdout.buffer.write(b"partial bytes ")
    print("then text")
    return "mixed"


def copy_to_stdout(path):
    import shutil

    with open(path, "rb") as source:
        shutil.copyfileobj(source, sys.stdout.buffer)
    return "copied"


def bytes_from_thread(data):
    import threading

    thread = threading.Thread(target=sys.stdout.buffer.write, args=(data,))
    thread.start()
    thread.join()
    return "joined"


def stream_attributes(stream="stdout"):
    out = getattr(sys, stream)
    return {
        "name": out.name,
        "mode": out.mode,
        "line_buffering": out.line_buffering,
        "encoding": out.encoding,
        "errors": out.errors,
        "buffer.mode": out.buffer.mode,
        "buffer.name": out.buffer.name,
        "writable": (out.writable(), out.buffer.writable()),
    }


def print_text(text, **reconfigure):
    if reconfigure:
        sys.stdout.reconfigure(**reconfigure)
    print(text)
    return sys.stdout.encoding, sys.stdout.errors


def bad_writes():
    failures = []
    for call in (lambda: sys.stdout.buffer.write("text"), lambda: sys.stdout.write(b"bytes"),
                 lambda: sys.stdout.reconfigure(encoding="no-such-codec")):
        try:
            call()
        except Exception as exc:
            failures.append(type(exc).__name__)
    return failures


def log(name, level, message, *args, **extra):
    import logging

    logging.getLogger(name).log(level, message, *args, extra=extra or None)
    return "logged"


def log_from_thread(name, count):
    import logging
    import threading

    def chatter():
        for i in range(count):
            logging.getLogger(name).warning("from a thread %d", i)

    thread = threading.Thread(target=chatter)
    thread.start()
    thread.join()
    return "joined"


def log_exception(name):
    import logging

    try:
        1 / 0
    except ZeroDivisionError:
        logging.getLogger(name).exception("division went wrong")
    return "logged"


def log_unpicklable(name):
    import logging
    import threading

    logging.getLogger(name).warning("carrying a lock", extra={"lock": threading.Lock()})
    return "logged"


def warn(message, category=UserWarning):
    import warnings

    warnings.warn(message, category)  # WARN-LINE
    return "warned"


def warn_many(count):
    import warnings

    for _ in range(count):
        warnings.warn("the same warning", UserWarning)
    return count


class HelperWarning(UserWarning):
    pass


def warn_custom(message):
    import warnings

    warnings.warn(message, HelperWarning)
    return "warned"


def loaded(*names):
    return {name: name in sys.modules for name in names}
'''

_HELPER_DIR = Path(tempfile.mkdtemp(prefix="sp-forwarding-"))
(_HELPER_DIR / "_forwarding_helper.py").write_text(HELPER_SOURCE)
sys.path.insert(0, str(_HELPER_DIR))  # workers copy sys.path when a pool is created

import _forwarding_helper as helper

HELPER_FILE = str(_HELPER_DIR / "_forwarding_helper.py")
WARN_LINE = next(i for i, line in enumerate(HELPER_SOURCE.splitlines(), 1) if "WARN-LINE" in line)
SUBPROCESS_ENV = {"PYTHONPATH": f"{_HELPER_DIR}:{TESTS}"}


@pytest.fixture(scope="module", autouse=True)
def _remove_helper_dir():
    yield
    shutil.rmtree(_HELPER_DIR, ignore_errors=True)


def run(code: str, *args: str) -> object:
    return run_python(code, *args, env=SUBPROCESS_ENV, timeout=90)


# ─── output ────────────────────────────────────────────────────────────────────────────────


def test_print_reaches_capsys_before_the_result(capsys):
    with sp.InterpreterPoolExecutor(2) as pool:
        assert pool.submit(helper.say, "first", "second").result(timeout=30) == 2
        captured = capsys.readouterr()
        assert captured.out == "first\nsecond\n"
        assert pool.submit(helper.say, "oops", stream="stderr").result(timeout=30) == 1
        captured = capsys.readouterr()
        assert captured.err == "oops\n" and captured.out == ""


def test_partial_line_is_sent_when_the_task_ends(capsys):
    with sp.InterpreterPoolExecutor(1) as pool:
        pool.submit(helper.say, "no newline", end="").result(timeout=30)
        assert capsys.readouterr().out == "no newline"
        pool.submit(helper.say, " continued").result(timeout=30)
        assert capsys.readouterr().out == " continued\n"


def test_lines_from_workers_never_mix(capsys):
    with sp.InterpreterPoolExecutor(2) as pool:
        futures = [pool.submit(helper.say_many, tag, 300, 200) for tag in "abcd"]
        assert [f.result(timeout=60) for f in futures] == [300] * 4
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1200
    pattern = re.compile(r"<([abcd]):(\d+):x{200}>")
    assert all(pattern.fullmatch(line) for line in lines), [
        line for line in lines if not pattern.fullmatch(line)
    ][:3]
    for tag in "abcd":  # each task's lines in its own order
        assert [int(m[2]) for m in map(pattern.fullmatch, lines) if m[1] == tag] == list(range(300))


def test_workers_partial_lines_do_not_share_a_line(capsys):
    with sp.InterpreterPoolExecutor(2) as pool:
        futures = [pool.submit(helper.say_partial, f"[part{i}]") for i in range(40)]
        worker_of = {f"[part{i}]": f.result(timeout=30) for i, f in enumerate(futures)}
    assert set(worker_of.values()) <= {0, 1}
    lines = capsys.readouterr().out.split("\n")
    assert sorted(re.findall(r"\[part\d+\]", "".join(lines))) == sorted(worker_of)
    for line in lines:  # a worker may continue its own line, never another worker's
        assert len({worker_of[part] for part in re.findall(r"\[part\d+\]", line)}) <= 1, line


def test_long_line_without_newline_arrives_whole(capsys):
    with sp.InterpreterPoolExecutor(1) as pool:
        assert pool.submit(helper.write_long, 50_000).result(timeout=30) == 50_000
    assert capsys.readouterr().out == "y" * 50_000


def test_print_from_a_thread_inside_a_task(capsys):
    with sp.InterpreterPoolExecutor(1) as pool:
        assert pool.submit(helper.say_from_thread, "from a thread").result(timeout=30) == "joined"
    assert capsys.readouterr().out == "from a thread\n"


def test_initializer_output_arrives(capsys):
    with sp.InterpreterPoolExecutor(2, initializer=print, initargs=("initializer says hi",)) as pool:
        assert pool.submit(helper.say, "task").result(timeout=30) == 1
    out = capsys.readouterr().out
    assert sorted(out.splitlines()) == ["initializer says hi", "initializer says hi", "task"]


def test_output_reaches_a_redirected_stdout(capsys):
    import contextlib
    import io

    buffer = io.StringIO()
    with sp.InterpreterPoolExecutor(1) as pool, contextlib.redirect_stdout(buffer):
        pool.submit(helper.say, "into the buffer").result(timeout=30)
    assert buffer.getvalue() == "into the buffer\n"
    assert capsys.readouterr().out == ""


def test_forwarding_stream_facts():
    with sp.InterpreterPoolExecutor(1) as pool:
        assert pool.submit(helper.stream_facts).result(timeout=30) == ("ForwardingStream", False, "utf-8")
    with sp.InterpreterPoolExecutor(1, output="fd") as pool:
        assert pool.submit(helper.stream_facts).result(timeout=30)[0] == "TextIOWrapper"


def test_bytes_reach_the_callers_buffer_as_they_are(capsysbinary):
    with sp.InterpreterPoolExecutor(1) as pool:
        data = [b"\xff\xfe not UTF-8\n", b"\x00\x01", b" no newline"]
        assert pool.submit(helper.write_bytes, *data).result(timeout=30) == [len(d) for d in data]
        assert capsysbinary.readouterr().out == b"".join(data)
        assert pool.submit(helper.write_bytes, b"to stderr\n", stream="stderr").result(timeout=30) == [10]
        assert pool.submit(helper.write_bytes, memoryview(b"a view\n")).result(timeout=30) == [7]
        captured = capsysbinary.readouterr()
        assert captured.err == b"to stderr\n" and captured.out == b"a view\n"


def test_text_and_bytes_keep_their_order(capsys):
    with sp.InterpreterPoolExecutor(1) as pool:
        assert pool.submit(helper.text_then_bytes).result(timeout=30) == "mixed"
    assert capsys.readouterr().out == "text then bytes\npartial bytes then text\n"


def test_shutil_copyfileobj_to_stdout_buffer(capsysbinary, tmp_path):
    data = bytes(range(256)) * 100 + b"\nlast line\n"
    (tmp_path / "data.bin").write_bytes(data)
    with sp.InterpreterPoolExecutor(1) as pool:
        assert pool.submit(helper.copy_to_stdout, str(tmp_path / "data.bin")).result(timeout=30) == "copied"
    assert capsysbinary.readouterr().out == data


def test_bytes_from_a_thread_inside_a_task(capsysbinary):
    with sp.InterpreterPoolExecutor(1) as pool:
        assert pool.submit(helper.bytes_from_thread, b"thread bytes\n").result(timeout=30) == "joined"
    assert capsysbinary.readouterr().out == b"thread bytes\n"


def test_bytes_into_a_text_only_stdout(capsys):
    import contextlib
    import io

    text = io.StringIO()
    with sp.InterpreterPoolExecutor(1) as pool, contextlib.redirect_stdout(text):
        pool.submit(helper.write_bytes, "caf\u00e9\n".encode(), b"\xff\n").result(timeout=30)
    assert text.getvalue() == "caf\u00e9\n\ufffd\n"


def test_forwarded_streams_answer_like_a_text_wrapper():
    with sp.InterpreterPoolExecutor(1) as pool:
        facts = pool.submit(helper.stream_attributes).result(timeout=30)
        callers = getattr(sys.stdout, "name", "<stdout>")  # pytest's capture has a name of its own
        assert facts["name"] == callers and facts["mode"] == "w" and facts["line_buffering"] is True
        assert facts["buffer.mode"] == "wb" and facts["buffer.name"] == callers
        assert facts["encoding"] == sys.stdout.encoding and facts["errors"] == sys.stdout.errors
        assert facts["writable"] == (True, True)
        assert pool.submit(helper.bad_writes).result(timeout=30) == ["TypeError", "TypeError", "LookupError"]


def test_forwarded_streams_have_the_callers_encoding_and_errors():
    result = run_python(
        """
        import sys
        import subinterpreter_parallelism as sp, _forwarding_helper as helper
        with sp.InterpreterPoolExecutor(1) as pool:
            facts = pool.submit(helper.stream_attributes).result()
            print(facts["name"], facts["encoding"], facts["errors"], sys.stdout.errors)
            print(pool.submit(helper.print_text, "caf\u00e9").result())
            print("caf\u00e9")
            try:
                pool.submit(helper.print_text, "caf\u00e9", errors="strict").result()
            except UnicodeEncodeError:
                print("nor can a task")
            print(pool.submit(helper.print_text, "caf\u00e9", errors="replace").result())
        """,
        env={**SUBPROCESS_ENV, "PYTHONIOENCODING": "ascii:backslashreplace"},
        timeout=90,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "<stdout> ascii backslashreplace backslashreplace",  # the real stdout's name, too
        "caf\\xe9",
        "('ascii', 'backslashreplace')",
        "caf\\xe9",
        "nor can a task",
        "caf?",
        "('ascii', 'replace')",
    ], result.stdout


def test_output_fd_goes_to_the_file_descriptors(capfd):
    with sp.InterpreterPoolExecutor(1, output="fd") as pool:
        pool.submit(helper.say, "straight to fd 1").result(timeout=30)
        pool.submit(helper.say, "straight to fd 2", stream="stderr").result(timeout=30)
    captured = capfd.readouterr()
    assert "straight to fd 1\n" in captured.out
    assert "straight to fd 2\n" in captured.err


def test_output_in_a_subprocess():
    result = run("""
        import contextlib, io, sys
        import subinterpreter_parallelism as sp, _forwarding_helper as helper
        with sp.InterpreterPoolExecutor(2) as pool:
            print("main before", flush=True)
            pool.submit(helper.say, "task line").result()
            pool.submit(helper.say, "task error", stream="stderr").result()
            buffer = io.StringIO()
            with contextlib.redirect_stdout(buffer):
                pool.submit(helper.say, "redirected").result()
            print("buffer:", buffer.getvalue().strip())
        with sp.InterpreterPoolExecutor(1, output="fd") as pool:
            pool.submit(helper.say, "via fd").result()
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["main before", "task line", "buffer: redirected", "via fd"]
    assert result.stderr == "task error\n"


# ─── logging ───────────────────────────────────────────────────────────────────────────────


def test_records_reach_caplog_with_levels_and_worker(caplog):
    caplog.set_level(logging.INFO)
    logging.getLogger("forwarding.quiet").setLevel(logging.ERROR)
    try:
        with sp.InterpreterPoolExecutor(2) as pool:
            calls = [
                ("forwarding.app", logging.INFO, "hello %s", "world"),
                ("forwarding.app", logging.DEBUG, "too detailed"),
                ("forwarding.quiet", logging.WARNING, "quiet logger drops this"),
                ("forwarding.quiet", logging.ERROR, "but not this"),
            ]
            for call in calls:
                assert pool.submit(helper.log, *call).result(timeout=30) == "logged"
    finally:
        logging.getLogger("forwarding.quiet").setLevel(logging.NOTSET)
    records = [r for r in caplog.records if r.name.startswith("forwarding.")]
    assert [(r.name, r.levelname, r.getMessage()) for r in records] == [
        ("forwarding.app", "INFO", "hello world"),
        ("forwarding.quiet", "ERROR", "but not this"),
    ]
    for record in records:
        assert record.sp_worker in (0, 1)
        assert record.threadName == f"sp-worker-{record.sp_worker}"
        assert record.pathname == HELPER_FILE and record.funcName == "log"
        assert record.thread != threading.get_ident()


def test_records_from_a_thread_inside_a_task(caplog):
    with sp.InterpreterPoolExecutor(1) as pool:
        assert pool.submit(helper.log_from_thread, "forwarding.thread", 5).result(timeout=30) == "joined"
    records = [r for r in caplog.records if r.name == "forwarding.thread"]
    assert [r.getMessage() for r in records] == [f"from a thread {i}" for i in range(5)]
    assert all(r.threadName.startswith("Thread-") for r in records)  # the task's own thread


def test_main_side_levels_apply_at_delivery(caplog):
    caplog.set_level(logging.INFO)
    with sp.InterpreterPoolExecutor(1) as pool:
        caplog.set_level(logging.ERROR)  # raised after the pool started: the caller drops INFO
        pool.submit(helper.log, "forwarding.later", logging.INFO, "dropped").result(timeout=30)
        pool.submit(helper.log, "forwarding.later", logging.ERROR, "kept").result(timeout=30)
    assert [r.getMessage() for r in caplog.records if r.name == "forwarding.later"] == ["kept"]


def test_forward_logging_level_forwards_below_the_configured_levels(caplog):
    with sp.InterpreterPoolExecutor(1, forward_logging=logging.DEBUG) as pool:
        caplog.set_level(logging.DEBUG)  # lowered after the pool started
        pool.submit(helper.log, "forwarding.dbg", logging.DEBUG, "fine detail").result(timeout=30)
    assert [r.getMessage() for r in caplog.records if r.name == "forwarding.dbg"] == ["fine detail"]


def test_logged_exception_and_unpicklable_extra(caplog):
    with sp.InterpreterPoolExecutor(1) as pool:
        pool.submit(helper.log_exception, "forwarding.exc").result(timeout=30)
        pool.submit(helper.log_unpicklable, "forwarding.exc").result(timeout=30)
    first, second = [r for r in caplog.records if r.name == "forwarding.exc"]
    assert first.levelno == logging.ERROR and first.getMessage() == "division went wrong"
    assert "ZeroDivisionError: division by zero" in first.exc_text
    assert "ZeroDivisionError" in caplog.text
    assert second.getMessage() == "carrying a lock" and "lock" in second.lock


def test_forward_logging_off(caplog):
    caplog.set_level(logging.DEBUG)
    with sp.InterpreterPoolExecutor(1, forward_logging=False) as pool:
        pool.submit(helper.log, "forwarding.off", logging.ERROR, "nobody hears").result(timeout=30)
    assert not [r for r in caplog.records if r.name == "forwarding.off"]


def test_workers_do_not_import_logging_or_warnings_until_used(caplog):
    with sp.InterpreterPoolExecutor(1, forward_logging=False, forward_warnings=False) as pool:
        bare = pool.submit(helper.loaded, "logging", "warnings").result(timeout=30)
    assert bare["logging"] is False  # (3.12 workers start with warnings imported, 3.13 without)
    with sp.InterpreterPoolExecutor(1) as pool:
        assert pool.submit(helper.loaded, "logging", "warnings").result(timeout=30) == bare
        pool.submit(helper.log, "forwarding.lazy", logging.WARNING, "hooked late").result(timeout=30)
    assert [r.getMessage() for r in caplog.records if r.name == "forwarding.lazy"] == ["hooked late"]


def test_logging_in_a_subprocess():
    result = run("""
        import logging
        import subinterpreter_parallelism as sp, _forwarding_helper as helper
        logging.basicConfig(level=logging.INFO, format="%(threadName)s|%(name)s|%(levelname)s|%(message)s")
        with sp.InterpreterPoolExecutor(2) as pool:
            pool.submit(helper.log, "app", logging.INFO, "info %d", 1).result()
            pool.submit(helper.log, "app", logging.DEBUG, "debug").result()
            pool.submit(helper.log_exception, "app").result()
    """)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert re.fullmatch(r"sp-worker-[01]\|app\|INFO\|info 1", lines[0]), lines
    assert re.fullmatch(r"sp-worker-[01]\|app\|ERROR\|division went wrong", lines[1]), lines
    assert "Traceback (most recent call last):" in result.stderr
    assert "debug" not in result.stderr and "Exception ignored" not in result.stderr


# ─── warnings ──────────────────────────────────────────────────────────────────────────────


def test_warning_reaches_recwarn_with_the_task_location(recwarn):
    with sp.InterpreterPoolExecutor(1) as pool:
        assert pool.submit(helper.warn, "mind the gap").result(timeout=30) == "warned"
    [w] = [w for w in recwarn.list if "mind the gap" in str(w.message)]
    assert w.category is UserWarning
    assert (w.filename, w.lineno) == (HELPER_FILE, WARN_LINE)


def test_pytest_warns_with_a_pool_created_before():
    with sp.InterpreterPoolExecutor(1) as pool:
        with pytest.warns(DeprecationWarning, match="old api"):
            pool.submit(helper.warn, "old api", DeprecationWarning).result(timeout=30)
        with pytest.warns(helper.HelperWarning, match="custom"):
            pool.submit(helper.warn_custom, "custom category").result(timeout=30)


def test_caller_filters_apply():
    with sp.InterpreterPoolExecutor(2) as pool:
        with warnings.catch_warnings(record=True) as log:
            warnings.simplefilter("default")
            warnings.filterwarnings("ignore", message="ignored", category=UserWarning)
            warnings.filterwarnings("ignore", module="_forwarding_helper", category=RuntimeWarning)
            pool.submit(helper.warn, "ignored by message").result(timeout=30)
            pool.submit(helper.warn, "ignored by module", RuntimeWarning).result(timeout=30)
            # "default": once per location for the whole pool, not once per worker.
            futures = [pool.submit(helper.warn_many, 50) for _ in range(4)]
            assert [f.result(timeout=30) for f in futures] == [50] * 4
        assert [str(w.message) for w in log] == ["the same warning"]
        with warnings.catch_warnings(record=True) as log:
            warnings.simplefilter("always")
            assert pool.submit(helper.warn_many, 3).result(timeout=30) == 3
        assert len(log) == 3


def test_error_filter_at_pool_creation_fails_the_task():
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        with sp.InterpreterPoolExecutor(1) as pool:
            future = pool.submit(helper.warn, "now an error")
            with pytest.raises(UserWarning, match="now an error") as info:
                future.result(timeout=30)
            # other categories are still forwarded, not raised
            with pytest.warns(DeprecationWarning):
                pool.submit(helper.warn, "still a warning", DeprecationWarning).result(timeout=30)
    assert "WARN-LINE" in str(info.value.__cause__)


def test_error_filter_added_later_is_logged(caplog):
    with sp.InterpreterPoolExecutor(1) as pool, warnings.catch_warnings():
        warnings.simplefilter("error")
        assert pool.submit(helper.warn, "late error").result(timeout=30) == "warned"
    [record] = [r for r in caplog.records if r.name == "subinterpreter_parallelism"]
    assert '"error" filter added after the pool started' in record.getMessage()
    assert "late error" in caplog.text


def test_forward_warnings_off(recwarn):
    with sp.InterpreterPoolExecutor(1, forward_warnings=False) as pool:
        pool.submit(helper.warn, "stays in the worker").result(timeout=30)
    assert not [w for w in recwarn.list if "stays in the worker" in str(w.message)]


def test_warnings_in_a_subprocess():
    code = """
        import subinterpreter_parallelism as sp, _forwarding_helper as helper
        with sp.InterpreterPoolExecutor(1) as pool:
            try:
                print(pool.submit(helper.warn, "from a task").result())
            except UserWarning as exc:
                print("raised:", exc)
    """
    result = run(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "warned\n"
    assert f"{HELPER_FILE}:{WARN_LINE}: UserWarning: from a task" in result.stderr
    result = run(code, "-W", "error")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "raised: from a task\n"
    result = run(code, "-W", "ignore")
    assert result.returncode == 0 and result.stdout == "warned\n" and result.stderr == ""


def test_bad_options():
    with pytest.raises(ValueError):
        sp.InterpreterPoolExecutor(1, output="file")
    with pytest.raises(TypeError):
        sp.InterpreterPoolExecutor(1, forward_logging="yes")
    with pytest.raises(TypeError):
        sp.InterpreterPoolExecutor(1, forward_warnings=None)
