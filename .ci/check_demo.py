"""After the demo workflow: every method × seed × split has finite metrics, every table and figure
exists, the tables compiled into the paper PDF. Exits non-zero naming what is missing."""

import json
import math
import sys
from pathlib import Path

from p2o.config import load_config
from p2o.report.names import latex_name

cfg = load_config("config/config.yaml", "config/demo.yaml")
problems, checked = [], 0
for method in cfg.all_method_names:  # both protocols: the methods and their compute-matched reruns
    for seed in cfg.seeds:
        for dataset in cfg.data.names:
            path = Path(f"results/evaluate/{method}/seed{seed}/{dataset}.json")
            checked += 1
            if not path.exists():
                problems.append(f"missing {path}")
                continue
            r = json.loads(path.read_text())
            for key in ("eval_rewards/accuracies", "eval_rewards/margins", "eval_kl/token_mean"):
                if not math.isfinite(r.get(key, math.nan)):
                    problems.append(f"{path}: {key} = {r.get(key)}")
generated = Path("results/paper/generated")
extra_tables = ["matched"] * bool(cfg.matched_names) + ["compute", "rm_experiment"]
for name in [f"table_{t}.tex" for t in cfg.data.names + ["all"] + extra_tables] + [
        f"{f}.pdf" for f in ("training_curves", "heldout_curves", "final_metrics", "tradeoff", "rm_vs_dpo")]:
    if not (generated / name).exists():
        problems.append(f"missing {generated / name}")
# every method is a row of every table of its protocol
rows = {f"table_{t}.tex": cfg.method_names for t in cfg.data.names + ["all"]}
rows |= {"table_matched.tex": cfg.matched_names, "table_compute.tex": cfg.all_method_names}
for name, methods in rows.items():
    text = (generated / name).read_text() if (generated / name).exists() else ""
    problems += [f"{generated / name}: no row for {m}" for m in methods if f"\n{latex_name(m)} &" not in text]
pdf, aux = Path("results/paper/main.pdf"), Path("results/paper/.latex/main.aux")  # built aside (paper rule)
if not pdf.exists() or pdf.stat().st_size < 10_000:
    problems.append(f"missing or empty {pdf}")
else:  # the tables and figures compiled into the paper: their labels were defined
    labels = aux.read_text() if aux.exists() else ""
    for label in [f"tab:{t}" for t in cfg.data.names + ["all", "setup"] + extra_tables] + [
            "fig:final", "fig:tradeoff", "fig:rm"]:
        if f"\\newlabel{{{label}}}" not in labels:
            problems.append(f"{aux}: label {label} undefined")
if problems:
    print("demo check failed:\n  " + "\n  ".join(problems))
    sys.exit(1)
print(f"demo check: {checked} method x seed x split results with finite metrics ({len(cfg.method_names)} methods, "
      f"{len(cfg.matched_names)} compute-matched rows), every method in its tables, tables and figures in {pdf}")
