"""The Bradley–Terry reward model and the reward-model-versus-DPO experiment's pieces: loss values
and gradients, where the scalar is read, accuracy counting, a tiny training run, nested subsets,
the config section, and the figure, table and sentences on a hand-made frame."""

from __future__ import annotations

import copy
import dataclasses
import json
import math

import pandas as pd
import pytest
import torch
import yaml

from conftest import REPO
from p2o.report import plots, rm_experiment
from p2o.stages import reward as reward_jobs
from p2o.config import (ConfigError, ModelConfig, OptimConfig, TinyModelConfig,
                        TokenizeConfig, config_from_dict, deep_merge)
from p2o.data.splits import split_hash
from p2o.io import JsonlLog, read_json, write_json, write_jsonl
from p2o.model.loading import build_tiny_model, train_bpe_tokenizer
from p2o.report.paper import rm_experiment_tex
from p2o.model.reference import ReferenceLogps
from p2o.training.reward_model import (RewardModel, bradley_terry_loss, evaluate_reward_model, pair_accuracy,
                        train_reward_model)
from p2o.report.tables import rm_experiment_csv, rm_experiment_table
from p2o.model.tokenize import pad_sequences, tokenize_pairs

pytestmark = pytest.mark.filterwarnings("ignore")

TOPICS = ["tea", "bread", "rain", "maps", "bees", "jazz", "kites", "moss", "owls", "figs", "clay", "snow"]
TOK = TokenizeConfig(64, 32)


# ---------------------------------------------------------------- the loss


def test_bradley_terry_loss_value_gradient_and_metrics():
    chosen = torch.tensor([2.0, 0.0, 1.0], requires_grad=True)
    rejected = torch.tensor([1.0, 0.0, 3.0], requires_grad=True)
    loss, metrics = bradley_terry_loss(chosen, rejected)
    # margins 1, 0, -2: mean of -log σ(m) = log(1 + e^{-m})
    expected = (math.log1p(math.exp(-1)) + math.log(2) + math.log1p(math.exp(2))) / 3
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    assert loss.item() == pytest.approx((0.3132617 + 0.6931472 + 2.1269280) / 3, abs=1e-6)
    loss.backward()
    sig = torch.sigmoid(torch.tensor([1.0, 0.0, -2.0]))
    torch.testing.assert_close(chosen.grad, -(1 - sig) / 3)  # dL/dr_w = -(1 - σ(m)) / B
    torch.testing.assert_close(rejected.grad, (1 - sig) / 3)
    assert metrics["rewards/accuracies"].item() == pytest.approx(1 / 3)  # training metric: the tie is a miss
    assert metrics["rewards/margins"].item() == pytest.approx(-1 / 3)
    assert not metrics["rewards/chosen"].requires_grad


def test_held_out_accuracy_counts_a_tie_as_half_a_win():
    chosen, rejected = torch.tensor([1.0, 2.0, 3.0, 0.5]), torch.tensor([0.0, 2.0, 4.0, -1.0])
    assert pair_accuracy(chosen, rejected).item() == 0.625  # (1 + ½ + 0 + 1) / 4
    assert pair_accuracy(torch.zeros(4), torch.zeros(4)).item() == 0.5  # all tied: chance, as the policy's


def test_reward_model_reports_ties_like_the_policy_evaluation(tiny):
    tok, lm, split = tiny
    model = reward_model(lm)
    with torch.no_grad():
        model.head.weight.zero_()  # every reward 0: every pair tied
    metrics = evaluate_reward_model(model, split, tok.pad_token_id, progress=False)
    assert metrics["eval_rewards/accuracies"] == 0.5 and metrics["eval_rewards/ties"] == 1.0


# ---------------------------------------------------------------- the model


