"""Online DPO's label stage: of each prompt's K samples, the proxy reward model's best and worst make a pair,
written as a prepared split whose manifest matches its bytes; prompts without a preference are dropped."""

from __future__ import annotations

import hashlib
import json

import pytest

from p2o.config import GenerateConfig, ModelConfig, TinyModelConfig, TokenizeConfig
from p2o.io import read_json, read_jsonl
from p2o.model.loading import build_tiny_model, save_model, train_bpe_tokenizer
from p2o.stages import generation
from p2o.stages.online_dpo import label_pairs
from p2o.training.reward_model import RewardModel, RewardModelJudge
from tiny_models import CHOSEN, PROMPTS, REJECTED

pytestmark = pytest.mark.filterwarnings("ignore")
TOK = TokenizeConfig(max_length=40, max_prompt_length=24)


@pytest.fixture(scope="module")
def rollouts(tmp_path_factory):
    """A tiny SFT model's 3 samples of each of 4 training prompts, and a proxy reward model on its body."""
    root = tmp_path_factory.mktemp("odpo")
    tok = train_bpe_tokenizer(PROMPTS + CHOSEN + REJECTED, vocab_size=400)
    sft = build_tiny_model(ModelConfig(tiny=TinyModelConfig(n_layer=1, n_head=2, n_embd=32, n_positions=40)), tok, 0)
    save_model(sft, tok, root / "sft")
    RewardModel(sft.transformer, seed=3).save(root / "proxy", tok)
    rows = [{"id": f"hh{i}", "dataset": "hh", "prompt": p, "chosen": c, "rejected": r}
            for i, (p, c, r) in enumerate(zip(PROMPTS, CHOSEN, REJECTED))]
    split = root / "train.jsonl"
    split.write_text("".join(json.dumps(r) + "\n" for r in rows))
    gen = GenerateConfig(n_prompts=4, n_samples=3, max_new_tokens=6, seed=11, batch_size=8)
    generation.generate(root / "sft", root / "sft", {"hh": (split, root / "samples" / "hh.jsonl")}, gen, TOK)
    return root


def test_label_picks_the_proxys_best_and_worst_of_each_prompt(rollouts):
    root = rollouts
    out = {"hh": root / "pairs" / "hh" / "train.jsonl"}
    record = label_pairs({"hh": root / "samples" / "hh.jsonl"}, root / "proxy", TOK, out)["hh"]
    samples = read_jsonl(root / "samples" / "hh.jsonl")
    scores = RewardModelJudge(root / "proxy", TOK).score([s["prompt"] for s in samples], [s["text"] for s in samples])
    by_prompt = {}
    for s, score in zip(samples, scores):
        by_prompt.setdefault(s["prompt"], []).append((score, s["text"]))
    pairs = read_jsonl(out["hh"])
    assert record["prompts"] == 4 and record["k"] == 3 and record["pairs"] == len(pairs) >= 1
    assert record["pairs"] + record["dropped_no_preference"] == 4
    for pair in pairs:
        scored = by_prompt[pair["prompt"]]
        assert pair["chosen"] == max(scored, key=lambda x: x[0])[1]
        assert pair["rejected"] == min(scored, key=lambda x: x[0])[1]
        assert pair["chosen"] != pair["rejected"] and pair["dataset"] == "hh" and pair["id"].startswith("hh-")
    manifest = read_json(root / "pairs" / "hh" / "manifest.json")
    assert manifest["splits"]["train"] == {"n": len(pairs), "sha256": hashlib.sha256(out["hh"].read_bytes()).hexdigest()}
    assert read_json(root / "pairs" / "hh" / "labels.json") == record
    assert record["chosen_reward"] >= record["rejected_reward"]
    work = record["compute"]  # the proxy reads every sample, the reference both rows of every pair
    assert work["proxy_tokens"] == sum(s["prompt_tokens"] + s["n_tokens"] for s in samples)
    assert work["reference_head_tokens"] > 0 and work["flops"] > 2 * work["proxy_tokens"]


def test_label_drops_prompts_whose_samples_tie_and_refuses_broken_groups(rollouts, tmp_path):
    root = rollouts
    samples = read_jsonl(root / "samples" / "hh.jsonl")
    first = samples[0]["prompt_id"]
    tied = [{**s, "text": "same text"} if s["prompt_id"] == first else s for s in samples]  # one prompt: 3 equal samples
    path = tmp_path / "hh.jsonl"
    path.write_text("".join(json.dumps(s) + "\n" for s in tied))
    record = label_pairs({"hh": path}, root / "proxy", TOK, {"hh": tmp_path / "pairs" / "train.jsonl"})["hh"]
    assert record["dropped_no_preference"] >= 1
    assert all(p["prompt"] != samples[0]["prompt"] for p in read_jsonl(tmp_path / "pairs" / "train.jsonl"))
    path.write_text("".join(json.dumps(s) + "\n" for s in samples[:-1]))  # the last prompt lost a sample
    with pytest.raises(ValueError, match="consecutive samples per prompt"):
        label_pairs({"hh": path}, root / "proxy", TOK, {"hh": tmp_path / "x" / "train.jsonl"})
