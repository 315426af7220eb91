"""Import and access rules, read from the source (AST): the dependency direction, and what the
repository's own methods may touch.

A method module (one that registers a method) may import the method API and the training helpers,
never a task, the harness's internals or the metric library; it may not reach into private
attributes of anything but itself, nor use `gc`, `inspect`, `sys`, `ctypes`, `importlib` or the
builtins that read other scopes. In-process Python cannot stop a determined cheat (the README's
threat model says so); these rules keep the repository's own methods reviewable at a glance.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bench", "methods", "tasks")

METHOD_IMPORTS_ALLOWED = ("metricbench.methods", "metricbench.bench.core.training", "metricbench.bench.core.errors")
FORBIDDEN_MODULES = {"gc", "inspect", "sys", "ctypes", "importlib", "builtins", "pickle", "dill", "types", "pathlib", "os"}
FORBIDDEN_CALLS = {"getattr", "setattr", "vars", "globals", "locals", "eval", "exec", "__import__", "open", "compile"}


def _sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _imports(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found += [(node.lineno, node.module)] + [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return found


def _registers_a_method(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ClassDef | ast.FunctionDef):
            for decorator in node.decorator_list:
                if isinstance(decorator, ast.Call) and getattr(decorator.func, "id", "") == "register_method":
                    return True
    return False


def _method_modules() -> list[Path]:
    return [path for path in _sources("methods") if _registers_a_method(path)]


def method_violations(source: str) -> list[str]:
    """What a method module does that a method must not (one line each)."""
    tree = ast.parse(source)
    problems = []
    for line, name in _imports(tree):
        top = name.split(".")[0]
        if top in FORBIDDEN_MODULES:
            problems.append(f"line {line}: imports {name}")
        elif top == "metricbench" and not name.startswith(METHOD_IMPORTS_ALLOWED):
            if not any(name == allowed.rsplit(".", 1)[0] for allowed in METHOD_IMPORTS_ALLOWED):
                problems.append(f"line {line}: imports {name} (methods use the method API only)")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            owner = node.value
            own = isinstance(owner, ast.Name) and owner.id in ("self", "cls") and not node.attr.startswith("__")
            module_init = node.attr == "__init__" and isinstance(owner, ast.Call) and getattr(owner.func, "id", "") == "super"
            if not (own or module_init):  # super().__init__() is how a method's own nn.Module starts
                problems.append(f"line {node.lineno}: reads private attribute .{node.attr}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FORBIDDEN_CALLS:
            problems.append(f"line {node.lineno}: calls {node.func.id}()")
    return problems


@pytest.mark.parametrize("path", _method_modules(), ids=lambda p: p.name)
def test_the_repositorys_methods_use_only_the_method_api(path):
    assert _method_modules(), "no method module found"
    assert method_violations(path.read_text()) == []


def test_the_method_rules_catch_each_trick():
    cheats = {
        "import gc": "imports gc",
        "from inspect import currentframe": "imports inspect",
        "import sys": "imports sys",
        "from metricbench.tasks.digits import DigitsTask": "imports metricbench.tasks.digits",
        "from metricbench.tasks import metrics": "imports metricbench.tasks",
        "from metricbench.bench.run.cell import SplitCache": "imports metricbench.bench.run.cell",
        "oracle._task.evaluate(model, oracle._val)": "reads private attribute ._task",
        "ctx.step.__func__.__globals__": "reads private attribute .__func__",
        "getattr(oracle, '_val')": "calls getattr()",
        "vars(ctx)": "calls vars()",
        "super(type(oracle), oracle).__getattribute__('_val')": "reads private attribute .__getattribute__",
    }
    for code, problem in cheats.items():
        found = method_violations(code)
        assert any(problem in line for line in found), (code, found)
    assert method_violations("self._state = 1\nfrom metricbench.methods.adapters import attach_film_adapters") == []
    assert method_violations("super().__init__()") == []  # a method's own nn.Module


@pytest.mark.parametrize("package", PACKAGES)
def test_nothing_imports_the_old_top_level_package_names(package):
    """Everything imports `metricbench.*`: one module loaded under two names would have two registries."""
    for path in _sources(package):
        if path == ROOT / "bench" / "dev.py":  # the standard-library bootstrap imports nothing of ours
            continue
        for line, name in _imports(ast.parse(path.read_text())):
            assert name.split(".")[0] not in PACKAGES, f"{path.relative_to(ROOT)}:{line} imports {name}"


def test_the_dependency_direction():
    """Tasks never import methods; methods never import a concrete task; nothing imports the runner
    but the CLI (the harness reaches tasks and methods through their registries)."""
    for path in _sources("tasks"):
        for line, name in _imports(ast.parse(path.read_text())):
            assert not name.startswith("metricbench.methods"), f"{path.relative_to(ROOT)}:{line} imports {name}"
    for path in _sources("methods"):
        for line, name in _imports(ast.parse(path.read_text())):
            assert not name.startswith("metricbench.tasks"), f"{path.relative_to(ROOT)}:{line} imports {name}"
    for package in ("tasks", "methods"):
        for path in _sources(package):
            for line, name in _imports(ast.parse(path.read_text())):
                assert not name.startswith(("metricbench.bench.run.runner", "metricbench.bench.run.cell")), (
                    f"{path.relative_to(ROOT)}:{line} imports {name}"
                )