@pytest.fixture(scope="module")
def tiny():
    prompts = [f"\n\nHuman: Tell me about {t}.\n\nAssistant:" for t in TOPICS]
    chosen = [f" {t.capitalize()} is lovely; here is a clear and friendly answer about {t}." for t in TOPICS]
    rejected = [" No." for _ in TOPICS]
    tok = train_bpe_tokenizer(prompts + chosen + rejected, vocab_size=300)
    shape = TinyModelConfig(n_layer=1, n_head=2, n_embd=32, n_positions=64)
    lm = build_tiny_model(ModelConfig(tiny=shape), tok, seed=0)
    split = tokenize_pairs(tok, "hh", [f"hh{i}" for i in range(len(TOPICS))], prompts, chosen, rejected, TOK)
    return tok, lm, split


def reward_model(lm, seed=0):
    return RewardModel(copy.deepcopy(lm.base_model), seed=seed)


def test_reward_is_read_at_the_last_response_token_whatever_the_padding(tiny):
    tok, lm, split = tiny
    model = reward_model(lm).eval()
    pad = tok.pad_token_id
    short, long = 0, 1
    length = len(split.prompt[short]) + len(split.rejected[short])
    assert length < len(split.prompt[long]) + len(split.chosen[long])
    alone = model(pad_sequences([split.prompt[short]], [split.rejected[short]], pad))
    padded = model(pad_sequences([split.prompt[short], split.prompt[long]],
                                 [split.rejected[short], split.chosen[long]], pad))
    # extra right padding changes nothing
    torch.testing.assert_close(padded[0], alone[0], atol=1e-5, rtol=1e-5)

    # the scalar is head(hidden state at the last real token), which is the response's last token
    prompts = [split.prompt[short], split.prompt[long]]
    batch = pad_sequences(prompts, [split.rejected[short], split.chosen[long]], pad)
    hidden = model.backbone(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                            position_ids=batch.position_ids).last_hidden_state
    for row in range(2):
        last = int(batch.attention_mask[row].sum()) - 1
        assert batch.response_mask[row, last] and (row == 1 or not batch.attention_mask[row, last + 1])
        expected = model.head(hidden[row, last]).squeeze(-1)
        torch.testing.assert_close(padded[row], expected, atol=1e-5, rtol=1e-5)

    # and it depends on that token: another last token, another reward
    other = split.rejected[short][:-1] + [split.chosen[long][0]]
    assert not torch.allclose(model(pad_sequences([split.prompt[short]], [other], pad)), alone)


def test_the_head_starts_seeded_and_small(tiny):
    _, lm, _ = tiny
    a, b, c = reward_model(lm, 0), reward_model(lm, 0), reward_model(lm, 1)
    assert torch.equal(a.head.weight, b.head.weight) and not torch.equal(a.head.weight, c.head.weight)
    assert a.head.bias is None
    assert a.head.weight.std().item() == pytest.approx(1 / math.sqrt(33), rel=0.5)  # N(0, 1/(d+1)), d = 32


def test_training_lowers_the_loss_and_separates_held_out_pairs(tiny, tmp_path):
    tok, lm, split = tiny
    train = dataclasses.replace(split, ids=split.ids[:8], prompt=split.prompt[:8], chosen=split.chosen[:8],
                                rejected=split.rejected[:8])
    held_out = dataclasses.replace(split, ids=split.ids[8:], prompt=split.prompt[8:], chosen=split.chosen[8:],
                                   rejected=split.rejected[8:])
    model = reward_model(lm)
    before = evaluate_reward_model(model, held_out, tok.pad_token_id, progress=False)
    optim = OptimConfig(lr=3e-3, batch_size=4, epochs=6, warmup_ratio=0.0)
    with JsonlLog(tmp_path / "log.jsonl") as log:
        result = train_reward_model(model, [train], optim, 0, tok.pad_token_id, log)
    records = [json.loads(line) for line in open(tmp_path / "log.jsonl")]
    assert result["steps"] == 12 == len(records)
    assert {"loss", "rewards/accuracies", "rewards/margins", "grad_norm", "lr"} <= set(records[0])
    assert records[-1]["loss"] < records[0]["loss"]
    after = evaluate_reward_model(model, held_out, tok.pad_token_id, progress=False)
    assert after["eval_rewards/accuracies"] == 1.0 and after["eval_rewards/accuracies"] >= before[
        "eval_rewards/accuracies"]
    assert after["eval_loss"] < before["eval_loss"] and after["n_pairs"] == 4


