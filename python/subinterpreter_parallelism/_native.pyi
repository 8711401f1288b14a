"""Type stubs for the Swift extension module (Sources/NativeExtension)."""

from collections.abc import Callable
from typing import Any, Final

EVENT_COMPLETED: Final[int]
EVENT_SKIPPED: Final[int]
EVENT_INTERRUPTED: Final[int]
EVENT_WORKER_FAILED: Final[int]
EVENT_MESSAGE: Final[int]
EVENT_INTERNAL_ERROR: Final[int]
EVENT_TIMED_OUT: Final[int]
EVENT_DELIVERY_FAILED: Final[int]
WORKER_STARTING: Final[int]
WORKER_IDLE: Final[int]
WORKER_RUNNING: Final[int]
WORKER_ENDING: Final[int]
WORKER_ENDING_WITH_THREADS: Final[int]
WORKER_ENDED: Final[int]
WORKER_WARMING: Final[int]
FORK_REFUSED_STATUS: Final[int]
PICKLE_PROTOCOL: Final[int]
VALUE_TAG: Final[int]
ERROR_TAG: Final[int]
SHAREABLE_TAG: Final[int]
MAIN_MARKER: Final[bytes]
PHASE_PENDING: Final[int]
PHASE_RUNNING: Final[int]
PHASE_INTERRUPTING: Final[int]
PHASE_CANCELLED: Final[int]
PHASE_FINISHED: Final[int]
WORKER_STACK_SIZE: Final[int]
OUT_OF_BAND_MIN: Final[int]
OUT_OF_BAND_NO: Final[int]
OUT_OF_BAND_BYTES: Final[int]
OUT_OF_BAND_BYTEARRAY: Final[int]
OUT_OF_BAND_MEMORYVIEW: Final[int]
TAG_STDOUT: Final[int]
TAG_STDERR: Final[int]
TAG_LOG: Final[int]
TAG_WARNING: Final[int]
TAG_PRELOAD: Final[int]
TAG_WARM_FAILED: Final[int]

def out_of_band_kind(value: object, /) -> int:
    """How ``value`` travels as an argument or result: one of the OUT_OF_BAND_* values."""

MAX_WORKERS: Final[int]

class QueueClosed(Exception):
    """Raised by Queue.put/get once the queue is closed (and, for get, drained)."""

class TaskInterrupted(BaseException):
    """Raised inside a task when it is stopped (cancel, timeout, Ctrl-C, shutdown)."""

class Queue:
    """A FIFO shared by every interpreter of the process; items made of None, bool, int, float,
    str, bytes and tuples of them are copied without pickle, other items are pickled."""

    def __init__(self, maxsize: int = 0) -> None: ...
    @property
    def maxsize(self) -> int: ...
    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None: ...
    def get(self, block: bool = True, timeout: float | None = None) -> Any: ...
    def put_nowait(self, item: Any) -> None: ...
    def get_nowait(self) -> Any: ...
    def qsize(self) -> int: ...
    def empty(self) -> bool: ...
    def full(self) -> bool: ...
    def close(self) -> None: ...
    def is_closed(self) -> bool: ...
    def _id(self) -> int: ...

class LentBuffer:
    """The caller's memory lent to a task (a memoryview argument), buffer protocol only."""

class ResultBuffer:
    """Read-only bytes of a task's encoded outcome (buffer protocol)."""

    def __len__(self) -> int: ...

class Pool:
    """Worker threads that each own an own-GIL interpreter (used by the executor)."""

    def __init__(
        self,
        workers: int,
        sys_path: list[str],
        bootstrap_payload: bytes | None,
        encoder: Callable[[Any, tuple[Any, ...], dict[str, Any]], bytes],
        thread_names: list[str] | None = None,
        max_tasks_per_worker: int = 0,
        task_timeout: float | None = None,
    ) -> None: ...
    def _fast_forward_deadlines(self, seconds: float, /) -> int:
        """For tests: the task_timeout deadlines of the tasks submitted so far come ``seconds``
        earlier (those it reaches expire now); returns how many were waiting."""
    def submit(self, task_id: int, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None: ...
    def cancel(self, task_id: int, interrupt: bool = True) -> int: ...
    def phase(self, task_id: int) -> int: ...
    def interrupt_all(self) -> int: ...
    def interrupt_initializers(self) -> int: ...
    def interrupt_warm_imports(self) -> int: ...
    def worker_activities(self) -> list[int]: ...
    def deliver(
        self,
        futures: dict[int, Any],
        settle: Callable[[Any, Any], object],
        on_event: Callable[[int, int, Any, int], object],
    ) -> bool: ...
    def close(self) -> None: ...
    def join(self) -> list[int]: ...
    def alive_workers(self) -> int: ...
    def queued(self) -> int: ...
    def stats(self) -> dict[str, Any]: ...

def factorial_mod(n: int) -> int: ...
def sleep(seconds: float) -> None: ...
def post_message(tag: int, data: bytes) -> None: ...
def worker_index() -> int | None: ...
def _keep_ctrl_c(previous: Any, main_thread: int, unraisable: Any, /) -> None: ...
def _install_fork_guard(refuse_children: bool) -> None: ...
def _before_fork() -> None: ...
def _after_fork() -> None: ...
def build_info() -> dict[str, str]: ...
def _attach_queue(id: int) -> Queue: ...
