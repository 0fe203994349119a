"""The package layout: layers import only earlier layers, analysis needs no torch, the wheel lists every package.

Layers by pipeline stage, earliest first. A module may import steer_pu modules of its own layer
(any sibling of its package) or of earlier layers, at the top or inside a function alike. The
core modules are six layers of their own: errors < io < paths < devices < architectures < models. ``steer_pu`` itself
(``__version__``) and ``steer_pu.tasks`` (package data, not code) are below every layer;
``steer_pu.__main__`` is above them all.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "benchmark" / "steer_pu"

LAYERS = [
    "errors", "io", "paths", "devices", "architectures", "models",
    "suite", "analysis", "interventions", "engine", "methods", "runs",
    "integrations", "perf", "submission", "report", "leaderboard", "cli",
]  # fmt: skip
BELOW_ALL = -1  # steer_pu (its __init__) and steer_pu.tasks
ABOVE_ALL = len(LAYERS)  # steer_pu.__main__


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> int:
    """The layer of a steer_pu module (``steer_pu.a.b`` → the layer of ``a``)."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] == "tasks":
        return BELOW_ALL
    if parts[1] == "__main__":
        return ABOVE_ALL
    assert parts[1] in LAYERS, f"{module}: not in any layer; add its folder to LAYERS in tests/test_layout.py"
    return LAYERS.index(parts[1])


def imported(path: Path, name: str, known: dict[str, Path]) -> list[tuple[int, str]]:
    """(line, module) of every steer_pu module that the file imports, lazily or not."""
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "steer_pu"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's package
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target.split(".")[0] != "steer_pu":
                continue
            # `from steer_pu.x import y` imports the module steer_pu.x.y when there is one
            subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in known]
            found += [(node.lineno, m) for m in subs] or [(node.lineno, target)]
    return found


def test_each_layer_imports_only_itself_and_earlier_layers():
    known = modules()
    bad = []
    for name, path in known.items():
        own = layer(name)
        for line, target in imported(path, name, known):
            if layer(target) > own:
                bad.append(
                    f"{path.relative_to(REPO)}:{line}: {name} (layer {own}) imports {target} "
                    f"(layer {layer(target)}, a later one)"
                )
    order = " < ".join(LAYERS)
    assert not bad, f"imports against the layer order {order}:\n" + "\n".join(bad)


def test_cli_modules_do_not_import_the_assembler():
    known = modules()
    bad = [
        f"{path.relative_to(REPO)}:{line}: imports {target}"
        for name, path in known.items()
        if name.startswith("steer_pu.cli")
        for line, target in imported(path, name, known)
        if target == "steer_pu.cli.main"
    ]
    assert not bad, "steer_pu.cli.main assembles the commands; no cli module may import it:\n" + "\n".join(bad)


def test_analysis_imports_without_torch():
    analysis = sorted(n for n in modules() if n.startswith("steer_pu.analysis"))
    code = (
        "import importlib, sys\n"
        f"for name in {analysis!r}:\n"
        "    importlib.import_module(name)\n"
        "loaded = sorted(m for m in ('torch', 'transformers') if m in sys.modules)\n"
        "assert not loaded, f'importing steer_pu.analysis loaded {loaded}'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr


def test_pyproject_lists_every_package():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(config["tool"]["setuptools"]["packages"])
    folders = {module_name(p) for p in PACKAGE.rglob("__init__.py")}
    expected = folders | {"steer_pu.tasks", "steer_pu.tasks.lm_eval"}
    assert listed == expected, (
        f"[tool.setuptools] packages in pyproject.toml: missing {sorted(expected - listed)}, "
        f"not a package folder {sorted(listed - expected)}"
    )
