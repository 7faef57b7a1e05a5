"""The Snakemake workflow: validation, the paper's plan, and reruns limited to what a change touched."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO, workflow_checkout

SNAKEMAKE = [sys.executable, "-m", "snakemake"]
HAS_LATEX = shutil.which("latexmk") is not None and shutil.which("pdflatex") is not None


def snakemake(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if (cwd / "src").is_dir():  # a checkout with its own copy of the library
        env["PYTHONPATH"] = os.pathsep.join([str(cwd / "src"), *filter(None, [env.get("PYTHONPATH")])])
    proc = subprocess.run([*SNAKEMAKE, *args], cwd=cwd, capture_output=True, text=True, timeout=1200, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


def planned_jobs(output: str) -> list[tuple[str, dict]]:
    """(rule, wildcards) of every job a dry run lists."""
    jobs, rule = [], None
    for line in output.splitlines():
        if m := re.match(r"^(?:local)?rule (\w+):$", line.strip()):
            rule = m.group(1)
            jobs.append((rule, {}))
        elif rule and (m := re.match(r"^wildcards: (.*)$", line.strip())):
            jobs[-1] = (rule, dict(kv.split("=", 1) for kv in m.group(1).split(", ")))
    return jobs


def write(path: Path, obj) -> str:
    path.write_text(yaml.safe_dump(obj))
    return str(path)


def test_paper_config_plans_every_method_seed_and_split(tmp_path):
    wd = workflow_checkout(tmp_path)
    out = snakemake(wd, "-n").stdout
    jobs = planned_jobs(out)
    train = {(w["method"], w["seed"]) for r, w in jobs if r == "train"}
    evaluate = {(w["method"], w["seed"]) for r, w in jobs if r == "evaluate"}  # one job evaluates every split
    cfg = yaml.safe_load((wd / "config" / "config.yaml").read_text())
    k = cfg["compute_matched"]["inner_steps"]
    methods = set(cfg["method_order"]) | {f"{m}_k{k}" for m in cfg["compute_matched"]["methods"]}
    assert {"dpo", "ipo", "kto", "p2o", "pkto", "simpo", "orpo", "dpo_k3"} <= methods
    assert {m for m, _ in train} == methods
    assert len(train) == len(methods) * 3 and evaluate == train
    assert sum(r == "reference" for r, _ in jobs) == 3 * 2  # once per split, shared by every method
    # judged by what they generate: one sampling job per model (and one for the SFT model, the baseline)
    # and one judging job per method and seed, each writing every dataset's file
    generated = {(w["method"], w["seed"]): o for r, w, _, o in planned_files(out) if r == "generate"}
    judged = {(w["method"], w["seed"]): o for r, w, _, o in planned_files(out) if r == "judge"}
    online = {(m, s) for m in cfg["online"]["methods"] for s in ("0", "1", "2")}  # judged too (online.smk)
    assert set(generated) == set(judged) == train | online
    for (method, seed), outputs in generated.items():
        assert {f"results/generate/{method}/seed{seed}/{d}.jsonl" for d in ("hh", "shp", "uf")} <= set(outputs)
        assert set(judged[method, seed]) == {f"results/judge/{method}/seed{seed}/{d}.json" for d in ("hh", "shp", "uf")}
    assert sum(r == "generate_sft" for r, _ in jobs) == 1
    assert {"generation_aggregate", "generation_report"} <= {r for r, _ in jobs}


@pytest.mark.parametrize("override, key", [
    ({"methods": {"nosuchloss": {}}}, "methods.nosuchloss.loss"),
    ({"methods": {"dpo": {"beta": 0.0}}}, "beta"),
    ({"methods": {"p2o": {"eps_clip": 1.5}}}, "eps_clip"),
    ({"methods": {"p2o": {"eps_clip": 0.0}}}, "eps_clip"),
    ({"train": {"batch_size": "eight"}}, "batch_size"),
    ({"data": {"n_train": -1}}, "n_train"),
    ({"data": {"order": ["hh", "nope"]}}, "data.order"),
    ({"tokenize": {"max_length": 32, "max_prompt_length": 64}}, "tokenize.max_length"),
    ({"typo_section": {}}, "typo_section"),
])
def test_invalid_configs_stop_before_any_job(tmp_path, override, key):
    wd = workflow_checkout(tmp_path)
    proc = snakemake(wd, "-n", "--configfile", write(tmp_path / "bad.yaml", override), check=False)
    assert proc.returncode != 0
    assert key in proc.stdout + proc.stderr
    assert not (wd / "results").exists()


def test_missing_key_stops_the_run(tmp_path):
    wd = workflow_checkout(tmp_path)
    cfg = yaml.safe_load((wd / "config" / "config.yaml").read_text())
    del cfg["tokenize"]
    (wd / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(wd, "-n", check=False)
    assert proc.returncode != 0 and "tokenize" in proc.stdout + proc.stderr


REDUCED = {
    "data": {"n_train": 16, "n_eval": 8},
    "model": {"tiny": {"n_layer": 1, "n_head": 2, "n_embd": 32, "vocab_size": 512, "n_positions": 96}},
    "tokenize": {"max_length": 64, "max_prompt_length": 32},
    "sft": {"epochs": 1},
    "train": {"eval_every": 2},
    "method_order": ["dpo", "p2o"],
    "methods": {"p2o": {"inner_steps": 2}},
    "compute_matched": {"inner_steps": 2, "methods": ["dpo"]},  # DPO rerun as dpo_k2, beside P²O's K = 2
    "rm_experiment": {"sizes": [4, 8, 16], "seeds": [0]},  # reward model vs DPO: within n_train
    "seeds": [0],
    "judge": {"name": "trained", "n_pairs": 32},  # the gold judge the workflow trains (the demo's: planted)
    "online": {"methods": ["rloo", "online_dpo"], "online_dpo": {"iterations": 1}},  # one of each kind of job
}


@pytest.fixture(scope="module")
def reduced_demo(tmp_path_factory):
    """The demo workflow (2 methods, 1 seed) run to the paper PDF, as README's demo, in a checkout
    with its own copy of the library: (folder, the config arguments)."""
    if not HAS_LATEX:
        pytest.skip("the paper needs latexmk and pdflatex (Debian: latexmk, texlive-latex-*)")
    tmp_path = tmp_path_factory.mktemp("reduced_demo")
    wd = workflow_checkout(tmp_path / "repo", library=True)
    demo = ["--configfile", "config/demo.yaml", write(tmp_path / "reduced.yaml", REDUCED)]
    snakemake(wd, "--workflow-profile", "workflow/profiles/cpu", "--cores", "2", *demo)
    return wd, demo


@pytest.mark.slow
def test_reduced_demo_end_to_end_and_partial_rerun(reduced_demo, tmp_path):
    """Run the demo workflow (2 methods, 1 seed) to the paper PDF; then change P²O's ε and check
    that a dry run plans only P²O's train/evaluate jobs and the aggregate-to-paper jobs."""
    wd, demo = reduced_demo
    assert (wd / "results" / "paper" / "main.pdf").stat().st_size > 10_000
    for method in ("dpo", "p2o"):
        for dataset in ("hh", "shp", "uf"):
            assert (wd / "results" / "evaluate" / method / "seed0" / f"{dataset}.json").exists()
    generated = wd / "results" / "paper" / "generated"
    assert "P$^2$O" in (generated / "table_all.tex").read_text()
    matched = (generated / "table_matched.tex").read_text()
    assert "DPO ($K$=2)" in matched and "P$^2$O" in matched
    assert "table_matched" in (generated / "tables.tex").read_text()
    compute = (generated / "table_compute.tex").read_text()
    assert "DPO ($K$=2) & 2 &" in compute
    trust = (generated / "table_trust_region.tex").read_text()  # P²O only: DPO's loss clips nothing
    assert "P$^2$O: lr" in trust and "\\multicolumn{7}{l}{DPO" not in trust
    assert "The trust region of P$^2$O (lr" in (generated / "trust_region.tex").read_text()
    assert "DPO & --" in (generated / "table_seed_spread.tex").read_text()  # one seed: no spread
    sig = (wd / "results" / "aggregate" / "significance.csv").read_text()
    assert "p2o,dpo,all,eval_rewards/accuracies" in sig and "p2o,dpo_k2,all" in sig
    # judged by what they generate: the win-rate table, the reward-vs-KL figure, the samples appendix
    winrate = (generated / "table_winrate.tex").read_text()
    assert "P$^2$O" in winrate and "DPO" in winrate and "Bradley--Terry reward model the workflow trains" in winrate
    # the trained gold judge: its own pool, disjoint from every split, and its held-out accuracy
    heldout = json.loads((wd / "results" / "gold_judge" / "heldout.json").read_text())
    assert {d: p["n"] for d, p in heldout["pools"].items()} == {"hh": 32, "shp": 32, "uf": 32}
    assert all(0 <= m["eval_rewards/accuracies"] <= 1 for m in heldout["heldout"].values())
    for dataset in ("hh", "shp", "uf"):
        prompts = {part: {json.loads(line)["prompt"] for line in (wd / "results" / "data" / dataset / f"{part}.jsonl")
                          .read_text().splitlines()} for part in ("train", "eval", "gold")}
        assert not prompts["gold"] & (prompts["train"] | prompts["eval"])
    # the online methods beside the offline ones: the comparison table, with every run's FLOPs
    online = (generated / "table_online.tex").read_text()
    assert "RLOO" in online and "Online DPO" in online and "P$^2$O" in online and "FLOPs" in online
    assert "--" not in online.split("\\midrule")[1]  # every row has every column, its FLOPs included
    judged = json.loads((wd / "results" / "judge" / "p2o" / "seed0" / "uf.json").read_text())["judge"]
    assert judged["name"] == "trained" and set(judged["heldout_accuracy"]) == {"hh", "shp", "uf"}
    assert (generated / "reward_kl.pdf").stat().st_size > 5_000
    samples = (generated / "samples.tex").read_text()
    assert "\\item[SFT]" in samples and "\\item[P$^2$O]" in samples and samples.count("\\subsection*") == 3
    tidy = (wd / "results" / "aggregate" / "generation.csv").read_text()
    for run in ("dpo,0,hh,win_rate", "p2o,0,uf,kl_k3", "dpo_k2,0,shp,mean_reward"):
        assert run in tidy

    changed = write(tmp_path / "eps.yaml", {"methods": {"p2o": {"eps_clip": 0.3}}})
    jobs = planned_jobs(snakemake(wd, "-n", *demo, changed).stdout)  # one --configfile, several files
    rules = {r for r, _ in jobs}
    per_model = ("train", "evaluate", "generate", "judge")
    assert {w["method"] for r, w in jobs if r in per_model} == {"p2o"}
    assert all(sum(r == rule for r, _ in jobs) == 1 for rule in per_model)
    assert rules - set(per_model) == {"aggregate", "tables", "figures", "paper_numbers", "generation_aggregate",
                                      "generation_report", "paper", "all"}

    # nothing changed: nothing to do
    assert planned_jobs(snakemake(wd, "-n", *demo).stdout) == []
    # how often to log or checkpoint, and inference batch sizes, change no result: nothing to do either
    pacing = write(tmp_path / "pacing.yaml", {"train": {"log_every": 3, "checkpoint_every": 5},
                                              "sft": {"log_every": 2}, "evaluate": {"batch_size": 4},
                                              "generate": {"batch_size": 3}, "judge": {"batch_size": 5}})
    assert planned_jobs(snakemake(wd, "-n", *demo, pacing).stdout) == []


