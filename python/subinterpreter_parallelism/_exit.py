"""How pools stop when the program does: exit, Ctrl-C, fork, and idle pools stepping aside.

Pools register here (``register``); the executor knows nothing of exit hooks or fork hooks.

- **Exit** (``threading``'s exit hook, before non-daemon threads are joined): every live pool
  finishes its tasks, as the stdlib's executors do; initializers that no task waits for are
  interrupted. When the program ends because of Ctrl-C, every task is interrupted instead
  (``_shutdown_all_at_exit``).
- **Ctrl-C**: the first one interrupts every task of the pools it reaches, wherever it lands
  (a wait of the library, the body of ``with pool:``, exit). Exit (and leaving ``with``) then
  waits only for what can end; a second Ctrl-C gives up waiting.
- **Fork**: an idle pool steps aside before the fork (its interpreters end; it makes new ones
  on its next task), so that the child can run: CPython cannot continue a child forked while
  sub-interpreters exist. A busy pool stays, and the child is refused (ForkGuard.swift).
- **Idle**: the process-wide reusable pool steps aside after a while without tasks
  (``watch_idle``), as loky's reusable executor ends its workers.

The pools handled here are ``executor.InterpreterPoolExecutor`` objects; this module is one of
the executor's rooms and uses its private parts (``_state``, ``_completion``, ``_stepped_aside``...).
"""

from __future__ import annotations

import _thread
import atexit
import os
import signal
import sys
import threading
import time
import weakref
from typing import Any

from . import _native, _versions

__all__ = [
    "CTRL_C_POLL_SECONDS",
    "exiting",
    "interrupt_everything",
    "register",
    "step_aside",
    "stop_after_ctrl_c",
    "wait_for_event",
    "wait_for_shutdown",
    "watch_idle",
]

_live_pools: weakref.WeakSet[Any] = weakref.WeakSet()
# Pools whose constructor failed, held until they have ended: nothing else refers to them, and
# exit must still wait for (or give up on) their workers.
_failed_pools: list[Any] = []
_live_lock = threading.Lock()
# Set once the exit hook has shut the pools down: a pool started later (from an atexit
# function) would still be running while the main interpreter is torn down, which can crash.
_exiting = False
_exit_hook_ran = False

# After Ctrl-C: how long workers may stay in the end of their interpreters (which waits for the
# threads their tasks started) before exit (or leaving `with`) gives up on them.
_EXIT_GRACE_SECONDS = 2.0
# How long a fork waits for an idle pool's interpreters to end (they end in milliseconds; an
# initializer blocked in C would never let them): then the fork goes on without it.
_STEP_ASIDE_SECONDS = 5.0
# How often waits that Ctrl-C must interrupt wake up. CPython handles a signal in the main
# thread at its next bytecode, or when it interrupts a blocked wait; one that arrives between
# the last bytecode and the block interrupts nothing, so it is handled only once the wait ends.
CTRL_C_POLL_SECONDS = 0.05

_WORKER_ACTIVITY_TEXT = {
    _native.WORKER_STARTING: "its initializer has not returned (code blocked inside C sees the "
    "interruption only when it returns to Python)",
    _native.WORKER_IDLE: "idle",
    _native.WORKER_RUNNING: "its task has not returned (code blocked inside C sees the "
    "interruption only when it returns to Python)",
    _native.WORKER_ENDING: "its interpreter is ending",
    _native.WORKER_WARMING: 'it imports a module ahead of tasks (preload="auto"; code blocked inside C '
    "sees the interruption only when it returns to Python)",
    _native.WORKER_ENDING_WITH_THREADS: "its interpreter waits for threads that its tasks started "
    "and that have not ended (an interpreter ends only after its "
    "threads)",
}


def exiting() -> bool:
    """Whether the exit hook has run (no pool may start after it)."""
    return _exiting


def register(pool: Any) -> None:
    """``pool`` is shut down at exit (and steps aside at fork, when idle)."""
    with _live_lock:
        _live_pools.add(pool)


def keep_until_ended(pool: Any) -> None:
    """``pool``'s constructor failed: exit sees it while its workers end (see ``register``)."""
    with _live_lock:
        _failed_pools[:] = [p for p in _failed_pools if not p._state.ended.is_set()]
        _failed_pools.append(pool)
        _live_pools.add(pool)


