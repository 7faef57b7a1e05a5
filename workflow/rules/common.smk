# Configuration checks, wildcard constraints and the helpers that hand each job only the part of
# the config it reads and the digest of the code it runs, so that changing one method's
# hyper-parameter, or its loss function, reruns that method alone.

import dataclasses
import functools
import re
from pathlib import Path

from snakemake.utils import validate

from p2o.config import ConfigError, config_from_dict
from p2o.data.sources import looks_local
from p2o.job_code import loss_entry, script_code
from p2o.report.names import REWARD_MODEL
from p2o.stages.layout import Layout


validate(config, schema="../schemas/config.schema.yaml")
try:  # the library's own checks: each method's hyper-parameters against its loss, cross-key rules
    CFG = config_from_dict(config)
except ConfigError as e:
    raise WorkflowError(f"invalid configuration: {e}")

DATASETS = CFG.data.names  # training order
# pairs per dataset set aside for the trained gold judge (judge.name: trained), 0 for another judge
N_GOLD = CFG.judge.n_pairs if CFG.judge.trained else 0
MAIN_METHODS = CFG.method_names  # the original protocol: order of table rows and legends
MATCHED_METHODS = CFG.matched_names  # rows of the compute-matched table (every method at K steps per batch)
METHODS = CFG.all_method_names  # everything trained: the above plus the K-step reruns
# runs whose loss clips a ratio to the batch's snapshot (P²O, PKTO and their variants), read from the loss
# catalogue: the rows of the trust-region table
TRUST_REGION_METHODS = [m for m in METHODS if CFG.method(m).trust_region]
# online methods (rules/online.smk): trained on their own samples, judged with the offline ones
ONLINE_METHODS = list(CFG.online.methods)
JUDGED_METHODS = METHODS + ONLINE_METHODS  # every policy that generates and is judged
# offline runs the train rule makes: the methods above, and RTO's π_dpo (online.rto.dpo_method) when no
# method_order entry is it (trained for RTO only: not in the tables)
OFFLINE_TRAINED = METHODS + [m for m in [CFG.online.rto.dpo_method] if "rto" in ONLINE_METHODS and m not in METHODS]


def baseline_of(rows):
    """The row significance is tested against: DPO (at the rows' K), else the first row."""
    return next((m for m in rows if CFG.method(m).loss == "dpo"), rows[0] if rows else None)


def comparisons():
    """[method, baseline] pairs: each method against DPO in the original protocol and against DPO
    at K steps per batch in the compute-matched one (P²O is in both)."""
    return [[m, baseline_of(rows)] for rows in (MAIN_METHODS, MATCHED_METHODS) for m in rows
            if m != baseline_of(rows)]
SEEDS = CFG.seeds
# A model job's threads: every core Snakemake was given (--cores), since a local GPU run trains one
# model at a time (the rules claim gpu=1); profiles set fewer (workflow/profiles/cpu: one each, so
# that jobs run side by side; slurm: --cpus-per-task). Snakemake passes it to torch as OMP_NUM_THREADS.
try:
    MODEL_THREADS = workflow.cores
except WorkflowError:  # a cluster executor has no --cores: its profile's set-threads decides
    MODEL_THREADS = 1
PARTS = ["train", "eval"]


wildcard_constraints:
    dataset="|".join(DATASETS),
    method="|".join(JUDGED_METHODS + OFFLINE_TRAINED),
    seed=r"\d+",
    part="train|eval",


def section(obj):
    """A config section as a plain dict (what a rule's params hold), less the keys that change how a
    job runs, not what it computes (``RUN_ONLY``: how often to log or checkpoint, inference batch
    sizes): the scripts read those from the config, so changing them reruns nothing."""
    return {k: v for k, v in dataclasses.asdict(obj).items() if k not in getattr(obj, "RUN_ONLY", ())}


@functools.cache
def code_of(script, *entries):
    """The digest of the code a rule's script runs (``p2o.job_code``): the script and its helper
    file, every p2o function it calls with what those use, and ``entries`` (a training job's loss).
    Held in the rule's params: editing that code reruns the rule's jobs, editing other code does not."""
    scripts = Path(workflow.basedir) / "scripts"
    return script_code(scripts / script, entries, root=Path(workflow.basedir).parent)


