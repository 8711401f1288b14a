"""Worker halves of tests/test_wire.py: each decodes a record the caller encoded, or encodes one
for the caller to decode, with ``_wire`` (and ``_native``) in a worker interpreter."""

from __future__ import annotations

import threading
from typing import Any

from subinterpreter_parallelism import _native, _wire


def describe(value: Any) -> Any:
    """What the caller compares: the value, with the types of its items spelled out."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return (type(value).__name__, bytes(value[:8]), len(value))
    if isinstance(value, (tuple, list)):
        return (type(value).__name__, [describe(item) for item in value])
    if isinstance(value, dict):
        return ("dict", sorted((key, describe(item)) for key, item in value.items()))
    return (type(value).__name__, value)


def add(a: Any, b: Any = None, **more: Any) -> Any:
    total = a if b is None else a + b
    for value in more.values():
        total = total + value
    return total


# -- Call: the caller encodes, the worker decodes ----------------------------------------------


def decode_call(data: bytes, *extras: Any) -> Any:
    views = [memoryview(extra) for extra in extras] or None
    fn, args, kwargs = _wire.decode_call(memoryview(data), views)
    return describe(fn), describe(args), describe(kwargs), describe(fn(*args, **kwargs))


def decode_shareable(data: bytes) -> Any:
    return describe(_native.decode_shareable(data))


def decode_bootstrap(payload: bytes) -> Any:
    config = _wire.Bootstrap.decode(payload)
    steps = [(f"{step.__module__}.{step.__qualname__}", argument) for step, argument in config.steps]
    initializer = config.initializer
    name = None if initializer is None else f"{initializer.__module__}.{initializer.__qualname__}"
    return config.interruptible_sleep, steps, name, tuple(config.initargs)


def step(argument: Any) -> None:
    """A bootstrap step (never run by these tests: only named)."""


# -- Value, Shareable, Lent, Error, Chunk: the worker encodes, the caller decodes ----------------


def encode_value(value: Any) -> Any:
    """The Value record of ``value`` (bytes), or a description of the Lent record it is."""
    encoded = _wire.encode_value(value)
    if type(encoded) is _wire.Lent:
        return ("Lent", describe(encoded.value), encoded.as_bytearray)
    return encoded


def encode_value_of_unpicklable() -> bytes:
    encoded = _wire.encode_value(threading.Lock())
    assert type(encoded) is bytes
    return encoded


def encode_shareable(value: Any) -> bytes | None:
    return _native.encode_shareable(value)


class Unpicklable(Exception):
    """An exception that pickles but cannot be rebuilt (its constructor needs two arguments)."""

    def __init__(self, a: Any, b: Any) -> None:
        super().__init__(f"{a}-{b}")


def encode_error(kind: str) -> bytes:
    try:
        if kind == "value":
            raise ValueError("bad value")
        if kind == "unrebuildable":
            raise Unpicklable(1, 2)
        if kind == "lock":
            raise RuntimeError(threading.Lock())  # its pickle fails: it travels as text
        raise ImportError(f"module {kind} does not support loading in subinterpreters")
    except BaseException as exc:
        return _wire.encode_error(exc)


def encode_chunk(kind: str) -> tuple[bytes, bytes | None]:
    if kind == "whole":
        return _wire.Chunk([1, "two", [3]], None).encode()
    if kind == "failed":
        try:
            raise KeyError("item 2")
        except KeyError as exc:
            return _wire.Chunk([1, 2], _wire.Error.of(exc)).encode()
    return _wire.Chunk([1, threading.Lock(), 3], None).encode()  # a result that cannot be pickled
