"""The trust-region table and sentences, and the seed-spread table, on hand-made logs and metrics."""

from __future__ import annotations

import json
import math
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from p2o.config import load_config
from p2o.report import trust_region
from p2o.report.aggregate import seed_spread
from p2o.report.tables import seed_spread_table
from conftest import REPO

CLIP, ABS = trust_region.CLIP_FRAC, trust_region.ABS_LOG_RATIO
MARGIN = "eval_rewards/margins"


def write_log(path, steps: list[tuple[str, float, float | None]]) -> str:
    """A training log: an eval record, then one train record per (dataset, clip_frac, |log ρ|)."""
    records = [{"kind": "eval", "step": 0, "dataset": "hh", MARGIN: 0.0}]
    for i, (dataset, clip, ratio) in enumerate(steps, 1):
        rec = {"kind": "train", "step": i, "dataset": dataset, "inner_step": (i - 1) % 3, "loss": 0.6, CLIP: clip}
        if ratio is not None:
            rec[ABS] = ratio
        records.append(rec)
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return str(path)


def test_clip_fraction_share_of_steps_and_log_ratio_per_dataset_and_overall(tmp_path):
    log = write_log(tmp_path / "a.jsonl", [
        ("hh", 0.0, 0.0), ("hh", 0.25, 0.2), ("hh", 0.0, 0.1), ("hh", 0.5, 0.3),   # 2 of 4 steps clip
        ("uf", 0.0, 0.0), ("uf", 0.0, 0.05), ("uf", 0.0, 0.01)])                   # none
    tidy = trust_region.collect({("p2o", 0): log}).set_index("dataset")
    assert list(tidy.index) == ["hh", "uf", "all"]
    hh, uf, overall = tidy.loc["hh"], tidy.loc["uf"], tidy.loc["all"]
    assert hh["steps"] == 4 and hh["clip_frac"] == pytest.approx(0.1875) and hh["clipped_share"] == 0.5
    assert hh["abs_log_ratio"] == pytest.approx(0.15) and hh["abs_log_ratio_max"] == pytest.approx(0.3)
    assert uf["clip_frac"] == 0 and uf["clipped_share"] == 0 and uf["abs_log_ratio_max"] == pytest.approx(0.05)
    assert overall["steps"] == 7 and overall["clip_frac"] == pytest.approx(0.75 / 7)
    assert overall["clipped_share"] == pytest.approx(2 / 7) and overall["abs_log_ratio"] == pytest.approx(0.66 / 7)


def test_summary_averages_seeds_and_takes_the_largest_ratio_of_any(tmp_path):
    logs = {("p2o", 0): write_log(tmp_path / "0.jsonl", [("hh", 0.0, 0.1), ("hh", 0.2, 0.4)]),
            ("p2o", 1): write_log(tmp_path / "1.jsonl", [("hh", 0.0, 0.1), ("hh", 0.0, 0.2)])}
    s = trust_region.summarise(trust_region.collect(logs)).set_index(["method", "dataset"]).loc[("p2o", "hh")]
    assert s["n_seeds"] == 2 and s["steps"] == 4
    assert s["clip_frac"] == pytest.approx((0.1 + 0.0) / 2) and s["clipped_share"] == pytest.approx(0.25)
    assert s["abs_log_ratio"] == pytest.approx((0.25 + 0.15) / 2) and s["abs_log_ratio_max"] == pytest.approx(0.4)


def test_old_logs_without_the_log_ratio_give_nan_and_the_table_a_dash(tmp_path):
    tidy = trust_region.collect({("pkto", 0): write_log(tmp_path / "old.jsonl", [("hh", 0.0, None), ("hh", 0.5, None)])})
    assert tidy["clipped_share"].tolist() == [0.5, 0.5] and tidy["abs_log_ratio"].isna().all()
    tex = trust_region.table_tex(trust_region.summarise(tidy), ["pkto"], {"pkto": "lr 0.0002"})
    assert " & HH & 2 & 0.250 & 50.0\\,\\% & -- & -- \\\\" in tex and "PKTO: lr 0.0002" in tex


def summary_of(tmp_path, clips: dict[str, list[float]]) -> pd.DataFrame:
    logs = {(m, 0): write_log(tmp_path / f"{m}.jsonl", [("hh", c, 0.1) for c in cs]) for m, cs in clips.items()}
    return trust_region.summarise(trust_region.collect(logs))


def test_the_activity_sentence_flips_with_the_numbers(tmp_path):
    settings = {"p2o": "lr 0.0002, $K$ = 3, $\\epsilon$ = 0.15", "p2o_lr5x": "lr 0.001, $K$ = 3, $\\epsilon$ = 0.15"}
    eps = {"p2o": 0.15, "p2o_lr5x": 0.15}
    summary = summary_of(tmp_path, {"p2o": [0.0, 0.0, 0.0, 0.0], "p2o_lr5x": [0.0, 0.5, 0.0, 0.0]})
    text = trust_region.activity_tex(summary, ["p2o", "p2o_lr5x"], settings, eps)
    quiet = next(line for line in text.splitlines() if line.startswith("The trust region of P$^2$O (lr 0.0002"))
    active = next(line for line in text.splitlines() if "(lr 0.001" in line)
    assert "never acted: no ratio term was clipped on any of its 4 optimizer steps" in quiet
    assert "$\\log(1+\\epsilon) = 0.140$" in quiet and "0.100" in quiet  # the largest step mean of |log ρ|
    assert "was active: a ratio term was clipped on 25.0\\,\\% of its 4 optimizer steps" in active
    assert "mean clip fraction of 0.125, on HH." in active

    flipped = trust_region.activity_tex(summary_of(tmp_path, {"p2o": [0.0, 0.0, 0.1, 0.0]}), ["p2o"], settings, eps)
    assert "was active" in flipped and "never acted" not in flipped
    none = trust_region.activity_tex(trust_region.summarise(trust_region.collect({})), ["dpo"], {}, {})
    assert "No method of this run uses a trust-region loss" in none


