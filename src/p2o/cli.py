"""Command line: ``p2o <command> -c config.yaml [-c override.yaml] [options]``.

Commands, in pipeline order (each reads the config and writes files under ``--workdir``):

    demo-data   write small demo datasets in the raw hub schemas (offline)
    prepare     raw rows -> pairs -> train/eval splits          data/{dataset}/{train,eval}.jsonl
    init        base model + tokenizer as a local folder        base/
    sft         supervised fine-tuning: the reference model     sft/model/
    reference   reference log-probs, once per split             reference/{dataset}_{part}.pt
    train       preference training of one method and seed      train/{method}/seed{seed}/model/
    evaluate    held-out metrics of a trained model             evaluate/{method}/seed{seed}/{dataset}.json
    generate    samples of a model on held-out prompts          generate/{method}/seed{seed}/{dataset}.jsonl
    train-judge the trained gold judge (judge.name: trained)    gold_judge/{model/, heldout.json}
    judge       gold reward, win rate against SFT, KL           judge/{method}/seed{seed}/{dataset}.json
    demo        all of the above for the offline demo config

Every path has a default under ``--workdir`` and an option to override it, so that workflow
rules can name their inputs and outputs explicitly.
With ``seed_scope: pipeline`` the base, SFT and reference folders are the ``--seed``'s own
(``base/seed{seed}/`` and so on), and ``demo`` makes them for every seed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from p2o.stages import generation, jobs
from p2o.stages.layout import Layout
from p2o.config import Config, ConfigError, load_config
from p2o.config.sections import SFT_BASELINE
from p2o.training.loop import NonFiniteLossError

PARTS = ("train", "eval")


# --------------------------------------------------------------------------- commands


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def train_splits(layout: Layout, cfg: Config, part: str = "train") -> dict[str, str]:
    """dataset -> split file, in training order."""
    return {name: layout.split(name, part) for name in cfg.data.names}


def model_seed(args, cfg: Config) -> int | None:
    """Whose initial model, SFT model and reference log-probs a command reads or writes: the seed's own
    with ``seed_scope: pipeline``, else the shared ones (None)."""
    return args.seed if cfg.seeded_models else None


def reference_file(layout: Layout, ref_dir: str | None, dataset: str, part: str, seed: int | None = None) -> Path | str:
    return Path(ref_dir) / f"{dataset}_{part}.pt" if ref_dir else layout.reference(dataset, part, seed)


def cmd_demo_data(args, cfg: Config | None = None) -> None:
    from p2o.data import write_demo_data

    files = write_demo_data(args.out, n_prompts=args.n_prompts, seed=args.seed)
    print(f"demo data written: {', '.join(str(p) for p in files.values())}", file=sys.stderr)


def cmd_prepare(args, cfg: Config) -> None:
    from p2o.data import prepare_dataset

    layout = Layout(args.workdir)
    names = args.dataset or cfg.data.names
    if args.out and len(names) != 1:
        raise ConfigError("--out needs exactly one --dataset")
    for name in names:
        if name not in cfg.data.datasets:
            raise ConfigError(f"dataset {name!r} is not in config key 'data.datasets' ({sorted(cfg.data.datasets)})")
        prepare_dataset(name, cfg.data.datasets[name], cfg.data.n_train, cfg.data.n_eval, cfg.data.split_salt,
                        args.out or layout.data(name), n_gold=cfg.judge.n_pairs if cfg.judge.trained else 0)


def cmd_init(args, cfg: Config) -> None:
    layout = Layout(args.workdir)
    jobs.init_model(cfg.model, train_splits(layout, cfg), args.out or layout.base_of(model_seed(args, cfg)),
                    seed=args.seed)


def cmd_sft(args, cfg: Config) -> None:
    layout = Layout(args.workdir)
    seed = model_seed(args, cfg)
    jobs.sft(args.base or layout.base_of(seed), train_splits(layout, cfg), cfg.tokenize, cfg.sft, args.seed,
             args.out or layout.sft_of(seed).dir, args.device, config=cfg.to_dict(), lora=cfg.model.lora)


def cmd_reference(args, cfg: Config) -> None:
    layout = Layout(args.workdir)
    for target in args.split or [f"{n}_{p}" for n in cfg.data.names for p in PARTS]:
        name, _, part = target.rpartition("_")
        if part not in PARTS or name not in cfg.data.datasets:
            raise ConfigError(f"--split {target!r}: expected <dataset>_<train|eval> with a dataset from data.datasets")
        seed = model_seed(args, cfg)
        jobs.reference(args.model or layout.sft_of(seed).model, layout.split(name, part), name, cfg.tokenize,
                       cfg.evaluate.batch_size, reference_file(layout, args.out, name, part, seed), args.device,
                       autocast=cfg.train.autocast, inference_dtype=cfg.model.inference_dtype)


def cmd_train(args, cfg: Config) -> None:
    layout, seed = Layout(args.workdir), model_seed(args, cfg)
    eval_splits = {n: (layout.split(n, "eval"), reference_file(layout, args.reference, n, "eval", seed))
                   for n in cfg.data.names}
    jobs.train(args.model or layout.sft_of(seed).model, train_splits(layout, cfg),
               {n: reference_file(layout, args.reference, n, "train", seed) for n in cfg.data.names},
               cfg.method(args.method), cfg.train, cfg.tokenize, args.seed,
               args.out or layout.train(args.method, args.seed).dir, args.device, eval_splits, cfg.evaluate,
               config=cfg.to_dict(), inference_dtype=cfg.model.inference_dtype, lora=cfg.model.lora)


def cmd_evaluate(args, cfg: Config) -> None:
    layout = Layout(args.workdir)
    if args.policy is None and args.method is None:
        raise ConfigError("evaluate needs --method (with --seed) or --policy <model folder>")
    policy_dir = Path(args.policy or layout.train(args.method, args.seed).model)
    seed = model_seed(args, cfg)
    targets = {name: jobs.EvalTarget(
        layout.split(name, "eval"), reference_file(layout, args.reference, name, "eval", seed),
        Path(args.out) / f"{name}.json" if args.out else layout.evaluate(args.method or "policy", args.seed, name))
        for name in args.dataset or cfg.data.names}
    jobs.evaluate(policy_dir, args.model or layout.sft_of(seed).model, targets, cfg.tokenize, cfg.evaluate,
                  args.device, run={"method": args.method, "seed": args.seed}, config=cfg.to_dict(),
                  autocast=cfg.train.autocast, inference_dtype=cfg.model.inference_dtype)


def cmd_generate(args, cfg: Config) -> None:
    """Samples of a trained method (``--method``, ``--seed``), of the SFT model (``--method sft``) or of any
    saved model (``--policy``), with the SFT model's log-probs of them."""
    layout, seed = Layout(args.workdir), model_seed(args, cfg)
    if args.policy is None and args.method is None:
        raise ConfigError("generate needs --method (with --seed; sft: the SFT model) or --policy <model folder>")
    sft_dir = args.model or layout.sft_of(seed).model
    baseline = args.method == SFT_BASELINE
    policy_dir = args.policy or (sft_dir if baseline else layout.train(args.method, args.seed).model)
    out_dir = Path(args.out or (layout.generation(SFT_BASELINE, seed) if baseline
                                else layout.generation(args.method or "policy", args.seed)))
    targets = {name: (layout.split(name, "eval"), out_dir / f"{name}.jsonl") for name in args.dataset or cfg.data.names}
    generation.generate(policy_dir, sft_dir, targets, cfg.generate, cfg.tokenize, args.device,
                  run={"method": args.method or "policy", "seed": args.seed}, config=cfg.to_dict(),
                  autocast=cfg.train.autocast, inference_dtype=cfg.model.inference_dtype)


