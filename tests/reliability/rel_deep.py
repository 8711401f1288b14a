"""Deep recursion cases, run in a worker interpreter (or the main thread, to compare).

``python -m rel_deep CASE [main|worker]`` runs one case in a fresh process and prints one JSON
line: ``{"case", "where", "outcome": "returned"|"raised", "type", "message", "same_worker"}``.
A case that crashes the process prints nothing and ends with a signal, which is what the
tests in test_recursion.py look for.
"""

from __future__ import annotations

import json
import sys

HIGH_LIMIT = 1_000_000
DEPTH = 200_000  # far beyond any C recursion limit of CPython 3.12/3.13
# hash() of nested tuples recurses in C with no recursion check at all: this depth overflows
# the main thread's 8 MiB stack (CPython 3.12 and 3.13 here) but fits a worker's 32 MiB.
HASH_DEPTH = 250_000
# repr of nested lists is quadratic in the depth (Py_ReprEnter scans the levels already entered).
# Up to 3.13 the C recursion limit stops it early; from 3.14 on, CPython guards C recursion by the
# stack left, and 200,000 levels (or the stack-overflow point of a million) take minutes on a
# loaded machine. So there it goes 20,000 deep: still a deep repr in a worker, while the other
# cases (pickle_list, repr_nodes, compare_nodes, map, sorted_key) reach the stack's end.
REPR_DEPTH = DEPTH if sys.version_info < (3, 14) else DEPTH // 10


def _nested_list(depth):
    value = []
    for _ in range(depth):
        value = [value]
    return value


def _python_recursion(n):
    return 0 if n == 0 else _python_recursion(n - 1) + 1


class _Node:
    """Each level of repr/==/getattr goes Python -> C -> Python: C stack per level."""

    def __init__(self, child):
        self.child = child

    def __repr__(self):
        return "N(" + repr(self.child) + ")"

    def __eq__(self, other):
        return isinstance(other, _Node) and self.child == other.child

    __hash__ = None

    def __getattr__(self, name):
        return getattr(self.child, name)


def _nodes(depth):
    node = None
    for _ in range(depth):
        node = _Node(node)
    return node


def _via_map(n):
    return n if n == 0 else sum(map(_via_map, [n - 1]))


def _via_sorted_key(n):
    return n if n == 0 else sorted([n - 1], key=_via_sorted_key)[0]


def case(name, high_limit=False):
    """Runs one case; returns a short description of what came out."""
    import copy
    import json as json_module
    import pickle

    if high_limit:
        sys.setrecursionlimit(HIGH_LIMIT)
    try:
        if name == "python":
            return _python_recursion(DEPTH)
        if name == "repr_list":
            return len(repr(_nested_list(REPR_DEPTH)))
        if name == "pickle_list":
            return len(pickle.dumps(_nested_list(DEPTH)))
        if name == "json_dumps":
            return len(json_module.dumps(_nested_list(DEPTH)))
        if name == "json_loads":
            return isinstance(json_module.loads("[" * DEPTH + "]" * DEPTH), list)
        if name == "compare_lists":
            return _nested_list(DEPTH) == _nested_list(DEPTH)
        if name == "deepcopy":
            return isinstance(copy.deepcopy(_nested_list(DEPTH)), list)
        if name == "repr_nodes":
            return len(repr(_nodes(DEPTH)))
        if name == "compare_nodes":
            return _nodes(DEPTH) == _nodes(DEPTH)
        if name == "getattr_nodes":
            return _nodes(DEPTH).missing
        if name == "map":
            return _via_map(DEPTH)
        if name == "sorted_key":
            return _via_sorted_key(DEPTH)
        if name == "eval_nested":
            return isinstance(eval("[" * DEPTH + "]" * DEPTH), list)
        if name == "isinstance_nested":
            classes = int
            for _ in range(DEPTH):
                classes = (classes,)
            return isinstance(1, classes)
        if name == "return_nested":
            return _nested_list(DEPTH)  # the worker must fail to pickle it, not crash
        if name == "hash_tuple":
            nested = ()
            for _ in range(HASH_DEPTH):
                nested = (nested,)
            return hash(nested) is not None
        if name == "dealloc_chain":
            node = _nodes(DEPTH * 5)
            del node
            return "freed"
        raise ValueError(f"no case {name!r}")
    finally:
        if high_limit:
            sys.setrecursionlimit(1000)


def _describe(where, name, outcome, same_worker=None):
    ok, value = outcome
    line = {"case": name, "where": where, "same_worker": same_worker}
    if ok:
        line.update(outcome="returned", type=type(value).__name__, message=repr(value)[:100])
    else:
        line.update(outcome="raised", type=type(value).__name__, message=str(value)[:200])
    return json.dumps(line)


def main(argv):
    name, where = argv[0], argv[1]
    high_limit = len(argv) > 2 and argv[2] == "high"
    if where == "main":
        try:
            outcome = (True, case(name, high_limit))
        except BaseException as exc:
            outcome = (False, exc)
        print(_describe(where, name, outcome), flush=True)
        return
    import rel_deep  # by reference: this file runs as __main__
    import rel_tasks
    import subinterpreter_parallelism as sp

    with sp.InterpreterPoolExecutor(1) as pool:
        before = pool.submit(rel_tasks.where).result(timeout=60)
        future = pool.submit(rel_deep.case, name, high_limit)
        error = future.exception(timeout=120)
        outcome = (True, future.result()) if error is None else (False, error)
        after = pool.submit(rel_tasks.where).result(timeout=60)
    print(_describe(where, name, outcome, same_worker=before == after), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
