"""Judging the models by what they generate: the tidy table of the judge's outputs, the win-rate table,
the gold-reward-versus-KL figure and the appendix of side-by-side samples.

``collect_generation`` turns the judge's JSONs (``p2o.stages.generation.judge``: one per method, seed and
dataset) into a tidy ``(method, seed, dataset, metric, value)`` table, as ``p2o.report.aggregate``
does the held-out evaluations, so that ``summarise`` and ``overall`` give means and 95 % CIs over seeds
(dataset ``all``: per seed the mean over datasets first).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from p2o.io import read_json, read_jsonl
from p2o.report.names import latex_name

# what the judge writes per (method, seed, dataset), in table order; direction of "better" where one exists
GENERATION_METRICS = {"win_rate": "max", "lc_win_rate": "max", "mean_reward": "max", "kl_k3": "min",
                      "kl_k1": None, "kl_k2": None, "mean_length": None, "eos_rate": None, "tie_rate": None,
                      "baseline_mean_reward": None, "n": None}
GENERATION_LABELS = {"win_rate": "Win rate", "lc_win_rate": "LC win rate", "mean_reward": "Gold reward",
                     "kl_k3": "KL (k3)", "kl_k1": "KL (k1)", "kl_k2": "KL (k2)", "mean_length": "Length",
                     "eos_rate": "EOS rate", "tie_rate": "Tie rate", "baseline_mean_reward": "SFT gold reward",
                     "n": "Samples"}
TABLE_METRICS = ("win_rate", "lc_win_rate", "mean_reward", "kl_k3", "mean_length")


def collect_generation(judge_files: Iterable[str | Path]) -> pd.DataFrame:
    """Tidy ``(method, seed, dataset, metric, value, judge)`` rows of the judge's JSONs."""
    rows = []
    for path in judge_files:
        r = read_json(path)
        for metric in GENERATION_METRICS:
            if isinstance(r.get(metric), (int, float)):
                rows.append({"method": r["method"], "seed": int(r["seed"]), "dataset": r["dataset"], "metric": metric,
                             "value": float(r[metric]), "judge": r.get("judge", {}).get("name")})
    return pd.DataFrame(rows, columns=["method", "seed", "dataset", "metric", "value", "judge"])


def _fmt(mean: float, ci: float, digits: int, bold: bool) -> str:
    text = f"{mean:.{digits}f}" + ("" if np.isnan(ci) else f" $\\pm$ {ci:.{digits}f}")
    return f"\\textbf{{{text}}}" if bold else text


def winrate_table(summary: pd.DataFrame, methods: list[str], datasets: list[str], caption: str, label: str,
                  compute: dict[str, float] | None = None) -> str:
    """A row per method: the win rate against the SFT model on each dataset, then over all datasets
    the win rate, the length-controlled one, the gold reward, the KL (k3) and the length; mean ± 95 %
    CI over seeds, the best in each column in bold. ``compute`` (method -> training FLOPs, mean over
    seeds) adds a last column."""
    rows = summary.set_index(["method", "dataset", "metric"])
    columns = [(d, "win_rate") for d in datasets] + [("all", m) for m in TABLE_METRICS]
    best = {}
    for d, metric in columns:
        means = {m: rows.loc[(m, d, metric), "mean"] for m in methods if (m, d, metric) in rows.index}
        direction = GENERATION_METRICS[metric]
        if means and direction:
            top = (max if direction == "max" else min)(means.values())
            best[d, metric] = {m for m, v in means.items() if abs(v - top) <= 1e-12}
    header = " & ".join([f"{d.upper()}" for d in datasets] + [GENERATION_LABELS[m] for m in TABLE_METRICS]
                        + (["FLOPs"] if compute is not None else []))
    extra = int(compute is not None)
    lines = ["\\begin{table}[t]", "\\centering", "\\small", f"\\caption{{{caption}}}", f"\\label{{{label}}}",
             "\\resizebox{\\linewidth}{!}{%",  # nine columns of mean ± CI: wider than the text
             "\\begin{tabular}{l" + "r" * (len(columns) + extra) + "}", "\\toprule",
             f" & \\multicolumn{{{len(datasets)}}}{{c}}{{Win rate vs SFT}} & "
             f"\\multicolumn{{{len(TABLE_METRICS)}}}{{c}}{{All datasets}}" + (" & Compute" if extra else "") + " \\\\",
             f"\\cmidrule(lr){{2-{1 + len(datasets)}}}\\cmidrule(lr){{{2 + len(datasets)}-{1 + len(columns)}}}",
             f"Method & {header} \\\\", "\\midrule"]
    for method in methods:
        cells = []
        for d, metric in columns:
            if (method, d, metric) not in rows.index:
                cells.append("--")
                continue
            r = rows.loc[(method, d, metric)]
            digits = 1 if metric == "mean_length" else 3
            cells.append(_fmt(r["mean"], r["ci95"], digits, method in best.get((d, metric), ())))
        if compute is not None:
            cells.append(f"{compute[method]:.2e}".replace("e+", "e") if method in compute else "--")
        lines.append(f"{latex_name(method)} & " + " & ".join(cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}}", "\\end{table}", ""]
    return "\n".join(lines)


