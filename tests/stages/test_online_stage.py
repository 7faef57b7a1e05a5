"""The online training stage on tiny saved models: a loadable policy, a log with TRL's names, a summary
with compute (generation and critic included), and arguments checked."""

from __future__ import annotations

import json

import pytest
import torch

from p2o.config import ModelConfig, OptimConfig, TinyModelConfig, TokenizeConfig
from p2o.config.online import OnlineConfig
from p2o.io import read_json, read_jsonl
from p2o.model.loading import build_tiny_model, load_model, save_model, train_bpe_tokenizer
from p2o.stages.online import train_online
from p2o.training.compute import Compute
from p2o.training.reward_model import RewardModel
from tiny_models import TOPICS

pytestmark = pytest.mark.filterwarnings("ignore")
TOK = TokenizeConfig(max_length=48, max_prompt_length=24)
ONLINE = OnlineConfig(prompts_per_step=4, max_new_tokens=6, epochs=1)
OPTIM = OptimConfig(lr=1e-3, warmup_ratio=0.0)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """An SFT model, a proxy reward model from its body, and a training split of 6 pairs."""
    root = tmp_path_factory.mktemp("online")
    prompts = [f"\n\nHuman: Tell me about {t}.\n\nAssistant:" for t in TOPICS[:6]]
    chosen = [f" {t.capitalize()} is lovely." for t in TOPICS[:6]]
    tok = train_bpe_tokenizer(prompts + chosen + [" No."], vocab_size=300)
    sft = build_tiny_model(ModelConfig(tiny=TinyModelConfig(n_layer=1, n_head=2, n_embd=32, n_positions=40)), tok, 0)
    save_model(sft, tok, root / "sft")
    RewardModel.from_causal_lm(root / "sft", seed=1).save(root / "proxy", tok)
    rows = [{"id": f"hh{i}", "dataset": "hh", "prompt": p, "chosen": c, "rejected": " No."}
            for i, (p, c) in enumerate(zip(prompts, chosen))]
    (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


@pytest.mark.parametrize("method", ["ppo", "rloo"])
def test_the_stage_writes_a_loadable_policy_a_log_and_a_summary_with_compute(saved, tmp_path, method):
    out = tmp_path / method
    summary = train_online(method, saved / "sft", saved / "proxy", {"hh": saved / "train.jsonl"}, ONLINE, OPTIM, TOK,
                           0, out)
    policy, sft = load_model(out / "model"), load_model(saved / "sft")
    assert not torch.equal(policy.lm_head.weight, sft.lm_head.weight)  # it trained
    assert not (out / "checkpoint.pt").exists()
    written = read_json(out / "summary.json")
    assert written["method"] == method and written["seed"] == 0 and written["fingerprint"]["sha256"]
    assert written["train"]["batch_size"] == 4 and written["train"]["epochs"] == 1
    c = written["compute"]
    steps = 2 * (ONLINE.ppo.ppo_epochs if method == "ppo" else ONLINE.rloo.ppo_epochs)  # 6 prompts: batches of 4, 2
    assert c["optimizer_steps"] == steps == summary["final"]["steps"]
    assert c["backward_passes"] == (2 if method == "ppo" else 1) * steps  # the critic's backward counts
    assert c["generated_tokens"] >= (6 if method == "ppo" else 12)
    counts = Compute(**{k: c[k] for k in Compute.__dataclass_fields__})
    assert c["flops"] == counts.flops(c["body_params"], 32, policy.config.vocab_size) > 0
    records = [r for r in read_jsonl(out / "log.jsonl") if r["kind"] == "train"]
    assert len(records) == steps and {"objective/kl", "objective/scores", "policy/clipfrac_avg"} <= set(records[0])
    assert records[0]["objective/kl"] == pytest.approx(0, abs=1e-5)  # the first rollout's policy is the SFT model


def test_rto_reads_pi_dpo_and_only_rto_does(saved, tmp_path):
    splits = {"hh": saved / "train.jsonl"}
    with pytest.raises(ValueError, match="dpo_dir.*required"):
        train_online("rto", saved / "sft", saved / "proxy", splits, ONLINE, OPTIM, TOK, 0, tmp_path / "a")
    with pytest.raises(ValueError, match="rto only"):
        train_online("ppo", saved / "sft", saved / "proxy", splits, ONLINE, OPTIM, TOK, 0, tmp_path / "b",
                     dpo_dir=saved / "sft")
    summary = train_online("rto", saved / "sft", saved / "proxy", splits, ONLINE, OPTIM, TOK, 0, tmp_path / "c",
                           dpo_dir=saved / "sft")
    assert "dpo_model/model.safetensors" in summary["fingerprint"]["inputs"]
    assert summary["final"]["rto/dense_reward"] == 0  # π_dpo = π_ref: no dense reward
