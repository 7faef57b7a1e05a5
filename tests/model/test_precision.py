"""One precision path for every log-prob: under ``autocast: bf16`` the LM head and the
log-softmax run in fp32, and the reference and evaluation run at the training's setting, so the policy
equals the reference at step 0; the fp32 path is bit-for-bit what it was.

Tolerance. "Equal to fp32 rounding" is ``FP32_TOL`` = 1e-5 nats per sequence: the same weights on the
same batch under the same context give the same per-token log-probs, and what is left is the order of
fp32 additions over a response of ~10-40 tokens of |log p| ≲ 10 (a few ulps of 2⁻²³ at ~100, ~1e-5).
An fp32 reference misses the bf16 policy by ~1e-3 here (the body's rounding alone) and by up to 0.12
nats on the demo's SFT model with the former bf16 head, so the tolerance separates the two cleanly.
"""

from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F
from transformers import LlamaConfig, LlamaForCausalLM

import p2o.losses.registry
from p2o.config import OptimConfig, TokenizeConfig
from p2o.io import JsonlLog
from p2o.losses import LOSSES, MethodSpec, register
from p2o.losses.common import BETA
from p2o.model.evaluate import evaluate_split
from p2o.model.logps import PolicyForward, precision, reference_distribution, response_logits, sequence_logps
from p2o.model.reference import ReferenceLogps, compute_reference_logps
from p2o.model.tokenize import collate_pairs
from p2o.training.loop import autocast
from p2o.training.preference import train_preference

from tiny_models import split_of

FP32_TOL = 1e-5
TOK = TokenizeConfig(max_length=128, max_prompt_length=64)
TOK_SETUP = TokenizeConfig(64, 32)  # the `setup` fixture's splits

pytestmark = pytest.mark.filterwarnings("ignore")


def bf16_representable(t: torch.Tensor) -> bool:
    return torch.equal(t, t.bfloat16().float())


def tiny_llama(vocab):
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)).eval()


# ---------------------------------------------------------------- fp32: unchanged


def old_response_logits(model, batch):
    """response_logits as it was before the precision path (head called as a module, then .float())."""
    predicts = batch.response_mask[:, 1:]
    hidden = model.base_model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                              position_ids=batch.position_ids, use_cache=False).last_hidden_state
    return model.get_output_embeddings()(hidden[:, :-1][predicts]).float(), batch.input_ids[:, 1:][predicts]


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_fp32_path_is_bit_identical_to_before(tokenizer, model, arch):
    """Without autocast, logits and sequence log-probs are the same bits as the former code's, and agree
    with a plain log-softmax over the full logits of each unpadded sequence."""
    m = model if arch == "gpt2" else tiny_llama(len(tokenizer))
    split = split_of(tokenizer)
    batch = collate_pairs(split, [0, 1, 2, 3], tokenizer.pad_token_id, with_mismatched=True)
    with torch.no_grad():
        logits, labels, rows = response_logits(m, batch.pairs)
        old_logits, old_labels = old_response_logits(m, batch.pairs)
        assert torch.equal(logits, old_logits) and torch.equal(labels, old_labels)
        old_lp = old_logits.gather(-1, old_labels.unsqueeze(-1)).squeeze(-1) - old_logits.logsumexp(-1)
        old_sums = old_lp.new_zeros(8).index_add(0, rows, old_lp)
        sums, _ = sequence_logps(m, batch.pairs)
        assert torch.equal(sums, old_sums)
        for i in range(4):  # independent: log_softmax of the full logits, no batching, no padding
            ids = torch.tensor([split.prompt[i] + split.chosen[i]])
            logprobs = m(ids).logits[0].log_softmax(-1)
            p = len(split.prompt[i])
            plain = sum(logprobs[t - 1, ids[0, t]].item() for t in range(p, ids.shape[1]))
            assert sums[i].item() == pytest.approx(plain, abs=1e-4)


def test_fp32_reference_file_keeps_its_format(setup, tmp_path):
    tok, model, splits, _ = setup
    ref = compute_reference_logps(model, splits[0], TOK_SETUP, tok.pad_token_id)
    ref.save(tmp_path / "ref.pt")
    assert "autocast" not in torch.load(tmp_path / "ref.pt", weights_only=True)  # written as before
    assert ReferenceLogps.load(tmp_path / "ref.pt", splits[0], TOK_SETUP, "none").autocast == "none"


# ---------------------------------------------------------------- bf16: the head and logsumexp in fp32


def test_under_bf16_the_logits_reaching_logsumexp_are_fp32(tokenizer, model, monkeypatch):
    """Every logsumexp of PolicyForward and reference_distribution reads fp32 logits that are the fp32
    head of the (bf16) body's hidden states, not bf16-rounded logits upcast afterwards."""
    seen = []
    logsumexp = torch.Tensor.logsumexp

    def spy(self, *args, **kwargs):
        seen.append(self)
        return logsumexp(self, *args, **kwargs)

    batch = collate_pairs(split_of(tokenizer), [0, 1, 2, 3], tokenizer.pad_token_id)
    kwargs = dict(input_ids=batch.pairs.input_ids, attention_mask=batch.pairs.attention_mask,
                  position_ids=batch.pairs.position_ids, use_cache=False)
    monkeypatch.setattr(torch.Tensor, "logsumexp", spy)
    with torch.no_grad(), precision("bf16", "cpu"):
        hidden = model.base_model(**kwargs).last_hidden_state  # fp32 out of the final layer norm
        forward = PolicyForward.of(model, batch)
        dist = reference_distribution(model, batch)
    with torch.no_grad():
        assert not torch.equal(hidden, model.base_model(**kwargs).last_hidden_state)  # the body ran in bf16
    with torch.no_grad():
        expected = F.linear(hidden[:, :-1][batch.pairs.response_mask[:, 1:]].float(),
                            model.get_output_embeddings().weight)  # fp32, no autocast
    assert len(seen) == 2
    for logits in seen:
        assert logits.dtype == torch.float32
        assert torch.equal(logits, expected)
        assert not bf16_representable(logits)  # a bf16 head's logits would be
    assert forward.logsumexp.dtype == dist.logsumexp.dtype == torch.float32
    assert torch.equal(forward.logsumexp, dist.logsumexp)
    kl = forward.seq_kl(dist, batch)
    assert torch.equal(kl[0], torch.zeros(4)) and torch.equal(kl[1], torch.zeros(4))