@contextlib.contextmanager
def edited(path: Path, old: str, new: str):
    """``path`` with ``old`` replaced by ``new``; restored on exit."""
    text = path.read_text()
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new))
    try:
        yield
    finally:
        path.write_text(text)


@pytest.mark.slow
def test_code_change_reruns_only_the_jobs_that_run_the_edited_code(reduced_demo):
    """After the demo, edit the library in the checkout's copy: P²O's loss function plans P²O's train
    and evaluate jobs and their dependants; a plot function, the figures and the paper; restoring the
    file, nothing."""
    wd, demo = reduced_demo
    lib = wd / "src" / "p2o"
    with edited(lib / "losses" / "trust_region.py", "def p2o(\n", "def p2o(  # edited\n"):
        jobs = planned_jobs(snakemake(wd, "-n", *demo).stdout)
    per_model = ("train", "evaluate", "generate", "judge")
    assert {(r, w.get("method")) for r, w in jobs if r in per_model} == {(r, "p2o") for r in per_model}
    assert sorted(r for r, _ in jobs) == sorted([*per_model, "aggregate", "tables", "figures", "paper_numbers",
                                                  "generation_aggregate", "generation_report", "paper", "all"])

    with edited(lib / "report" / "plots.py", "def training_curves(", "def training_curves(  # edited\n"):
        assert sorted(r for r, _ in planned_jobs(snakemake(wd, "-n", *demo).stdout)) == ["all", "figures", "paper"]

    with edited(lib / "config" / "sections.py", '"AdamW peak learning rate', '"AdamW peak learning rate (edited)'):
        assert planned_jobs(snakemake(wd, "-n", *demo).stdout) == []  # a declaration: its values are the params
    assert planned_jobs(snakemake(wd, "-n", *demo).stdout) == []