# Every results path (p2o.stages.layout, shared with the p2o command line); rules pass wildcards as
# arguments, e.g. layout.train("{method}", "{seed}").model.
layout = Layout("results")


# ---------------------------------------------------------------- data


def get_raw_source(wildcards):
    """The local raw file a dataset is read from, if any (hub sources have no file input)."""
    source = CFG.data.datasets[wildcards.dataset].source
    return [source] if looks_local(source) else []


def get_download_params(wildcards):
    ds = CFG.data.datasets[wildcards.dataset]
    return {"source": ds.source, "split": ds.split, "data_dir": ds.data_dir, "revision": ds.revision}


def get_prepare_params(wildcards):
    ds = CFG.data.datasets[wildcards.dataset]
    data = CFG.data
    return {"format": ds.format, "min_score_ratio": ds.min_score_ratio,
            "max_pairs_per_prompt": ds.max_pairs_per_prompt, "n_train": data.n_train,
            "n_eval": data.n_eval, "split_salt": data.split_salt, "n_gold": N_GOLD}


def split_files(part):
    return [layout.split(d, part) for d in DATASETS]


def reference_files(part, seed=None):
    return [layout.reference(d, part, seed) for d in DATASETS]


def base_model_inputs():
    """The tiny model trains its tokenizer on the training splits; a hub model reads nothing."""
    return split_files("train") if CFG.model.name_or_path == "tiny" else []


# seed_scope: pipeline gives each training seed its own initial model, SFT model and reference
# log-probs (results/{base,sft,reference}/seed{seed}/); training (the default) shares one of each,
# at the paths without a seed, so that switching the option off reruns nothing.
MODEL_SEED = "{seed}" if CFG.seeded_models else None  # the model rules' seed in their paths


def model_log(stage, name=None):
    """A model rule's log (logs/sft.log, logs/reference/hh_eval.log), in a seed{seed} folder when the
    models are per seed (logs/sft/seed{seed}.log, logs/reference/seed{seed}/hh_eval.log)."""
    folder = f"logs/{stage}" if MODEL_SEED is None else f"logs/{stage}/seed{MODEL_SEED}"
    return f"{folder}/{name}.log" if name else f"{folder}.log"


def get_base_model_params():
    """The model section init_model reads: all of it but ``lora`` (which only SFT and training read) and
    ``inference_dtype`` (how later jobs load the weights, not what init_model writes)."""
    return {k: v for k, v in section(CFG.model).items() if k not in ("lora", "inference_dtype")}


def get_lora_params():
    """``model.lora`` when on (r > 0), else None. The SFT and training params hold it only when on, so
    that runs without LoRA keep the params they had before the key existed."""
    return section(CFG.model.lora) if CFG.model.lora.r > 0 else None


def get_sft_params():
    """The ``sft`` section, with ``lora`` when on."""
    params = section(CFG.sft)
    if get_lora_params() is not None:
        params["lora"] = get_lora_params()
    return params


def get_model_seed(wildcards):
    """The seed of the tiny model's initialisation and of the SFT batches: the job's own, else 0."""
    return int(wildcards.seed) if CFG.seeded_models else 0


def sft_seed(wildcards):
    """Whose SFT model and reference log-probs a training seed's job reads: its own, or the shared ones (None)."""
    return wildcards.seed if CFG.seeded_models else None


def get_sft_model(wildcards):
    return layout.sft_of(sft_seed(wildcards)).model


def get_eval_references(wildcards):
    return reference_files("eval", sft_seed(wildcards))


# ---------------------------------------------------------------- training and evaluation


def get_train_inputs(wildcards):
    seed = sft_seed(wildcards)
    inputs = {"model": get_sft_model(wildcards), "splits": split_files("train"),
              "references": reference_files("train", seed)}
    if CFG.train.eval_every > 0:  # held-out curves during training
        inputs.update(eval_splits=split_files("eval"), eval_references=reference_files("eval", seed))
    return inputs


