"""The packages import only the layers to their left, so the code's shape is the data flow:

    errors, resources -> utils -> config -> download -> corpus -> tokenization -> dataset
    -> models -> training -> export -> downstream -> evaluation -> pipeline -> commands -> cli

Read from the source with ast (imports inside functions included), so it fails on the first
backward import anyone writes."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "ja_pretrain"
ORDER = [("errors", "resources"), ("utils",), ("config",), ("download",), ("corpus",), ("tokenization",),
         ("dataset",), ("models",), ("training",), ("export",), ("downstream",), ("evaluation",), ("pipeline",),
         ("commands",), ("cli", "__main__")]
RANK = {name: rank for rank, names in enumerate(ORDER) for name in names}


def layer_of(path: Path) -> str:
    part = path.relative_to(PACKAGE).parts[0]
    return part[:-3] if part.endswith(".py") else part


def imported_layers(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names] if node.module == "ja_pretrain" \
                else [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "ja_pretrain" and len(parts) > 1 and parts[1] in RANK:
                out.append((node.lineno, parts[1]))
    return out


def backward_imports() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "__init__.py" and path.parent == PACKAGE:
            continue  # the package root: only its version
        here = layer_of(path)
        for line, layer in imported_layers(path):
            if RANK[layer] > RANK[here]:
                found.append(f"{path.relative_to(PACKAGE)}:{line} ({here}) imports {layer}")
    return found


def test_every_module_belongs_to_a_layer():
    assert {layer_of(p) for p in PACKAGE.rglob("*.py") if p != PACKAGE / "__init__.py"} <= set(RANK)


def test_no_layer_imports_one_to_its_right():
    assert backward_imports() == []