def test_cpu_profile_lets_every_model_job_after_sft_run_side_by_side(tmp_path):
    """workflow/profiles/cpu: every job of the demo but SFT claims no GPU and one thread (a model
    rule missing from the profile would claim gpu=1 and queue behind the others); without the
    profile every model job claims the GPU and all of --cores."""
    wd = workflow_checkout(tmp_path)

    def claims(*args):
        out = snakemake(wd, "-n", "--cores", "2", "--configfile", "config/demo.yaml", *args).stdout
        rule, found = None, {}
        for line in map(str.strip, out.splitlines()):
            if m := re.match(r"^(?:local)?rule (\w+):$", line):
                rule = m.group(1)
            elif rule and (m := re.match(r"^threads: (\d+)$", line)):
                found.setdefault(rule, set()).add(("threads", int(m.group(1))))
            elif rule and line.startswith("resources:") and "gpu=1" in line:
                found.setdefault(rule, set()).add(("gpu", 1))
        return found

    model_rules = {"sft", "reference", "train", "evaluate", "generate_sft", "generate", "rm_train_reward_model",
                   "rm_train_policy", "rm_evaluate", "train_proxy", "train_online", "online_dpo_sample",
                   "online_dpo_label", "online_dpo_train"}  # not judge: the demo's planted rule needs no model
    default = claims()
    assert set(default) == model_rules and all(c == {("threads", 2), ("gpu", 1)} for c in default.values())
    assert claims("--workflow-profile", "workflow/profiles/cpu") == {"sft": {("threads", 2), ("gpu", 1)}}


