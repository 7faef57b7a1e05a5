"""Compare two workflow results folders: every aggregate CSV and every evaluation JSON, bit for bit.

    python .ci/compare_results.py OLD/results NEW/results

What is allowed to differ, and only that, is left out: timings (``wall_s`` columns; the
``tokens_per_s`` and ``elapsed_s`` rows of the curves) and provenance (config hash, git commit,
package versions, device; an evaluation JSON's ``provenance``). Numbers are compared as written
(CSV text cells, JSON values), so a difference in the last bit shows. Exits 1 if anything differs.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

TIMING_COLUMNS = {"wall_s"}
PROVENANCE_COLUMNS = {"config_sha256", "git_commit", "device", "device_name"}
TIMING_METRICS = {"tokens_per_s", "elapsed_s"}


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


def compare(old: Path, new: Path) -> int:
    checks = [("aggregate", "aggregate/*.csv", csv_rows), ("evaluation", "evaluate/**/*.json", json_record),
              ("reward-model evaluation", "rm_experiment/**/eval.json", json_record)]
    failed = 0
    for label, pattern, read in checks:
        files = sorted(p.relative_to(old) for p in old.glob(pattern))
        same = [f for f in files if (new / f).exists() and read(old / f) == read(new / f)]
        missing = sorted(set(p.relative_to(new) for p in new.glob(pattern)) ^ set(files))
        for f in sorted(set(files) - set(same)):
            print(f"differs: {f}", file=sys.stderr)
        for f in missing:
            print(f"only in one folder: {f}", file=sys.stderr)
        print(f"{label} files identical: {len(same)}/{len(files)}" + (f", {len(missing)} unmatched" if missing else ""))
        failed += len(files) - len(same) + len(missing)
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(compare(Path(sys.argv[1]), Path(sys.argv[2])))
