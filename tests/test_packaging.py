"""What the package says about itself: the layers named in ``p2o.__doc__``, and ``environment.yml``
agreeing with ``pyproject.toml``."""

from __future__ import annotations

import ast
import re
import tomllib

import yaml
from conftest import REPO

import p2o

SRC = REPO / "src" / "p2o"
HELPERS = {"io", "provenance", "job_code"}  # top-level modules any layer may import


def documented_layers() -> list[str]:
    """The packages named at the start of a line of ``p2o.__doc__``, in order."""
    return re.findall(r"^    p2o\.(\w+) ", p2o.__doc__, flags=re.MULTILINE)


def test_docstring_names_every_layer_package():
    packages = sorted(d.name for d in SRC.iterdir() if (d / "__init__.py").exists())
    assert sorted(documented_layers()) == packages


def test_layers_import_only_the_layers_listed_before_them():
    layers = documented_layers()
    upward = []
    for rank, layer in enumerate(layers):
        allowed = set(layers[: rank + 1]) | HELPERS
        for path in sorted((SRC / layer).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                    [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else [])
                for name in names:
                    parts = name.split(".")
                    if parts[0] == "p2o" and len(parts) > 1 and parts[1] not in allowed:
                        upward.append(f"{path.relative_to(REPO)}:{node.lineno} imports {name}")
    assert not upward, upward


def _split(requirement: str) -> tuple[str, str]:
    """``"transformers>=5.0,<6"`` -> ``("transformers", ">=5.0,<6")``."""
    name, spec = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*(.*)", requirement.strip()).groups()
    return name.lower(), spec.replace(" ", "")


def test_environment_yml_matches_pyproject():
    """Every dependency and every requirement of the test and slurm extras, with the same version
    bounds; conda names torch ``pytorch`` and may add a build string (``=cuda*``)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted = dict(_split(r) for r in project["dependencies"] + extras["test"] + extras["slurm"])
    env = yaml.safe_load((REPO / "environment.yml").read_text())["dependencies"]
    entries = [e for e in env if isinstance(e, str)] + [e for d in env if isinstance(d, dict) for e in d["pip"]]
    have = {}
    for entry in entries:
        if entry.startswith("-e ") or entry.split("=")[0] in ("python", "pip"):
            continue
        name, spec = _split(entry.replace("=cuda*", ""))
        have["torch" if name == "pytorch" else name] = spec
    assert have == wanted


def module_imports() -> dict[str, set[str]]:
    """p2o module -> the p2o modules it imports, anywhere in its code (late imports included)."""
    modules = {".".join(p.relative_to(SRC.parent).with_suffix("").parts).removesuffix(".__init__"): p
               for p in SRC.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            found |= {t for t in targets if t in modules and t != name}
        graph[name] = found
    return graph


def test_no_import_cycle_inside_the_package():
    graph, done, cycles = module_imports(), set(), []

    def visit(name: str, stack: list[str]) -> None:
        if name in stack:
            cycles.append(stack[stack.index(name):] + [name])
            return
        if name in done:
            return
        for target in sorted(graph[name]):
            # a package's __init__ re-exporting its own modules is not a cycle through the package
            if not target.startswith(name + "."):
                visit(target, stack + [name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])
    assert not cycles, [" -> ".join(c) for c in cycles]


def test_no_module_over_400_lines():
    long = {str(p.relative_to(REPO)): n for p in SRC.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    assert not long, long
