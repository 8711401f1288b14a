"""``SharedMap``: a read-only mapping stored once, in native memory, and read by every interpreter.

A dict passed to a task is pickled for every task, and a dict built by an initializer is built
once per worker: N copies of the data. A ``SharedMap`` keeps one copy, outside every
interpreter's heap (Sources/NativeExtension/SharedMapStorage.swift); each interpreter holds a
handle on it, and a lookup builds only the value asked for, under the reader's own GIL, with no
lock shared with any other interpreter.

How a handle travels:

- to another interpreter of this process (a task's argument or result, ``initargs``, a
  ``Queue`` item): as the map's id; the bytes in transit keep the map alive;
- to another process (``fallback="process"``, a Dask worker, any plain ``pickle``): as the
  path of a file that the process memory-maps, so processes share the pages too. A map opened
  with ``from_file`` sends that file; a map built in memory writes one, once, to the
  temporary directory, and deletes it when the map goes.
"""

from __future__ import annotations

import os
from collections.abc import ItemsView, KeysView, Mapping, ValuesView

from . import _native

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (worker start-up time)

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from typing import Any, NoReturn, TypeVar

    _K = TypeVar("_K")
    _V = TypeVar("_V")

__all__ = ["SharedMap"]

_KEY_TYPES = "str, bytes, int, float, bool, None or tuples of them"


class SharedMap(_native.SharedMap, Mapping["_K", "_V"]):
    """A read-only mapping stored once, in native memory, that every interpreter reads at once.

    ``SharedMap(mapping_or_pairs)`` copies the entries, once:

    - keys: ``str``, ``bytes``, ``int``, ``float``, ``bool``, ``None`` and tuples of them; equal
      keys are one key, as in a dict (``1``, ``1.0`` and ``True``);
    - values: anything picklable. Values made of None, bool, int, float, complex, str, bytes,
      and tuples, frozensets (and, on 3.15+, frozendicts) of them are stored without pickle;
      other values are pickled once, here, and unpickled on each lookup.

    Lookups (``m[k]``, ``get``, ``in``, ``len``, iteration, ``keys``/``values``/``items``) work
    in every interpreter at the same time and build only the value asked for. Passing the map
    to a task, an initializer, ``parallel()`` or a ``Queue`` sends a handle, never the entries.
    The map lives while any handle on it lives, in any interpreter; its memory is returned when
    the last one goes. Iteration follows the insertion order.

    Raises:
        TypeError: a key of another type (the message names the key and its type), an
            unhashable key, or a value that cannot be pickled.
        ValueError: a NaN key (it could never be found again).
    """

    __slots__ = ()

    def __new__(cls, data: Mapping[_K, _V] | Iterable[tuple[_K, _V]] = (), /) -> SharedMap[_K, _V]:
        if type(data) is not dict:
            data = _as_dict(data)
        return super().__new__(cls, data)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], *, verify: bool = True) -> SharedMap[Any, Any]:
        """The map that :meth:`save` wrote to ``path``, memory-mapped: near-instant, and every
        process that maps the same file shares its pages.

        ``verify=False`` skips the checksum, which reads the whole file once (a damaged file
        then gives errors on the entries it damaged, never a crash). The file must not change
        while it is mapped.

        Raises:
            OSError: the file cannot be opened.
            ValueError: not a SharedMap file of this format (another file, another format
                version, another byte order), a truncated file, or a corrupt one.
        """
        return cls._open(os.path.abspath(os.fspath(path)), bool(verify))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes the map to ``path`` (replacing the file whole), for :meth:`from_file`: a
        header with the format version, the entries, and a checksum.

        Raises:
            OSError: the file cannot be written.
        """
        self._save(os.fspath(path))

    def keys(self) -> KeysView[_K]:
        """A view of the keys, in insertion order."""
        return KeysView(self)

    def values(self) -> ValuesView[_V]:
        """A view of the values, in insertion order; each is built as it is reached."""
        return _ValuesView(self)

    def items(self) -> ItemsView[_K, _V]:
        """A view of the ``(key, value)`` pairs, in insertion order."""
        return _ItemsView(self)

    def __setitem__(self, key: object, value: object) -> NoReturn:
        raise TypeError("a SharedMap is read-only: build a new one with the changed entries")

    def __delitem__(self, key: object) -> NoReturn:
        raise TypeError("a SharedMap is read-only: build a new one without the entry")

    def __repr__(self) -> str:
        where = f", from {self.path!r}" if self.path is not None else ""
        return f"<{type(self).__qualname__}: {len(self)} entries, {self.nbytes} bytes{where}>"

    def __copy__(self) -> SharedMap[_K, _V]:
        return self  # immutable: a copy is the map itself (as for a tuple)

    def __deepcopy__(self, memo: dict[int, object]) -> SharedMap[_K, _V]:
        return self

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # To another interpreter of this process: the id (the bytes in transit pin the map).
        if self._pin_in_transit():
            return _attach, (self._id(),)
        # Anywhere else (another process, or pickle bytes kept for later): a file to map.
        return _attach, (self._id(), os.getpid(), self._file())

    def _file(self) -> str:
        """The file other processes map: the map's own, else one written now (once)."""
        path: str | None = self._file_for_processes(None)
        if path is None:
            candidate = _spill_candidate()
            path = self._file_for_processes(candidate)
            if path != candidate:  # another thread wrote one first
                os.unlink(candidate)
        return path  # type: ignore[return-value]