def wait_for_event(event: threading.Event, timeout: float) -> bool:
    """``event.wait(timeout)``, where a Ctrl-C always comes out as KeyboardInterrupt.

    A KeyboardInterrupt raised inside ``Condition.wait`` while it does not hold its lock (a
    signal handled just after it released the lock, or just before it takes it back) leaves
    ``Event.wait``'s ``with`` releasing an unlocked lock: a RuntimeError whose context is the
    KeyboardInterrupt, which the callers' ``except KeyboardInterrupt`` would miss (and exit
    would then finalize with live workers).
    """
    try:
        return event.wait(timeout)
    except RuntimeError as error:
        if isinstance(error.__context__, KeyboardInterrupt):
            raise error.__context__ from None
        raise


# ─── Ctrl-C ────────────────────────────────────────────────────────────────────────────────


def _wait_until_ended(pools: list[Any], patience: float | None = None) -> list[Any]:
    """Waits until every pool has ended; returns [] then. Returns the pools left early when their
    workers can only wait for threads their tasks started (for ``_EXIT_GRACE_SECONDS``), or
    once ``patience`` seconds (if given) have passed. Polls: called after Ctrl-C, when one
    more Ctrl-C must be seen at once."""
    started = time.monotonic()
    stuck_since: float | None = None
    while True:
        remaining = [pool for pool in pools if not pool._state.ended.is_set()]
        if not remaining:
            return []
        now = time.monotonic()
        if patience is not None and now - started >= patience:
            return remaining
        activities = [
            activity
            for pool in remaining
            for activity in pool._state.native.worker_activities()
            if activity != _native.WORKER_ENDED
        ]
        if activities and all(
            a in (_native.WORKER_ENDING, _native.WORKER_ENDING_WITH_THREADS) for a in activities
        ):
            if stuck_since is None:
                stuck_since = now
            elif now - stuck_since >= _EXIT_GRACE_SECONDS:
                return remaining
        else:
            stuck_since = None
        wait_for_event(remaining[0]._state.ended, CTRL_C_POLL_SECONDS)


def stop_after_ctrl_c(pool: Any) -> None:
    """A KeyboardInterrupt (or, in a task, TaskInterrupted) leaves ``with pool:``: every task is
    interrupted or cancelled, and this waits for the workers to end, as exit after Ctrl-C does:
    not for workers that can only wait for threads their tasks started, and not past a second
    Ctrl-C (which then propagates)."""
    pool.shutdown(wait=False, interrupt=True)
    _wait_until_ended([pool])


def interrupt_everything(pool: Any) -> None:
    """Ctrl-C: close, cancel every task, interrupt the running ones and the initializers.
    Only requests: returns at once (tasks inside C see it when they return to Python)."""
    state = pool._state
    for future in list(state.futures.values()):
        future._sp_cancel(interrupt=True)
    state.native.close()
    state.native.interrupt_all()


def wait_for_shutdown(pool: Any, state: Any, watch: IdleWatch | None) -> None:
    """``shutdown(wait=True)``: waits until ``state`` (the pool's) has ended, then for the pool's
    completion thread, its callback thread and ``watch``'s thread (but the calling thread).
    Ctrl-C while waiting interrupts everything, and propagates."""
    here = threading.current_thread()
    try:
        # Polled: a Ctrl-C that lands just before the wait blocks is seen by CPython
        # only when the wait ends, which here may be never (exit would hang on it).
        while not wait_for_event(state.ended, CTRL_C_POLL_SECONDS):
            pass
    except KeyboardInterrupt:
        interrupt_everything(pool)
        raise
    pool._completion.join()
    for thread in (state.callbacks.thread, watch.thread if watch is not None else None):
        if thread is not None and thread is not here:
            while thread.is_alive():  # polled, for Ctrl-C, as above
                thread.join(CTRL_C_POLL_SECONDS)


# ─── exit ──────────────────────────────────────────────────────────────────────────────────


def _stop_idle_initializers(pool: Any) -> None:
    """At exit: close, and interrupt the initializers still running unless a task waits
    for a worker (which needs them). Without this, an initializer that never returns
    would make exit wait forever."""
    state = pool._state
    state.native.close()
    native = state.native
    if not any(native.phase(f._sp_task_id) == _native.PHASE_PENDING for f in list(state.futures.values())):
        native.interrupt_initializers()


