"""The generate and judge stages on tiny saved models: samples, reference log-probs, win rates, KL."""

from __future__ import annotations

import json
import math

import pytest
import torch

from p2o.config import GenerateConfig, JudgeConfig, TokenizeConfig
from p2o.io import read_json, read_jsonl
from p2o.model.loading import build_tiny_model, save_model, train_bpe_tokenizer
from p2o.stages import generation
from tiny_models import CHOSEN, PROMPTS, REJECTED

pytestmark = pytest.mark.filterwarnings("ignore")
GEN = GenerateConfig(n_prompts=3, n_samples=2, max_new_tokens=6, seed=1, batch_size=4)
TOK = TokenizeConfig(max_length=64, max_prompt_length=32)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """An SFT model and a perturbed policy saved as folders, and a held-out split of 5 pairs (4 prompts)."""
    from p2o.config import ModelConfig, TinyModelConfig

    root = tmp_path_factory.mktemp("gen")
    tok = train_bpe_tokenizer(PROMPTS + CHOSEN + REJECTED, vocab_size=400)
    cfg = ModelConfig(tiny=TinyModelConfig(n_layer=1, n_head=2, n_embd=32, n_positions=40))
    sft = build_tiny_model(cfg, tok, seed=0)
    save_model(sft, tok, root / "sft")
    policy = build_tiny_model(cfg, tok, seed=0)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.05 * torch.randn_like(p))
    save_model(policy, tok, root / "policy")
    rows = [{"id": f"hh{i}", "dataset": "hh", "prompt": p, "chosen": c, "rejected": r}
            for i, (p, c, r) in enumerate(zip(PROMPTS, CHOSEN, REJECTED))]
    rows.insert(1, {**rows[0], "id": "hh9", "chosen": " Lyon."})  # a second pair of the first prompt
    split = root / "eval.jsonl"
    split.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root, split


def test_generate_writes_samples_with_reference_logprobs_and_settings(saved):
    root, split = saved
    meta = generation.generate(root / "policy", root / "sft", {"hh": (split, root / "out" / "hh.jsonl")}, GEN, TOK,
                         run={"method": "dpo", "seed": 0})
    rows = read_jsonl(root / "out" / "hh.jsonl")
    # the first 3 distinct prompts, each named by its first pair; 2 samples each, in order
    assert [(r["prompt_id"], r["sample"]) for r in rows] == [(p, s) for p in ("hh0", "hh1", "hh2") for s in (0, 1)]
    assert rows[0]["prompt"] == PROMPTS[0] and rows[0]["method"] == "dpo" and rows[0]["dataset"] == "hh"
    for r in rows:
        assert 1 <= r["n_tokens"] <= 6 and r["eos"] != r["truncated"]
        assert math.isfinite(r["logprob"]) and math.isfinite(r["ref_logprob"]) and r["logprob"] < 0
        assert r["prompt_tokens"] <= min(TOK.max_prompt_length, 40 - GEN.max_new_tokens)
    assert any(abs(r["logprob"] - r["ref_logprob"]) > 1e-4 for r in rows)  # two different models
    written = read_json(root / "out" / "generation.json")
    assert written["sampling"]["temperature"] == 1.0 and written["prompt_style"] == "dataset"
    assert written["datasets"]["hh"]["n_prompts"] == 3 and written["max_prompt_tokens"] == 32
    work = written["compute"]  # sampling and the reference pass: each token once through the body, twice in all
    assert work["generated_tokens"] == sum(r["n_tokens"] for r in rows) and work["forward_passes"] == 2
    assert work["forward_tokens"] == 2 * sum(r["prompt_tokens"] + r["n_tokens"] for r in rows) and work["flops"] > 0
    assert meta["provenance"]["device"] == "cpu"
    # the same call again: the same samples, bit for bit
    generation.generate(root / "policy", root / "sft", {"hh": (split, root / "again" / "hh.jsonl")}, GEN, TOK,
                  run={"method": "dpo", "seed": 0})
    assert read_jsonl(root / "again" / "hh.jsonl") == rows


