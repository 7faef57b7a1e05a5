"""Which source code a job runs, and its digest: how a library edit reruns the jobs it touches.

A job's code is a set of *entries*: a module (``p2o.report.plots``) or one of its top-level
definitions (``p2o.stages.jobs:train``, ``p2o.losses.trust_region:p2o``). An entry brings in

    a definition   its source (decorators included), the top-level names of its module that it
                   uses (helpers, constants), and the modules the names it imports come from
    a module       its file, and the modules it imports anywhere in it

followed transitively, module by module, inside ``p2o``. Two packages are not followed:
``p2o.config`` (its values reach every job through the job's parameters, so a new key or help text
reruns nothing) and the registry package ``p2o.losses``, which imports every loss to fill the
registry: a training job counts only its method's loss function (``loss_entry``). A name imported
from a package resolves to the module that defines it (``from p2o.data import read_split`` is
``p2o.data.prepare``). The digest of each entry is the sha256 of its source; ``code_digests`` maps
entry -> digest, the form a rule's params and a run's fingerprint hold.

This module reads files only (``ast``): the workflow imports it without torch.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from collections.abc import Iterable
from pathlib import Path

PACKAGE = "p2o"
ROOT = Path(__file__).resolve().parent  # src/p2o
NOT_FOLLOWED = ("p2o.config",)  # its values are the jobs' parameters
REGISTRY = "p2o.losses"  # imports every loss; a job counts its own loss function only
DIGEST_CHARS = 16


def module_file(name: str) -> Path | None:
    """The source file of p2o module ``name`` (a package's ``__init__.py``), or None."""
    if name != PACKAGE and not name.startswith(PACKAGE + "."):
        return None
    base = ROOT.joinpath(*name.split(".")[1:])
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _tree(path: Path) -> tuple[ast.Module, str]:
    """The parsed file and its text, parsed again only when the file changed."""
    stat = path.stat()
    return _parse(path, stat.st_mtime_ns, stat.st_size)


@functools.cache
def _parse(path: Path, mtime_ns: int, size: int) -> tuple[ast.Module, str]:
    text = path.read_text(encoding="utf-8")
    return ast.parse(text, filename=str(path)), text


def _absolute(module: str | None, level: int, importer: str, is_package: bool) -> str:
    """``from .x import y`` inside ``importer`` -> the absolute module name."""
    if not level:
        return module or ""
    parts = importer.split(".")
    base = parts if is_package else parts[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def _defined_in(package: str, name: str) -> str:
    """The module a package's ``name`` comes from: its submodule ``name``, the module its
    ``__init__`` imports it from, or the package itself."""
    if module_file(f"{package}.{name}"):
        return f"{package}.{name}"
    path = module_file(package)
    if path is None:
        return package
    for node in _tree(path)[0].body:
        if isinstance(node, ast.ImportFrom) and any((a.asname or a.name) == name for a in node.names):
            origin = _absolute(node.module, node.level, package, path.name == "__init__.py")
            if origin != package and module_file(origin):
                return _defined_in(origin, next(a.name for a in node.names if (a.asname or a.name) == name))
    return package


def _import_entries(node: ast.AST, importer: str, is_package: bool) -> dict[str, str]:
    """Bound name -> entry, for one import statement: ``import p2o.x`` and a submodule imported by name
    are modules; a name imported from a module is the definition, where the module defines it at
    top level."""
    out = {}
    if isinstance(node, ast.Import):
        for a in node.names:
            if module_file(a.name):
                out[a.asname or a.name.split(".")[0]] = a.name
    elif isinstance(node, ast.ImportFrom):
        module = _absolute(node.module, node.level, importer, is_package)
        if module_file(module):
            for a in node.names:
                origin = _defined_in(module, a.name)
                out[a.asname or a.name] = origin if origin == f"{module}.{a.name}" else _entry(origin, a.name)
    return out


def _module_imports(name: str) -> frozenset[str]:
    """The p2o modules ``name`` imports anywhere in its file."""
    path = module_file(name)
    if path is None:
        return frozenset()
    tree, _ = _tree(path)
    found = set()
    for node in ast.walk(tree):
        found.update(e.partition(":")[0] for e in _import_entries(node, name, path.name == "__init__.py").values())
    return frozenset(found)


def _followed(name: str) -> bool:
    return not any(name == p or name.startswith(p + ".") for p in NOT_FOLLOWED)


def _top_level(tree: ast.Module) -> dict[str, ast.stmt]:
    """Name -> the top-level statement defining it (def, class, assignment, import)."""
    out: dict[str, ast.stmt] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                for n in ast.walk(target):
                    if isinstance(n, ast.Name):
                        out[n.id] = node
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for a in node.names:
                out[a.asname or a.name.split(".")[0]] = node
    return out


def _segment(text: str, node: ast.stmt) -> str:
    start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    return "\n".join(text.splitlines()[start - 1: node.end_lineno])


def definition_code(module: str, name: str) -> tuple[str, list[str]]:
    """The source of top-level ``name`` in ``module`` with the module's top-level definitions it
    uses (transitively), and the entries their imports name."""
    path = module_file(module)
    if path is None:
        raise ValueError(f"{module}: not a module of {PACKAGE}")
    tree, text = _tree(path)
    top = _top_level(tree)
    if name not in top:
        raise ValueError(f"{module} defines no top-level {name!r}")
    is_package = path.name == "__init__.py"
    used, todo, modules = set(), [name], set()
    while todo:
        node = top[todo.pop()]
        if id(node) in used:
            continue
        used.add(id(node))
        for n in ast.walk(node):
            if isinstance(n, (ast.Import, ast.ImportFrom)):
                targets = _import_entries(n, module, is_package)
                names = [a.asname or a.name.split(".")[0] for a in n.names]
                if node is n:  # a top-level import: only the names this definition uses
                    targets = {k: v for k, v in targets.items() if k in names}
                modules.update(targets.values())
            elif isinstance(n, ast.Name) and n.id in top and id(top[n.id]) not in used:
                todo.append(n.id)
    # imports are not source here: what they bind is followed as entries of its own
    nodes = sorted((node for node in tree.body if id(node) in used and not isinstance(node, (ast.Import, ast.ImportFrom))),
                   key=lambda node: node.lineno)
    return "\n\n".join(_segment(text, node) for node in nodes), sorted(modules)


def _sha(text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()[:DIGEST_CHARS]


def code_digests(entries: Iterable[str]) -> dict[str, str]:
    """Entry -> sha256 (first 16 hex digits) of its source, for ``entries`` and every entry they
    reach (module docstring). An entry is ``"pkg.module"`` or ``"pkg.module:name"``."""
    out: dict[str, str] = {}
    todo = list(entries)
    while todo:
        entry = todo.pop()
        module, _, name = entry.partition(":")
        if entry in out or not _followed(module) or module_file(module) is None:
            continue
        if name:
            source, refs = definition_code(module, name)
            out[entry] = _sha(source)
            todo += refs
        else:
            out[entry] = _sha(module_file(module).read_bytes())
            if module != REGISTRY:
                todo += _module_imports(module)
    # a definition whose whole module is counted adds nothing
    return dict(sorted((e, d) for e, d in out.items() if e.partition(":")[0] == e or e.partition(":")[0] not in out))


def entry_of(obj) -> str:
    """The entry of a top-level function or class: ``"module:name"``."""
    return f"{obj.__module__}:{obj.__qualname__}"


def loss_entry(loss: str) -> str:
    """The function registered as ``loss`` (``@register("p2o", ...)``), as an entry."""
    for path in sorted((ROOT / "losses").glob("*.py")):
        for node in _tree(path)[0].body:
            if isinstance(node, ast.FunctionDef) and any(
                    isinstance(d, ast.Call) and getattr(d.func, "id", None) == "register" and d.args
                    and isinstance(d.args[0], ast.Constant) and d.args[0].value == loss for d in node.decorator_list):
                return f"{REGISTRY}.{path.stem}:{node.name}"
    raise ValueError(f"no function in {REGISTRY} is registered as loss {loss!r}")


def script_entries(script: str | Path) -> tuple[list[str], list[Path]]:
    """The p2o entries a workflow script calls (``from p2o.stages import jobs`` then ``jobs.train(``
    is ``p2o.stages.jobs:train``; ``from p2o.report.plots import f`` is ``p2o.report.plots:f``), and
    the local helper files it imports (``_common.py`` beside it)."""
    script = Path(script)
    tree, _ = _tree(script.resolve())
    entries, local = [], []
    bound: dict[str, str] = {}  # name in the script -> module it is bound to
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if not _bind_local(script, a.name, local) and module_file(a.name):
                    bound[a.asname or a.name.split(".")[0]] = a.name
        elif isinstance(node, ast.ImportFrom) and node.module:
            if _bind_local(script, node.module, local):
                continue
            for a in node.names:
                full = f"{node.module}.{a.name}"
                if module_file(full):  # a module: its attributes are looked up below
                    bound[a.asname or a.name] = full
                elif module_file(node.module):
                    origin = _defined_in(node.module, a.name)
                    entries.append(_entry(origin, a.name))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in bound:
            entries.append(_entry(bound[node.value.id], node.attr))
    for name, module in bound.items():  # a module used as a whole
        if not any(e == module or e.startswith(module + ":") for e in entries):
            entries.append(module)
    return sorted(set(entries)), sorted(set(local))


def _entry(module: str, name: str) -> str:
    path = module_file(module)
    if path is not None and name in _top_level(_tree(path)[0]):
        return f"{module}:{name}"
    return module


def _bind_local(script: Path, module: str, local: list[Path]) -> bool:
    path = script.parent / f"{module}.py"
    if path.is_file():
        local.append(path)
        return True
    return False


def script_code(script: str | Path, entries: Iterable[str] = (), root: str | Path = ".") -> dict[str, str]:
    """A workflow script's code: the script, its local helpers and the p2o entries it calls (plus
    ``entries``), as ``code_digests``; files are named relative to ``root``."""
    called, local = script_entries(script)
    out = code_digests([*called, *entries])
    for path in [Path(script), *local]:
        out[Path(path).resolve().relative_to(Path(root).resolve()).as_posix()] = _sha(Path(path).read_bytes())
    return dict(sorted(out.items()))
