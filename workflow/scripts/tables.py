import pandas as pd

from _common import log_to
from p2o.io import atomic_path, write_text
from p2o.report import trust_region
from p2o.report.tables import (compute_table, dagger_note, method_table, seed_spread_table, significant_cells,
                               table_csv)

SEED_VARIES = {  # config key seed_scope
    "training": "A seed sets the order of the training batches and hence which pairs share a batch; data, splits, "
                "SFT model and reference are the same for every seed.",
    "pipeline": "A seed sets the initial model, the SFT model and its reference log-probs as well as the order of the "
                "training batches and which pairs share a batch; data and splits are the same for every seed.",
}

log_to(snakemake)
p, out = snakemake.params, snakemake.output
summary, runs = pd.read_csv(snakemake.input.summary), pd.read_csv(snakemake.input.runs)
sig = pd.read_csv(snakemake.input.significance)
for table, tex, csv in zip(p.tables, out.tex, out.csv):
    if table == "matched":
        dataset, methods, baseline = "all", p.matched, p.matched_baseline
        what = (f"Compute-matched protocol: every method takes $K$ = {p.inner_steps} optimizer steps per batch; "
                f"held-out results averaged over datasets")
    else:
        dataset, methods, baseline = table, p.methods, p.baseline
        what = "Original protocol (P$^2$O and PKTO take $K$ steps per batch, the baselines one): held-out results " + (
            "averaged over datasets" if table == "all" else f"on {table.upper()}")
    caption = f"{what}. Mean $\\pm$ 95\\,\\% CI over seeds; best per column in bold; {dagger_note(sig, dataset, baseline)}."
    write_text(tex, method_table(summary, dataset, methods, caption, f"tab:{table}",
                                 significant_cells(sig, dataset, baseline)))
    with atomic_path(csv) as tmp:
        frame = table_csv(summary, dataset)
        frame[frame["method"].isin(methods)].to_csv(tmp, index=False)
write_text(out.compute, compute_table(runs, p.all_methods, "Training compute per run (mean over seeds): optimizer "
                                      "steps, batch forward and backward passes, and FLOPs (Kaplan et al.'s 6N "
                                      "rule, LM head at response tokens only).", "tab:compute"))
spread = pd.read_csv(snakemake.input.seed_spread)
n_seeds = int(spread["n_seeds"].min())
write_text(out.seed_spread, seed_spread_table(
    spread, p.all_methods, p.datasets,
    f"Spread over seeds: standard deviation of the final held-out reward margin over {n_seeds} seed(s) (sample "
    "standard deviation, $n-1$ in the denominator; All: of the per-seed mean over datasets). " + SEED_VARIES[p.seed_scope]
    + " -- : a single seed."))
settings, _ = trust_region.settings_of(runs, p.trust_region_methods)
write_text(out.trust_region, trust_region.table_tex(pd.read_csv(snakemake.input.trust_region),
                                                    p.trust_region_methods, settings))
order = ["all", "matched", "compute"] + [t for t in p.tables if t not in ("all", "matched")]
write_text(out.index, "".join(f"\\input{{generated/table_{t}.tex}}\n" for t in order
                              if t == "compute" or t in p.tables))