def cmd_judge(args, cfg: Config) -> None:
    """Gold reward, win rate against the SFT model's samples and KL of one model's samples (``p2o generate``)."""
    layout, seed = Layout(args.workdir), model_seed(args, cfg)
    if args.samples is None and args.method is None:
        raise ConfigError("judge needs --method (with --seed) or --samples <folder of p2o generate>")
    samples = Path(args.samples or layout.generation(args.method, args.seed))
    baseline = Path(args.baseline or layout.generation(SFT_BASELINE, seed))
    names = args.dataset or cfg.data.names
    out = {name: Path(args.out) / f"{name}.json" if args.out else layout.judge(args.method or "policy", args.seed, name)
           for name in names}
    generation.judge({name: samples / f"{name}.jsonl" for name in names}, {name: baseline / f"{name}.jsonl" for name in names},
               out, cfg.judge, args.device, run={"method": args.method or "policy", "seed": args.seed},
               config=cfg.to_dict(), judge_model=args.judge_model or layout.gold_judge().model, tokenize=cfg.tokenize)


def cmd_train_judge(args, cfg: Config) -> None:
    """The trained gold judge (judge.name: trained) on the prepared gold pools, scored on the held-out splits."""
    from p2o.stages.reward import train_scored_reward_model

    layout, names = Layout(args.workdir), cfg.data.names
    train_scored_reward_model(args.sft or layout.sft_of(model_seed(args, cfg)).model,
                     {name: layout.split(name, "gold") for name in names}, {name: layout.split(name, "eval") for name in names},
                     cfg.judge_optim, cfg.tokenize, cfg.judge.seed, layout.gold_judge().dir, layout.gold_judge_heldout(),
                     cfg.evaluate.batch_size, args.device, config=cfg.to_dict())


