"""Did the trust region act? Clipping and ratio sizes of the trust-region runs, from their training logs.

A trust-region loss (P²O, PKTO: ``MethodSpec.trust_region``) logs per optimizer step, inner steps
included, ``trust/clip_frac`` (the fraction of the step's ratio terms held at their clipped ratio,
``p2o.losses.trust_region.clipped_surrogate``) and ``trust/abs_log_ratio`` (the mean |log ρ| over the
same terms). ``collect`` reduces them per (method, seed, dataset), and over all of a run's steps as
dataset ``all``:

- ``clip_frac``: the mean clip fraction over the steps;
- ``clipped_share``: the share of steps on which any ratio term was clipped (clip fraction > 0);
- ``abs_log_ratio`` and ``abs_log_ratio_max``: the mean and the largest per-step |log ρ|.

The first inner step of a batch is its snapshot, so its ρ is 1 and nothing is clipped there; the
numbers count it all the same, as a step the optimizer took. Logs written before
``trust/abs_log_ratio`` existed give NaN for the two |log ρ| columns. ``summarise`` averages over
seeds (the largest |log ρ| is the largest of any seed) and ``activity_tex`` says, per method, whether
clipping ever happened, in sentences computed from those numbers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from p2o.report.names import latex_name

CLIP_FRAC, ABS_LOG_RATIO = "trust/clip_frac", "trust/abs_log_ratio"
COLUMNS = ["method", "seed", "dataset", "steps", "clip_frac", "clipped_share", "abs_log_ratio", "abs_log_ratio_max"]
STATS = ["clip_frac", "clipped_share", "abs_log_ratio", "abs_log_ratio_max"]


def _stats(steps: pd.DataFrame) -> dict:
    clip = steps[CLIP_FRAC]
    ratio = steps[ABS_LOG_RATIO] if ABS_LOG_RATIO in steps else pd.Series(math.nan, index=steps.index)
    return {"steps": len(steps), "clip_frac": clip.mean(), "clipped_share": (clip > 0).mean(),
            "abs_log_ratio": ratio.mean(skipna=False), "abs_log_ratio_max": ratio.max(skipna=False)}


def step_records(path: str | Path) -> pd.DataFrame:
    """A run's training steps (``kind = train``) with a finite clip fraction: dataset, clip fraction
    and, where logged, |log ρ|. A step skipped for a non-finite loss logs no usable ratio."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            clip = rec.get(CLIP_FRAC)
            if rec.get("kind") != "train" or not isinstance(clip, (int, float)) or not math.isfinite(clip):
                continue
            rows.append({"dataset": rec.get("dataset"), CLIP_FRAC: float(clip),
                         ABS_LOG_RATIO: float(rec.get(ABS_LOG_RATIO, math.nan))})
    return pd.DataFrame(rows, columns=["dataset", CLIP_FRAC, ABS_LOG_RATIO])


def collect(logs: Mapping[tuple[str, int], str | Path]) -> pd.DataFrame:
    """One row per (method, seed, dataset) of the trust-region runs' logs ``{(method, seed): log.jsonl}``,
    datasets in training order, then ``all`` (every step of the run)."""
    rows = []
    for (method, seed), path in logs.items():
        steps = step_records(path)
        if steps.empty:
            continue
        for dataset, group in steps.groupby("dataset", sort=False):
            rows.append({"method": method, "seed": int(seed), "dataset": dataset, **_stats(group)})
        rows.append({"method": method, "seed": int(seed), "dataset": "all", **_stats(steps)})
    return pd.DataFrame(rows, columns=COLUMNS)


def summarise(tidy: pd.DataFrame) -> pd.DataFrame:
    """Per (method, dataset): the seeds' mean of each column (the maximum for ``abs_log_ratio_max``),
    the total steps and the seed count."""
    grouped = tidy.groupby(["method", "dataset"], sort=False)
    out = grouped[["clip_frac", "clipped_share", "abs_log_ratio"]].mean()
    out["abs_log_ratio_max"] = grouped["abs_log_ratio_max"].max()
    out["steps"] = grouped["steps"].sum()
    out["n_seeds"] = grouped["seed"].nunique()
    return out.reset_index()[["method", "dataset", "n_seeds", "steps", *STATS]]


def _cell(x: float, digits: int = 3) -> str:
    return "--" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _percent(x: float) -> str:
    return f"{100 * x:.1f}\\,\\%"