def test_sft_samples_have_equal_logprobs_and_the_judge_scores_against_them(saved):
    root, split = saved
    generation.generate(root / "sft", root / "sft", {"hh": (split, root / "base" / "hh.jsonl")}, GEN, TOK,
                  run={"method": "sft", "seed": None})
    base = read_jsonl(root / "base" / "hh.jsonl")
    assert all(abs(r["logprob"] - r["ref_logprob"]) < 1e-3 for r in base)  # π = π_ref: KL ≈ 0
    generation.generate(root / "policy", root / "sft", {"hh": (split, root / "pol" / "hh.jsonl")}, GEN, TOK,
                  run={"method": "dpo", "seed": 0})
    out = generation.judge({"hh": root / "pol" / "hh.jsonl"}, {"hh": root / "base" / "hh.jsonl"},
                     {"hh": root / "judge" / "hh.json"}, JudgeConfig(name="planted"),
                     run={"method": "dpo", "seed": 0})["hh"]
    assert out == read_json(root / "judge" / "hh.json")
    assert out["n"] == 6 and out["n_pairs"] == 6 and 0 <= out["win_rate"] <= 1 and 0 <= out["lc_win_rate"] <= 1
    assert out["kl_k3"] >= 0 and math.isfinite(out["kl_k1"]) and 0 <= out["eos_rate"] <= 1
    assert out["judge"] == {"name": "planted", "revision": None} and out["prompt_style"] == "dataset"
    assert out["sampling"]["max_new_tokens"] == 6 and out["method"] == "dpo"
    # the baseline against itself: every pair a tie, win rate one half, KL about 0
    same = generation.judge({"hh": root / "base" / "hh.jsonl"}, {"hh": root / "base" / "hh.jsonl"},
                      {"hh": root / "judge" / "self.json"}, JudgeConfig(name="planted"))["hh"]
    assert same["win_rate"] == 0.5 and same["tie_rate"] == 1.0 and abs(same["kl_k1"]) < 1e-3


def test_a_reward_model_folder_judges_within_its_positions(saved):
    from transformers import GPT2Config, GPT2ForSequenceClassification

    from p2o.model.loading import load_tokenizer

    root, split = saved
    tok = load_tokenizer(root / "sft")
    torch.manual_seed(0)
    rm = GPT2ForSequenceClassification(GPT2Config(vocab_size=len(tok), n_layer=1, n_head=2, n_embd=16, n_positions=24,
                                                  num_labels=1, pad_token_id=tok.pad_token_id))
    rm.save_pretrained(root / "rm")
    tok.save_pretrained(root / "rm")
    judge = JudgeConfig(name=str(root / "rm"), batch_size=2)
    assert generation.gold_judge(judge).max_length == 24  # the model's positions, not the default 1024
    for model, folder in (("sft", "rm_base"), ("policy", "rm_pol")):
        generation.generate(root / model, root / "sft", {"hh": (split, root / folder / "hh.jsonl")}, GEN, TOK)
    out = generation.judge({"hh": root / "rm_pol" / "hh.jsonl"}, {"hh": root / "rm_base" / "hh.jsonl"},
                     {"hh": root / "judge" / "rm.json"}, judge, run={"method": "dpo", "seed": 0})["hh"]
    assert out["judge"]["name"] == str(root / "rm") and 0 <= out["win_rate"] <= 1 and math.isfinite(out["mean_reward"])
    assert out["provenance"]["threads"] >= 1  # a model judge: torch's provenance


def test_judge_refuses_samples_drawn_differently(saved):
    root, split = saved
    other = GenerateConfig(**{**GEN.__dict__, "temperature": 0.5})
    generation.generate(root / "policy", root / "sft", {"hh": (split, root / "hot" / "hh.jsonl")}, other, TOK)
    generation.generate(root / "sft", root / "sft", {"hh": (split, root / "cold" / "hh.jsonl")}, GEN, TOK)
    with pytest.raises(ValueError, match="sampled differently"):
        generation.judge({"hh": root / "hot" / "hh.jsonl"}, {"hh": root / "cold" / "hh.jsonl"},
                   {"hh": root / "judge" / "x.json"}, JudgeConfig(name="planted"))