def cmd_demo(args, cfg: Config) -> None:
    """The offline demo: demo data, splits, tiny model, SFT, reference, then train + evaluate."""
    from p2o.data.demo import DEMO_FILES
    from p2o.data.sources import looks_local

    layout = Layout(args.workdir)
    missing = [Path(cfg.data.datasets[n].source) for n in cfg.data.names
               if looks_local(cfg.data.datasets[n].source) and not Path(cfg.data.datasets[n].source).exists()]
    demo_names = set(DEMO_FILES.values())
    if missing and {p.name for p in missing} <= demo_names and len({p.parent for p in missing}) == 1:
        cmd_demo_data(argparse.Namespace(out=missing[0].parent, n_prompts=args.n_prompts, seed=0))
    ns = dict(vars(args), dataset=None, out=None, base=None, model=None, policy=None, reference=None, split=None,
              seed=0)
    cmd_prepare(argparse.Namespace(**ns), cfg)
    for seed in cfg.seeds if cfg.seeded_models else [0]:
        for step in (cmd_init, cmd_sft, cmd_reference):
            step(argparse.Namespace(**{**ns, "seed": seed}), cfg)
    methods = args.methods or cfg.method_names
    for method in methods:
        for seed in cfg.seeds:
            run = argparse.Namespace(**{**ns, "method": method, "seed": seed})
            cmd_train(run, cfg)
            cmd_evaluate(run, cfg)
    print(summary_table(layout, cfg, methods))


