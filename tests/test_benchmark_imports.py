"""The benchmarks import names from the package inside functions, where only a run would find a
name that a refactor moved (train_bench's PRECISIONS did): check every such import statically."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

BENCHMARKS = sorted((Path(__file__).resolve().parent.parent / "benchmarks").glob("*.py"))


def package_imports(path: Path) -> list[tuple[int, str, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "ja_pretrain":
            found += [(node.lineno, node.module, alias.name) for alias in node.names]
    return found


def resolves(module: str, name: str) -> bool:
    if hasattr(importlib.import_module(module), name):
        return True
    try:  # a submodule imported by name
        importlib.import_module(f"{module}.{name}")
    except ModuleNotFoundError:
        return False
    return True


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.name)
def test_every_package_name_a_benchmark_imports_exists(path):
    missing = [f"{path.name}:{line}: from {module} import {name}" for line, module, name in package_imports(path)
               if not resolves(module, name)]
    assert not missing, "\n".join(missing)


def test_the_check_sees_a_moved_name(tmp_path):
    script = tmp_path / "bench.py"
    script.write_text("def f():\n    from ja_pretrain.training.trainer import PRECISIONS\n", encoding="utf-8")
    assert [(module, name) for _, module, name in package_imports(script)] == [("ja_pretrain.training.trainer",
                                                                                "PRECISIONS")]
    assert not resolves("ja_pretrain.training.trainer", "PRECISIONS")
