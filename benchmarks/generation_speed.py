"""Generation speed: the batched, KV-cached path of ``p2o.model.generate`` against one prompt at a time.

    python benchmarks/generation_speed.py                      # the demo's tiny model, ~1 min on 2 cores
    python benchmarks/generation_speed.py --out benchmarks/results/generation_cpu.json

Both paths run the same function on the same prompts with the same seed; only ``batch_size`` differs
(``--batch-size`` rows against 1), so the samples agree token for token (checked and printed) and the
ratio measures batching alone: both use the KV cache. The model is the demo's tiny GPT-2
(``config/demo.yaml``: 2 layers, 4 heads, width 128, 4096-token BPE vocabulary, 128 positions),
randomly initialised, with its tokenizer trained on demo dialogues; prompts are demo hh-rlhf questions
(``p2o.data.demo_text``) of several lengths. An untrained model seldom emits EOS, so nearly every row
runs to ``--new-tokens``: what is timed is decoding, not early stops. tokens/s counts generated
tokens; each path is timed ``--repeats`` times after a warm-up and the best time is kept. On a busy
machine give ``--threads 1``: a one-row step is too small to share between threads, and two threads
that wait on each other while other processes hold the cores make one-at-a-time look far slower than
it is (on a 2-core machine under a load of 6: 0.7 s on 1 thread against 5.6 s on 2 for the same 8
prompts one at a time).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time
from pathlib import Path

import torch

from p2o.config import ModelConfig, TinyModelConfig
from p2o.data.demo_text import HH_QUESTIONS, HH_SENTENCES, HH_TOPICS, compose
from p2o.data.pairs import single_turn_prompt
from p2o.model.generate import SamplingParams, encode_prompts, generate
from p2o.model.loading import build_tiny_model, train_bpe_tokenizer

DEMO_TINY = TinyModelConfig(n_layer=2, n_head=4, n_embd=128, vocab_size=4096, n_positions=128)


def demo_prompts(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """``n`` one-turn demo prompts and 4·n demo responses (the tokenizer's training text)."""
    rng = random.Random(seed)
    topics = [rng.choice(HH_TOPICS) for _ in range(n)]
    prompts = [single_turn_prompt(rng.choice(HH_QUESTIONS).format(t=t)) for t in topics]
    responses = [" " + compose(rng, HH_SENTENCES, t, rng.randint(0, 3)) for t in topics for _ in range(4)]
    return prompts, responses


def timed(model, tokenizer, enc, params: SamplingParams, repeats: int):
    generate(model, tokenizer, enc, params)  # warm-up
    best, samples = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        samples = generate(model, tokenizer, enc, params)
        best = min(best, time.perf_counter() - start)
    return best, samples


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prompts", type=int, default=32)
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    p.add_argument("--out", help="write the results as JSON here")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    prompts, responses = demo_prompts(args.prompts)
    tokenizer = train_bpe_tokenizer(prompts + responses, DEMO_TINY.vocab_size)
    model = build_tiny_model(ModelConfig(tiny=DEMO_TINY), tokenizer, seed=0).eval()
    enc = encode_prompts(tokenizer, prompts, style="dataset")
    lengths = sorted(len(t) for t in enc.token_ids)
    print(f"{args.prompts} prompts of {lengths[0]}-{lengths[-1]} tokens, {args.new_tokens} new tokens each, "
          f"temperature 1, {torch.get_num_threads()} threads", flush=True)

    results = {}
    for name, batch in (("batched", args.batch_size), ("one_at_a_time", 1)):
        params = SamplingParams(max_new_tokens=args.new_tokens, temperature=1.0, seed=0, batch_size=batch)
        seconds, samples = timed(model, tokenizer, enc, params, args.repeats)
        n_tokens = sum(s.n_tokens for s in samples)
        results[name] = {"batch_size": batch, "seconds": seconds, "tokens": n_tokens,
                         "tokens_per_s": n_tokens / seconds, "token_ids": [s.token_ids for s in samples]}
        print(f"  {name:<14} batch {batch:>3}: {n_tokens} tokens in {seconds:.3f} s = "
              f"{n_tokens / seconds:8.0f} tokens/s", flush=True)
    same = results["batched"].pop("token_ids") == results["one_at_a_time"].pop("token_ids")
    ratio = results["batched"]["tokens_per_s"] / results["one_at_a_time"]["tokens_per_s"]
    print(f"batched / one at a time: {ratio:.1f}x tokens/s; samples identical: {same}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({
            "machine": {"platform": platform.platform(), "torch": torch.__version__, "threads": torch.get_num_threads()},
            "settings": vars(args), "results": results, "ratio": ratio, "samples_identical": same}, indent=2) + "\n")
        print(f"written to {args.out}")


if __name__ == "__main__":
    main()
