"""LoRA (``model.lora``): only the adapters train, the frozen base is the reference, a saved adapter
folder reloads, resumes and is evaluated and sampled from like any model folder."""

from __future__ import annotations

import copy
import json
import os
from dataclasses import replace

import pytest
import torch

from p2o.config import ConfigError, EvalConfig, GenerateConfig, LoraConfig, OptimConfig, TokenizeConfig, load_config
from p2o.io import JsonlLog, read_json, read_jsonl
from p2o.losses import MethodSpec
from p2o.model.loading import load_model, load_policy_and_reference, load_tokenizer, save_adapter_model, save_model
from p2o.model.logps import pair_logps
from p2o.model.lora import ADAPTER_FILE, FrozenBase, add_lora, adapter_base
from p2o.model.tokenize import collate_pairs
from p2o.stages import generation, jobs
from p2o.training.loop import Checkpoint
from p2o.training.preference import train_preference

pytestmark = pytest.mark.filterwarnings("ignore")

LORA = LoraConfig(r=4, alpha=8.0)
OPTIM = OptimConfig(lr=1e-2, batch_size=2, epochs=2, warmup_ratio=0.0)  # 2 datasets x 2 batches x 2 epochs: 8 steps
TOK = TokenizeConfig(64, 32)
DPO = MethodSpec("dpo", "dpo", {"beta": 0.5})


@torch.no_grad()
def logps(model, splits, pad_id) -> torch.Tensor:
    """Every chosen and rejected sequence log-prob of the splits, one batch per split."""
    out = [pair_logps(model, collate_pairs(s, list(range(len(s))), pad_id)) for s in splits]
    return torch.cat([torch.cat([p.chosen, p.rejected]) for p in out])


def base_weights(model) -> dict[str, torch.Tensor]:
    """The model's non-LoRA weights under their names in a model without LoRA layers."""
    return {k.replace(".base_layer", ""): v.clone() for k, v in model.state_dict().items() if "lora_" not in k}


def lora_policy(setup):
    tok, model, splits, refs = setup
    policy = copy.deepcopy(model).eval()
    return policy, add_lora(policy, LORA)


def test_lora_config_defaults_off_and_checks_its_keys():
    cfg = load_config("config/config.yaml")
    assert cfg.model.lora == LoraConfig(r=0, alpha=16.0, dropout=0.0, target_modules=None)
    with pytest.raises(ConfigError, match="model.lora.r"):
        load_config("config/config.yaml", overrides={"model": {"lora": {"r": -1}}})
    with pytest.raises(ConfigError, match="model.lora.dropout"):
        load_config("config/config.yaml", overrides={"model": {"lora": {"dropout": 1.0}}})


def test_only_the_adapters_require_grad_and_the_model_starts_at_its_base(setup):
    tok, model, splits, _ = setup
    policy, peft_model = lora_policy(setup)
    trained = {n: p.numel() for n, p in policy.named_parameters() if p.requires_grad}
    assert trained and all(".lora_A." in n or ".lora_B." in n for n in trained)
    # one block, d = 32, r = 4: c_attn 32 -> 96, attn.c_proj 32 -> 32, mlp.c_proj 128 -> 32; A is r x d_in, B d_out x r
    assert sum(trained.values()) == (4 * 32 + 96 * 4) + (4 * 32 + 32 * 4) + (4 * 128 + 32 * 4)
    assert {n.split(".lora_")[0] for n in trained} == {"transformer.h.0.attn.c_attn", "transformer.h.0.attn.c_proj",
                                                      "transformer.h.0.mlp.c_proj"}
    base = logps(model.eval(), splits, tok.pad_token_id)
    assert torch.equal(logps(policy, splits, tok.pad_token_id), base)  # B = 0: exactly the base


