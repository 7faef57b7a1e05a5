"""requirements/lock.txt, the pinned environment CI installs (written by ``python3 .ci/lock.py``): it
parses, pins every requirement of pyproject.toml at a version its bounds allow, torch at 2.13.0 and no
CUDA package; CI and the README's Quickstart install from it; the generator keeps CUDA packages out."""

from __future__ import annotations

import importlib.util
import json
import re
import tomllib
from importlib import metadata

import pytest
from conftest import REPO
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

LOCK = REPO / "requirements" / "lock.txt"
LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([0-9][A-Za-z0-9.+!-]*)$")


def lock_module():
    spec = importlib.util.spec_from_file_location("p2o_ci_lock", REPO / ".ci" / "lock.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pins() -> dict[str, str]:
    out = {}
    for number, line in enumerate(LOCK.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        m = LINE.match(line.strip())
        assert m, f"{LOCK.name}:{number} is not name==version: {line!r}"
        name = canonicalize_name(m.group(1))
        assert name not in out, f"{name} pinned twice"
        out[name] = m.group(2)
    return out


def project_requirements() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    return [Requirement(r) for r in project["dependencies"] + extras["test"] + extras["slurm"]]


def test_lock_parses_and_says_how_it_was_made():
    header = [line for line in LOCK.read_text().splitlines() if line.startswith("#")]
    assert any("python3 .ci/lock.py" in line for line in header)
    assert len(pins()) > 20
    assert pins() == lock_module().pins_of(LOCK.read_text())  # the generator's --check reads it alike


def test_lock_pins_every_project_requirement_within_its_bounds():
    locked = pins()
    for req in project_requirements():
        name = canonicalize_name(req.name)
        assert name in locked, f"{req} (pyproject.toml) is not in {LOCK.name}"
        assert req.specifier.contains(Version(locked[name]), prereleases=True), f"{name}=={locked[name]} breaks {req}"


def test_lock_is_the_cpu_torch_without_cuda_packages():
    locked = pins()
    assert locked["torch"] == "2.13.0"
    cuda = [name for name in locked if name.startswith("nvidia-") or name == "triton"]
    assert not cuda, cuda
    assert "p2o" not in locked  # installed from the checkout, --no-deps


def test_lock_is_closed_under_the_dependencies_installed_here():
    """Each locked package installed here at its locked version needs only locked packages."""
    locked, missing = pins(), []
    for name, version in locked.items():
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        if dist.version.split("+")[0] != version:
            continue
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                if canonicalize_name(req.name) not in locked:
                    missing.append(f"{name} needs {req}")
    assert not missing, missing


def test_ci_and_the_quickstart_install_from_the_lock():
    ci = (REPO / ".ci" / "run").read_text()
    assert "pip install -q -r requirements/lock.txt" in ci and "pip install -q --no-deps -e ." in ci
    assert 'install -q -e ".[test]"' not in ci  # nothing resolved afresh
    readme = (REPO / "README.md").read_text()
    quickstart = readme.split("## Quickstart", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line for line in quickstart.splitlines() if line.strip() and not line.startswith("#")]
    assert len(commands) == 2  # (a) install + demo, (b) tests
    assert "pip install -r requirements/lock.txt && pip install --no-deps -e ." in commands[0]
    assert 'LOCK_FILE = "requirements/lock.txt"' in (REPO / "workflow" / "rules" / "paper.smk").read_text()


def test_the_generator_refuses_cuda_packages_and_strips_local_versions(tmp_path, monkeypatch):
    lock = lock_module()

    def fake_pip(cmd, **kwargs):
        report = cmd[cmd.index("--report") + 1]
        installs = [{"metadata": {"name": n, "version": v}} for n, v in packages]
        with open(report, "w") as f:
            json.dump({"install": installs}, f)

    monkeypatch.setattr(lock.subprocess, "run", fake_pip)
    packages = [("torch", "2.13.0+cpu"), ("Jinja2", "3.1.6"), ("p2o", "0.1.0")]
    assert lock.resolve() == {"jinja2": "3.1.6", "torch": "2.13.0"}
    packages.append(("nvidia-cublas-cu12", "12.8.4.1"))
    with pytest.raises(SystemExit, match="nvidia-cublas-cu12"):
        lock.resolve()