def test_save_and_load_give_the_same_rewards(tiny, tmp_path):
    tok, lm, split = tiny
    model = reward_model(lm, seed=3).eval()
    model.save(tmp_path / "rm", tok)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left
    loaded = RewardModel.load(tmp_path / "rm")
    batch = pad_sequences(split.prompt[:3], split.chosen[:3], tok.pad_token_id)
    torch.testing.assert_close(loaded.eval()(batch), model(batch))
    assert read_json(tmp_path / "rm" / "reward_model.json")["hidden_size"] == 32


# ---------------------------------------------------------------- nested subsets


def _split_rows(n):
    return [{"chosen": f" yes {i}", "dataset": "hh", "id": f"hh-{i:04d}",
             "prompt": f"\n\nHuman: q{i}\n\nAssistant:", "rejected": f" no {i}"} for i in range(n)]


def _reference(ids):
    n = len(ids)
    steps = torch.arange(n, dtype=torch.float)
    three = torch.full((n,), 3.0)
    return ReferenceLogps(ids=list(ids), chosen=-steps, rejected=-2 * steps, chosen_tokens=three,
                          rejected_tokens=three.clone(), mismatched=-3 * steps, tokenize=dataclasses.asdict(TOK))


def test_reference_prefix_keeps_the_first_rows_and_voids_the_wrapped_mismatched_row():
    ref = _reference([f"p{i}" for i in range(5)])
    sub = ref.prefix(3)
    assert sub.ids == ["p0", "p1", "p2"]
    torch.testing.assert_close(sub.chosen, ref.chosen[:3])
    torch.testing.assert_close(sub.mismatched[:2], ref.mismatched[:2])
    assert math.isnan(sub.mismatched[2])  # was computed against pair 3 of the pool, not pair 0 of the subset
    assert not math.isnan(ref.prefix(5).mismatched[4])  # the whole pool wraps as before
    with pytest.raises(ValueError):
        ref.prefix(6)