def get_train_code(wildcards):
    """The training script's code with the method's own loss function (not the other losses)."""
    return code_of("train.py", loss_entry(CFG.method(wildcards.method).loss))


def get_train_params(wildcards):
    params = {"method": section(CFG.method(wildcards.method)), "train": section(CFG.train),
              "tokenize": section(CFG.tokenize), "datasets": DATASETS,
              "inference_dtype": CFG.model.inference_dtype}  # the frozen reference model's weights
    if CFG.train.eval_every > 0:
        params["evaluate"] = section(CFG.evaluate)
    if get_lora_params() is not None:
        params["lora"] = get_lora_params()
    return params


def evaluation_files(method=METHODS, seed=SEEDS, dataset=DATASETS):
    return expand(layout.evaluate("{method}", "{seed}", "{dataset}"), method=method, seed=seed, dataset=dataset)


def training_files(name):
    """``log`` or ``summary`` of every training run."""
    return expand(getattr(layout.train("{method}", "{seed}"), name), method=METHODS, seed=SEEDS)


# ---------------------------------------------------------------- reward model versus DPO (rules/reward.smk)

RM = CFG.rm_experiment
RM_DATASETS = RM.dataset_names(CFG.data)
RM_POLICY = RM.method  # the policy's folder name and label
RM_MODELS = [REWARD_MODEL, RM_POLICY]
RM_CELLS = [(size, seed) for size in RM.sizes for seed in RM.seeds]
# The main training split is the first data.n_train pairs of the hash order; a larger N needs a larger
# pool, prepared by the same rule with the same salt and n_eval (so the held-out pairs are the same).
RM_OWN_POOL = max(RM.sizes) > CFG.data.n_train
# The experiment's seeds (its own list) vary its two models, not the SFT model they start from:
# with seed_scope: pipeline it reads the first training seed's SFT model and reference log-probs.
RM_SFT_SEED = SEEDS[0] if CFG.seeded_models else None
RM_SFT = layout.sft_of(RM_SFT_SEED).model


def rm_optim(lr):
    """The `train` optimiser with the experiment's epochs and no held-out curves."""
    return section(dataclasses.replace(CFG.train, epochs=RM.epochs, eval_every=0, lr=lr))


def get_rm_pool(wildcards):
    """The training pool a subset is cut from, and the manifests whose held-out splits must agree."""
    d = wildcards.dataset
    if RM_OWN_POOL:
        return {"split": layout.rm_pool(d, "train.jsonl"), "reference": layout.rm_pool(d, "reference_train.pt"),
                "manifest": layout.rm_pool(d, "manifest.json"), "main_manifest": layout.manifest(d)}
    return {"split": layout.split(d, "train"), "reference": layout.reference(d, "train", RM_SFT_SEED),
            "manifest": layout.manifest(d), "main_manifest": layout.manifest(d)}


def get_rm_prepare_params(wildcards):
    return {**get_prepare_params(wildcards), "n_train": max(RM.sizes)}


def get_rm_policy_code(wildcards):
    return code_of("train.py", loss_entry(CFG.method(RM_POLICY).loss))


def get_rm_policy_params(wildcards):
    """What scripts/train.py reads (as get_train_params), for the experiment's policy."""
    params = {"method": section(CFG.method(RM_POLICY)), "train": rm_optim(CFG.train.lr),
              "tokenize": section(CFG.tokenize), "datasets": [wildcards.dataset]}
    if get_lora_params() is not None:
        params["lora"] = get_lora_params()
    return params


def rm_runs(model, name, dataset="{dataset}"):
    """``name`` (``model``, ``eval``) of ``model`` for every size and seed of ``dataset``."""
    if name == "eval":
        return [layout.rm_evaluate(dataset, size, seed, model) for size, seed in RM_CELLS]
    return [getattr(layout.rm_run(dataset, size, seed, model), name) for size, seed in RM_CELLS]


def rm_evaluation_files():
    return [f for d in RM_DATASETS for model in RM_MODELS for f in rm_runs(model, "eval", d)]


# ---------------------------------------------------------------- report and paper

TABLES = DATASETS + ["all"] + (["matched"] if MATCHED_METHODS else [])  # "matched": the compute-matched table
FIGURES = ["training_curves", "heldout_curves", "final_metrics", "tradeoff"]


