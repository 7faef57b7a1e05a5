"""Compare two workflow results folders: every aggregate CSV, every evaluation JSON, the tables and
the generated LaTeX, bit for bit.

    python .ci/compare_results.py OLD/results NEW/results

What is allowed to differ, and only that, is left out: timings (``wall_s`` columns; the
``tokens_per_s`` and ``elapsed_s`` rows of the curves; the value of ``\\totalTrainMinutes``, the
runs' summed wall time, in numbers.tex) and provenance (config hash, git commit, package versions,
device; an evaluation JSON's ``provenance``). Numbers are compared as written (CSV text cells, JSON
values, LaTeX text), so a difference in the last bit shows. Exits 1 if anything differs.

``differences(old, new)`` is the same comparison for a caller (tests/workflow/test_soak.py).
"""

from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path

TIMING_COLUMNS = {"wall_s"}
PROVENANCE_COLUMNS = {"config_sha256", "git_commit", "device", "device_name"}
TIMING_METRICS = {"tokens_per_s", "elapsed_s"}
TIMING_MACROS = {"totalTrainMinutes"}  # numbers.tex (p2o.report.paper): minutes from the runs' wall_s


def csv_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    kept = []
    for row in rows:
        if row.get("metric") in TIMING_METRICS:
            continue
        kept.append({k: v for k, v in row.items()
                     if k not in TIMING_COLUMNS | PROVENANCE_COLUMNS and not k.startswith("version_")})
    return kept


def json_record(path: Path) -> dict:
    record = json.loads(path.read_text(encoding="utf-8"))
    record.pop("provenance", None)
    return record


def tex_text(path: Path) -> str:
    """The LaTeX as written, but the value of each timing macro's definition."""
    names = "|".join(sorted(TIMING_MACROS))
    return re.sub(r"(\\newcommand\{\\(?:" + names + r")\})\{[^{}\n]*\}", r"\1{<timing>}",
                  path.read_text(encoding="utf-8"))


CHECKS = [("aggregate", "aggregate/*.csv", csv_rows), ("evaluation", "evaluate/**/*.json", json_record),
          ("reward-model evaluation", "rm_experiment/**/eval.json", json_record),
          ("table", "tables/*.csv", csv_rows), ("generated LaTeX", "paper/generated/*.tex", tex_text)]


def differences(old: Path, new: Path) -> tuple[dict[str, list[Path]], list[str]]:
    """({label: the files of OLD compared}, the problems: each file that differs or is in one folder only)."""
    compared, problems = {}, []
    for label, pattern, read in CHECKS:
        files = sorted(p.relative_to(old) for p in old.glob(pattern))
        compared[label] = files
        problems += [f"differs: {f}" for f in files if (new / f).exists() and read(old / f) != read(new / f)]
        problems += [f"only in {old if (old / f).exists() else new}: {f}"
                     for f in sorted({p.relative_to(new) for p in new.glob(pattern)} ^ set(files))]
    return compared, problems


def compare(old: Path, new: Path) -> int:
    compared, problems = differences(old, new)
    for problem in problems:
        print(problem, file=sys.stderr)
    for label, files in compared.items():
        bad = sum(any(p.endswith(f": {f}") for p in problems) for f in files)
        print(f"{label} files identical: {len(files) - bad}/{len(files)}")
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(compare(Path(sys.argv[1]), Path(sys.argv[2])))
