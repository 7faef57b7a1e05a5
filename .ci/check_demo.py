"""After the demo workflow: every method × seed × split has finite metrics, every held-out curve
starts at accuracy 0.5 with every pair tied (the policy is the reference at step 0), the daggers'
p-values are Holm-adjusted and the tables say so, every table and figure exists, the tables compiled
into the paper PDF. Exits non-zero naming what is missing."""

import csv
import json
import math
import sys
from pathlib import Path

from p2o.config import load_config
from p2o.report.names import latex_name
from p2o.report.significance import ALPHA

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
            for key in ("eval_rewards/accuracies", "eval_rewards/ties", "eval_rewards/margins", "eval_kl/token_mean"):
                if not math.isfinite(r.get(key, math.nan)):
                    problems.append(f"{path}: {key} = {r.get(key)}")
        log = Path(f"results/train/{method}/seed{seed}/log.jsonl")
        step0 = [json.loads(line) for line in log.open()] if log.exists() else []
        step0 = [e for e in step0 if e["kind"] == "eval" and e["step"] == 0]
        problems += [f"{log}: held-out curve of {e['dataset']} starts at accuracy {e['eval_rewards/accuracies']}, "
                     f"ties {e.get('eval_rewards/ties')} (not 0.5 and 1)" for e in step0
                     if e["eval_rewards/accuracies"] != 0.5 or e.get("eval_rewards/ties") != 1.0]
sig_path = Path("results/aggregate/significance.csv")
tests = list(csv.DictReader(sig_path.open())) if sig_path.exists() else []
problems += [f"{sig_path}: {t['method']} vs {t['baseline']} on {t['dataset']} ({t['metric']}): significant = "
             f"{t['significant']} with Holm-adjusted p {t['p_holm']}" for t in tests
             if (t["significant"] == "True") != (float(t["p_holm"]) <= ALPHA) or float(t["p_holm"]) < float(t["p_value"])]
if not tests:
    problems.append(f"missing or empty {sig_path}")
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
    if name != "table_compute.tex" and text and "Holm" not in text:
        problems.append(f"{generated / name}: the caption does not say the daggers are Holm-corrected")
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