# paper/main.tex is the one list of the generated files the paper reads (after showyourwork): every
# \input / \include / \includegraphics of a generated/ path, outside comments.
PAPER_TEX = "paper/main.tex"
GENERATED_READ = re.compile(r"\\(?:input|include|includegraphics)\s*(?:\[[^\]]*\])?\s*\{\s*(generated/[^}\s]+)\s*\}")


def paper_reads(tex=PAPER_TEX):
    """The generated/ paths ``tex`` reads, in order of appearance."""
    text = re.sub(r"(?<!\\)%.*", "", Path(tex).read_text())
    return list(dict.fromkeys(GENERATED_READ.findall(text)))


def get_paper_generated(wildcards):
    """Every generated file the paper reads: each one main.tex names and whatever else its rule writes
    into generated/ (tables.tex \\inputs the table_*.tex written beside it). A name no rule writes
    stops the run here, not in LaTeX."""
    folder = Path(layout.generated("."))
    files = []
    for name in paper_reads():
        path = layout.path("paper", name)
        producers = [r for r in workflow.rules if r.is_producer(path)]
        if not producers:
            raise WorkflowError(f"{PAPER_TEX} reads {name}, but no rule writes {path} "
                                f"(add one in workflow/rules/, or correct the name, extension included)")
        for rule in producers:
            written = [str(f) for f in rule.output] if not rule.has_wildcards() else [path]
            files += [f for f in written if f == path or folder in Path(f).parents]
    return list(dict.fromkeys(files))


# ---------------------------------------------------------------- targets


def final_outputs():
    return [layout.pdf]


# ---------------------------------------------------------------- online training (rules/online.smk)

ONLINE_DPO = "online_dpo"
ONLINE_DPO_ON = ONLINE_DPO in ONLINE_METHODS
ONLINE_RL = [m for m in ONLINE_METHODS if m != ONLINE_DPO]  # one train_online job per method and seed
OD = CFG.online.online_dpo
PROXY_OPTIM = CFG.online.proxy_optim(CFG.train)  # train's optimiser, the proxy's epochs and lr
OD_OPTIM = dataclasses.replace(CFG.train, eval_every=0)  # each online DPO iteration: train's epochs over its pairs


def policy_run(method, seed):
    """Where a judged method's policy is: its training folder; online DPO's last iteration."""
    return layout.online_dpo(seed, OD.iterations) if method == ONLINE_DPO else layout.train(method, seed)


def get_policy(wildcards):
    return policy_run(wildcards.method, wildcards.seed).model


def get_online_inputs(wildcards):
    """An online method's inputs: the SFT model (the start and π_ref), the proxy, the training prompts,
    and for RTO the seed's own DPO policy (π_dpo of its dense reward)."""
    inputs = {"model": get_sft_model(wildcards), "proxy": layout.proxy().model, "splits": split_files("train")}
    if wildcards.method == "rto":
        inputs["dpo"] = policy_run(CFG.online.rto.dpo_method, wildcards.seed).model
    return inputs


def get_online_dpo_previous(wildcards):
    """The policy iteration i starts from and samples with: the SFT model at i = 1, else iteration i - 1's."""
    i = int(wildcards.iter)
    return get_sft_model(wildcards) if i == 1 else layout.online_dpo(wildcards.seed, i - 1).model


def get_online_dpo_reference_model(wildcards):
    """π_ref of iteration i's loss: the SFT model, or (online_dpo.reference: previous) the policy it starts from."""
    return get_sft_model(wildcards) if OD.reference == "sft" else get_online_dpo_previous(wildcards)


def get_online_dpo_sampling(wildcards):
    """K samples of every training prompt, at online.* settings, with a stream of their own per seed and iteration."""
    online = CFG.online
    return {**section(CFG.generate), "n_prompts": CFG.data.n_train, "n_samples": OD.k,
            "max_new_tokens": online.max_new_tokens, "temperature": online.temperature, "top_p": online.top_p,
            "seed": 1000 * int(wildcards.seed) + int(wildcards.iter)}
