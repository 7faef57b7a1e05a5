"""Vector PDF figures from the aggregate tables; one style (colour, line, marker) per method in every figure
(``p2o.report.styles``), under the tables' names (``p2o.report.names``).

Figures read only the tidy tables of ``p2o.report.aggregate`` (so restyling never retrains):

- ``training_curves``: training loss and reward margin against pairs seen; the loss on a linear axis
  when its values span little, else a symlog one (``loss_scale``), so that robust DPO's negative
  losses and hinge's exact zeros show;
- ``heldout_curves``: held-out accuracy, margin and KL per dataset during training;
- ``final_metrics``: final held-out metrics per dataset, mean ± 95 % CI over seeds;
- ``tradeoff``: held-out reward accuracy against KL to the reference, per dataset.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("agg")  # non-interactive: figures are files

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from p2o.io import atomic_path  # noqa: E402
from p2o.report.aggregate import METRIC_LABELS, METRICS  # noqa: E402
from p2o.report.names import display_name, rm_model_name  # noqa: E402
from p2o.report.styles import method_styles, rm_model_styles  # noqa: E402

LEGEND_COLUMNS = 7
# Where a metric's values can lie: error bars (mean ± CI, wide with few seeds) are cut to it.
METRIC_RANGES = {"eval_rewards/accuracies": (0.0, 1.0), "eval_kl/token_mean": (0.0, np.inf)}


def error_bar(mean, ci, metric: str) -> np.ndarray:
    """(2, n) lower and upper error-bar lengths of mean ± ci, cut to the metric's range; no CI: 0."""
    mean, ci = np.asarray(mean, dtype=float), np.nan_to_num(np.asarray(ci, dtype=float))
    low, high = METRIC_RANGES.get(metric, (-np.inf, np.inf))
    return np.stack([mean - np.maximum(mean - ci, low), np.minimum(mean + ci, high) - mean]).reshape(2, -1)


def save(fig, path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="pdf", bbox_inches="tight")
    plt.close(fig)