def winrate_csv(summary: pd.DataFrame, methods: list[str]) -> pd.DataFrame:
    """The table's numbers and the rest: method, dataset, then mean and CI of every metric."""
    rows = summary[summary["method"].isin(methods)]
    wide = rows.pivot_table(index=["method", "dataset"], columns="metric", values=["mean", "ci95"], sort=False)
    wide.columns = [f"{metric}_{stat}" for stat, metric in wide.columns]
    return wide.reset_index()


def pareto_front(kl: np.ndarray, reward: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats (less or equal KL and more reward, one strictly), by KL."""
    order = np.lexsort((-np.asarray(reward), np.asarray(kl)))
    front, best = [], -np.inf
    for i in order:
        if reward[i] > best:
            front.append(i)
            best = reward[i]
    return np.array(front, dtype=int)


def reward_kl_figure(tidy: pd.DataFrame, methods: list[str], datasets: list[str], path,
                     kl: str = "kl_k3") -> None:
    """Gold reward against Monte-Carlo KL to the SFT model: one point per run (method, seed), each
    method's frontier (its runs no other of its runs beats) as a line; one panel per dataset and one
    for the mean over datasets; the SFT model's own gold reward as a dashed line."""
    from p2o.report.plots import legend_above, plt, save
    from p2o.report.names import display_name
    from p2o.report.styles import method_styles

    styles = method_styles(methods)
    per_run = tidy.pivot_table(index=["method", "seed", "dataset"], columns="metric", values="value").reset_index()
    means = per_run.groupby(["method", "seed"], sort=False).mean(numeric_only=True).reset_index()
    means["dataset"] = "all"
    panels = [*datasets, "all"]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.0 * len(panels), 3.0), squeeze=False)
    for ax, dataset in zip(axes[0], panels):
        d = (means if dataset == "all" else per_run[per_run["dataset"] == dataset])
        for m in methods:
            runs = d[d["method"] == m]
            if runs.empty or kl not in runs or "mean_reward" not in runs:
                continue
            x, y = runs[kl].to_numpy(float), runs["mean_reward"].to_numpy(float)
            ax.scatter(x, y, color=styles[m]["color"], marker=styles[m]["marker"], s=18, label=display_name(m))
            front = pareto_front(x, y)
            if len(front) > 1:
                ax.plot(x[front], y[front], color=styles[m]["color"], ls=styles[m]["linestyle"], lw=1)
        if "baseline_mean_reward" in d and len(d):
            ax.axhline(float(d["baseline_mean_reward"].mean()), color="grey", ls="--", lw=0.8)
        ax.set_title("All" if dataset == "all" else dataset.upper())
        ax.set_xlabel(f"KL to SFT ({kl.removeprefix('kl_')}, nats)")
    axes[0, 0].set_ylabel("gold reward")
    legend_above(fig, axes[0, 0])
    save(fig, path)


# --------------------------------------------------------------------------- samples appendix