def test_training_changes_only_the_adapters_and_the_disabled_adapter_is_the_base(setup, tmp_path):
    tok, model, splits, refs = setup
    policy, peft_model = lora_policy(setup)
    before = base_weights(policy)
    lora_before = {n: p.detach().clone() for n, p in policy.named_parameters() if p.requires_grad}
    with JsonlLog(tmp_path / "log.jsonl") as log:
        train_preference(policy, splits, refs, DPO, OPTIM, 0, tok.pad_token_id, log)
    after = base_weights(policy)
    assert after.keys() == before.keys() == model.state_dict().keys()
    assert all(torch.equal(after[k], before[k]) for k in before)  # the base, bit for bit
    changed = {n for n, p in policy.named_parameters() if p.requires_grad and not torch.equal(p, lora_before[n])}
    assert changed == set(lora_before)  # every A and B moved (B from 0)
    base = logps(model.eval(), splits, tok.pad_token_id)
    assert torch.equal(logps(FrozenBase(peft_model), splits, tok.pad_token_id), base)
    with peft_model.disable_adapter():
        assert torch.equal(logps(policy, splits, tok.pad_token_id), base)
    assert not torch.allclose(logps(policy, splits, tok.pad_token_id), base, atol=1e-3)  # the adapter is back on
    assert all(p.requires_grad for n, p in policy.named_parameters() if n in lora_before)


def test_tdpo_reads_the_frozen_base_as_its_reference_model(setup, tmp_path):
    """TDPO's in-step reference forward: the policy with its adapters disabled gives the same run as a
    separate copy of the base model."""
    tok, model, splits, refs = setup
    tdpo = MethodSpec("tdpo1", "tdpo1", {"beta": 0.5})
    runs = []
    for shared in (True, False):
        policy, peft_model = lora_policy(setup)
        reference = FrozenBase(peft_model) if shared else copy.deepcopy(model)
        with JsonlLog(tmp_path / f"{shared}.jsonl") as log:
            train_preference(policy, splits, refs, tdpo, OPTIM, 0, tok.pad_token_id, log, reference_model=reference)
        runs.append([r for r in read_jsonl(tmp_path / f"{shared}.jsonl") if r["kind"] == "train"])
    shared, separate = runs
    assert [r["loss"] for r in shared] == [r["loss"] for r in separate]
    assert max(r["reference/logp_gap"] for r in shared) < 1e-5
    assert len({r["loss"] for r in shared}) > 1


def test_saved_adapter_reloads_with_the_same_log_probs(setup, tmp_path):
    tok, model, splits, refs = setup
    policy, peft_model = lora_policy(setup)
    train_preference(policy, splits, refs, DPO, OPTIM, 0, tok.pad_token_id)
    save_model(model, tok, tmp_path / "sft")
    save_adapter_model(peft_model, tok, tmp_path / "run" / "model", tmp_path / "sft")
    folder = tmp_path / "run" / "model"
    assert (folder / "adapter_config.json").exists() and not (folder / "model.safetensors").exists()
    assert read_json(folder / ADAPTER_FILE) == {"base_model": "../../sft"}
    assert adapter_base(folder) == tmp_path / "sft"
    in_memory = logps(policy, splits, tok.pad_token_id)
    assert torch.equal(logps(load_model(folder, merge=False), splits, tok.pad_token_id), in_memory)
    merged = load_model(folder)
    assert not any("lora_" in n for n, _ in merged.named_parameters())
    torch.testing.assert_close(logps(merged, splits, tok.pad_token_id), in_memory, rtol=0, atol=1e-4)
    loaded, reference = load_policy_and_reference(folder, tmp_path / "sft")
    assert isinstance(reference, FrozenBase)  # one copy of the weights
    assert torch.equal(logps(loaded, splits, tok.pad_token_id), in_memory)
    assert torch.equal(logps(reference, splits, tok.pad_token_id), logps(model.eval(), splits, tok.pad_token_id))
    (tmp_path / "sft").rename(tmp_path / "moved")
    with pytest.raises(FileNotFoundError, match="which is missing"):
        load_model(folder)