def test_paper_config_plans_the_reward_model_experiment(tmp_path):
    """Reward model versus DPO (workflow/rules/reward.smk): every size x seed trains both models
    once; sizes above data.n_train get their own pool (prepared and scored once per dataset)."""
    wd = workflow_checkout(tmp_path)
    cfg = yaml.safe_load((wd / "config" / "config.yaml").read_text())
    rm = cfg["rm_experiment"]
    jobs = planned_jobs(snakemake(wd, "-n").stdout)
    cells = {(d, str(n), str(s)) for d in rm["datasets"] for n in rm["sizes"] for s in rm["seeds"]}
    for rule in ("rm_train_reward_model", "rm_train_policy"):
        planned = [(w["dataset"], w["size"], w["seed"]) for r, w in jobs if r == rule]
        assert len(planned) == len(cells) and set(planned) == cells, rule
    assert {(w["dataset"], w["size"]) for r, w in jobs if r == "rm_subset"} == {
        (d, str(n)) for d in rm["datasets"] for n in rm["sizes"]}
    assert max(rm["sizes"]) > cfg["data"]["n_train"]  # the paper's sizes need the larger pool
    for rule in ("rm_prepare", "rm_reference", "rm_evaluate"):
        assert sorted(w["dataset"] for r, w in jobs if r == rule) == sorted(rm["datasets"]), rule
    assert {r for r, _ in jobs} >= {"rm_aggregate", "rm_figure", "rm_table", "rm_numbers", "paper"}