class _ValuesView(ValuesView):  # type: ignore[type-arg]
    __slots__ = ()

    def __iter__(self) -> Iterator[Any]:
        return self._mapping._iter_values()  # type: ignore[attr-defined,no-any-return]


class _ItemsView(ItemsView):  # type: ignore[type-arg]
    __slots__ = ()

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        return self._mapping._iter_items()  # type: ignore[attr-defined,no-any-return]


def _as_dict(data: Any) -> dict[Any, Any]:
    """The entries of a mapping, or of an iterable of pairs (later pairs win, as in a dict)."""
    if isinstance(data, Mapping):
        return {key: data[key] for key in data}
    try:
        pairs = iter(data)
    except TypeError:
        raise TypeError(
            f"SharedMap() takes a mapping or (key, value) pairs, not {type(data).__name__}"
        ) from None
    entries: dict[Any, Any] = {}
    for pair in pairs:
        try:
            key, value = pair
        except (TypeError, ValueError):
            raise TypeError(
                f"SharedMap() takes a mapping or (key, value) pairs, not an item {pair!r:.80}"
            ) from None
        try:
            entries[key] = value
        except TypeError:
            raise TypeError(
                f"SharedMap keys must be {_KEY_TYPES}; key {key!r:.80} (of type {type(key).__name__}) "
                "is unhashable"
            ) from None
    return entries


def _spill_candidate() -> str:
    """A new, empty file in the temporary directory, for a map that goes to other processes."""
    import tempfile

    fd, path = tempfile.mkstemp(prefix="sp-sharedmap-", suffix=".spmap")
    os.close(fd)
    return path


def _attach(map_id: int, pid: int | None = None, path: str | None = None) -> SharedMap[Any, Any]:
    """Unpickling: a handle on the map ``map_id`` of this process, or on the file ``path`` in
    another process (or once the map is gone here)."""
    if pid is None or pid == os.getpid():
        try:
            return SharedMap._attach(map_id)
        except LookupError:
            if path is None or not os.path.exists(path):
                raise
    if path is None:  # pragma: no cover - only a hand-made pickle lacks both
        raise LookupError(f"SharedMap {map_id} belongs to another process and came without a file")
    try:
        return SharedMap.from_file(path)
    except FileNotFoundError:
        raise LookupError(
            f"the file of a SharedMap sent from process {pid} is gone ({path}): the map was released "
            "there before this pickle of it was loaded; keep it alive, or save() it to a file of yours "
            "and pass SharedMap.from_file(that file)"
        ) from None