def test_default_target_modules_per_family_and_the_head_is_refused(setup):
    from transformers import LlamaConfig, LlamaForCausalLM

    llama = LlamaForCausalLM(LlamaConfig(vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2))
    add_lora(llama, LORA)
    adapted = {n.split(".lora_")[0].rsplit(".", 1)[-1] for n, p in llama.named_parameters() if p.requires_grad}
    assert adapted == {"q_proj", "k_proj", "v_proj", "o_proj"}
    policy = copy.deepcopy(setup[1])
    add_lora(policy, replace(LORA, target_modules=["c_attn"]))
    assert {n.split(".lora_")[0] for n, p in policy.named_parameters() if p.requires_grad} == {
        "transformer.h.0.attn.c_attn"}
    other = copy.deepcopy(setup[1])
    other.config.model_type = "unknown"
    with pytest.raises(ValueError, match="model.lora.target_modules"):
        add_lora(other, LORA)
    with pytest.raises(ValueError, match="LM head"):
        add_lora(LlamaForCausalLM(llama.config), replace(LORA, target_modules=["lm_head"]))


# ---------------------------------------------------------------- the stages, on files




def train_job(workdir, out, optim=OPTIM, method=DPO):
    """A LoRA run of the train stage; with ``optim.eval_every``, evaluated on its own training splits."""
    names = ("hh", "shp")
    held_out = {n: (workdir / "data" / f"{n}.jsonl", workdir / "reference" / f"{n}.pt") for n in names}
    return jobs.train(workdir / "sft", {n: workdir / "data" / f"{n}.jsonl" for n in names},
                      {n: workdir / "reference" / f"{n}.pt" for n in names}, method, optim, TOK, 0, out,
                      eval_splits=held_out if optim.eval_every else None, evaluate=EvalConfig(batch_size=4), lora=LORA)


class Killed(Exception):
    pass