LATEX_SPECIALS = {"\\": "\\textbackslash{}", "&": "\\&", "%": "\\%", "$": "\\$", "#": "\\#", "_": "\\_",
                  "{": "\\{", "}": "\\}", "~": "\\textasciitilde{}", "^": "\\textasciicircum{}",
                  "<": "\\textless{}", ">": "\\textgreater{}", "|": "\\textbar{}", "[": "{[}", "]": "{]}"}


def latex_escape(text: str, limit: int | None = None) -> str:
    """``text`` as LaTeX prose: special characters escaped, accents dropped to their letters and any
    other non-ASCII character shown as ``?`` (pdflatex has no glyph for most), line breaks kept as
    ``\\\\``, blank runs collapsed; cut to ``limit`` characters (before escaping) with an ellipsis."""
    text = text.strip()
    if limit is not None and len(text) > limit:
        text = text[:limit].rstrip() + " ..."
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = "".join(c if (32 <= ord(c) < 127 or c == "\n") else ("" if c in "\r\t\x0b\x0c" else "?") for c in text)
    text = "".join(LATEX_SPECIALS.get(c, c) for c in text)
    text = re.sub(r"[ ]+", " ", text)
    lines = [line.strip() for line in text.split("\n")]
    return " \\\\ ".join(line for line in lines if line) or "\\textit{(empty)}"


def samples_appendix(samples: Mapping[str, Mapping[str, str | Path]], methods: list[str], datasets: list[str],
                     baseline: str = "sft", n_prompts: int = 1, prompt_limit: int = 400, text_limit: int = 300,
                     seed=None) -> str:
    """LaTeX of a few side-by-side samples: for each dataset, the first ``n_prompts`` prompts of the
    baseline's samples file, then the baseline's completion (sample 0) and each method's.
    ``samples[model][dataset]`` is a samples JSONL (``p2o.stages.generation.generate``); ``baseline`` keys the SFT model."""
    out = ["% generated by p2o.report.generation.samples_appendix: side-by-side samples", "{\\small\\sloppy"]
    for dataset in datasets:
        rows = {m: {(r["prompt_id"], r["sample"]): r for r in read_jsonl(samples[m][dataset])}
                for m in [baseline, *methods]}
        prompts = list(dict.fromkeys(pid for pid, _ in rows[baseline]))[:n_prompts]
        for pid in prompts:
            first = rows[baseline][pid, 0]
            out += [f"\\subsection*{{{dataset.upper()}, prompt {latex_escape(str(pid))}}}",
                    f"\\noindent\\textbf{{Prompt.}} {latex_escape(first['prompt'], prompt_limit)}", "",
                    "\\begin{description}"]
            for m in [baseline, *methods]:
                row = rows[m].get((pid, 0))
                name = "SFT" if m == baseline else latex_name(m)
                if row is None:
                    out.append(f"\\item[{name}] --")
                    continue
                ending = "" if row["eos"] else " \\textit{[cut at the token limit]}"
                out.append(f"\\item[{name}] {latex_escape(row['text'], text_limit)}{ending}")
            out += ["\\end{description}", ""]
    seed_note = "" if seed is None else f" of seed {seed}"
    out.insert(2, f"Sample 0 of each model{seed_note} on the first held-out prompt"
                  f"{'s' if n_prompts > 1 else ''} of each dataset, cut to {text_limit} characters "
                  f"(prompts to {prompt_limit}); non-ASCII characters are shown as ?.\n")
    out.append("}")
    return "\n".join(out) + "\n"


def mean_training_flops(costs: Mapping[str, Mapping[str, list[str | Path]]]) -> dict[str, float]:
    """Method -> the FLOPs of one run, mean over seeds: ``costs`` maps method -> seed -> the JSON files
    (``compute.flops`` each: a training summary, online DPO's sampling and labelling records) whose sum
    is that seed's run."""
    return {method: float(np.mean([sum(float(read_json(f)["compute"]["flops"]) for f in files)
                                   for files in by_seed.values()]))
            for method, by_seed in costs.items()}
