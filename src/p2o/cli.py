"""Command line: ``p2o <command> -c config.yaml [-c override.yaml] [options]``.

Commands, in pipeline order (each reads the config and writes files under ``--workdir``):

    demo-data   write small demo datasets in the raw hub schemas (offline)
    prepare     raw rows -> pairs -> train/eval splits          data/{dataset}/{train,eval}.jsonl
    init        base model + tokenizer as a local folder        base/
    sft         supervised fine-tuning: the reference model     sft/model/
    reference   reference log-probs, once per split             reference/{dataset}_{part}.pt
    train       preference training of one method and seed      train/{method}/seed{seed}/model/
    evaluate    held-out metrics of a trained model             evaluate/{method}/seed{seed}/{dataset}.json
    demo        all of the above for the offline demo config

Every path has a default under ``--workdir`` and an option to override it, so that workflow
rules can name their inputs and outputs explicitly.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict
from pathlib import Path

from p2o.config import Config, ConfigError, load_config

PARTS = ("train", "eval")


class Paths:
    """The results layout under one work folder."""

    def __init__(self, workdir: str | Path):
        self.root = Path(workdir)

    def data(self, dataset: str) -> Path:
        return self.root / "data" / dataset

    def split(self, dataset: str, part: str) -> Path:
        return self.data(dataset) / f"{part}.jsonl"

    @property
    def base(self) -> Path:
        return self.root / "base"

    @property
    def sft(self) -> Path:
        return self.root / "sft"

    def reference(self, dataset: str, part: str) -> Path:
        return self.root / "reference" / f"{dataset}_{part}.pt"

    def train(self, method: str, seed: int) -> Path:
        return self.root / "train" / method / f"seed{seed}"

    def evaluate(self, method: str, seed: int, dataset: str) -> Path:
        return self.root / "evaluate" / method / f"seed{seed}" / f"{dataset}.json"


# --------------------------------------------------------------------------- helpers


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_split(cfg: Config, tokenizer, data_dir: Path, dataset: str, part: str):
    from p2o.data import read_split
    from p2o.tokenize import tokenize_pairs

    path = data_dir / f"{part}.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found; run `p2o prepare` first")
    df = read_split(path)
    return tokenize_pairs(tokenizer, dataset, df["id"].tolist(), df["prompt"].tolist(), df["chosen"].tolist(),
                          df["rejected"].tolist(), cfg.tokenize)


def split_hashes(paths: Paths, datasets: list[str]) -> dict:
    from p2o.io import read_json

    out = {}
    for name in datasets:
        manifest = paths.data(name) / "manifest.json"
        if manifest.exists():
            out[name] = {part: v["sha256"] for part, v in read_json(manifest)["splits"].items()}
    return out


def pad_id_of(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


# --------------------------------------------------------------------------- commands


def cmd_demo_data(args, cfg: Config | None = None) -> None:
    from p2o.data import write_demo_data

    files = write_demo_data(args.out, n_prompts=args.n_prompts, seed=args.seed)
    print(f"demo data written: {', '.join(str(p) for p in files.values())}", file=sys.stderr)


def cmd_prepare(args, cfg: Config) -> None:
    from p2o.data import prepare_dataset

    paths = Paths(args.workdir)
    for name in args.dataset or cfg.data.names:
        if name not in cfg.data.datasets:
            raise ConfigError(f"dataset {name!r} is not in config key 'data.datasets' ({sorted(cfg.data.datasets)})")
        out = Path(args.out) if args.out else paths.data(name)
        prepare_dataset(name, cfg.data.datasets[name], cfg.data.n_train, cfg.data.n_eval, cfg.data.split_salt, out)


def cmd_init(args, cfg: Config) -> None:
    from p2o.data import read_split
    from p2o.models import init_base_model

    paths = Paths(args.workdir)
    texts = []
    if cfg.model.name_or_path == "tiny":  # the tokenizer is trained on the training text only
        for name in cfg.data.names:
            df = read_split(paths.split(name, "train"))
            texts += (df["prompt"] + df["chosen"]).tolist() + df["rejected"].tolist()
    out = init_base_model(cfg.model, args.out or paths.base, texts, seed=args.seed)
    print(f"base model written to {out}", file=sys.stderr)


def cmd_sft(args, cfg: Config) -> None:
    from p2o.io import JsonlLog, write_json
    from p2o.models import load_model, load_tokenizer, save_model
    from p2o.train import sft

    paths = Paths(args.workdir)
    base, out = Path(args.base or paths.base), Path(args.out or paths.sft)
    tokenizer, model = load_tokenizer(base), load_model(base, args.device)
    splits = [load_split(cfg, tokenizer, paths.data(n), n, "train") for n in cfg.data.names]
    start = time.time()
    with JsonlLog(out / "log.jsonl") as log:
        result = sft(model, splits, cfg.sft, args.seed, pad_id_of(tokenizer), log, args.device)
    save_model(model, tokenizer, out / "model")
    write_json(out / "summary.json", {"config_hash": cfg.hash(), "seed": args.seed, "wall_s": time.time() - start,
                                      "sft": asdict(cfg.sft), **result})


def cmd_reference(args, cfg: Config) -> None:
    from p2o.models import load_model, load_tokenizer
    from p2o.reference import compute_reference_logps

    paths = Paths(args.workdir)
    model_dir = Path(args.model or paths.sft / "model")
    tokenizer, model = load_tokenizer(model_dir), load_model(model_dir, args.device)
    targets = args.split or [f"{n}_{p}" for n in cfg.data.names for p in PARTS]
    for target in targets:
        name, _, part = target.rpartition("_")
        if part not in PARTS or name not in cfg.data.datasets:
            raise ConfigError(f"--split {target!r}: expected <dataset>_<train|eval> with a dataset from data.datasets")
        split = load_split(cfg, tokenizer, paths.data(name), name, part)
        ref = compute_reference_logps(model, split, cfg.tokenize, pad_id_of(tokenizer), cfg.evaluate.batch_size,
                                      args.device)
        out = Path(args.out) / f"{target}.pt" if args.out else paths.reference(name, part)
        ref.save(out)
        print(f"reference log-probs of {len(split)} pairs -> {out}", file=sys.stderr)


def _references(cfg: Config, paths: Paths, ref_dir: str | None, splits, part: str):
    from p2o.reference import ReferenceLogps

    out = {}
    for split in splits:
        path = Path(ref_dir) / f"{split.dataset}_{part}.pt" if ref_dir else paths.reference(split.dataset, part)
        out[split.dataset] = ReferenceLogps.load(path, split, cfg.tokenize)
    return out


def cmd_train(args, cfg: Config) -> None:
    from p2o.evaluate import evaluate_split
    from p2o.io import JsonlLog, write_json
    from p2o.models import load_model, load_tokenizer, save_model
    from p2o.train import train_preference

    paths = Paths(args.workdir)
    method = cfg.method(args.method)
    ref_model_dir = Path(args.model or paths.sft / "model")
    out = Path(args.out or paths.train(args.method, args.seed))
    tokenizer, policy = load_tokenizer(ref_model_dir), load_model(ref_model_dir, args.device)
    pad_id = pad_id_of(tokenizer)
    splits = [load_split(cfg, tokenizer, paths.data(n), n, "train") for n in cfg.data.names]
    references = _references(cfg, paths, args.reference, splits, "train")

    evaluator = None
    if cfg.train.eval_every > 0:  # held-out curves need the reference model for the exact KL
        reference_model = load_model(ref_model_dir, args.device)
        eval_splits = [load_split(cfg, tokenizer, paths.data(n), n, "eval") for n in cfg.data.names]
        eval_refs = _references(cfg, paths, args.reference, eval_splits, "eval")

        def evaluator(model):
            return {s.dataset: evaluate_split(model, reference_model, s, eval_refs[s.dataset], cfg.evaluate.beta,
                                              pad_id, cfg.evaluate.batch_size, args.device, progress=False)
                    for s in eval_splits}

    start = time.time()
    with JsonlLog(out / "log.jsonl") as log:
        result = train_preference(policy, splits, references, method, cfg.train, args.seed, pad_id, log,
                                  args.device, evaluator)
    save_model(policy, tokenizer, out / "model")
    write_json(out / "summary.json", {
        "method": method.name, "loss": method.loss, "hparams": method.hparams, "inner_steps": method.inner_steps,
        "seed": args.seed, "config_hash": cfg.hash(), "wall_s": time.time() - start,
        "split_sha256": split_hashes(paths, cfg.data.names), "final": result,
    })


def cmd_evaluate(args, cfg: Config) -> None:
    from p2o.evaluate import evaluate_split
    from p2o.io import write_json
    from p2o.models import load_model, load_tokenizer

    paths = Paths(args.workdir)
    if args.policy is None and args.method is None:
        raise ConfigError("evaluate needs --method (with --seed) or --policy <model folder>")
    policy_dir = Path(args.policy or paths.train(args.method, args.seed) / "model")
    ref_model_dir = Path(args.model or paths.sft / "model")
    tokenizer = load_tokenizer(ref_model_dir)
    policy, reference_model = load_model(policy_dir, args.device), load_model(ref_model_dir, args.device)
    for name in args.dataset or cfg.data.names:
        split = load_split(cfg, tokenizer, paths.data(name), name, "eval")
        (reference,) = _references(cfg, paths, args.reference, [split], "eval").values()
        metrics = evaluate_split(policy, reference_model, split, reference, cfg.evaluate.beta, pad_id_of(tokenizer),
                                 cfg.evaluate.batch_size, args.device)
        record = {"method": args.method, "seed": args.seed, "dataset": name, "policy": str(policy_dir),
                  "config_hash": cfg.hash(), "split_sha256": split_hashes(paths, [name]).get(name), **metrics}
        out = Path(args.out) / f"{name}.json" if args.out else paths.evaluate(args.method or "policy", args.seed, name)
        write_json(out, record)
        print(f"{name}: accuracy {metrics['eval_rewards/accuracies']:.3f}  margin "
              f"{metrics['eval_rewards/margins']:.3f}  KL/token {metrics['eval_kl/token_mean']:.4f}  -> {out}",
              file=sys.stderr)


def cmd_demo(args, cfg: Config) -> None:
    """The offline demo: demo data, splits, tiny model, SFT, reference, then train + evaluate."""
    from p2o.data.demo import DEMO_FILES
    from p2o.data.sources import looks_local

    paths = Paths(args.workdir)
    missing = [Path(cfg.data.datasets[n].source) for n in cfg.data.names
               if looks_local(cfg.data.datasets[n].source) and not Path(cfg.data.datasets[n].source).exists()]
    demo_names = set(DEMO_FILES.values())
    if missing and {p.name for p in missing} <= demo_names and len({p.parent for p in missing}) == 1:
        cmd_demo_data(argparse.Namespace(out=missing[0].parent, n_prompts=args.n_prompts, seed=0))
    ns = dict(vars(args), dataset=None, out=None, base=None, model=None, policy=None, reference=None, split=None,
              seed=0)
    for step in (cmd_prepare, cmd_init, cmd_sft, cmd_reference):
        step(argparse.Namespace(**ns), cfg)
    methods = args.methods or list(cfg.methods)
    for method in methods:
        for seed in cfg.seeds:
            run = argparse.Namespace(**{**ns, "method": method, "seed": seed})
            cmd_train(run, cfg)
            cmd_evaluate(run, cfg)
    print(summary_table(paths, cfg, methods))


def summary_table(paths: Paths, cfg: Config, methods: list[str]) -> str:
    from p2o.io import read_json

    lines = [f"{'method':<8} {'seed':>4} {'dataset':<8} {'accuracy':>9} {'margin':>9} {'KL/token':>9}"]
    for method in methods:
        for seed in cfg.seeds:
            for name in cfg.data.names:
                r = read_json(paths.evaluate(method, seed, name))
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
            c.add_argument("--workdir", default="results", help="results folder (default: results)")
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
    c.add_argument("--base", help="base model folder (default: <workdir>/base)")
    c.add_argument("--out", help="output folder (default: <workdir>/sft)")
    c.add_argument("--seed", type=int, default=0)

    c = command("reference", cmd_reference, "reference log-probs, once per split")
    c.add_argument("--model", help="reference model folder (default: <workdir>/sft/model)")
    c.add_argument("--split", action="append", help="<dataset>_<train|eval> (repeatable; default: all)")
    c.add_argument("--out", help="output folder (default: <workdir>/reference)")

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
    except (ConfigError, FileNotFoundError, ValueError) as e:
        print(f"p2o {args.command}: error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
