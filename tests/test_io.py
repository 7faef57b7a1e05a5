"""Atomic outputs: an interrupted write never leaves a file that looks complete."""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO
from p2o.io import JsonlLog, atomic_dir, atomic_path, write_json, write_jsonl



def test_atomic_path_leaves_nothing_on_error(tmp_path):
    out = tmp_path / "a.json"
    with pytest.raises(RuntimeError), atomic_path(out) as tmp:
        tmp.write_text("{half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_keeps_the_old_file_until_the_new_one_is_whole(tmp_path):
    out = tmp_path / "a.json"
    write_json(out, {"v": 1})
    with pytest.raises(RuntimeError), atomic_path(out) as tmp:
        tmp.write_text("{half")
        raise RuntimeError("killed")
    assert json.loads(out.read_text()) == {"v": 1}


def test_atomic_dir_leaves_nothing_on_error(tmp_path):
    out = tmp_path / "model"
    with pytest.raises(RuntimeError), atomic_dir(out) as tmp:
        (tmp / "weights").write_bytes(b"12")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_log_is_partial_until_the_job_ends_cleanly(tmp_path):
    path = tmp_path / "log.jsonl"
    with pytest.raises(RuntimeError), JsonlLog(path) as log:
        log.write({"step": 1})
        raise RuntimeError("killed")
    assert not path.exists()
    assert json.loads((tmp_path / "log.jsonl.partial").read_text()) == {"step": 1}  # kept for reading
    with JsonlLog(path) as log:
        assert not path.exists()
        log.write({"step": 1})
    assert path.exists() and not (tmp_path / "log.jsonl.partial").exists()


def test_a_rerun_removes_the_previous_complete_log_first(tmp_path):
    path = tmp_path / "log.jsonl"
    with JsonlLog(path) as log:
        log.write({"step": 1})
    log = JsonlLog(path)
    assert not path.exists()  # a crash from here on cannot leave the old log looking like this run's
    log.close()


WRITER = """
import sys, time
from p2o.io import write_jsonl
def rows():
    for i in range(10**9):
        if i == 1000:
            print("writing", flush=True)
        yield {"i": i, "pad": "x" * 100}
write_jsonl(sys.argv[1], rows())
"""


def test_sigkill_mid_write_leaves_no_output(tmp_path):
    out = tmp_path / "rows.jsonl"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(out)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    assert [p.name.startswith(".rows.jsonl.") for p in tmp_path.iterdir()] == [True]  # hidden leftover only
    write_jsonl(out, [{"i": 0}])
    assert out.read_text() == '{"i": 0}\n'


# --------------------------------------------------------------------------- audit

# Library calls that write a file in place. Our own helpers (write_json, write_text, plots' save,
# ReferenceLogps.save) are bare names or methods of ours: they are audited where they are defined.
WRITES = {"to_csv", "savefig", "save_pretrained", "write_text", "write_bytes", "to_parquet", "to_json"}


def _writes_outside_atomic(path: Path) -> list[str]:
    """Calls that write a file (open(..., 'w'), .to_csv, .savefig, torch.save, save_pretrained, ...)
    that are not inside a ``with atomic_path(...)``/``atomic_dir(...)`` block."""
    tree = ast.parse(path.read_text())
    atomic_lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.With) and any("atomic_" in ast.unparse(i.context_expr) for i in node.items):
            atomic_lines |= set(range(node.lineno, node.end_lineno + 1))
    bad = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or node.lineno in atomic_lines:
            continue
        func = node.func
        method = func.attr if isinstance(func, ast.Attribute) else None
        is_open_w = getattr(func, "id", None) == "open" and any(
            isinstance(a, ast.Constant) and isinstance(a.value, str) and a.value[:1] in "wax" for a in node.args[1:2])
        is_torch_save = method == "save" and ast.unparse(func.value) == "torch"
        if is_open_w or is_torch_save or method in WRITES:
            bad.append(f"{path.relative_to(REPO)}:{node.lineno}: {ast.unparse(node)[:80]}")
    return bad


# Writes that are not results: the rule's own log stream, the append-only training log (written
# as <name>.partial and renamed by JsonlLog itself), the helpers that implement atomicity, and the
# GPU slots' lock files (held open for a job's lifetime, never a result).
ALLOWED = {"workflow/scripts/_common.py", "src/p2o/io.py", "src/p2o/gpu_slots.py"}


def test_every_output_is_written_through_an_atomic_helper():
    files = [*sorted((REPO / "src" / "p2o").rglob("*.py")), *sorted((REPO / "workflow" / "scripts").glob("*.py"))]
    bad = [b for f in files if str(f.relative_to(REPO)) not in ALLOWED for b in _writes_outside_atomic(f)]
    assert not bad, "non-atomic writes:\n" + "\n".join(bad)
    assert len(files) > 30


def test_the_paper_pdf_is_built_aside_and_moved_into_place():
    rule = (REPO / "workflow" / "rules" / "paper.smk").read_text()
    assert "-outdir=" in rule and "mv " in rule
