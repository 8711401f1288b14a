"""``_native.pyi`` says what the built Swift module holds: every name both ways, the type of
every constant, and the parameters of every function, method and constructor (read from the
text signatures at the head of the native docstrings, as ``inspect.signature`` reads them)."""

from __future__ import annotations

import ast
import builtins
import inspect
from pathlib import Path
from typing import Any

import pytest

from subinterpreter_parallelism import _native

STUB = Path(_native.__file__).with_name("_native.pyi")
# What every native class has without the stub declaring it (`__new__` is the constructor,
# held against the stub's `__init__`).
IMPLICIT = {"__doc__", "__module__", "__new__", "__dict__", "__weakref__", "__init__"}
CONSTRUCTORS = ("__init__", "__new__")


def _stub() -> ast.Module:
    return ast.parse(STUB.read_text(), str(STUB))


def _members(body: list[ast.stmt]) -> dict[str, ast.stmt]:
    """The names a stub body defines, with their nodes."""
    found: dict[str, ast.stmt] = {}
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            found[node.name] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            found[node.target.id] = node
    return found


def _public(names: list[str]) -> set[str]:
    return {name for name in names if not (name.startswith("__") and name.endswith("__"))}


def _decorators(node: ast.FunctionDef) -> set[str]:
    return {d.id for d in node.decorator_list if isinstance(d, ast.Name)}


def _stub_parameters(node: ast.FunctionDef) -> list[tuple[str, str, object]]:
    """``(name, kind, default)`` per parameter of a stub function (``...`` for a default the stub
    does not spell as a literal, ``inspect.Parameter.empty`` for none)."""
    a = node.args
    positional = [(p, "POSITIONAL_ONLY") for p in a.posonlyargs] + [
        (p, "POSITIONAL_OR_KEYWORD") for p in a.args
    ]
    defaults: list[object] = [inspect.Parameter.empty] * (len(positional) - len(a.defaults))
    defaults += [_literal(d) for d in a.defaults]
    out = [(p.arg, kind, default) for (p, kind), default in zip(positional, defaults)]
    if a.vararg is not None:
        out.append((a.vararg.arg, "VAR_POSITIONAL", inspect.Parameter.empty))
    for p, default in zip(a.kwonlyargs, a.kw_defaults):
        out.append((p.arg, "KEYWORD_ONLY", inspect.Parameter.empty if default is None else _literal(default)))
    if a.kwarg is not None:
        out.append((a.kwarg.arg, "VAR_KEYWORD", inspect.Parameter.empty))
    return out


def _literal(node: ast.expr) -> object:
    try:
        return ast.literal_eval(node)
    except ValueError:
        return ...  # not a literal: only its presence is compared


def _native_parameters(obj: Any) -> list[tuple[str, str, object]]:
    try:
        signature = inspect.signature(obj)
    except ValueError as error:  # no text signature at the head of its docstring
        raise AssertionError(f"{obj!r} has no signature: {error}") from None
    return [(p.name, p.kind.name, p.default) for p in signature.parameters.values()]


def _same(stub: list[tuple[str, str, object]], native: list[tuple[str, str, object]]) -> bool:
    if [(n, k) for n, k, _ in stub] != [(n, k) for n, k, _ in native]:
        return False
    for (_, _, mine), (_, _, theirs) in zip(stub, native):
        if (mine is inspect.Parameter.empty) != (theirs is inspect.Parameter.empty):
            return False
        if mine is not ... and mine is not inspect.Parameter.empty and mine != theirs:
            return False
    return True


def test_every_name_both_ways():
    stub = _public(list(_members(_stub().body)))
    module = _public(dir(_native))
    assert sorted(module - stub) == [], "in _native but not in _native.pyi"
    assert sorted(stub - module) == [], "in _native.pyi but not in _native"