def test_trust_region_methods_come_from_the_loss_catalogue_not_their_names():
    cfg = load_config(REPO / "config" / "config.yaml")
    trust = [m for m in cfg.all_method_names if cfg.method(m).trust_region]
    assert set(trust) == {m for m in cfg.all_method_names if cfg.method(m).loss in ("p2o", "pkto")}
    assert {"p2o", "pkto", "p2o_lr5x"} <= set(trust) and "dpo_k3" not in trust  # K = 3 alone is no trust region
    variant, default = cfg.method("p2o_lr5x"), cfg.method("p2o")
    assert variant.lr_scale == 5.0 and default.lr_scale == 1.0
    assert {**variant.hparams} == {**default.hparams} and variant.inner_steps == default.inner_steps


def test_settings_read_lr_k_and_eps_from_the_runs():
    runs = pd.DataFrame({"method": ["p2o", "p2o", "dpo"], "lr": [2e-4, 2e-4, 2e-4], "inner_steps": [3, 3, 1],
                         "hparams": [json.dumps({"eps_clip": 0.15})] * 2 + [json.dumps({"beta": 0.5})]})
    words, eps = trust_region.settings_of(runs, ["p2o"])
    assert words == {"p2o": "lr 0.0002, $K$ = 3, $\\epsilon$ = 0.15"} and eps == {"p2o": 0.15}


SPREAD_VALUES = {("dpo", "hh"): [1.0, 2.0, 1.6], ("dpo", "uf"): [0.5, 0.7, 0.9],
                 ("p2o", "hh"): [0.3, 0.3, 0.3], ("p2o", "uf"): [2.0, 1.0, 4.0]}


def spread_metrics() -> pd.DataFrame:
    rows = [{"method": m, "seed": s, "dataset": d, "metric": MARGIN, "value": v}
            for (m, d), values in SPREAD_VALUES.items() for s, v in enumerate(values)]
    rows.append({"method": "dpo", "seed": 0, "dataset": "hh", "metric": "eval_rewards/accuracies", "value": 0.9})
    return pd.DataFrame(rows)


def test_seed_spread_is_numpy_sample_std_ddof_1():
    spread = seed_spread(spread_metrics()).set_index(["method", "dataset"])
    for key, values in SPREAD_VALUES.items():
        assert spread.loc[key, "sd"] == pytest.approx(np.std(values, ddof=1))
        assert spread.loc[key, "n_seeds"] == 3
    per_seed_mean = np.mean([SPREAD_VALUES[("p2o", "hh")], SPREAD_VALUES[("p2o", "uf")]], axis=0)
    assert spread.loc[("p2o", "all"), "sd"] == pytest.approx(np.std(per_seed_mean, ddof=1))
    tex = seed_spread_table(seed_spread(spread_metrics()), ["dpo", "p2o"], ["hh", "uf"], "c")
    row = next(line for line in tex.splitlines() if line.startswith("P$^2$O"))
    assert row == (f"P$^2$O & 0.000 & {np.std(SPREAD_VALUES[('p2o', 'uf')], ddof=1):.3f} & "
                   f"{np.std(per_seed_mean, ddof=1):.3f} \\\\")
    one = seed_spread(spread_metrics()[lambda f: f["seed"] == 0])
    assert one["sd"].isna().all() and "DPO & -- & -- & --" in seed_spread_table(one, ["dpo"], ["hh", "uf"], "c")


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="needs pdflatex")
def test_generated_tables_and_sentences_build_with_latex(tmp_path):
    logs = {("p2o", s): write_log(tmp_path / f"p2o{s}.jsonl", [("hh", 0.0, 0.1), ("uf", 0.2, 0.3)]) for s in (0, 1)}
    summary = trust_region.summarise(trust_region.collect(logs))
    settings, eps = {"p2o": "lr 0.0002, $K$ = 3, $\\epsilon$ = 0.15"}, {"p2o": 0.15}
    body = "\n".join([trust_region.activity_tex(summary, ["p2o"], settings, eps),
                      trust_region.table_tex(summary, ["p2o"], settings),
                      seed_spread_table(seed_spread(spread_metrics()), ["dpo", "p2o"], ["hh", "uf"], "Spread.")])
    (tmp_path / "doc.tex").write_text("\\documentclass{article}\\usepackage{booktabs,amsmath}\\begin{document}\n"
                                      + body + "\n\\end{document}\n")
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert math.isfinite((tmp_path / "doc.pdf").stat().st_size)


def test_the_activity_sentence_counts_the_steps_of_every_seed(tmp_path):
    logs = {("p2o", s): write_log(tmp_path / f"p2o{s}.jsonl", [("hh", 0.5, 0.1), ("hh", 0.0, 0.1)]) for s in (0, 1)}
    text = trust_region.activity_tex(trust_region.summarise(trust_region.collect(logs)), ["p2o"], {"p2o": "lr 1"},
                                     {"p2o": 0.15})
    assert "clipped on 50.0\\,\\% of its 4 optimizer steps over 2 seeds, with" in text