def summary_table(layout: Layout, cfg: Config, methods: list[str]) -> str:
    from p2o.io import read_json

    lines = [f"{'method':<8} {'seed':>4} {'dataset':<8} {'accuracy':>9} {'margin':>9} {'KL/token':>9}"]
    for method in methods:
        for seed in cfg.seeds:
            for name in cfg.data.names:
                r = read_json(layout.evaluate(method, seed, name))
                lines.append(f"{method:<8} {seed:>4} {name:<8} {r['eval_rewards/accuracies']:>9.3f} "
                             f"{r['eval_rewards/margins']:>9.3f} {r['eval_kl/token_mean']:>9.4f}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="p2o", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    def command(name, fn, help, config=True):
        c = sub.add_parser(name, help=help, description=help)
        c.set_defaults(fn=fn, needs_config=config)
        if config:
            c.add_argument("-c", "--config", action="append", required=True,
                           help="YAML config; repeat to merge overrides (later files win)")
            c.add_argument("--workdir", default="runs", help="output folder (default: runs; the workflow uses results)")
            c.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
        return c

    c = command("demo-data", cmd_demo_data, "write demo datasets in the raw hub schemas", config=False)
    c.add_argument("--out", required=True)
    c.add_argument("--n-prompts", type=int, default=300)
    c.add_argument("--seed", type=int, default=0)

    c = command("prepare", cmd_prepare, "raw rows -> pairs -> deterministic train/eval splits")
    c.add_argument("--dataset", action="append", help="only this dataset (repeatable)")
    c.add_argument("--out", help="output folder (only with one --dataset)")

    c = command("init", cmd_init, "write the base model and tokenizer to a local folder")
    c.add_argument("--out")
    c.add_argument("--seed", type=int, default=0, help="initialisation seed of the tiny model")

    c = command("sft", cmd_sft, "supervised fine-tuning on the chosen responses (the reference model)")
    c.add_argument("--base", help="base model folder (default: <workdir>/base, or base/seed<seed> with "
                                  "seed_scope: pipeline)")
    c.add_argument("--out", help="output folder (default: <workdir>/sft, or sft/seed<seed>)")
    c.add_argument("--seed", type=int, default=0)

    c = command("reference", cmd_reference, "reference log-probs, once per split")
    c.add_argument("--model", help="reference model folder (default: <workdir>/sft/model)")
    c.add_argument("--split", action="append", help="<dataset>_<train|eval> (repeatable; default: all)")
    c.add_argument("--out", help="output folder (default: <workdir>/reference)")
    c.add_argument("--seed", type=int, default=0, help="with seed_scope: pipeline, the training seed whose SFT "
                                                      "model and reference folder to use")

    for name, fn, help in (("train", cmd_train, "preference training of one method and seed"),
                           ("evaluate", cmd_evaluate, "held-out metrics of a trained model")):
        c = command(name, fn, help)
        c.add_argument("--method", required=name == "train", help="a key of config 'methods'")
        c.add_argument("--seed", type=int, default=0)
        c.add_argument("--model", help="reference (SFT) model folder (default: <workdir>/sft/model)")
        c.add_argument("--reference", help="folder of reference log-probs (default: <workdir>/reference)")
        c.add_argument("--out", help="output folder")
        if name == "evaluate":
            c.add_argument("--policy", help="model folder to evaluate (default: the trained method's)")
            c.add_argument("--dataset", action="append", help="only this dataset (repeatable)")

    c = command("generate", cmd_generate, "samples of a model on held-out prompts, with the SFT model's log-probs")
    c.add_argument("--method", help="a key of config 'methods', or sft (the SFT model: the judge's baseline)")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--policy", help="model folder to sample from (default: the trained method's)")
    c.add_argument("--model", help="reference (SFT) model folder (default: <workdir>/sft/model)")
    c.add_argument("--dataset", action="append", help="only this dataset (repeatable)")
    c.add_argument("--out", help="output folder (default: <workdir>/generate/<method>/seed<seed>, the SFT model's "
                                 "<workdir>/generate/sft)")

    c = command("judge", cmd_judge, "gold reward, win rate against the SFT model and KL of a model's samples")
    c.add_argument("--method", help="a key of config 'methods' whose samples to judge")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--samples", help="folder of the samples (default: <workdir>/generate/<method>/seed<seed>)")
    c.add_argument("--baseline", help="folder of the SFT model's samples (default: <workdir>/generate/sft)")
    c.add_argument("--dataset", action="append", help="only this dataset (repeatable)")
    c.add_argument("--out", help="output folder (default: <workdir>/judge/<method>/seed<seed>)")
    c.add_argument("--judge-model", help="the trained judge's folder, judge.name: trained (default: "
                                         "<workdir>/gold_judge/model)")

    c = command("train-judge", cmd_train_judge, "the trained gold judge (judge.name: trained) on its own pool of pairs, "
                                                "with its held-out accuracy (p2o prepare writes the pool)")
    c.add_argument("--sft", help="the SFT model whose body it starts from (default: <workdir>/sft)")
    c.add_argument("--seed", type=int, default=0, help="with seed_scope: pipeline, whose SFT model")

    c = command("demo", cmd_demo, "run the whole offline demo: data, SFT, reference, train, evaluate")
    c.add_argument("--methods", nargs="*", help="methods to run (default: all configured)")
    c.add_argument("--n-prompts", type=int, default=300, help="demo prompts per dataset")
    return p


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        cfg = load_config(*args.config) if args.needs_config else None
        if args.needs_config and args.device is None:
            args.device = default_device()
        args.fn(args, cfg)
    except (ConfigError, FileNotFoundError, ValueError, NonFiniteLossError) as e:
        print(f"p2o {args.command}: error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
