"""Speed and memory of p2o against TRL's DPOTrainer and the original implementation, side by side.

    python benchmarks/bench.py                 # tiny GPT-2 (4 x 256, 8k vocab) + GPT-2-size, ~10 min on 2 cores
    python benchmarks/bench.py --no-gpt2-size  # the tiny model only

Every configuration trains the same model (same initial weights and tokenizer) on the same real
Anthropic/hh-rlhf rows (``$P2O_SHARED_DATA`` or ``../shared/data``) with batch 8, max length 128,
β = 0.5, fp32, in its own process (so peak RSS is its own; every process imports the same modules):

    p2o:dpo, p2o:p2o           p2o's training loop (``p2o.training.preference.train_preference``), reference
                               log-probs precomputed once (their one-time cost is reported)
    trl:dpo, trl:dpo-precompute TRL's DPOTrainer, precompute_ref_log_probs off / on
    original:dpo, original:p2o benchmarks/original.py, the original's described algorithm

It prints a table and writes JSON (``--out``): s/step, pairs/s, real (non-pad) tokens/s, forward
passes per step, peak RSS, MFU = 6·N·tokens/s over this machine's measured fp32 matmul peak, and
the ratios p2o/TRL and p2o/original. For P²O a step is one optimizer step; an outer step (one
batch) is K = 3 of them.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

BATCH, MAX_LENGTH, MAX_PROMPT, BETA, LR, K = 8, 128, 64, 0.5, 1e-5, 3
SIZES = {
    "tiny": dict(n_layer=4, n_head=4, n_embd=256, vocab_size=8192, n_positions=256),
    "gpt2": dict(n_layer=12, n_head=12, n_embd=768, vocab_size=50257, n_positions=1024),
}
CONFIGS = ["p2o:dpo", "p2o:p2o", "trl:dpo", "trl:dpo-precompute", "original:dpo", "original:p2o"]
GPT2_CONFIGS = ["p2o:dpo", "trl:dpo", "original:dpo"]


# --------------------------------------------------------------------------- shared set-up


def matmul_peak_flops(seconds: float = 3.0) -> float:
    """This machine's fp32 matmul throughput (FLOP/s): the best of a few square sizes."""
    best = 0.0
    for n in (1024, 2048, 3072):
        a, b = torch.randn(n, n), torch.randn(n, n)
        for _ in range(2):
            a @ b
        reps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / 3:
            a @ b
            reps += 1
        best = max(best, 2 * n**3 * reps / (time.perf_counter() - start))
    return best


