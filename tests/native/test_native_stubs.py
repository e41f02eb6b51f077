"""_native.pyi is kept in sync with the extension: same names, same parameters."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import llamahost
from llamahost import _native

STUB = Path(llamahost.__file__).with_name("_native.pyi")
KEPT_DUNDERS = {"__init__", "__iter__", "__next__", "__len__"}


def _stub_tree() -> dict[str, dict[str, list[str]]]:
    """{'': {function: [params]}, ClassName: {member: [params]}} from the .pyi."""
    tree = ast.parse(STUB.read_text())
    out: dict[str, dict[str, list[str]]] = {"": {}}

    def params(fn: ast.FunctionDef) -> list[str]:
        a = fn.args
        names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs]
        return [n for n in names if n != "self"]

    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            out[""][node.name] = params(node)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out[""][node.target.id] = []
        elif isinstance(node, ast.ClassDef):
            members = out.setdefault(node.name, {})
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    members[item.name] = params(item)
    out[""].pop("__all__", None)
    return out


def _runtime_params(obj: object) -> list[str]:
    doc = (getattr(obj, "__doc__", None) or "").strip().splitlines()
    if not doc or "(" not in doc[0]:
        return []
    inside = doc[0][doc[0].index("(") + 1 : doc[0].rindex(")")]
    names = re.findall(r"(?:^|, )\*?(\w+)(?=:|$|,)", inside)
    return [n for n in names if n != "self"]


def _runtime_members(cls: type) -> set[str]:
    names = {name for name in vars(cls) if not name.startswith("__") or name in KEPT_DUNDERS} - {
        "_pybind11_conduit_v1_"
    }
    if (vars(cls).get("__init__").__doc__ or "").startswith("Initialize self"):
        names.discard("__init__")  # pybind11's placeholder: the class has no constructor
    return names


def test_module_level_names_match() -> None:
    stub = _stub_tree()
    runtime = {
        name
        for name in vars(_native)
        if not name.startswith("__")
        and not isinstance(getattr(_native, name), type)
        and name != "_errors_module"
    }
    classes = {n for n, v in vars(_native).items() if isinstance(v, type)}
    assert set(stub[""]) == runtime
    assert set(stub) - {""} == classes


def test_class_members_and_parameters_match() -> None:
    stub = _stub_tree()
    for class_name, members in stub.items():
        if not class_name:
            continue
        cls = getattr(_native, class_name)
        assert set(members) == _runtime_members(cls), class_name
        for member, params in members.items():
            attr = vars(cls)[member]
            if isinstance(attr, property):
                continue
            target = attr.__func__ if isinstance(attr, staticmethod) else attr
            assert _runtime_params(target) == params, f"{class_name}.{member}"


def test_function_parameters_match() -> None:
    for name, params in _stub_tree()[""].items():
        obj = getattr(_native, name)
        if callable(obj):
            assert _runtime_params(obj) == params, name