def test_a_killed_lora_run_resumes_from_its_adapter_checkpoint(workdir, monkeypatch, capsys):
    original = Checkpoint.after_batch
    sizes = []

    def after_batch(self, batches_done):
        original(self, batches_done)
        if self.path is not None and self.path.exists() and self.opt.steps >= 4:
            sizes.append(set(torch.load(self.path, weights_only=False)["model"]))
            raise Killed

    optim = replace(OPTIM, checkpoint_every=2)
    monkeypatch.setattr(Checkpoint, "after_batch", after_batch)
    with pytest.raises(Killed):
        train_job(workdir, workdir / "run", optim)
    monkeypatch.undo()
    assert sizes and all("lora_" in k for k in sizes[0])  # the checkpoint holds the adapters only
    capsys.readouterr()
    resumed = train_job(workdir, workdir / "run", optim)
    assert "resumed from" in capsys.readouterr().err
    whole = train_job(workdir, workdir / "whole", optim)
    assert resumed["final"] == whole["final"] and resumed["lora"]["trained_params"] == 1408
    a, b = (load_model(workdir / d / "model", merge=False).state_dict() for d in ("run", "whole"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    records = [r for r in read_jsonl(workdir / "run" / "log.jsonl") if r["kind"] == "train"]
    assert [r["step"] for r in records] == list(range(1, 9))


def test_evaluate_and_generate_read_an_adapter_folder(workdir, capsys):
    """``p2o evaluate``'s and ``p2o generate``'s stages on a LoRA run's adapter folder, against the same
    adapter merged into a full model folder and the SFT model loaded apart."""
    train_job(workdir, workdir / "run", replace(OPTIM, eval_every=4))
    evals = [r for r in read_jsonl(workdir / "run" / "log.jsonl") if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [0, 0, 4, 4, 8, 8]  # the held-out KL against the frozen base
    assert all(r["eval_kl/token_mean"] == 0 for r in evals[:2]) and evals[-1]["eval_kl/token_mean"] > 1e-4
    adapter = workdir / "run" / "model"
    save_model(load_model(adapter), load_tokenizer(workdir / "sft"), workdir / "merged")
    results = {}
    for name, policy in (("adapter", adapter), ("merged", workdir / "merged")):
        targets = {n: jobs.EvalTarget(workdir / "data" / f"{n}.jsonl", workdir / "reference" / f"{n}.pt",
                                      workdir / name / "eval" / f"{n}.json") for n in ("hh", "shp")}
        results[name] = jobs.evaluate(policy, workdir / "sft", targets, TOK, EvalConfig(batch_size=4))
    for n in ("hh", "shp"):
        a, m = results["adapter"][n], results["merged"][n]
        assert a["eval_kl/token_mean"] > 1e-4  # trained away from the reference
        for key in ("eval_kl/token_mean", "eval_rewards/margins", "eval_logps/chosen"):
            assert a[key] == pytest.approx(m[key], rel=1e-4, abs=1e-5)
        assert a["eval_reference/max_abs_gap"] < 1e-5
    gen = GenerateConfig(n_prompts=2, n_samples=2, max_new_tokens=5, seed=1, batch_size=4)
    rows = {}
    for name, policy in (("adapter", adapter), ("merged", workdir / "merged")):
        generation.generate(policy, workdir / "sft", {"hh": (workdir / "data" / "hh.jsonl",
                                                             workdir / name / "gen" / "hh.jsonl")}, gen, TOK)
        rows[name] = list(read_jsonl(workdir / name / "gen" / "hh.jsonl"))
    assert [r["text"] for r in rows["adapter"]] == [r["text"] for r in rows["merged"]]
    for a, m in zip(rows["adapter"], rows["merged"]):
        assert a["ref_logprob"] == pytest.approx(m["ref_logprob"], abs=1e-4)


def test_sft_with_lora_saves_a_merged_full_model(workdir):
    names = ("hh", "shp")
    summary = jobs.sft(workdir / "sft", {n: workdir / "data" / f"{n}.jsonl" for n in names}, TOK, OPTIM, 0,
                       workdir / "sft_lora", lora=LORA)
    folder = workdir / "sft_lora" / "model"
    assert not (folder / "adapter_config.json").exists() and summary["lora"]["r"] == 4
    base, tuned = load_model(workdir / "sft").state_dict(), load_model(folder).state_dict()
    assert base.keys() == tuned.keys()
    moved = {k for k in base if not torch.equal(base[k], tuned[k])}
    assert moved == {"transformer.h.0.attn.c_attn.weight", "transformer.h.0.attn.c_proj.weight",
                     "transformer.h.0.mlp.c_proj.weight"}
    assert json.loads((workdir / "sft_lora" / "summary.json").read_text())["lora"]["trained_params"] == 1408


# ---------------------------------------------------------------- two processes (train.devices: 2, gloo)


def lora_dpo(out: str, setup, **optim) -> None:
    """A LoRA DPO run of 4 steps on ``setup``'s first split: its trained weights and records to ``out``."""
    tok, model, splits, refs = setup
    policy = copy.deepcopy(model)
    add_lora(policy, LORA)
    cfg = replace(OPTIM, batch_size=4, max_grad_norm=1e3, **optim)
    with JsonlLog(os.path.join(out, "log.jsonl")) as log:
        train_preference(policy, splits[:1], refs, DPO, cfg, 0, tok.pad_token_id, log)
    weights = {n: p.detach() for n, p in policy.named_parameters() if p.requires_grad}
    torch.save({"weights": weights, "records": [r for r in log.records if r["kind"] == "train"]},
               os.path.join(out, "run.pt"))


def lora_worker(rank: int, port: int, out: str, setup) -> None:
    from p2o.training import parallel

    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    parallel.init(2)
    os.makedirs(os.path.join(out, str(rank)), exist_ok=True)
    lora_dpo(os.path.join(out, str(rank)), setup, devices=2)
    torch.distributed.destroy_process_group()


def test_two_processes_train_the_same_adapters_as_one(setup, tmp_path):
    import socket

    import torch.multiprocessing as mp

    os.makedirs(tmp_path / "single")
    lora_dpo(str(tmp_path / "single"), setup)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(lora_worker, args=(port, str(tmp_path), setup), nprocs=2, join=True)
    single, ddp, other = (torch.load(tmp_path / d / "run.pt", weights_only=False) for d in ("single", "0", "1"))
    assert len(single["records"]) == len(ddp["records"]) == 2 and not other["records"]
    for a, b in zip(single["records"], ddp["records"]):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4)
    assert single["weights"].keys() == ddp["weights"].keys() and all("lora_" in k for k in single["weights"])
    for k, w in single["weights"].items():
        torch.testing.assert_close(ddp["weights"][k], w, rtol=1e-5, atol=1e-4)
        assert torch.equal(other["weights"][k], ddp["weights"][k])  # the processes stay in step