def legend_above(fig, ax) -> None:
    """One legend for the figure above the panels, in rows of at most ``LEGEND_COLUMNS`` entries."""
    handles, labels = ax.get_legend_handles_labels()
    rows = max(1, -(-len(labels) // LEGEND_COLUMNS))
    height = fig.get_size_inches()[1]
    fig.tight_layout(rect=(0, 0, 1, 1 - (0.12 + 0.2 * rows) / height))
    fig.legend(handles, labels, loc="upper center", ncol=min(len(labels), LEGEND_COLUMNS), frameon=False,
               fontsize=8)


# A loss panel stays linear while its largest |value| is at most this many times its smallest non-zero one.
LINEAR_SPAN = 100.0
# Decades of the linear region's threshold below the largest |value| at most: rounding noise near 0 does not
# stretch the axis.
MAX_DECADES = 6


def loss_scale(values) -> dict:
    """Keyword arguments of ``Axes.set_yscale`` for losses ``values``: ``linear`` when every non-zero
    |value| lies within ``LINEAR_SPAN`` of the largest, else ``symlog`` with the linear region up to
    the smallest non-zero |value| rounded down to a power of ten (at most ``MAX_DECADES`` below the
    largest). Unlike a log axis, both keep zeros (hinge) and negative values (robust DPO) in view."""
    v = np.abs(np.asarray(values, dtype=float))
    v = v[np.isfinite(v) & (v > 0)]
    if not len(v) or v.max() <= LINEAR_SPAN * v.min():
        return {"value": "linear"}
    floor = max(v.min(), v.max() * 10.0 ** -MAX_DECADES)
    return {"value": "symlog", "linthresh": float(10.0 ** np.floor(np.log10(floor)))}


def _mean_over_seeds(df: pd.DataFrame, x: str = "pairs_seen") -> pd.DataFrame:
    return df.groupby(["method", x], sort=True)["value"].agg(["mean", "min", "max"]).reset_index()


def training_curves(curves: pd.DataFrame, methods: list[str], path, smooth: int = 5) -> None:
    styles = method_styles(methods)
    train = curves[curves["kind"] == "train"]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    drawn: dict[str, list] = {"loss": [], "rewards/margins": []}  # every value on each panel, bands included
    for ax, metric, label in zip(axes, ["loss", "rewards/margins"], ["training loss", "training reward margin"]):
        for m in methods:
            d = _mean_over_seeds(train[(train["method"] == m) & (train["metric"] == metric)])
            if d.empty:
                continue
            y, low, high = (d[c].rolling(smooth, min_periods=1).mean() for c in ("mean", "min", "max"))
            ax.plot(d["pairs_seen"], y, color=styles[m]["color"], ls=styles[m]["linestyle"], label=display_name(m),
                    lw=1.4)
            ax.fill_between(d["pairs_seen"], low, high, color=styles[m]["color"], alpha=0.15, lw=0)
            drawn[metric] += [*y, *low, *high]
        ax.set_xlabel("pairs seen")
        ax.set_ylabel(f"{label} (running mean of {smooth})")
    # losses differ in scale by orders of magnitude (IPO's is squared), but some are 0 or negative
    axes[0].set_yscale(**loss_scale(drawn["loss"]))
    legend_above(fig, axes[0])
    save(fig, path)


def heldout_curves(curves: pd.DataFrame, methods: list[str], datasets: list[str], path) -> None:
    styles = method_styles(methods)
    ev = curves[curves["kind"] == "eval"]
    fig, axes = plt.subplots(len(METRICS), len(datasets), figsize=(3.2 * len(datasets), 2.4 * len(METRICS)),
                             squeeze=False, sharex=True)
    for i, metric in enumerate(METRICS):
        for j, dataset in enumerate(datasets):
            ax = axes[i, j]
            for m in methods:
                d = _mean_over_seeds(ev[(ev["method"] == m) & (ev["dataset"] == dataset) & (ev["metric"] == metric)])
                if d.empty:
                    continue
                ax.plot(d["pairs_seen"], d["mean"], color=styles[m]["color"], marker=styles[m]["marker"], ms=3,
                        ls=styles[m]["linestyle"], lw=1.2, label=display_name(m))
                ax.fill_between(d["pairs_seen"], d["min"], d["max"], color=styles[m]["color"], alpha=0.15, lw=0)
            if i == 0:
                ax.set_title(dataset.upper())
            if j == 0:
                ax.set_ylabel(METRIC_LABELS[metric])
            if i == len(METRICS) - 1:
                ax.set_xlabel("pairs seen")
    legend_above(fig, axes[0, 0])
    save(fig, path)


def final_metrics(summary: pd.DataFrame, methods: list[str], datasets: list[str], path) -> None:
    styles = method_styles(methods)
    fig, axes = plt.subplots(1, len(METRICS), figsize=(3.6 * len(METRICS), 3.2), squeeze=False)
    width = 0.8 / len(methods)
    x = np.arange(len(datasets))
    for ax, metric in zip(axes[0], METRICS):
        for k, m in enumerate(methods):
            rows = summary[(summary["method"] == m) & (summary["metric"] == metric)].set_index("dataset")
            means = [rows.loc[d, "mean"] if d in rows.index else np.nan for d in datasets]
            cis = [rows.loc[d, "ci95"] if d in rows.index else np.nan for d in datasets]
            ax.bar(x + (k - (len(methods) - 1) / 2) * width, means, width, color=styles[m]["color"],
                   hatch=styles[m]["hatch"], edgecolor="white", linewidth=0, yerr=error_bar(means, cis, metric),
                   capsize=2, label=display_name(m))
        ax.set_xticks(x, [d.upper() for d in datasets])
        ax.set_ylabel(METRIC_LABELS[metric])
    legend_above(fig, axes[0, 0])
    save(fig, path)


def tradeoff(summary: pd.DataFrame, methods: list[str], datasets: list[str], path) -> None:
    styles = method_styles(methods)
    fig, axes = plt.subplots(1, len(datasets), figsize=(3.2 * len(datasets), 3.0), squeeze=False)
    acc, kl = "eval_rewards/accuracies", "eval_kl/token_mean"
    for ax, dataset in zip(axes[0], datasets):
        d = summary[summary["dataset"] == dataset].set_index(["method", "metric"])
        for m in methods:
            if (m, acc) not in d.index or (m, kl) not in d.index:
                continue
            ax.errorbar(d.loc[(m, kl), "mean"], d.loc[(m, acc), "mean"],
                        xerr=error_bar(d.loc[(m, kl), "mean"], d.loc[(m, kl), "ci95"], kl),
                        yerr=error_bar(d.loc[(m, acc), "mean"], d.loc[(m, acc), "ci95"], acc),
                        color=styles[m]["color"], marker=styles[m]["marker"], ms=6, capsize=2, lw=1,
                        label=display_name(m))
        ax.set_title(dataset.upper())
        ax.set_xlabel(METRIC_LABELS[kl])
        ax.set_ylabel(METRIC_LABELS[acc])
    legend_above(fig, axes[0, 0])
    save(fig, path)


def rm_vs_dpo(summary: pd.DataFrame, datasets: list[str], models: list[str], path) -> None:
    """Held-out accuracy against training pairs N (log scale), one panel per dataset, mean ± 95 %
    CI over seeds as a band cut to [0, 1] (``p2o.report.rm_experiment.summary``)."""
    styles = rm_model_styles(models)
    fig, axes = plt.subplots(1, len(datasets), figsize=(3.6 * len(datasets), 3.0), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        sizes = sorted(summary.loc[summary["dataset"] == dataset, "size"].unique())
        for m in models:
            d = summary[(summary["dataset"] == dataset) & (summary["model"] == m)].sort_values("size")
            if d.empty:
                continue
            err = error_bar(d["mean"], d["ci95"], "eval_rewards/accuracies")
            ax.plot(d["size"], d["mean"], color=styles[m]["color"], marker=styles[m]["marker"], ms=5, lw=1.4,
                    ls=styles[m]["linestyle"], label=rm_model_name(m))
            ax.fill_between(d["size"], d["mean"] - err[0], d["mean"] + err[1], color=styles[m]["color"], alpha=0.15,
                            lw=0)
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes, [str(s) for s in sizes])
        ax.minorticks_off()
        ax.set_title(dataset.upper())
        ax.set_xlabel("training pairs $N$")
        ax.set_ylabel("held-out accuracy")
    legend_above(fig, axes[0, 0])
    save(fig, path)
