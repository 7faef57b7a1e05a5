"""Which code a job runs (``p2o.job_code``): editing one loss changes only the digests of the jobs
that run it, a plot function only the figures', a config declaration none."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import REPO

from p2o import job_code
from p2o.job_code import code_digests, definition_code, entry_of, loss_entry, script_code, script_entries
from p2o.losses import LOSSES

SCRIPTS = REPO / "workflow" / "scripts"


@pytest.fixture
def package_copy(tmp_path, monkeypatch):
    """A copy of src/p2o that job_code reads instead of the real one (edit it freely)."""
    root = tmp_path / "src" / "p2o"
    shutil.copytree(job_code.ROOT, root, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(job_code, "ROOT", root)
    return root


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new))


def train_code(loss: str) -> dict[str, str]:
    return script_code(SCRIPTS / "train.py", [loss_entry(loss)], root=REPO)


def changed(before: dict, after: dict) -> set[str]:
    return {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}


def test_loss_entry_is_the_function_the_registry_calls():
    for name, spec in LOSSES.items():
        assert loss_entry(name) == entry_of(spec.fn), name
    with pytest.raises(ValueError, match="no function in p2o.losses is registered as loss 'nope'"):
        loss_entry("nope")


def test_a_training_job_counts_its_own_loss_and_not_the_others():
    p2o, pkto, dpo = train_code("p2o"), train_code("pkto"), train_code("dpo")
    assert "p2o.losses.trust_region:p2o" in p2o and "p2o.losses.trust_region:pkto" not in p2o
    assert not any(k.startswith("p2o.losses.dpo_family") for k in p2o)
    assert "p2o.losses.dpo_family:dpo" in dpo and not any(k.startswith("p2o.losses.trust_region") for k in dpo)
    assert any(k.startswith("p2o.losses.kto:") for k in pkto)  # PKTO's utilities are KTO's
    for code in (p2o, dpo):  # the stage, the trainer, the loop, the script and its helper file
        assert {"p2o.stages.jobs:train", "p2o.training.preference:train_preference", "p2o.training.loop:train_loop",
                "workflow/scripts/train.py", "workflow/scripts/_common.py"} <= code.keys()
        assert not any(k.startswith("p2o.config") for k in code)  # its values are the params


def test_code_change_in_one_loss_changes_only_its_jobs(package_copy):
    before = {loss: train_code(loss) for loss in ("p2o", "pkto", "dpo")}
    edit(package_copy / "losses" / "trust_region.py", "def p2o(\n", "def p2o(  # edited\n")
    after = {loss: train_code(loss) for loss in before}
    assert changed(before["p2o"], after["p2o"]) == {"p2o.losses.trust_region:p2o"}
    assert after["pkto"] == before["pkto"] and after["dpo"] == before["dpo"]

    edit(package_copy / "losses" / "trust_region.py", "def trust_region_loss(", "def trust_region_loss(  # edited\n")
    both = {loss: train_code(loss) for loss in before}
    assert changed(after["p2o"], both["p2o"]) == {"p2o.losses.trust_region:p2o"}  # the helper is part of it
    assert changed(after["pkto"], both["pkto"]) == {"p2o.losses.trust_region:pkto"}
    assert both["dpo"] == before["dpo"]


def test_code_change_in_the_loop_changes_every_training_job_and_a_plot_only_the_figures(package_copy):
    scripts = ("figures.py", "tables.py", "rm_figure.py", "paper_numbers.py", "sft.py")
    before = {s: script_code(SCRIPTS / s, root=REPO) for s in scripts} | {"dpo": train_code("dpo")}
    edit(package_copy / "training" / "loop.py", "def train_loop(", "def train_loop(  # edited\n")
    edit(package_copy / "report" / "plots.py", "def training_curves(", "def training_curves(  # edited\n")
    after = {s: script_code(SCRIPTS / s, root=REPO) for s in scripts} | {"dpo": train_code("dpo")}
    assert changed(before["dpo"], after["dpo"]) == {"p2o.training.loop:train_loop"}
    assert changed(before["sft.py"], after["sft.py"]) == {"p2o.training.loop:train_loop"}
    assert changed(before["figures.py"], after["figures.py"]) == {"p2o.report.plots:training_curves"}
    for s in ("tables.py", "rm_figure.py", "paper_numbers.py"):
        assert after[s] == before[s], s


def test_config_declarations_change_no_job(package_copy):
    before = {s.name: script_code(s, root=REPO) for s in sorted(SCRIPTS.glob("[!_]*.py"))}
    edit(package_copy / "config" / "sections.py", '"AdamW peak learning rate', '"AdamW peak learning rate (edited)')
    after = {s.name: script_code(s, root=REPO) for s in sorted(SCRIPTS.glob("[!_]*.py"))}
    assert after == before


def test_every_script_reaches_only_definitions_that_exist():
    for script in sorted(SCRIPTS.glob("[!_]*.py")):
        entries, local = script_entries(script)
        assert entries and [p.name for p in local] == ["_common.py"], script.name
        code = code_digests(entries)  # raises on an entry that does not resolve
        assert all(len(d) == job_code.DIGEST_CHARS for d in code.values())


def test_a_definition_brings_its_module_helpers_and_the_names_it_imports():
    source, refs = definition_code("p2o.losses.trust_region", "p2o")
    assert '@register("p2o"' in source and "EPS_CLIP = hp(" in source  # its decorator and the constants it uses
    assert "def trust_region_loss(" in source and "def pkto(" not in source
    assert "p2o.losses.registry:register" in refs and "p2o.model.logps:PairLogps" in refs
    with pytest.raises(ValueError, match="defines no top-level 'nope'"):
        definition_code("p2o.losses.trust_region", "nope")