# ---------------------------------------------------------------- bf16: policy = reference at step 0


def capture_loss(monkeypatch, seen: list):
    """A registered loss that records the policy's and reference's PairLogps and TDPO's seq_kl."""
    monkeypatch.setattr(p2o.losses.registry, "LOSSES", dict(LOSSES))

    @register("capture", paper="a test", inputs={"seq_kl": {}, "snapshot": {}}, beta=BETA)
    def capture(policy, reference, *, beta=0.1, seq_kl=None, snapshot=None):
        seen.append((policy.detach(), reference, snapshot, seq_kl))
        return (policy.chosen - policy.rejected).mean() * beta, {}


def bf16_references(model, splits, pad_id):
    return {s.dataset: compute_reference_logps(model, s, TOK_SETUP, pad_id, autocast="bf16") for s in splits}


def first_step(setup, refs, tmp_path, monkeypatch):
    """(policy, reference, snapshot, seq_kl) the loss saw at the first step of bf16 training on whole
    splits (before any update), and that step's log record."""
    tok, model, splits, _ = setup
    seen: list = []
    capture_loss(monkeypatch, seen)
    cfg = OptimConfig(lr=1e-3, batch_size=4, epochs=1, warmup_ratio=0.0, autocast="bf16")
    with JsonlLog(tmp_path / "log.jsonl") as log:
        train_preference(copy.deepcopy(model), splits, refs, MethodSpec("c", "capture", {"beta": 0.1}), cfg, 0,
                         tok.pad_token_id, log, reference_model=copy.deepcopy(model))  # made frozen there
    return seen[0], json.loads(open(tmp_path / "log.jsonl").readline())


def test_policy_equals_reference_at_step_0_under_bf16(setup, tmp_path, monkeypatch):
    """Training under bf16: at the first step the policy's, the snapshot's and the in-step reference
    model's log-probs equal the precomputed bf16 reference to fp32 rounding; TDPO's sequential KL is 0."""
    tok, model, splits, _ = setup
    (policy, reference, snapshot, (kl_chosen, kl_rejected)), record = first_step(
        setup, bf16_references(model, splits, tok.pad_token_id), tmp_path, monkeypatch)
    for ours in (policy, snapshot):
        assert (ours.chosen - reference.chosen).abs().max() <= FP32_TOL
        assert (ours.rejected - reference.rejected).abs().max() <= FP32_TOL
    assert record["reference/logp_gap"] <= FP32_TOL  # the in-step reference model, same path
    assert kl_chosen.abs().max() <= FP32_TOL and kl_rejected.abs().max() <= FP32_TOL


def test_an_fp32_reference_misses_a_bf16_policy(setup, tmp_path, monkeypatch):
    """The check above has teeth: against fp32 reference log-probs (what the reference job wrote before)
    the bf16 body's rounding alone puts the step-0 policy far outside the tolerance."""
    _, _, _, fp32_refs = setup
    (policy, reference, _, _), _ = first_step(setup, fp32_refs, tmp_path, monkeypatch)
    gap = torch.cat([policy.chosen - reference.chosen, policy.rejected - reference.rejected]).abs().max()
    assert gap > 10 * FP32_TOL


def test_evaluation_under_bf16_scores_the_reference_as_itself(setup):
    """Evaluation at the training's precision: a policy equal to the reference has margins and KL 0."""
    tok, model, splits, _ = setup
    refs = bf16_references(model, splits, tok.pad_token_id)
    with precision("bf16", "cpu"):
        metrics = evaluate_split(copy.deepcopy(model), model, splits[0], refs["hh"], beta=0.5,
                                 pad_id=tok.pad_token_id, progress=False, per_pair=True)
    assert max(abs(m) for m in metrics["pairs"]["margin"]) <= FP32_TOL
    assert metrics["eval_kl/token_mean"] == 0.0 and metrics["eval_reference/max_abs_gap"] <= FP32_TOL


def test_a_reference_at_another_precision_is_refused(setup, tmp_path):
    tok, model, splits, _ = setup
    refs = bf16_references(model, splits, tok.pad_token_id)
    refs["hh"].save(tmp_path / "ref.pt")
    assert ReferenceLogps.load(tmp_path / "ref.pt", splits[0], TOK_SETUP, "bf16").autocast == "bf16"
    assert refs["hh"].prefix(2).autocast == "bf16"
    with pytest.raises(ValueError, match="autocast 'bf16', this run uses 'none'"):
        ReferenceLogps.load(tmp_path / "ref.pt", splits[0], TOK_SETUP, "none")


def test_training_autocast_is_the_shared_precision():
    assert isinstance(autocast(OptimConfig(autocast="bf16"), "cpu"), torch.autocast)
    assert not isinstance(autocast(OptimConfig(), "cpu"), torch.autocast)
    with pytest.raises(ValueError, match="autocast 'fp16'"):
        precision("fp16", "cpu")
