"""The generated files are current: the workflow schema, the loss catalogue and config/README.md's key
tables equal what ``python -m p2o.docs`` writes from the config declarations and the loss registry."""

from __future__ import annotations

import shutil
import subprocess
import sys

from conftest import REPO
from p2o import docs



def test_generated_files_are_current():
    stale = docs.stale(REPO)
    assert not stale, f"stale: {[str(p) for p in stale]}; regenerate with python -m p2o.docs"


def test_check_names_each_stale_file_and_exits_1(tmp_path):
    for path in docs.generated(REPO):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / path, tmp_path / path)
    check = [sys.executable, "-m", "p2o.docs", "--check", "--root", str(tmp_path)]
    assert subprocess.run(check, capture_output=True, text=True).returncode == 0
    (tmp_path / docs.SCHEMA).write_text("# hand-edited\n" + (tmp_path / docs.SCHEMA).read_text())
    readme = tmp_path / docs.CONFIG_README
    readme.write_text(readme.read_text().replace("| `lr` |", "| `learning_rate` |", 1))
    proc = subprocess.run(check, capture_output=True, text=True)
    assert proc.returncode == 1
    assert str(docs.SCHEMA) in proc.stderr and str(docs.CONFIG_README) in proc.stderr
    assert str(docs.LOSS_CATALOGUE) not in proc.stderr
    subprocess.run([sys.executable, "-m", "p2o.docs", "--root", str(tmp_path)], check=True, capture_output=True)
    assert subprocess.run(check, capture_output=True, text=True).returncode == 0


def test_the_catalogue_is_what_the_registry_declares():
    """p2o.config reads the catalogue without importing torch; it must hold what p2o.losses declares."""
    from p2o.config.methods import catalogue
    from p2o.losses import LOSSES

    cat = catalogue()
    assert list(cat) == list(LOSSES)
    for name, spec in LOSSES.items():
        assert cat[name].hparams == spec.hparams, name
        assert cat[name].inputs == spec.inputs and cat[name].paper == spec.paper and cat[name].trl == spec.trl
        for hparams in ({}, {"ref_point": "zero"}, {"ref_point": "mismatched"}):
            assert cat[name].inputs_for(hparams) == spec.inputs_for(hparams), name


def test_parsing_a_config_imports_no_tensor_library():
    code = ("import sys; from p2o.config import load_config; "
            "cfg = load_config('config/config.yaml', 'config/demo.yaml'); cfg.hash(); "
            "[cfg.method(m).inputs for m in cfg.all_method_names]; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers')] + "
            "[m for m in sys.modules if m.startswith('p2o.') and m.split('.')[1] not in ('config', 'provenance')]; "
            "print(bad); assert not bad")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