def _shutdown_all_at_exit() -> None:
    """Before the interpreter joins threads at exit: end every live pool's interpreters.

    Pools wait for their tasks as the stdlib executors do. Initializers still running are
    interrupted when no task waits for them. When the program is exiting because of Ctrl-C,
    or Ctrl-C hits during this wait, every task and initializer is interrupted, and exit
    waits only for what can still end: workers stuck ending their interpreters (a thread their
    tasks started never ends) are given up after ``_EXIT_GRACE_SECONDS``, and a second Ctrl-C
    gives up on everything. Giving up prints what was left on stderr and ends the process at
    once, as Ctrl-C would (CPython cannot finalize while a sub-interpreter still runs: 3.12
    aborts with "remaining subinterpreters", 3.13 hangs).
    """
    global _exiting, _exit_hook_ran
    _exit_hook_ran = True
    with _live_lock:
        _exiting = True
        pools = list(_live_pools)
        _failed_pools.clear()
    interrupted = isinstance(getattr(sys, "last_exc", None), KeyboardInterrupt)
    try:
        if not interrupted:
            for pool in pools:
                _stop_idle_initializers(pool)
            for pool in pools:
                pool.shutdown(wait=True)
            return
    except KeyboardInterrupt:
        pass
    try:
        for pool in pools:
            interrupt_everything(pool)
        left = _wait_until_ended(pools)
        if left:
            _give_up_at_exit(left, "Ctrl-C")
    except KeyboardInterrupt:
        _give_up_at_exit(pools, "a second Ctrl-C")
    if interrupted:
        _keep_ctrl_c_exit_status()


def _keep_ctrl_c_exit_status() -> None:
    """A program that ends with an unhandled KeyboardInterrupt exits as killed by SIGINT (so
    that a shell running it stops too). CPython keeps that in one flag for the whole process,
    which every ``exec()`` of a string resets, in any interpreter: an interpreter starting up
    during exit runs site's ``.pth`` lines so, and a task may (``namedtuple``). Once the
    workers have ended, this sets it again, the one way Python offers: an ``exec`` of a
    string that raises KeyboardInterrupt."""
    if sys.flags.interactive or hasattr(sys, "ps1"):
        return  # a REPL's last KeyboardInterrupt is not how the program ends
    try:
        exec("raise KeyboardInterrupt")
    except KeyboardInterrupt:
        pass


def _shutdown_all_at_exit_if_missed() -> None:
    """atexit fallback: Ctrl-C inside another threading exit hook skips ours (threading's
    ``_shutdown`` stops at the first exception); finalizing with live pools would crash."""
    if not _exit_hook_ran:
        _shutdown_all_at_exit()


def _give_up_at_exit(pools: list[Any], why: str) -> None:
    """Says on stderr which workers are left and why, then ends the process as Ctrl-C does
    (killed by SIGINT), without finalizing: never returns."""
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # no third KeyboardInterrupt halfway through
        lines = []
        for pool in pools:
            for index, activity in enumerate(pool._state.native.worker_activities()):
                if activity != _native.WORKER_ENDED:
                    text = _WORKER_ACTIVITY_TEXT.get(activity, f"activity {activity}")
                    lines.append(f"  worker {index} of {pool!r}: {text}")
        message = (
            f"subinterpreter_parallelism: exit gave up on worker interpreters after {why}:\n"
            + "\n".join(lines)
            + "\nThe process ends now without finalizing (atexit functions not yet run are skipped).\n"
        )
        for stream in (sys.stdout, sys.stderr):
            try:
                if stream is sys.stderr:
                    stream.write(message)
                stream.flush()
            except Exception:
                pass
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    finally:
        os._exit(130)  # if SIGINT did not end the process


# ─── stepping aside: fork, idle ────────────────────────────────────────────────────────────


def step_aside(pool: Any, patience: float | None = None) -> bool:
    """An idle pool ends its interpreters; its next task makes new ones (``_startup.come_back``).

    Idle: running, and no task submitted and unfinished. A warm import (``preload="auto"``)
    is interrupted: no task needs it. Returns whether the pool stepped aside and its
    interpreters have ended (False: busy, shut down, or still ending after ``patience``).
    """
    with pool._lifecycle_lock:
        state = pool._state
        if not pool._stepped_aside:  # else another thread stepped it aside: wait with it
            if state.futures or state.native.state() != "running":
                return False
            pool._stepped_aside = True
            state.native.close()  # a submit from now on is refused, and comes back (see submit)
            state.native.interrupt_warm_imports()
            if not state.futures:
                # No task was accepted before the close (a submit registers its future first):
                # an initializer still running prepares for nothing.
                state.native.interrupt_initializers()
    return not _wait_until_ended([pool], patience)