def test_no_room_for_a_prompt_is_an_error(saved):
    root, split = saved
    with pytest.raises(ValueError, match="no room for a prompt"):
        generation.generate(root / "policy", root / "sft", {"hh": (split, root / "x" / "hh.jsonl")},
                      GenerateConfig(max_new_tokens=40), TOK)


def test_the_planted_judge_imports_no_torch(tmp_path):
    import subprocess
    import sys

    code = ("import sys; from p2o.stages.generation import gold_judge; from p2o.config import JudgeConfig; "
            "import p2o.report.winrate; j = gold_judge(JudgeConfig(name='planted')); "
            "print(j.score(['Q'], [' 3 cats and 4 dogs'])[0], 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[1] == "False"


def test_the_trained_judge_scores_text_as_a_direct_forward_and_reports_its_heldout_accuracy(saved):
    """judge.name: trained: a Bradley–Terry reward model from the SFT model's body, trained on a pool of its
    own, scored on held-out pairs; it judges generated text exactly as a forward over the tokenised pair."""
    from p2o.config import OptimConfig
    from p2o.data import read_split
    from p2o.model.loading import load_tokenizer
    from p2o.model.tokenize import collate_pairs, tokenize_pairs
    from p2o.stages.reward import train_scored_reward_model
    from p2o.training.reward_model import RewardModel, RewardModelJudge

    root, split = saved
    tok_cfg = TokenizeConfig(max_length=40, max_prompt_length=24)  # within the tiny model's 40 positions
    optim = OptimConfig(lr=1e-3, batch_size=2, epochs=1)
    summary = train_scored_reward_model(root / "sft", {"hh": split}, {"hh": split}, optim, tok_cfg, 0, root / "gold",
                               root / "gold" / "heldout.json", batch_size=4)
    heldout = read_json(root / "gold" / "heldout.json")
    assert heldout["heldout"]["hh"]["n_pairs"] == 5 and 0 <= heldout["mean_accuracy"] <= 1
    assert summary["heldout"] == heldout and summary["loss"] == "bradley_terry"

    judge = RewardModelJudge(root / "gold" / "model", tok_cfg, batch_size=2)
    df = read_split(split)
    scores = judge.score(df["prompt"].tolist(), df["chosen"].tolist())
    tok, model = load_tokenizer(root / "gold" / "model"), RewardModel.load(root / "gold" / "model")
    rows = tokenize_pairs(tok, "hh", df["id"].tolist(), df["prompt"].tolist(), df["chosen"].tolist(),
                          df["rejected"].tolist(), tok_cfg)
    with torch.no_grad():
        direct = model(collate_pairs(rows, list(range(len(df))), tok.pad_token_id).pairs)[: len(df)]
    torch.testing.assert_close(torch.from_numpy(scores).float(), direct, atol=1e-5, rtol=1e-5)

    for model_name, folder in (("sft", "tr_base"), ("policy", "tr_pol")):
        generation.generate(root / model_name, root / "sft", {"hh": (split, root / folder / "hh.jsonl")}, GEN, TOK)
    out = generation.judge({"hh": root / "tr_pol" / "hh.jsonl"}, {"hh": root / "tr_base" / "hh.jsonl"},
                           {"hh": root / "judge" / "trained.json"}, JudgeConfig(name="trained", batch_size=3),
                           judge_model=root / "gold" / "model", tokenize=tok_cfg)["hh"]
    assert out["judge"]["name"] == "trained" and out["judge"]["model"] == str(root / "gold" / "model")
    assert out["judge"]["heldout_accuracy"] == {"hh": heldout["heldout"]["hh"]["eval_rewards/accuracies"]}
    samples = read_jsonl(root / "tr_pol" / "hh.jsonl")
    expected = judge.score([s["prompt"] for s in samples], [s["text"] for s in samples]).mean()
    assert out["mean_reward"] == pytest.approx(expected, abs=1e-6)
    with pytest.raises(ValueError, match="trained judge's folder"):
        generation.gold_judge(JudgeConfig(name="trained"))
