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
HELPERS = {"io", "provenance"}  # top-level modules any layer may import


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
