"""p2o.report.generation: the tidy table of the judge's outputs, the win-rate table, the frontier,
the reward-versus-KL figure and the LaTeX of the samples appendix."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from p2o.io import write_json
from p2o.report.aggregate import overall, summarise
from p2o.report.generation import (collect_generation, latex_escape, pareto_front, reward_kl_figure,
                                   samples_appendix, winrate_csv, winrate_table)

METHODS, DATASETS = ["dpo", "p2o"], ["hh", "uf"]


@pytest.fixture
def judged(tmp_path):
    files = []
    for k, method in enumerate(METHODS):
        for seed in (0, 1):
            for dataset in DATASETS:
                path = tmp_path / method / f"seed{seed}" / f"{dataset}.json"
                write_json(path, {"method": method, "seed": seed, "dataset": dataset, "win_rate": 0.5 + 0.1 * k + 0.01 * seed,
                                  "lc_win_rate": 0.5, "mean_reward": 1.0 + k + seed, "baseline_mean_reward": 0.8,
                                  "kl_k1": 0.1, "kl_k2": 0.05, "kl_k3": 0.2 * (k + 1) + 0.1 * seed, "mean_length": 20,
                                  "eos_rate": 0.5, "tie_rate": 0.1, "n": 16, "judge": {"name": "planted"},
                                  "provenance": {}})
                files.append(path)
    return collect_generation(files)


def test_tidy_rows_and_a_table_with_the_best_in_bold(judged):
    assert set(judged.columns) == {"method", "seed", "dataset", "metric", "value", "judge"}
    assert len(judged) == 2 * 2 * 2 * 11 and set(judged["judge"]) == {"planted"}
    values = judged.drop(columns="judge")
    summary = pd.concat([summarise(values), overall(values)], ignore_index=True)
    tex = winrate_table(summary, METHODS, DATASETS, "Win rates.", "tab:winrate")
    p2o_row = next(line for line in tex.splitlines() if line.startswith("P$^2$O"))
    # best win rate on HH, UF and all, the tied LC win rate, the best gold reward; not the KL (DPO's is lower)
    assert p2o_row.count("\\textbf") == 5
    assert "Win rate vs SFT" in tex and "tab:winrate" in tex and "--" not in p2o_row
    csv = winrate_csv(summary, METHODS)
    assert {"method", "dataset", "win_rate_mean", "win_rate_ci95", "kl_k3_mean"} <= set(csv.columns)


def test_pareto_front_keeps_the_runs_no_other_beats():
    kl, reward = np.array([0.1, 0.2, 0.3, 0.25]), np.array([1.0, 0.5, 2.0, 2.0])
    assert list(pareto_front(kl, reward)) == [0, 3]


def test_reward_kl_figure_is_a_pdf(judged, tmp_path):
    reward_kl_figure(judged, METHODS, DATASETS, tmp_path / "fig.pdf")
    assert (tmp_path / "fig.pdf").read_bytes()[:4] == b"%PDF"


def test_latex_escape_leaves_no_special_character_unescaped():
    text = "50% of $5 & #1 {x}_y ~z^2 \\cmd <a|b> [note]\n\nnext line\u00e9\u4e2d\u2014"
    out = latex_escape(text)
    assert "\\%" in out and "\\$" in out and "\\&" in out and "\\#" in out and "\\_" in out
    assert "\\textbackslash{}cmd" in out and "{[}note{]}" in out and " \\\\ next line" in out
    assert out.endswith("linee??") and all(ord(c) < 128 for c in out)
    assert latex_escape("x" * 50, limit=10) == "x" * 10 + " ..." and latex_escape("  ") == "\\textit{(empty)}"


def test_samples_appendix_compiles(tmp_path):
    def write(model, text):
        path = tmp_path / model / "hh.jsonl"
        path.parent.mkdir(exist_ok=True)
        rows = [{"prompt_id": "hh0", "sample": 0, "prompt": "\n\nHuman: 100% {sure}? $x$ #1\n\nAssistant:",
                 "text": text, "eos": True}, {"prompt_id": "hh1", "sample": 0, "prompt": "Q", "text": "a", "eos": False}]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return {"hh": path}

    files = {"sft": write("sft", "Sure_thing & more ~ ^ \\ [x]"), "dpo": write("dpo", "")}
    tex = samples_appendix(files, ["dpo"], ["hh"], n_prompts=1, seed=0)
    assert "\\item[SFT] Sure\\_thing \\& more" in tex and "\\item[DPO] \\textit{(empty)}" in tex
    assert tex.count("\\subsection*") == 1
    if shutil.which("pdflatex") is None:
        pytest.skip("no pdflatex")
    doc = tmp_path / "doc.tex"
    doc.write_text("\\documentclass{article}\\begin{document}\n" + tex + "\\end{document}\n")
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:]