def planned_files(output: str) -> list[tuple[str, dict, list[str], list[str]]]:
    """(rule, wildcards, inputs, outputs) of every job a dry run lists."""
    jobs = []
    for line in output.splitlines():
        line = line.strip()
        if m := re.match(r"^(?:local)?rule (\w+):$", line):
            jobs.append((m.group(1), {}, [], []))
        elif jobs and (m := re.match(r"^(wildcards|input|output): (.*)$", line)):
            rule, wildcards, inputs, outputs = jobs[-1]
            if m.group(1) == "wildcards":
                wildcards.update(kv.split("=", 1) for kv in m.group(2).split(", "))
            else:
                (inputs if m.group(1) == "input" else outputs).extend(m.group(2).split(", "))
    return jobs


def test_seed_scope_pipeline_gives_each_seed_its_own_models(tmp_path):
    """seed_scope: training (the default) plans one initial model, one SFT and one reference pass per
    split at the seedless paths; pipeline plans them per training seed, and each seed's training and
    evaluation read its own; the reward-model experiment reads the first seed's."""
    wd = workflow_checkout(tmp_path)
    seeds = [str(s) for s in yaml.safe_load((wd / "config" / "config.yaml").read_text())["seeds"]]
    assert len(seeds) > 1

    shared = planned_files(snakemake(wd, "-n").stdout)
    assert [o for r, _, _, o in shared if r == "init_model"] == [["results/base"]]
    assert [o[0] for r, _, _, o in shared if r == "sft"] == ["results/sft/model"]
    assert sorted(o[0] for r, _, _, o in shared if r == "reference") == sorted(
        f"results/reference/{d}_{p}.pt" for d in ("hh", "shp", "uf") for p in ("train", "eval"))

    jobs = planned_files(snakemake(wd, "-n", "--configfile", write(tmp_path / "scope.yaml",
                                                                   {"seed_scope": "pipeline"})).stdout)
    for rule in ("init_model", "sft"):
        assert sorted(w["seed"] for r, w, _, _ in jobs if r == rule) == sorted(seeds), rule
    assert [o[0] for r, w, _, o in jobs if r == "sft" and w["seed"] == "1"] == ["results/sft/seed1/model"]
    assert sorted((w["seed"], w["dataset"], w["part"]) for r, w, _, _ in jobs if r == "reference") == sorted(
        (s, d, p) for s in seeds for d in ("hh", "shp", "uf") for p in ("train", "eval"))
    for r, w, inputs, _ in jobs:
        if r in ("sft", "reference", "train", "evaluate"):
            models = {f for f in inputs if f.startswith(("results/base", "results/sft", "results/reference"))}
            assert models and all(f"/seed{w['seed']}" in f for f in models), (r, w, models)
        if r.startswith("rm_") and any(f.startswith("results/sft") for f in inputs):
            assert f"results/sft/seed{seeds[0]}/model" in inputs, r


