"""The expression language that carries a Dask task to a worker interpreter without Dask.

Caller side, :func:`lower` turns a ``dask._task_spec`` node into an expression of plain calls,
with the values of its dependencies filled in. Worker side, :func:`evaluate` runs it: the
classes and functions it needs import nothing (a worker interpreter never imports dask, and
distributed imports psutil, which refuses own-GIL interpreters).
"""

from __future__ import annotations

import time
from _thread import get_ident

TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable, Mapping
    from typing import Any

__all__ = ["Call", "Graph", "Quote", "Ref", "evaluate", "evaluate_timed", "lower"]

# The worker's runner leaves frames of modules that set this out of a task's traceback: the
# user's code starts the story (see _worker.encode_error).
_SP_RUNNER_FRAMES = True


class Call:
    """``func(*args, **kwargs)``, where args and kwargs values are expressions or values."""

    __slots__ = ("args", "func", "kwargs")

    def __init__(self, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.func = func
        self.args = args
        self.kwargs = kwargs

    def __reduce__(self) -> tuple[Any, ...]:
        return Call, (self.func, self.args, self.kwargs)


class Ref:
    """The value of ``key`` in the enclosing :class:`Graph`."""

    __slots__ = ("key",)

    def __init__(self, key: Hashable) -> None:
        self.key = key

    def __reduce__(self) -> tuple[Any, ...]:
        return Ref, (self.key,)


class Graph:
    """A fused subgraph: ``inputs`` (evaluated in the enclosing scope) and ``steps`` (in
    dependency order) bind keys in a new scope; the value is that of ``out``."""

    __slots__ = ("inputs", "out", "steps")

    def __init__(
        self, inputs: tuple[tuple[Hashable, Any], ...], steps: tuple[tuple[Hashable, Any], ...], out: Hashable
    ) -> None:
        self.inputs = inputs
        self.steps = steps
        self.out = out

    def __reduce__(self) -> tuple[Any, ...]:
        return Graph, (self.inputs, self.steps, self.out)


class Quote:
    """A value that happens to be one of these classes, to be taken as it is."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __reduce__(self) -> tuple[Any, ...]:
        return Quote, (self.value,)


_EXPRESSION_TYPES = frozenset({Call, Ref, Graph, Quote})


def _evaluate(expr: Any, scope: dict[Hashable, Any]) -> Any:
    kind = type(expr)
    if kind is Call:
        args = [_evaluate(arg, scope) for arg in expr.args]
        if expr.kwargs:
            return expr.func(*args, **{name: _evaluate(value, scope) for name, value in expr.kwargs.items()})
        return expr.func(*args)
    if kind is Ref:
        return scope[expr.key]
    if kind is Graph:
        inner = {key: _evaluate(value, scope) for key, value in expr.inputs}
        for key, step in expr.steps:
            inner[key] = _evaluate(step, inner)
        return inner[expr.out]
    if kind is Quote:
        return expr.value
    return expr


def evaluate(expr: Any) -> Any:
    """Worker side: the value of an expression made by :func:`lower` (runs the user's calls)."""
    return _evaluate(expr, {})


def evaluate_timed(expr: Any) -> tuple[float, float, int, Any]:
    """Worker side: ``(start, stop, thread id, value)`` of :func:`evaluate`, for distributed."""
    start = time.time()
    value = _evaluate(expr, {})
    return start, time.time(), get_ident(), value


def _make_list(*items: Any) -> list[Any]:
    return list(items)


def _make_tuple(*items: Any) -> tuple[Any, ...]:
    return items


def _make_set(*items: Any) -> set[Any]:
    return set(items)


def _make_dict(*flat: Any) -> dict[Any, Any]:
    return dict(zip(flat[::2], flat[1::2]))


_CONTAINER_BUILDERS: dict[type, Callable[..., Any]] = {
    list: _make_list,
    tuple: _make_tuple,
    set: _make_set,
    dict: _make_dict,
}


def lower(node: Any, values: Mapping[Hashable, Any]) -> Any:
    """Caller side: a ``dask._task_spec`` node as an expression that needs no dask to evaluate.

    ``values`` holds the values of the node's dependencies; they are filled in. Tasks keep
    their functions; containers, aliases, data nodes and fused subgraphs become plain
    calls. A node of a kind not known here travels as itself (the worker then imports dask).

    Raises:
        KeyError: a dependency is missing from ``values``.
    """
    from dask import _task_spec as spec

    def literal(value: Any) -> Any:
        return Quote(value) if type(value) in _EXPRESSION_TYPES else value

    def ref(key: Hashable, bound: frozenset[Hashable] | None) -> Any:
        if bound is not None and key in bound:
            return Ref(key)
        return literal(values[key])

    def convert(obj: Any, bound: frozenset[Hashable] | None) -> Any:
        if isinstance(obj, spec.TaskRef):
            return ref(obj.key, bound)
        if not isinstance(obj, spec.GraphNode):
            return literal(obj)
        if isinstance(obj, spec.Alias):
            return ref(obj.target, bound)
        if isinstance(obj, spec.DataNode):
            return literal(obj.value)
        if isinstance(obj, spec.NestedContainer) and obj.klass in _CONTAINER_BUILDERS:
            return Call(_CONTAINER_BUILDERS[obj.klass], tuple(convert(a, bound) for a in obj.args), {})
        if isinstance(obj, spec.Task):
            if obj.func is getattr(spec, "_execute_subgraph", None):
                return subgraph(obj, bound)
            return Call(
                obj.func,
                tuple(convert(a, bound) for a in obj.args),
                {name: convert(value, bound) for name, value in obj.kwargs.items()},
            )
        # Unknown kind of node: call it with its dependencies, as Dask does.
        flat: list[Any] = []
        for key in obj.dependencies:
            flat += [key, ref(key, bound)]
        return Call(obj, (Call(_make_dict, tuple(flat), {}),), {})

    def subgraph(task: Any, bound: frozenset[Hashable] | None) -> Graph:
        # Task(key, _execute_subgraph, inner graph, output key, input keys, *input refs)
        inner, out, in_keys, *inputs = task.args
        scope = frozenset(inner) | frozenset(in_keys)
        return Graph(
            tuple((key, convert(value, bound)) for key, value in zip(in_keys, inputs)),
            tuple((key, convert(inner[key], scope)) for key in _dependency_order(inner)),
            out,
        )

    return convert(node, None)


def _dependency_order(graph: Mapping[Hashable, Any]) -> list[Hashable]:
    """The keys of a subgraph, each after the keys of the subgraph it depends on."""
    order: list[Hashable] = []
    placed: set[Hashable] = set()
    for root in graph:
        if root in placed:
            continue
        placed.add(root)
        stack = [(root, iter(graph[root].dependencies))]
        while stack:
            key, pending = stack[-1]
            for dep in pending:
                if dep in graph and dep not in placed:
                    placed.add(dep)
                    stack.append((dep, iter(graph[dep].dependencies)))
                    break
            else:
                stack.pop()
                order.append(key)
    return order