def table_tex(summary: pd.DataFrame, methods: list[str], settings: Mapping[str, str], label: str = "tab:trust_region"
              ) -> str:
    """A row per (method, dataset): steps, mean clip fraction, share of steps with clipping, mean and
    largest |log ρ|. ``settings`` gives each method's configuration in words (lr, K, ε)."""
    rows = summary.set_index(["method", "dataset"])
    n_seeds = int(summary["n_seeds"].min()) if len(summary) else 0
    caption = ("Trust-region activity over every optimizer step (inner steps included) of each trust-region run: "
               "mean fraction of ratio terms clipped, share of steps with any term clipped, and the mean and largest "
               "per-step mean of $|\\log\\rho|$ against the batch's snapshot; mean over "
               f"{n_seeds} seed{'s' if n_seeds != 1 else ''} (steps: their sum; largest: over seeds). -- : not logged by "
               "these runs.")
    lines = ["% generated by p2o.report.trust_region.table_tex -- do not edit", "\\begin{table}[t]", "\\centering",
             f"\\caption{{{caption}}}", f"\\label{{{label}}}", "\\small", "\\begin{tabular}{llrrrrr}", "\\toprule",
             "Method & Data & Steps & Clip fraction & Steps clipped & Mean $|\\log\\rho|$ & Max $|\\log\\rho|$ \\\\"]
    shown = [m for m in methods if m in rows.index.get_level_values(0)]
    if not shown:
        lines += ["\\midrule", "\\multicolumn{7}{l}{No method of this run uses a trust-region loss.} \\\\"]
    for method in shown:
        lines += ["\\midrule", f"\\multicolumn{{7}}{{l}}{{{latex_name(method)}: {settings.get(method, '')}}} \\\\"]
        for dataset in rows.loc[method].index:
            r = rows.loc[(method, dataset)]
            name = "All" if dataset == "all" else dataset.upper()
            lines.append(f" & {name} & {int(r['steps'])} & {_cell(r['clip_frac'])} & "
                         f"{_percent(r['clipped_share'])} & {_cell(r['abs_log_ratio'])} & "
                         f"{_cell(r['abs_log_ratio_max'])} \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}", ""]
    return "\n".join(lines)


def activity_tex(summary: pd.DataFrame, methods: list[str], settings: Mapping[str, str],
                 eps_clip: Mapping[str, float]) -> str:
    """Per method, whether its trust region acted (any ratio term clipped on any step, seeds pooled),
    at its configured learning rate, and on which datasets; computed from ``summarise``'s numbers.
    ``eps_clip`` gives each method's ε, to set the largest |log ρ| against the region's edge."""
    rows = summary.set_index(["method", "dataset"])
    out = ["% generated by p2o.report.trust_region.activity_tex -- do not edit"]
    shown = [m for m in methods if (m, "all") in rows.index]
    if not shown:
        return "\n".join(out + ["No method of this run uses a trust-region loss, so no trust region could act.", ""])
    for method in shown:
        r = rows.loc[(method, "all")]
        name, n_seeds = latex_name(method), int(r["n_seeds"])
        steps = f"{int(r['steps'])} optimizer steps" + (f" over {n_seeds} seeds" if n_seeds > 1 else "")
        datasets = [d for d in rows.loc[method].index if d != "all"]
        where = f"{name} ({settings.get(method, '')})"
        if r["clipped_share"] > 0:
            active = [d.upper() for d in datasets if rows.loc[(method, d), "clipped_share"] > 0]
            quiet = [d.upper() for d in datasets if d.upper() not in active]
            sentence = (f"The trust region of {where} was active: a ratio term was clipped on "
                        f"{_percent(r['clipped_share'])} of its {steps}, with a mean clip fraction of "
                        f"{r['clip_frac']:.3f}, on {_join(active)}"
                        + (f"; on {_join(quiet)} nothing was clipped" if quiet else "") + ".")
        else:
            sentence = (f"The trust region of {where} never acted: no ratio term was clipped on any of its {steps}, "
                        f"so each step was the unclipped surrogate's")
            eps = eps_clip.get(method)
            if not math.isnan(r["abs_log_ratio_max"]) and eps is not None:
                sentence += (f"; the largest step mean of $|\\log\\rho|$ was {r['abs_log_ratio_max']:.3f}, against "
                             f"the region's edges at $\\log(1+\\epsilon) = {math.log1p(eps):.3f}$ and "
                             f"$-\\log(1-\\epsilon) = {-math.log1p(-eps):.3f}$ (a ratio outside them is clipped only "
                             f"where its move raised the surrogate)")
            sentence += "."
        out += [sentence, ""]
    return "\n".join(out)


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + f" and {items[-1]}"


def settings_of(runs: pd.DataFrame, methods: list[str]) -> tuple[dict[str, str], dict[str, float]]:
    """Each method's configuration in words (peak lr, K, ε) and its ε, from ``runs.csv``."""
    words, eps = {}, {}
    for method, group in runs[runs["method"].isin(methods)].groupby("method", sort=False):
        r = group.iloc[0]
        hp = json.loads(r["hparams"])
        parts = [f"lr {r['lr']:g}" if "lr" in r and isinstance(r["lr"], float) and not math.isnan(r["lr"]) else None,
                 f"$K$ = {int(r['inner_steps'])}",
                 f"$\\epsilon$ = {hp['eps_clip']:g}" if "eps_clip" in hp else None]
        words[method] = ", ".join(p for p in parts if p)
        if "eps_clip" in hp:
            eps[method] = float(hp["eps_clip"])
    return words, eps