def prepare(workdir: Path, n_pairs: int) -> None:
    """Real hh-rlhf pairs, a BPE tokenizer trained on them and both models' initial weights."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from p2o.config import DatasetConfig
    from p2o.data import load_pairs
    from p2o.io import write_jsonl
    from p2o.model.loading import save_model, train_bpe_tokenizer

    shared = Path(os.environ.get("P2O_SHARED_DATA", REPO.parent / "shared" / "data"))
    source = shared / "hh-rlhf" / "helpful-base.test.jsonl.gz"
    if not source.exists():
        sys.exit(f"real hh-rlhf rows not found at {source}; set P2O_SHARED_DATA to the shared/data folder")
    pairs, _ = load_pairs("hh", DatasetConfig(format="hh-rlhf", source=str(source)))
    pairs = pairs.iloc[:n_pairs]
    write_jsonl(workdir / "pairs.jsonl", pairs.to_dict("records"))
    tok = train_bpe_tokenizer((pairs["prompt"] + pairs["chosen"]).tolist() + pairs["rejected"].tolist(), 8192)
    for size, shape in SIZES.items():
        torch.manual_seed(0)
        model = GPT2LMHeadModel(GPT2Config(**shape, bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id))
        save_model(model, tok, workdir / size)


def load(workdir: Path, size: str):
    from p2o.config import TokenizeConfig
    from p2o.data import read_split
    from p2o.model.loading import load_model, load_tokenizer
    from p2o.model.tokenize import tokenize_pairs

    tok, model = load_tokenizer(workdir / size), load_model(workdir / size)
    df = read_split(workdir / "pairs.jsonl")
    split = tokenize_pairs(tok, "hh", df["id"].tolist(), df["prompt"].tolist(), df["chosen"].tolist(),
                           df["rejected"].tolist(), TokenizeConfig(MAX_LENGTH, MAX_PROMPT))
    return tok, model, split, df


class ForwardCounter:
    """Counts decoder forwards of every model in the process (policy, reference, snapshot copies):
    a global module hook that fires on base models (GPT2Model), once per model forward."""

    def __init__(self):
        self.n = 0
        torch.nn.modules.module.register_module_forward_hook(self._hook)

    def _hook(self, module, *_):
        if getattr(module, "base_model", None) is module:
            self.n += 1


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --------------------------------------------------------------------------- the runners


def run_p2o(method: str, workdir: Path, size: str, warmup: int, steps: int) -> dict:
    from p2o.config import OptimConfig, TokenizeConfig
    from p2o.io import JsonlLog
    from p2o.losses import MethodSpec
    from p2o.model.reference import compute_reference_logps
    from p2o.training.preference import train_preference

    tok, policy, split, _ = load(workdir, size)
    inner = K if method == "p2o" else 1
    n_batches = -(-(warmup + steps) // inner)
    split = _subset(split, n_batches * BATCH)
    reference_model = copy.deepcopy(policy)
    counter = ForwardCounter()
    start = time.perf_counter()
    reference = compute_reference_logps(reference_model, split, TokenizeConfig(MAX_LENGTH, MAX_PROMPT),
                                        tok.pad_token_id, batch_size=16)
    reference_s = time.perf_counter() - start
    reference_forwards, counter.n = counter.n, 0
    hparams = {"beta": BETA} if method == "dpo" else {"beta": BETA, "eps_clip": 0.15, "kl_coef": 0.08,
                                                      "ratio": "pair", "kl_estimator": "k3"}
    spec = MethodSpec(method, method, hparams, inner)
    log_path = workdir / f"log-{method}-{size}.jsonl"
    optim = OptimConfig(lr=LR, batch_size=BATCH, epochs=1, warmup_ratio=0.0)
    with JsonlLog(log_path) as log:
        train_preference(policy, [split], {"hh": reference}, spec, optim, 0, tok.pad_token_id, log)
    records = [json.loads(line) for line in open(log_path)]
    elapsed = [0.0] + [r["elapsed_s"] for r in records]
    step_s = [elapsed[i + 1] - elapsed[i] for i in range(len(records))]
    tokens = [r["tokens_per_s"] * s for r, s in zip(records, step_s)]
    timed = slice(len(records) - steps, len(records))
    return {"steps": steps, "seconds": sum(step_s[timed]), "tokens": sum(tokens[timed]),
            "pairs": BATCH * steps / inner, "forwards": counter.n / len(records),
            "reference_once_s": reference_s, "reference_forwards_once": reference_forwards,
            "reference_pairs": len(split)}


def run_original(method: str, workdir: Path, size: str, warmup: int, steps: int) -> dict:
    from original import OriginalTrainer

    from p2o.model.tokenize import batch_indices

    tok, policy, split, _ = load(workdir, size)
    reference = copy.deepcopy(policy).eval()
    policy.eval()  # dropout off, as in p2o
    opt = torch.optim.AdamW(policy.parameters(), lr=LR)
    trainer = OriginalTrainer(policy, reference, opt, tok.pad_token_id, MAX_LENGTH, BETA, inner_steps=K)
    counter = ForwardCounter()
    batches = batch_indices(split, BATCH, torch.Generator().manual_seed(0), group_by_length=False)
    inner = K if method == "p2o" else 1
    outer_warmup, outer_steps = -(-warmup // inner), -(-steps // inner)
    seconds = tokens = 0.0
    for i, index in enumerate(batches[: outer_warmup + outer_steps]):
        if i == outer_warmup:
            counter.n = 0
        start = time.perf_counter()
        trainer.p2o_outer_step(split, index) if method == "p2o" else trainer.dpo_step(split, index)
        if i >= outer_warmup:
            seconds += time.perf_counter() - start
            tokens += inner * sum(split.n_tokens(j) for j in index)
    return {"steps": outer_steps * inner, "seconds": seconds, "tokens": tokens, "pairs": BATCH * outer_steps,
            "forwards": counter.n / (outer_steps * inner)}


def run_trl(precompute: bool, workdir: Path, size: str, warmup: int, steps: int) -> dict:
    import datasets
    from transformers import TrainerCallback
    from trl import DPOConfig, DPOTrainer

    tok, policy, _, df = load(workdir, size)
    ds = datasets.Dataset.from_dict({c: df[c].tolist()[: (warmup + steps) * BATCH] for c in ("prompt", "chosen",
                                                                                          "rejected")})
    times, before_first_step = [], []

    class Timer(TrainerCallback):
        def on_step_begin(self, *a, **k):
            if not before_first_step:  # forwards so far: TRL's reference precompute pass, if any
                before_first_step.append(counter.n)
            self.t0 = time.perf_counter()

        def on_step_end(self, *a, **k):
            times.append(time.perf_counter() - self.t0)

    with tempfile.TemporaryDirectory() as out:
        args = DPOConfig(output_dir=out, per_device_train_batch_size=BATCH, max_length=MAX_LENGTH, beta=BETA,
                         learning_rate=LR, max_steps=warmup + steps, bf16=False, gradient_checkpointing=False,
                         report_to="none", precompute_ref_log_probs=precompute, logging_steps=10**6,
                         save_strategy="no", dataloader_num_workers=0, seed=0, use_cpu=True, disable_tqdm=True)
        trainer = DPOTrainer(model=policy, ref_model=copy.deepcopy(policy), args=args, train_dataset=ds,
                             processing_class=tok, callbacks=[Timer()])
        counter = ForwardCounter()
        start = time.perf_counter()
        trainer.train()
        total = time.perf_counter() - start
    tokens_all = trainer._total_train_tokens  # real (attention-mask) tokens of the policy forwards
    timed = times[warmup:]
    return {"steps": len(timed), "seconds": sum(timed), "tokens": tokens_all * len(timed) / len(times),
            "pairs": BATCH * len(timed), "forwards": (counter.n - before_first_step[0]) / len(times),
            "reference_forwards_once": before_first_step[0], "setup_and_precompute_s": total - sum(times)}


def child(name: str, workdir: Path, size: str, warmup: int, steps: int, peak: float) -> dict:
    import trl  # noqa: F401  every process imports the same libraries, so RSS baselines agree

    torch.manual_seed(0)
    impl, method = name.split(":")
    if impl == "p2o":
        r = run_p2o(method, workdir, size, warmup, steps)
    elif impl == "trl":
        r = run_trl(method == "dpo-precompute", workdir, size, warmup, steps)
    else:
        r = run_original(method, workdir, size, warmup, steps)
    n_params = sum(p.numel() for p in load(workdir, size)[1].parameters())
    r.update(config=name, size=size, params=n_params, s_per_step=r["seconds"] / r["steps"],
             pairs_per_s=r["pairs"] / r["seconds"], tokens_per_s=r["tokens"] / r["seconds"],
             peak_rss_mb=rss_mb())
    r["mfu"] = 6 * n_params * r["tokens_per_s"] / peak
    return r


def _subset(split, n):
    from p2o.model.tokenize import TokenizedSplit

    return TokenizedSplit(split.dataset, split.ids[:n], split.prompt[:n], split.chosen[:n], split.rejected[:n],
                          split.max_length)


# --------------------------------------------------------------------------- driver


def table(results: list[dict]) -> str:
    head = f"{'size':<5} {'config':<20} {'s/step':>8} {'pairs/s':>8} {'tok/s':>8} {'fwd/step':>8} {'RSS MB':>7} {'MFU':>6}"
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(f"{r['size']:<5} {r['config']:<20} {r['s_per_step']:>8.3f} {r['pairs_per_s']:>8.2f} "
                     f"{r['tokens_per_s']:>8.0f} {r['forwards']:>8.1f} {r['peak_rss_mb']:>7.0f} {r['mfu']:>6.3f}")
    return "\n".join(lines)


def ratios(results: list[dict]) -> dict:
    by = {(r["size"], r["config"]): r for r in results}
    out = {}
    for size in SIZES:
        def get(c):
            return by.get((size, c))
        pairs = {
            "dpo_pairs_per_s_p2o_over_trl": ("p2o:dpo", "trl:dpo", "pairs_per_s"),
            "dpo_pairs_per_s_p2o_over_trl_precompute": ("p2o:dpo", "trl:dpo-precompute", "pairs_per_s"),
            "dpo_pairs_per_s_p2o_over_original": ("p2o:dpo", "original:dpo", "pairs_per_s"),
            "p2o_pairs_per_s_p2o_over_original": ("p2o:p2o", "original:p2o", "pairs_per_s"),
            "dpo_peak_rss_p2o_over_trl": ("p2o:dpo", "trl:dpo", "peak_rss_mb"),
        }
        for key, (a, b, field) in pairs.items():
            if get(a) and get(b):
                out[f"{size}/{key}"] = get(a)[field] / get(b)[field]
        if get("p2o:p2o") and get("p2o:dpo"):  # one outer step (K optimizer steps) against K DPO steps
            out[f"{size}/p2o_outer_step_over_K_dpo_steps"] = (K * get("p2o:p2o")["s_per_step"]) / (
                K * get("p2o:dpo")["s_per_step"])
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="benchmarks/results/cpu.json")
    p.add_argument("--steps", type=int, default=15, help="timed optimizer steps per configuration (tiny)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--gpt2-steps", type=int, default=3)
    p.add_argument("--no-gpt2-size", action="store_true")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--workdir", help=argparse.SUPPRESS)
    p.add_argument("--size", help=argparse.SUPPRESS)
    p.add_argument("--peak", type=float, help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.child:
        r = child(args.child, Path(args.workdir), args.size, args.warmup, args.steps, args.peak)
        print("RESULT " + json.dumps(r))
        return

    torch.set_num_threads(torch.get_num_threads())
    peak = matmul_peak_flops()
    print(f"fp32 matmul peak: {peak / 1e9:.1f} GFLOP/s on {torch.get_num_threads()} threads", flush=True)
    results = []
    with tempfile.TemporaryDirectory() as work:
        prepare(Path(work), n_pairs=400)
        plan = [("tiny", c, args.warmup, args.steps) for c in CONFIGS]
        if not args.no_gpt2_size:
            plan += [("gpt2", c, 1, args.gpt2_steps) for c in GPT2_CONFIGS]
        for size, config, warmup, steps in plan:
            start = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, __file__, "--child", config, "--workdir", work, "--size", size, "--warmup",
                 str(warmup), "--steps", str(steps), "--peak", str(peak)],
                capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
            line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
            if proc.returncode != 0 or line is None:
                sys.exit(f"{size} {config} failed:\n{proc.stderr[-4000:]}")
            results.append(json.loads(line[len("RESULT "):]))
            print(f"  {size:<5} {config:<20} done in {time.perf_counter() - start:.0f} s", flush=True)
    summary = {"machine": {"threads": torch.get_num_threads(), "matmul_peak_flops": peak,
                           "torch": torch.__version__},
               "settings": {"batch_pairs": BATCH, "max_length": MAX_LENGTH, "max_prompt_length": MAX_PROMPT,
                            "beta": BETA, "dtype": "float32", "inner_steps": K},
               "results": results, "ratios": ratios(results)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
    print(table(results))
    for key, value in summary["ratios"].items():
        print(f"{key:<55} {value:6.2f}")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
