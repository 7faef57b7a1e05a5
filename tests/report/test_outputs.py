"""Aggregation, tables, figures and generated paper text, on small hand-made result tables."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest

from conftest import REPO
from p2o.report.aggregate import collect_curves, collect_metrics, collect_runs, overall, summarise, t_quantile
from p2o.report.names import display_name, latex_name
from p2o.report.paper import findings_tex, numbers_tex, setup_tex
from p2o.report.plots import error_bar, final_metrics, heldout_curves, tradeoff, training_curves
from p2o.report.styles import KNOWN, method_styles
from p2o.report.tables import compute_table, dagger_note, method_table, significant_cells, table_csv

ACC, MARGIN, KL = "eval_rewards/accuracies", "eval_rewards/margins", "eval_kl/token_mean"


def metrics_frame(values: dict) -> pd.DataFrame:
    """{(method, dataset): {metric: [value per seed]}} -> tidy metrics."""
    rows = [{"method": m, "seed": s, "dataset": d, "metric": k, "value": v}
            for (m, d), per_metric in values.items() for k, seeds in per_metric.items() for s, v in enumerate(seeds)]
    return pd.DataFrame(rows)


VALUES = {
    ("dpo", "hh"): {ACC: [0.80, 0.90, 0.85], MARGIN: [1.0, 2.0, 1.5], KL: [0.30, 0.40, 0.35]},
    ("p2o", "hh"): {ACC: [0.90, 0.90, 0.93], MARGIN: [1.0, 1.0, 1.3], KL: [0.10, 0.12, 0.11]},
    ("dpo", "uf"): {ACC: [0.70, 0.70, 0.70], MARGIN: [0.5, 0.5, 0.5], KL: [0.2, 0.2, 0.2]},
    ("p2o", "uf"): {ACC: [0.70, 0.70, 0.70], MARGIN: [0.4, 0.4, 0.4], KL: [0.1, 0.1, 0.1]},
}


def test_summary_uses_student_t_intervals():
    s = summarise(metrics_frame(VALUES)).set_index(["method", "dataset", "metric"])
    r = s.loc[("dpo", "hh", ACC)]
    sd = pd.Series([0.80, 0.90, 0.85]).std(ddof=1)
    assert r["mean"] == pytest.approx(0.85) and r["n_seeds"] == 3
    assert r["ci95"] == pytest.approx(4.303 * sd / math.sqrt(3))
    assert t_quantile(1) == 12.706 and t_quantile(100) == 1.96
    one_seed = summarise(metrics_frame({("dpo", "hh"): {ACC: [0.5]}}))
    assert math.isnan(one_seed["ci95"].iloc[0])


def test_overall_averages_datasets_per_seed_first():
    o = overall(metrics_frame(VALUES)).set_index(["method", "metric"])
    assert o.loc[("dpo", ACC), "mean"] == pytest.approx((0.85 + 0.70) / 2)
    per_seed = [(0.80 + 0.7) / 2, (0.90 + 0.7) / 2, (0.85 + 0.7) / 2]
    assert o.loc[("dpo", ACC), "ci95"] == pytest.approx(4.303 * pd.Series(per_seed).std() / math.sqrt(3))


def test_table_bolds_the_best_per_column_and_every_tie():
    summary = summarise(metrics_frame(VALUES))
    tex = method_table(summary, "hh", ["dpo", "p2o"], "caption", "tab:hh")
    dpo_row = next(line for line in tex.splitlines() if line.startswith("DPO"))
    p2o_row = next(line for line in tex.splitlines() if line.startswith("P$^2$O"))
    assert "\\textbf{0.910" in p2o_row and "\\textbf{0.1100" in p2o_row  # accuracy up, KL down
    assert "\\textbf{1.500" in dpo_row  # margin
    assert "\\toprule" in tex and "\\label{tab:hh}" in tex
    tied = method_table(summary, "uf", ["dpo", "p2o"], "c", "tab:uf")
    assert tied.count("\\textbf{0.700") == 2
    wide = table_csv(summary, "hh").set_index("method")
    assert wide.loc["p2o", f"{ACC}:mean"] == pytest.approx(0.91)


def test_significant_cells_get_a_dagger_and_compute_table_scales_to_the_first_row():
    summary = summarise(metrics_frame(VALUES))
    sig = pd.DataFrame([
        {"method": "p2o", "baseline": "dpo", "dataset": "hh", "metric": ACC, "significant": True},
        {"method": "p2o", "baseline": "dpo", "dataset": "hh", "metric": KL, "significant": False},
        {"method": "p2o", "baseline": "dpo_k3", "dataset": "hh", "metric": MARGIN, "significant": True}])
    cells = significant_cells(sig, "hh", "dpo")
    assert cells == {("p2o", ACC)}
    note = dagger_note(sig, "hh", "dpo")  # the caption counts the table's tests: two here
    assert note == ("$^\\dagger$: differs from DPO under a paired bootstrap over held-out pairs and seeds, "
                    "Holm--Bonferroni-adjusted $p \\le 0.05$ over the table's 2 tests (reward accuracy and reward "
                    "margin of each method)")
    tex = method_table(summary, "hh", ["dpo", "p2o"], "c", "tab:hh", cells)
    p2o_row = next(line for line in tex.splitlines() if line.startswith("P$^2$O"))
    assert p2o_row.count("$^\\dagger$") == 1 and "0.910 $\\pm$" in p2o_row.split("&")[1]
    runs = pd.DataFrame({"method": ["dpo", "dpo", "dpo_k3", "p2o"], "inner_steps": [1, 1, 3, 3],
                         "optimizer_steps": [10, 10, 30, 30], "forward_passes": [10, 10, 30, 30],
                         "backward_passes": [10, 10, 30, 30], "flops": [1e12, 1e12, 3e12, 3.1e12]})
    table = compute_table(runs, ["dpo", "p2o", "dpo_k3"], "c", "tab:compute")
    assert "P$^2$O & 3 & 30 & 30 & 30 & 3.1 & 3.10$\\times$" in table
    assert latex_name("dpo_k3") == "DPO ($K$=3)" and "DPO ($K$=3) & 3 &" in table


def test_findings_follow_the_numbers_and_take_their_verdict_from_the_daggers_test():
    summary = pd.concat([summarise(metrics_frame(VALUES)), overall(metrics_frame(VALUES))], ignore_index=True)
    sig = pd.DataFrame([  # as p2o.report.significance writes it; (hh, dpo) and (uf, dpo) hold two tests each
        {"method": "p2o", "baseline": "dpo", "dataset": d, "metric": metric, "p_value": p, "p_holm": q,
         "significant": q <= 0.05, "n_seeds": 3, "n_pairs": 100}
        for d, metric, p, q in (("hh", ACC, 0.004, 0.008), ("hh", MARGIN, 0.3, 0.3), ("uf", ACC, 0.04, 0.08),
                                ("uf", MARGIN, 0.5, 0.5))])
    text = findings_tex(summary, ["dpo", "p2o"], ["hh", "uf"], sig)
    hh = next(line for line in text.splitlines() if line.startswith("On HH"))
    assert "highest held-out reward accuracy is reached by P$^2$O (0.910)" in hh
    assert "lowest KL per token by P$^2$O" in hh
    assert "+0.060 (significant; paired bootstrap over 3 seeds and 100 held-out pairs, Holm-adjusted over the " \
           "table's 2 tests: $p = 0.008$)" in hh
    uf = next(line for line in text.splitlines() if line.startswith("On UF"))
    assert "DPO and P$^2$O alike" in uf and "(not significant;" in uf and "$p = 0.08$" in uf  # raw 0.04: not enough
    averaged = next(line for line in text.splitlines() if line.startswith("Averaged"))
    assert "(not tested)" in averaged  # no test of the 'all' table in sig
    assert "(not tested)" in findings_tex(summary, ["dpo", "p2o"], ["hh"], sig.iloc[0:0])


def test_numbers_define_only_macros_the_paper_uses():
    runs = pd.DataFrame({"method": ["dpo", "dpo", "p2o"], "seed": [0, 1, 0], "wall_s": [60.0, 60.0, 120.0]})
    tex = numbers_tex(runs)
    assert "\\newcommand{\\nSeeds}{1}" in tex and "\\newcommand{\\totalTrainMinutes}{4.0}" in tex
    defined = re.findall(r"\\newcommand\{\\(\w+)\}", tex)
    main_tex = (REPO / "paper" / "main.tex").read_text()
    assert defined and [m for m in defined if not re.search(rf"\\{m}(?![A-Za-z])", main_tex)] == []


def test_collectors_read_the_runs_files(tmp_path):
    ev = tmp_path / "e.json"
    ev.write_text(json.dumps({"method": "p2o", "seed": 1, "dataset": "hh", "n_pairs": 8, ACC: 0.5, KL: 0.1}))
    m = collect_metrics([ev])
    assert set(m["metric"]) == {ACC, KL} and (m["seed"] == 1).all()
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"method": "p2o", "seed": 1, "loss": "p2o", "inner_steps": 3, "hparams": {},
                                   "final": {"steps": 6}, "train": {"batch_size": 8}, "wall_s": 1.0}))
    runs = collect_runs([summary])
    log = tmp_path / "log.jsonl"
    log.write_text("\n".join(json.dumps(r) for r in [
        {"kind": "train", "step": 3, "dataset": "hh", "inner_step": 2, "loss": 0.6},
        {"kind": "eval", "step": 6, "dataset": "hh", ACC: 0.75}]))
    curves = collect_curves({("p2o", 1): log}, runs)
    assert curves.set_index("metric").loc["loss", "pairs_seen"] == 8  # 3 steps / K=3 = 1 batch of 8
    assert curves.set_index("metric").loc[ACC, "pairs_seen"] == 16


def test_setup_table_reads_provenance_from_the_runs(tmp_path):
    from p2o.provenance import config_sha256, provenance

    config = {"train": {"lr": 1e-3}, "seeds": [0, 1]}
    files = []
    for seed, cfg in ((0, config), (1, {**config, "seeds": [1]})):  # seed 1 ran under another config
        path = tmp_path / f"summary{seed}.json"
        path.write_text(json.dumps({
            "method": "p2o", "seed": seed, "loss": "p2o", "inner_steps": 3, "hparams": {"eps_clip": 0.15},
            "final": {"steps": 6}, "train": {"batch_size": 8, "lr": 1e-3, "epochs": 1, "warmup_ratio": 0.0,
                                            "max_grad_norm": 1.0},
            "tokenize": {"max_length": 64, "max_prompt_length": 32}, "wall_s": 1.0,
            "split_sha256": {"hh": "a" * 64 if seed == 0 else "b" * 64}, "provenance": provenance("cpu", cfg)}))
        files.append(path)
    runs = collect_runs(files)
    assert set(runs["config_sha256"]) == {config_sha256(config), config_sha256({**config, "seeds": [1]})}
    manifests = {"hh": {"format": "hh-rlhf", "rows": 10, "dropped": {"x": 1},
                        "splits": {"train": {"n": 8, "sha256": "a" * 64}, "eval": {"n": 2, "sha256": "c" * 64}}}}
    tex = setup_tex(runs, manifests, json.loads(files[0].read_text()), "tiny")
    provenance_part = tex.split("Provenance (2 runs)")[1]
    assert config_sha256(config)[:12] + "\\ldots (1 runs)" in provenance_part  # both hashes, counted
    assert f"PyTorch {__import__('torch').__version__}" in provenance_part
    assert "1 run(s) read another version" in tex  # seed 1 recorded a split hash unlike the manifest's
    assert "Device & cpu (" in provenance_part


def test_figures_are_vector_pdfs_with_one_style_per_method(tmp_path):
    metrics = metrics_frame(VALUES)
    summary = summarise(metrics)
    curves = pd.DataFrame([
        {"method": m, "seed": s, "kind": k, "step": st, "pairs_seen": st * 8, "dataset": "hh", "metric": met,
         "value": 0.5 + 0.01 * st}
        for m in ("dpo", "p2o") for s in (0, 1) for st in range(1, 6)
        for k, met in (("train", "loss"), ("train", "rewards/margins"), ("eval", ACC), ("eval", MARGIN), ("eval", KL))])
    for fn, args in ((training_curves, (curves, ["dpo", "p2o"])),
                     (heldout_curves, (curves, ["dpo", "p2o"], ["hh"])),
                     (final_metrics, (summary, ["dpo", "p2o"], ["hh", "uf"])),
                     (tradeoff, (summary, ["dpo", "p2o"], ["hh", "uf"]))):
        out = tmp_path / f"{fn.__name__}.pdf"
        fn(*args, out)
        assert out.read_bytes().startswith(b"%PDF") and out.stat().st_size > 5000
    # a method keeps its colour and marker whatever else is run, and new methods do not collide
    assert method_styles(["p2o"])["p2o"] == method_styles(["dpo", "ipo", "p2o", "simpo"])["p2o"]
    methods = [*KNOWN, *(f"new{i}" for i in range(12))]  # every paper method and more: no two look alike
    styles = method_styles(methods)
    assert len({(s["color"], s["linestyle"]) for s in styles.values()}) == len(methods)
    assert display_name("tdpo1") == "TDPO$_1$" and display_name("my_loss") == "MY_LOSS"
    assert {s["hatch"] for s in styles.values()} == {"", "////", "....", "xxxx"}  # bars: colour and hatch differ too


def test_error_bars_stay_within_the_metric_range():
    """mean ± CI is cut to where the metric lies (accuracy in [0, 1], KL ≥ 0); no CI draws none."""
    np.testing.assert_allclose(error_bar([0.9, 0.5, 0.2], [0.3, np.nan, 0.1], ACC), [[0.3, 0, 0.1], [0.1, 0, 0.1]])
    np.testing.assert_allclose(error_bar(0.1, 0.5, KL), [[0.1], [0.5]])
    np.testing.assert_allclose(error_bar([-1.0], [2.0], MARGIN), [[2.0], [2.0]])  # unbounded
