"""Every run's results as tidy tables, and their summaries over seeds.

- ``metrics``: one row per (method, seed, dataset, metric) of the final held-out evaluation;
- ``curves``: one row per logged value during training, training records (``kind = train``) and
  held-out evaluations (``kind = eval``), with ``pairs_seen`` as a common x-axis for methods that
  take a different number of optimizer steps per batch;
- ``runs``: one row per (method, seed) with its loss, hyper-parameters, learning rate, steps, wall time and
  provenance (config hash, split hashes, git commit, package versions, device, and where the model and
  the data came from: ``model_source`` and ``data_sources``, dataset -> label, each a hub id with the
  commit read or ``local sha256 <digest>``, ``p2o.provenance.source_label``).

``summarise`` gives mean ± 95 % confidence half-width over seeds (Student's t, n − 1 degrees of
freedom; none for a single seed); ``seed_spread`` the standard deviation over seeds of one final
metric (the sample's, ddof = 1). Tables, figures and the paper's numbers read only these.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from p2o.io import read_json
from p2o.provenance import source_label

# Final held-out metrics reported in tables and figures, with the better direction.
METRICS = {
    "eval_rewards/accuracies": "max",
    "eval_rewards/margins": "max",
    "eval_kl/token_mean": "min",
}
METRIC_LABELS = {
    "eval_rewards/accuracies": "Reward accuracy",
    "eval_rewards/margins": "Reward margin",
    "eval_rewards/ties": "Tie rate",
    "eval_kl/token_mean": "KL per token",
    "eval_logratio/sequence_mean": "Sequence log-ratio",
}

# Two-sided 97.5 % quantiles of Student's t for 1..30 degrees of freedom (then the normal 1.96).
T_975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042]


# Per-run work (p2o.training.compute), kept in runs.csv for the compute table.
COMPUTE = ("optimizer_steps", "forward_passes", "backward_passes", "flops")


def t_quantile(df: int) -> float:
    return T_975[df - 1] if df <= len(T_975) else 1.96


def collect_metrics(eval_files: Iterable[str | Path]) -> pd.DataFrame:
    """Tidy (method, seed, dataset, metric, value) from evaluation JSONs."""
    rows = []
    for path in eval_files:
        r = read_json(path)
        for key, value in r.items():
            if key.startswith("eval_") and isinstance(value, (int, float)):
                rows.append({"method": r["method"], "seed": int(r["seed"]), "dataset": r["dataset"],
                             "metric": key, "value": float(value)})
    return pd.DataFrame(rows, columns=["method", "seed", "dataset", "metric", "value"])


def collect_runs(summary_files: Iterable[str | Path]) -> pd.DataFrame:
    rows = []
    for path in summary_files:
        s = read_json(path)
        prov = s.get("provenance", {})
        versions = prov.get("versions", {})
        rows.append({"method": s["method"], "seed": int(s["seed"]), "loss": s["loss"],
                     "inner_steps": s["inner_steps"], "hparams": json.dumps(s["hparams"], sort_keys=True),
                     "lr": s["train"].get("lr"), "lr_scale": s.get("lr_scale", 1.0),
                     "steps": s["final"]["steps"], "batch_size": s["train"]["batch_size"], "wall_s": s["wall_s"],
                     "config_sha256": prov.get("config_sha256"), "git_commit": prov.get("git_commit"),
                     "device": prov.get("device"), "device_name": prov.get("device_name"),
                     **{f"version_{k}": v for k, v in versions.items()},
                     "split_sha256": json.dumps(s.get("split_sha256", {}), sort_keys=True),
                     "model_source": source_label(s.get("sources", {}).get("model")),
                     "data_sources": json.dumps({name: source_label(record) for name, record in
                                                 s.get("sources", {}).get("data", {}).items()}),
                     **{k: s.get("compute", {}).get(k) for k in COMPUTE}})
    return pd.DataFrame(rows)


def collect_curves(logs: Mapping[tuple[str, int], str | Path], runs: pd.DataFrame) -> pd.DataFrame:
    """Tidy curves from training logs ``{(method, seed): log.jsonl}``."""
    per_run = {(r.method, r.seed): r for r in runs.itertuples()}
    rows = []
    for (method, seed), path in logs.items():
        run = per_run[(method, seed)]
        with open(path, encoding="utf-8") as f:
            for line in f:
                rec = json.loads(line)
                pairs_seen = rec["step"] / run.inner_steps * run.batch_size  # batches done x batch size
                for key, value in rec.items():
                    if key in ("kind", "step", "dataset", "epoch", "inner_step") or not isinstance(value, (int, float)):
                        continue
                    rows.append({"method": method, "seed": seed, "kind": rec["kind"], "step": rec["step"],
                                 "pairs_seen": pairs_seen, "dataset": rec.get("dataset"), "metric": key,
                                 "value": float(value)})
    return pd.DataFrame(rows, columns=["method", "seed", "kind", "step", "pairs_seen", "dataset", "metric", "value"])


def summarise(metrics: pd.DataFrame, by: list[str] = ["method", "dataset", "metric"]) -> pd.DataFrame:
    """Mean, 95 % CI half-width and seed count of ``value`` over seeds."""
    def stats(values: pd.Series) -> pd.Series:
        n = len(values)
        sd = values.std(ddof=1) if n > 1 else math.nan
        return pd.Series({"mean": values.mean(), "ci95": t_quantile(n - 1) * sd / math.sqrt(n) if n > 1 else math.nan,
                          "n_seeds": n})

    return metrics.groupby(by, sort=False)["value"].apply(stats).unstack().reset_index()


def overall(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per seed, the mean over datasets; then summarised over seeds (dataset = 'all')."""
    per_seed = metrics.groupby(["method", "seed", "metric"], sort=False)["value"].mean().reset_index()
    per_seed["dataset"] = "all"
    return summarise(per_seed)


def seed_spread(metrics: pd.DataFrame, metric: str = "eval_rewards/margins") -> pd.DataFrame:
    """Per (method, dataset): the sample standard deviation over seeds (ddof = 1; NaN for one seed),
    mean and seed count of ``metric``'s final held-out value; dataset ``all`` takes, per seed, the mean
    over datasets first (as ``overall``). A seed sets the order of the training batches and so which
    pairs share a batch; the model, data and reference are the same for every seed."""
    rows = metrics[metrics["metric"] == metric]
    per_seed = rows.groupby(["method", "seed"], sort=False)["value"].mean().reset_index().assign(dataset="all")
    both = pd.concat([rows[["method", "seed", "dataset", "value"]], per_seed], ignore_index=True)
    grouped = both.groupby(["method", "dataset"], sort=False)["value"]
    out = grouped.agg(sd=lambda v: v.std(ddof=1), mean="mean", n_seeds="count").reset_index()
    return out.assign(metric=metric)[["method", "dataset", "metric", "mean", "sd", "n_seeds"]]