def test_every_member_of_every_class_both_ways():
    for name, node in _members(_stub().body).items():
        if not isinstance(node, ast.ClassDef):
            continue
        cls = getattr(_native, name)
        stub = set(_members(node.body))
        own = set(vars(cls)) - IMPLICIT
        assert sorted(own - stub) == [], f"_native.{name} has members that _native.pyi lacks"
        missing = sorted(member for member in stub - set(CONSTRUCTORS) if not hasattr(cls, member))
        assert missing == [], f"_native.pyi gives _native.{name} members it lacks"


def _annotation_type(annotation: ast.expr) -> type | None:
    """``int`` of ``Final[int]`` (a builtin type), else None."""
    if isinstance(annotation, ast.Subscript) and isinstance(annotation.slice, ast.Name):
        found = getattr(builtins, annotation.slice.id, None)
        return found if isinstance(found, type) else None
    return None


def test_constants_have_their_stub_types():
    checked = 0
    for name, node in _members(_stub().body).items():
        if isinstance(node, ast.AnnAssign):
            expected = _annotation_type(node.annotation)
            assert expected is not None, f"{name}: annotate constants as Final[<builtin type>]"
            assert type(getattr(_native, name)) is expected, name
            checked += 1
    assert checked >= 30  # the stub still declares its constants


def _functions() -> list[tuple[str, Any, ast.FunctionDef]]:
    """Every function of the stub as ``(label, native callable, node)``; a class's ``__init__``
    or ``__new__`` stands for the class itself (its constructor)."""
    found = []
    for name, node in _members(_stub().body).items():
        if isinstance(node, ast.FunctionDef):
            found.append((name, getattr(_native, name), node))
        elif isinstance(node, ast.ClassDef):
            cls = getattr(_native, name)
            for member, inner in _members(node.body).items():
                if isinstance(inner, ast.FunctionDef) and "property" not in _decorators(inner):
                    native = cls if member in CONSTRUCTORS else getattr(cls, member)
                    found.append((f"{name}.{member}", native, inner))
    return found


def test_the_stub_covers_the_constructors_and_methods():
    labels = {label for label, *_ in _functions()}
    for required in ("Pool.__init__", "Pool.submit", "Pool.state", "Queue.__init__", "Queue.put", "sleep"):
        assert required in labels


@pytest.mark.parametrize(("label", "native", "node"), _functions(), ids=[label for label, *_ in _functions()])
def test_signatures_match(label, native, node):
    stub = _stub_parameters(node)
    theirs = _native_parameters(native)
    if "." in label and "staticmethod" not in _decorators(node):
        # `self` (or `cls`) of the stub; the native side names `self` when it is an unbound
        # instance method (or the constructor's class is taken as the callable: none).
        stub = stub[1:]
        if label.rpartition(".")[2] not in CONSTRUCTORS and "classmethod" not in _decorators(node):
            theirs = theirs[1:]
    assert _same(stub, theirs), f"{label}: _native.pyi says {stub}, the module says {theirs}"


def test_properties_are_native_attributes():
    for name, node in _members(_stub().body).items():
        if not isinstance(node, ast.ClassDef):
            continue
        for member, inner in _members(node.body).items():
            if isinstance(inner, ast.FunctionDef) and "property" in _decorators(inner):
                attribute = inspect.getattr_static(getattr(_native, name), member)
                assert inspect.isgetsetdescriptor(attribute) or isinstance(attribute, property), (
                    name,
                    member,
                )


def test_only_swift_made_types_refuse_construction():
    """A native type that Python could build but not fill trapped on its first use."""
    for cls in (_native.ResultBuffer, _native.LentBuffer):
        with pytest.raises(TypeError):
            cls()


def test_pool_refuses_keyword_arguments():
    """They used to be ignored without a word (task_timeout=... had no effect)."""
    with pytest.raises(TypeError, match="keyword"):
        _native.Pool(1, [], None, lambda *a: b"", task_timeout=1.0)