def _step_aside_before_fork() -> None:
    """``os.register_at_fork(before=...)``: idle pools step aside, so that the child can run
    (and use them: they come back there too on their next task). A Ctrl-C meanwhile is handed
    on to the parent's main thread after the fork (a fork hook cannot raise)."""
    with _live_lock:
        pools = list(_live_pools)
    try:
        for pool in pools:
            step_aside(pool, _STEP_ASIDE_SECONDS)
    except KeyboardInterrupt:
        _thread.interrupt_main()  # raised in the parent after the fork (the child clears it)
    _native._before_fork()


def _forget_pools_after_fork() -> None:
    """In a forked child: the worker threads did not survive the fork, so every pool inherited
    from the parent with workers is broken there (and the exit hook must not wait for it). A
    pool that stepped aside had none: it comes back on its next task, in the child too.

    Where such a child cannot run Python at all (``_versions.FORK_CHILD_ABORTS``), the native
    fork guard has already ended it, with a message, before this hook could run.
    """
    global _live_lock
    _native._after_fork()
    _live_lock = threading.Lock()  # the parent may have held it while forking
    for pool in list(_live_pools):
        pool._lifecycle_lock = threading.Lock()
        if pool._stepped_aside and pool._state.ended.is_set():
            if pool._idle_watch is not None:
                pool._idle_watch.after_fork_in_child()
            continue
        # Lock-free in Swift: the parent may have held any lock at the fork.
        pool._state.native.mark_broken(
            "this process was forked from the one that created the pool; "
            "interpreter pools do not survive fork: create a new pool in the child"
        )
        pool._state.ended.set()
        _live_pools.discard(pool)


class IdleWatch:
    """Steps a pool aside once it has had no task for ``seconds`` (checked four times as often:
    the interpreters end between ``seconds`` and 1.25 x ``seconds`` after the last task)."""

    def __init__(self, pool: Any, seconds: float) -> None:
        self._pool = weakref.ref(pool)
        self.seconds = seconds
        self._stop = threading.Event()
        # A daemon in the main interpreter (exit does not wait for it); sub-interpreters allow
        # none, and there the pool's shutdown at the interpreter's end stops it.
        self.thread = threading.Thread(
            target=self._run, name="sp-idle-watch", daemon=_versions.current_interpreter_id() == 0
        )
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()

    def after_fork_in_child(self) -> None:
        """The thread did not survive the fork: start another."""
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="sp-idle-watch", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        last: Any = None
        quiet_since = time.monotonic()
        while not self._stop.wait(self.seconds / 4):
            pool = self._pool()
            if pool is None or pool.status != "running":
                return  # dropped, shut down or broken: nothing to watch any more
            # What changes whenever a task is submitted or finishes.
            state = pool._state
            activity = (id(state), state.native.stats()["tasks_submitted"], len(state.futures))
            now = time.monotonic()
            if activity != last:
                last, quiet_since = activity, now
            elif now - quiet_since >= self.seconds and not pool._stepped_aside:
                step_aside(pool, _STEP_ASIDE_SECONDS)
            del pool, state


def watch_idle(pool: Any, seconds: float | None) -> None:
    """``pool`` steps aside after ``seconds`` without tasks (None: never); replaces a previous
    watch. For the reusable pool (``get_reusable_executor(idle_timeout=...)``)."""
    old = pool._idle_watch
    if old is not None:
        if seconds is not None:
            old.seconds = seconds
            return
        old.stop()
    pool._idle_watch = None if seconds is None else IdleWatch(pool, seconds)


threading._register_atexit(_shutdown_all_at_exit)  # type: ignore[attr-defined]
atexit.register(_shutdown_all_at_exit_if_missed)
_native._install_fork_guard(_versions.FORK_CHILD_ABORTS)
os.register_at_fork(
    before=_step_aside_before_fork,
    after_in_parent=_native._after_fork,
    after_in_child=_forget_pools_after_fork,
)