def test_paper_depends_on_every_generated_file_main_tex_reads(tmp_path):
    """paper/main.tex is the one list of the paper's generated inputs (rules/common.smk scans it):
    the paper rule depends on each file it reads, with the files their rules write beside them
    (tables.tex inputs table_*.tex); commented-out lines are ignored; a file no rule writes stops
    the dry run with its name."""
    wd = workflow_checkout(tmp_path)

    def paper_inputs():
        out = snakemake(wd, "results/paper/main.pdf", "-n", "--forceall", "--configfile", "config/demo.yaml").stdout
        line = out.split("rule paper:", 1)[1].split("input:", 1)[1].splitlines()[0]
        return {p.strip() for p in line.split(",")}

    tex = (wd / "paper" / "main.tex").read_text()
    read = set(re.findall(r"\\(?:input|includegraphics)(?:\[[^\]]*\])?\{(generated/[^}]+)\}", tex))
    assert {"generated/numbers.tex", "generated/tables.tex", "generated/rm_vs_dpo.pdf"} <= read
    inputs = paper_inputs()
    assert {f"results/paper/{name}" for name in read} <= inputs
    assert {"results/paper/generated/table_hh.tex", "results/paper/generated/table_compute.tex",
            "results/paper/generated/table_trust_region.tex", "results/paper/generated/trust_region.tex",
            "results/paper/generated/table_seed_spread.tex"} <= inputs
    assert {"paper/main.tex", "paper/refs.bib"} <= inputs

    figure = next(line for line in tex.splitlines() if "generated/rm_vs_dpo.pdf" in line)
    (wd / "paper" / "main.tex").write_text(tex.replace(figure, "%" + figure))
    assert "results/paper/generated/rm_vs_dpo.pdf" not in paper_inputs()

    (wd / "paper" / "main.tex").write_text(tex.replace("\\end{document}", "\\input{generated/nosuch.tex}\n\\end{document}"))
    proc = snakemake(wd, "-n", "--configfile", "config/demo.yaml", check=False)
    assert proc.returncode != 0 and "generated/nosuch.tex" in proc.stdout + proc.stderr
    assert "no rule writes results/paper/generated/nosuch.tex" in proc.stdout + proc.stderr


def test_rules_and_command_line_share_one_results_layout():
    """p2o.stages.layout: a wildcard is an argument like any other, so one function gives the
    rule's pattern and a job's path; the command line uses it under --workdir."""
    from p2o.stages.layout import Layout

    layout = Layout()
    assert layout.train("{method}", "{seed}").model == "results/train/{method}/seed{seed}/model"
    assert layout.train("p2o", 1).summary == "results/train/p2o/seed1/summary.json"
    assert layout.evaluate("{method}", "{seed}", "{dataset}") == "results/evaluate/{method}/seed{seed}/{dataset}.json"
    assert layout.rm_evaluate("uf", 16, 41, "rm") == "results/rm_experiment/uf/n16/seed41/rm/eval.json"
    assert Layout("./runs/").reference("hh", "eval") == "runs/reference/hh_eval.pt"
    assert layout.sft.model == "results/sft/model" and layout.base == "results/base"  # seed_scope: training
    assert layout.sft_of("{seed}").model == "results/sft/seed{seed}/model"  # seed_scope: pipeline
    assert layout.reference("hh", "eval", 2) == "results/reference/seed2/hh_eval.pt"
    rules = "".join(p.read_text() for p in (REPO / "workflow" / "rules").glob("*.smk"))
    assert not re.search(r"[\"']results/", rules)  # every results path comes from the layout


def test_report_description_lists_the_configured_methods():
    """workflow/report/workflow.rst, rendered as `snakemake --report` renders it, names every method
    of the run from the config (no count typed into it)."""
    from jinja2 import Environment

    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg["method_order"], cfg["compute_matched"]["methods"] = ["dpo", "simpo"], []

    class Snakemake:
        config = cfg

    template = (REPO / "workflow" / "report" / "workflow.rst").read_text()
    text = Environment(trim_blocks=True, lstrip_blocks=True).from_string(template).render(snakemake=Snakemake)
    assert "(dpo, simpo)" in text and "reruns" not in text and "hh, shp, uf" in text
    assert not re.search(r"\b(five|5|fourteen|14) (losses|methods)\b", template)
