"""Type stubs for the Swift extension module (Sources/NativeExtension)."""

from collections.abc import Callable, Iterator
from typing import Any, Final, Self, SupportsIndex

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
TAG_STDOUT_BYTES: Final[int]
TAG_STDERR_BYTES: Final[int]

def out_of_band_kind(value: object, /) -> int:
    """How ``value`` travels as an argument or result: one of the OUT_OF_BAND_* values."""

def encode_shareable(value: object, /) -> bytes | None:
    """``value`` in the pickle-free format (first byte ``SHAREABLE_TAG``), or None when it is
    not made only of what that format holds."""

def decode_shareable(buffer: Any, /) -> Any:
    """The value that ``encode_shareable`` encoded; ValueError for anything else."""

MAX_WORKERS: Final[int]

class QueueClosed(Exception):
    """Raised by Queue.put/get once the queue is closed (and, for get, drained)."""

class TaskInterrupted(BaseException):
    """Raised inside a task when it is stopped (cancel, timeout, Ctrl-C, shutdown)."""

class Queue:
    """A FIFO shared by every interpreter of the process; items made of None, bool, int, float,
    complex, str, bytes and tuples, frozensets and frozendicts of them are copied without
    pickle, other items are pickled."""

    def __init__(self, maxsize: int = 0) -> None: ...
    @property
    def maxsize(self) -> int: ...
    def put(self, /, item: Any, block: bool = True, timeout: float | None = None) -> None: ...
    def get(self, /, block: bool = True, timeout: float | None = None) -> Any: ...
    def put_nowait(self, item: Any, /) -> None: ...
    def get_nowait(self) -> Any: ...
    def qsize(self) -> int: ...
    def empty(self) -> bool: ...
    def full(self) -> bool: ...
    def close(self) -> None: ...
    def is_closed(self) -> bool: ...
    def _id(self) -> int: ...
    def __reduce__(self) -> tuple[Callable[[int], Queue], tuple[int]]: ...

class LentBuffer:
    """The caller's memory lent to a task (a memoryview argument), buffer protocol only."""

    def __buffer__(self, flags: int, /) -> memoryview: ...
    def __release_buffer__(self, buffer: memoryview, /) -> None: ...

class ResultBuffer:
    """Read-only bytes of a task's encoded outcome (buffer protocol)."""

    def __len__(self) -> int: ...
    def __buffer__(self, flags: int, /) -> memoryview: ...

class Pool:
    """Worker threads that each own an own-GIL interpreter (used by the executor)."""

    def __init__(
        self,
        workers: int,
        sys_path: list[str],
        bootstrap_payload: bytes | None,
        encoder: Callable[
            [Any, tuple[Any, ...], dict[str, Any]], bytes | tuple[bytes, list[bytes | memoryview]]
        ],
        thread_names: list[str] | None = None,
        max_tasks_per_worker: int = 0,
        task_timeout: float | None = None,
        /,
    ) -> None: ...
    def _fast_forward_deadlines(self, seconds: float, /) -> int:
        """For tests: the task_timeout deadlines of the tasks submitted so far come ``seconds``
        earlier (those it reaches expire now); returns how many were waiting."""
    def submit(self, task_id: int, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any], /) -> None: ...
    def cancel(self, task_id: int, interrupt: bool = True, /) -> int: ...
    def phase(self, task_id: int, /) -> int: ...
    def interrupt_all(self) -> int: ...
    def interrupt_initializers(self) -> int: ...
    def worker_activities(self) -> list[int]: ...
    def deliver(
        self,
        futures: dict[int, Any],
        settle: Callable[[Any, Any], object],
        on_event: Callable[[int, int, Any, int], object],
        /,
    ) -> bool: ...
    def close(self) -> None: ...
    def state(self) -> str:
        """``"running"``, ``"shutting down"``, ``"shut down"`` or ``"broken"``."""
    def broken_reason(self) -> str | None: ...
    def mark_broken(self, reason: str, /) -> bool:
        """The pool is broken from now on; True for the first call (whose reason is kept)."""
    def join(self) -> list[int]: ...
    def alive_workers(self) -> int: ...
    def warm(self, module: str, /) -> None:
        """``preload="auto"``: idle workers import ``module`` ahead of the tasks that need it."""
    def queued(self) -> int: ...
    def set_sys_path(self, sys_path: list[str], /) -> None:
        """The caller's ``sys.path`` changed: each worker follows it before its next task."""
    def stats(self) -> dict[str, Any]: ...

def factorial_mod(n: int, /) -> int: ...
def sleep(seconds: float | SupportsIndex, /) -> None: ...
def post_message(tag: int, data: bytes, /) -> None: ...
def worker_index() -> int | None: ...
def _install_fork_guard(refuse_children: bool, /) -> None: ...
def _before_fork() -> None: ...
def _after_fork() -> None: ...
def _fail_next_interpreter_creations(n: int, /) -> None:
    """For tests: the next ``n`` interpreter creations fail as CPython's transient failure does."""

def build_info() -> dict[str, str]: ...
def _attach_queue(id: int, /) -> Queue: ...
def _encode_for_interpreters(encode: Callable[[Any], bytes], value: Any, /) -> bytes:
    """``encode(value)``, run as an encoding for another interpreter of this process: a
    SharedMap pickled meanwhile travels as its id, not as a file for other processes."""

class SharedMap:
    """The native base of ``subinterpreter_parallelism.SharedMap`` (use that): a read-only
    mapping stored once in native memory, read by every interpreter of the process."""

    def __new__(cls, data: dict[Any, Any], /) -> Self: ...
    def __getitem__(self, key: Any, /) -> Any: ...
    def __len__(self) -> int: ...
    def __contains__(self, key: object, /) -> bool: ...
    def __iter__(self) -> Iterator[Any]: ...
    def get(self, key: Any, default: Any = None, /) -> Any: ...
    @property
    def nbytes(self) -> int:
        """The size of the map's native memory (or of its file), in bytes."""
    @property
    def path(self) -> str | None:
        """The file the map is mapped from (``from_file``), or None."""
    def _iter_values(self) -> Iterator[Any]: ...
    def _iter_items(self) -> Iterator[tuple[Any, Any]]: ...
    def _save(self, path: str, /) -> None: ...
    def _pin_in_transit(self) -> bool: ...
    def _file_for_processes(self, candidate: str | None, /) -> str | None: ...
    def _id(self) -> int: ...
    @classmethod
    def _open(cls, path: str, verify: bool, /) -> Self: ...
    @classmethod
    def _attach(cls, id: int, /) -> Self: ...
    @staticmethod
    def _live() -> tuple[int, int]: ...

class SharedMapIterator:
    """An iterator over a SharedMap's keys, values or items, in insertion order."""

    def __iter__(self) -> Self: ...
    def __next__(self) -> Any: ...
    def __length_hint__(self) -> int: ...