def test_rm_subset_writes_the_first_n_pairs_and_checks_the_held_out_split(tmp_path):
    rows = _split_rows(6)
    write_jsonl(tmp_path / "pool" / "train.jsonl", rows)
    main = {"splits": {"train": {"sha256": split_hash(pd.DataFrame(rows))}, "eval": {"sha256": "e1"}}}
    write_json(tmp_path / "pool" / "manifest.json", main)
    _reference([r["id"] for r in rows]).save(tmp_path / "pool" / "ref.pt")
    manifest = reward_jobs.rm_subset(tmp_path / "pool" / "train.jsonl", tmp_path / "pool" / "ref.pt", 4,
                                     tmp_path / "n4", (tmp_path / "pool" / "manifest.json",) * 2)
    lines = (tmp_path / "n4" / "train.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [r["id"] for r in rows[:4]]
    assert manifest["splits"]["train"] == {"n": 4, "sha256": split_hash(pd.DataFrame(rows[:4]))}
    assert ReferenceLogps.load(tmp_path / "n4" / "reference.pt").ids == [r["id"] for r in rows[:4]]

    write_json(tmp_path / "other.json", {"splits": {"eval": {"sha256": "e2"}}})
    pool = tmp_path / "pool"
    with pytest.raises(ValueError, match="held-out"):
        reward_jobs.rm_subset(pool / "train.jsonl", pool / "ref.pt", 4, tmp_path / "x",
                              (pool / "manifest.json", tmp_path / "other.json"))
    with pytest.raises(ValueError, match="6 pairs"):
        reward_jobs.rm_subset(pool / "train.jsonl", pool / "ref.pt", 7, tmp_path / "x")


# ---------------------------------------------------------------- the config section

BASE = deep_merge(yaml.safe_load((REPO / "config" / "config.yaml").read_text()),
                  yaml.safe_load((REPO / "config" / "demo.yaml").read_text()))


@pytest.mark.parametrize("override, key", [
    ({"datasets": ["nope"]}, "rm_experiment.datasets"),
    ({"datasets": []}, "rm_experiment.datasets"),
    ({"sizes": [16, 16]}, "rm_experiment.sizes"),
    ({"sizes": [0, 16]}, "rm_experiment.sizes"),
    ({"seeds": []}, "rm_experiment.seeds"),
    ({"method": "nope"}, "rm_experiment.method"),
    ({"method": "kto"}, "rm_experiment.method"),  # reads mismatched rows, which subsets do not keep
    ({"epochs": 0}, "rm_experiment.epochs"),
    ({"lr": 0.0}, "rm_experiment.lr"),
])
def test_rm_experiment_rules_name_the_key(override, key):
    cfg = copy.deepcopy(BASE)
    cfg["rm_experiment"] = {**cfg["rm_experiment"], **override}
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        config_from_dict(cfg)


def test_rm_experiment_datasets_default_to_the_data_order():
    # (the schema's bounds are generated from the same declarations: tests/config/test_docs_generated.py)
    cfg = copy.deepcopy(BASE)
    del cfg["rm_experiment"]
    cfg["data"]["order"] = ["shp", "uf"]
    assert config_from_dict(cfg).rm_experiment.dataset_names(config_from_dict(cfg).data) == ["shp", "uf"]


# ---------------------------------------------------------------- aggregate, figure, table, sentences


def _evaluations(tmp_path):
    files = []
    accuracy = {("rm", 16): [0.60, 0.70, 0.65], ("rm", 64): [0.80, 0.82, 0.84],
                ("dpo", 16): [0.40, 0.45, 0.35], ("dpo", 64): [0.70, 0.90, 0.80]}
    for (model, size), values in accuracy.items():
        for seed, acc in zip((41, 42, 43), values):
            path = tmp_path / f"{model}{size}{seed}.json"
            write_json(path, {"experiment": "rm_experiment", "model": model, "size": size, "seed": seed,
                              "dataset": "uf", "n_pairs": 32, "eval_rewards/accuracies": acc,
                              "eval_rewards/margins": acc - 0.5})
            files.append(path)
    return files


def test_collect_and_summary_over_seeds(tmp_path):
    tidy = rm_experiment.collect(_evaluations(tmp_path))
    assert list(tidy.columns[:5]) == ["dataset", "size", "seed", "model", "accuracy"] and len(tidy) == 12
    s = rm_experiment.summary(tidy).set_index(["model", "size"])
    assert s.loc[("rm", 16), "mean"] == pytest.approx(0.65)
    assert s.loc[("rm", 16), "ci95"] == pytest.approx(4.303 * 0.05 / math.sqrt(3))  # Student t, 2 d.o.f.
    assert s.loc[("dpo", 64), "n_seeds"] == 3


def test_figure_table_and_sentences_from_a_hand_made_frame(tmp_path):
    tidy = rm_experiment.collect(_evaluations(tmp_path))
    summary = rm_experiment.summary(tidy)
    plots.rm_vs_dpo(summary, ["uf"], ["rm", "dpo"], tmp_path / "fig.pdf")
    assert (tmp_path / "fig.pdf").read_bytes()[:4] == b"%PDF"

    tex = rm_experiment_table(summary, ["uf"], ["rm", "dpo"])
    assert "Reward model & DPO (implicit)" in tex and "\\label{tab:rm_experiment}" in tex
    row16 = next(line for line in tex.splitlines() if line.startswith("UF & 16 &"))
    assert "\\textbf{0.650" in row16 and "\\textbf{0.400" not in row16  # the higher mean in bold
    wide = rm_experiment_csv(summary, ["rm", "dpo"])
    assert list(wide.columns) == ["dataset", "size", "rm:mean", "rm:ci95", "dpo:mean", "dpo:ci95"]
    assert wide["size"].tolist() == [16, 64]

    text = rm_experiment_tex(summary, tidy, ["uf"], ["rm", "dpo"], epochs=2)
    assert "$N \\in \\{16, 64\\}$" in text and "seeds 41, 42 and 43" in text and "32 of UF" in text
    assert "is above DPO's implicit-reward accuracy at 2 of the 2 sizes." in text
    assert "exceeds the combined 95\\,\\% intervals at 1 of the 2 sizes ($N = 16$)" in text
