"""LaTeX (booktabs) tables of the summarised metrics: methods × metrics, mean ± 95 % CI.

The best mean in each column is set in bold (highest accuracy and margin, lowest KL; every
method that ties for it). A method
whose seeds give no interval (a single seed) shows the mean alone. A dagger marks a gap to the
baseline that stays significant after the Holm correction over the table's tests (``dagger_note``
says so in the caption).
"""

from __future__ import annotations

import math

import pandas as pd

from p2o.report.aggregate import METRIC_LABELS, METRICS
from p2o.report.names import latex_name, rm_model_label
from p2o.report.significance import ALPHA, TESTED


def fmt(mean: float, ci: float, digits: int, bold: bool) -> str:
    text = f"{mean:.{digits}f}"
    if not math.isnan(ci):
        text += f" $\\pm$ {ci:.{digits}f}"
    return f"\\textbf{{{text}}}" if bold else text


def digits_for(metric: str) -> int:
    return 4 if "kl" in metric else 3


def method_table(summary: pd.DataFrame, dataset: str, methods: list[str], caption: str, label: str,
                 significant: set[tuple[str, str]] = frozenset()) -> str:
    """One table for one dataset (or 'all'): a row per method, a column per reported metric.
    ``significant`` holds (method, metric) cells to mark with a dagger (``p2o.report.significance``)."""
    rows = summary[summary["dataset"] == dataset].set_index(["method", "metric"])
    best = {}  # metric -> the methods whose mean is the best (all of them when tied)
    for metric, direction in METRICS.items():
        means = {m: rows.loc[(m, metric), "mean"] for m in methods if (m, metric) in rows.index}
        top = (max if direction == "max" else min)(means.values()) if means else None
        best[metric] = {m for m, v in means.items() if abs(v - top) <= 1e-12}
    arrows = {"max": "$\\uparrow$", "min": "$\\downarrow$"}
    header = " & ".join(f"{METRIC_LABELS[m]} {arrows[d]}" for m, d in METRICS.items())
    lines = [
        "\\begin{table}[t]", "\\centering", f"\\caption{{{caption}}}", f"\\label{{{label}}}",
        "\\begin{tabular}{l" + "r" * len(METRICS) + "}", "\\toprule", f"Method & {header} \\\\", "\\midrule",
    ]
    for method in methods:
        cells = []
        for metric in METRICS:
            if (method, metric) not in rows.index:
                cells.append("--")
                continue
            r = rows.loc[(method, metric)]
            mark = "$^\\dagger$" if (method, metric) in significant else ""
            cells.append(fmt(r["mean"], r["ci95"], digits_for(metric), method in best[metric]) + mark)
        lines.append(f"{latex_name(method)} & " + " & ".join(cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}", ""]
    return "\n".join(lines)


def significant_cells(sig: pd.DataFrame, dataset: str, baseline: str) -> set[tuple[str, str]]:
    """(method, metric) pairs whose gap to ``baseline`` on ``dataset`` is significant after the Holm
    correction over the table's tests (``p2o.report.significance``)."""
    rows = sig[(sig["dataset"] == dataset) & (sig["baseline"] == baseline) & sig["significant"].astype(bool)]
    return set(zip(rows["method"], rows["metric"]))


def dagger_note(sig: pd.DataFrame, dataset: str, baseline: str) -> str:
    """The caption's sentence on the daggers: their test, and the Holm correction over this table's
    tests (counted from ``sig``, so that the caption follows the results)."""
    n = int(((sig["dataset"] == dataset) & (sig["baseline"] == baseline)).sum())
    return (f"$^\\dagger$: differs from {latex_name(baseline)} under a paired bootstrap over held-out pairs and "
            f"seeds, Holm--Bonferroni-adjusted $p \\le {ALPHA:g}$ over the table's {n} tests "
            f"({' and '.join(METRIC_LABELS[m].lower() for m in TESTED)} of each method)")


def compute_table(runs: pd.DataFrame, methods: list[str], caption: str, label: str) -> str:
    """What each method's training cost (``p2o.training.compute``), mean over seeds; FLOPs also relative to
    the first row's."""
    per = runs.groupby("method")[["inner_steps", "optimizer_steps", "forward_passes", "backward_passes",
                                  "flops"]].mean()
    methods = [m for m in methods if m in per.index]
    ref = per.loc[methods[0], "flops"] if methods else math.nan
    lines = ["\\begin{table}[t]", "\\centering", f"\\caption{{{caption}}}", f"\\label{{{label}}}",
             "\\begin{tabular}{lrrrrrr}", "\\toprule",
             f"Method & $K$ & Optimizer steps & Forwards & Backwards & TFLOPs & vs {latex_name(methods[0])} \\\\"
             if methods else "Method \\\\", "\\midrule"]
    for m in methods:
        r = per.loc[m]
        lines.append(f"{latex_name(m)} & {r['inner_steps']:.0f} & {r['optimizer_steps']:.0f} & "
                     f"{r['forward_passes']:.0f} & {r['backward_passes']:.0f} & {r['flops'] / 1e12:.3g} & "
                     f"{r['flops'] / ref:.2f}$\\times$ \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}", ""]
    return "\n".join(lines)


def table_csv(summary: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """The table's numbers, wide: one row per method, mean and ci95 per metric."""
    rows = summary[(summary["dataset"] == dataset) & summary["metric"].isin(list(METRICS))]
    wide = rows.pivot(index="method", columns="metric", values=["mean", "ci95"])
    wide.columns = [f"{metric}:{stat}" for stat, metric in wide.columns]
    return wide.reset_index()


def rm_experiment_table(summary: pd.DataFrame, datasets: list[str], models: list[str],
                        label: str = "tab:rm_experiment") -> str:
    """Reward model versus DPO (``p2o.report.rm_experiment.summary``): a row per dataset and size N, a
    column per model with held-out accuracy mean ± 95 % CI over seeds; the higher mean in bold."""
    rows = summary.set_index(["dataset", "size", "model"])
    n_seeds = int(summary["n_seeds"].min()) if len(summary) else 0
    caption = (f"Reward model versus DPO: held-out accuracy after training on the first $N$ pairs, "
               f"mean $\\pm$ 95\\,\\% CI over {n_seeds} seed{'s' if n_seeds != 1 else ''}; the higher per row "
               f"in bold.")
    lines = ["\\begin{table}[t]", "\\centering", f"\\caption{{{caption}}}", f"\\label{{{label}}}",
             "\\begin{tabular}{lr" + "r" * len(models) + "}", "\\toprule",
             "Data & $N$ & " + " & ".join(rm_model_label(m) for m in models) + " \\\\", "\\midrule"]
    for k, dataset in enumerate(datasets):
        sizes = sorted(summary.loc[summary["dataset"] == dataset, "size"].unique())
        if k and sizes:
            lines.append("\\midrule")
        for size in sizes:
            cells = {m: rows.loc[(dataset, size, m)] for m in models if (dataset, size, m) in rows.index}
            top = max((r["mean"] for r in cells.values()), default=math.nan)
            shown = [fmt(cells[m]["mean"], cells[m]["ci95"], 3, abs(cells[m]["mean"] - top) <= 1e-12)
                     if m in cells else "--" for m in models]
            lines.append(f"{dataset.upper()} & {size} & " + " & ".join(shown) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}", ""]
    return "\n".join(lines)


def rm_experiment_csv(summary: pd.DataFrame, models: list[str]) -> pd.DataFrame:
    """The table's numbers, wide: one row per (dataset, size), mean and ci95 per model."""
    wide = summary.pivot(index=["dataset", "size"], columns="model", values=["mean", "ci95"])
    wide.columns = [f"{model}:{stat}" for stat, model in wide.columns]
    order = [f"{m}:{s}" for m in models for s in ("mean", "ci95") if f"{m}:{s}" in wide.columns]
    return wide[order].reset_index()


def seed_spread_table(spread: pd.DataFrame, methods: list[str], datasets: list[str], caption: str,
                      label: str = "tab:seed_spread") -> str:
    """A row per method, a column per dataset (then ``all``): the standard deviation over seeds of the
    final metric (``p2o.report.aggregate.seed_spread``); ``--`` where a method ran one seed."""
    rows = spread.set_index(["method", "dataset"])
    columns = [d for d in [*datasets, "all"] if d in set(spread["dataset"])]
    lines = ["\\begin{table}[t]", "\\centering", f"\\caption{{{caption}}}", f"\\label{{{label}}}",
             "\\begin{tabular}{l" + "r" * len(columns) + "}", "\\toprule",
             "Method & " + " & ".join("All" if d == "all" else d.upper() for d in columns) + " \\\\", "\\midrule"]
    for method in methods:
        cells = []
        for d in columns:
            sd = rows.loc[(method, d), "sd"] if (method, d) in rows.index else math.nan
            cells.append("--" if math.isnan(sd) else f"{sd:.3f}")
        lines.append(f"{latex_name(method)} & " + " & ".join(cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}", ""]
    return "\n".join(lines)
