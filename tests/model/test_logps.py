"""Tokenisation, padding invariance and the one-forward log-probs, on tiny real models."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from p2o.config import TokenizeConfig
from p2o.model.logps import pair_logps, response_logits, sequence_logps
from p2o.losses import dpo, p2o
from p2o.model.tokenize import batch_indices, collate_pairs

from tiny_models import PROMPTS, split_of


def test_truncation_keeps_prompt_end_and_response_start(tokenizer):
    cfg = TokenizeConfig(max_length=12, max_prompt_length=5)
    split = split_of(tokenizer, cfg)
    full = split_of(tokenizer)
    for i in range(len(PROMPTS)):
        assert split.prompt[i] == full.prompt[i][-5:]  # the end of the prompt
        budget = 12 - len(split.prompt[i])
        assert split.chosen[i] == full.chosen[i][:budget]  # the start of the response
        assert len(split.prompt[i]) + len(split.rejected[i]) <= 12
    eos = tokenizer.eos_token_id
    assert all(r[-1] == eos for r in full.chosen + full.rejected)  # EOS closes every untruncated response


def test_response_mask_marks_only_response_tokens(tokenizer):
    split = split_of(tokenizer)
    batch = collate_pairs(split, [0, 1, 2, 3], tokenizer.pad_token_id, with_mismatched=True)
    counts = batch.pairs.response_mask.sum(-1).tolist()
    assert counts == [len(split.chosen[i]) for i in range(4)] + [len(split.rejected[i]) for i in range(4)]
    for row, i in enumerate([0, 1, 2, 3] * 2):
        ids = batch.pairs.input_ids[row][batch.pairs.response_mask[row]].tolist()
        assert ids == (split.chosen[i] if row < 4 else split.rejected[i])
        p = len(split.prompt[i])
        assert batch.pairs.input_ids[row, :p].tolist() == split.prompt[i]
        assert not batch.pairs.response_mask[row, :p].any()  # prompt tokens never enter a loss
    # KL rows: prompt i with the chosen response of pair i+1
    assert batch.mismatched.input_ids[0][batch.mismatched.response_mask[0]].tolist() == split.chosen[1]


def test_padding_does_not_change_log_probs(tokenizer, model):
    """A pair's log-probs alone equal its log-probs in a batch with longer sequences (1e-5)."""
    split = split_of(tokenizer)
    pad = tokenizer.pad_token_id
    together = pair_logps(model, collate_pairs(split, [0, 1, 2, 3], pad))
    lengths = [max(len(split.chosen[i]), len(split.rejected[i])) + len(split.prompt[i]) for i in range(4)]
    assert len(set(lengths)) > 1  # the batch really is padded
    for i in range(4):
        alone = pair_logps(model, collate_pairs(split, [i], pad))
        assert abs(alone.chosen.item() - together.chosen[i].item()) < 1e-5
        assert abs(alone.rejected.item() - together.rejected[i].item()) < 1e-5
        assert alone.chosen_tokens.item() == together.chosen_tokens[i].item()


def test_log_probs_match_a_plain_per_sequence_computation(tokenizer, model):
    """Independent check: log-softmax of the full logits of the unpadded sequence, summed in Python."""
    split = split_of(tokenizer)
    lp = pair_logps(model, collate_pairs(split, [0, 1, 2, 3], tokenizer.pad_token_id))
    for i in range(4):
        ids = torch.tensor([split.prompt[i] + split.chosen[i]])
        with torch.no_grad():
            logprobs = model(ids).logits[0].log_softmax(-1)
        p = len(split.prompt[i])
        expected = sum(logprobs[t - 1, ids[0, t]].item() for t in range(p, ids.shape[1]))
        assert lp.chosen[i].item() == pytest.approx(expected, abs=1e-4)
        assert lp.chosen_mean[i].item() == pytest.approx(expected / len(split.chosen[i]), abs=1e-5)


def tiny_llama(vocab):
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)).eval()


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_head_only_logits_equal_the_full_forward(tokenizer, model, arch):
    m = model if arch == "gpt2" else tiny_llama(len(tokenizer))
    batch = collate_pairs(split_of(tokenizer), [0, 1, 2, 3], tokenizer.pad_token_id).pairs
    logits, labels, rows = response_logits(m, batch)
    with torch.no_grad():
        full = m(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                 position_ids=batch.position_ids).logits[:, :-1][batch.response_mask[:, 1:]]
    assert torch.allclose(logits, full, atol=1e-5)
    assert labels.tolist() == batch.input_ids[:, 1:][batch.response_mask[:, 1:]].tolist()


def test_one_forward_serves_chosen_and_rejected(tokenizer, model):
    calls = []
    handle = model.base_model.register_forward_hook(lambda m, i, o: calls.append(1))
    try:
        batch = collate_pairs(split_of(tokenizer), [0, 1, 2], tokenizer.pad_token_id)
        pair_logps(model, batch)
    finally:
        handle.remove()
    assert len(calls) == 1 and batch.pairs.input_ids.shape[0] == 6


def test_length_grouped_batches_cover_every_row_once(tokenizer):
    split = split_of(tokenizer)
    g = torch.Generator().manual_seed(0)
    batches = batch_indices(split, 3, g)
    assert sorted(i for b in batches for i in b) == list(range(len(split)))
    assert batch_indices(split, 3, torch.Generator().manual_seed(0)) == batches  # seeded


def test_first_p2o_step_has_dpo_gradient_on_a_model(tokenizer, model):
    """At the first step π = π_ref = π_snap, so ρ = 1 and Δh = 0: P²O's parameter gradient (with
    the paper's ε and λ) equals DPO's exactly; the ratio and KL terms contribute nothing there."""
    policy_model = copy.deepcopy(model)
    batch = collate_pairs(split_of(tokenizer), [0, 1, 2, 3], tokenizer.pad_token_id)
    with torch.no_grad():
        reference = pair_logps(model, batch)

    def grads(loss_fn):
        policy_model.zero_grad()
        policy = pair_logps(policy_model, batch)
        loss_fn(policy).backward()
        return [p.grad.clone() for p in policy_model.parameters()]

    g_p2o = grads(lambda pol: p2o(pol, reference, pol.detach(), beta=0.5, eps_clip=0.15, kl_coef=0.08)[0])
    g_dpo = grads(lambda pol: dpo(pol, reference, beta=0.5)[0])
    assert all(torch.allclose(a, b, atol=1e-7) for a, b in zip(g_p2o, g_dpo))
    assert any(a.abs().sum() > 0 for a in g_dpo)


def test_sequence_logps_counts(tokenizer, model):
    split = split_of(tokenizer)
    batch = collate_pairs(split, [0, 1], tokenizer.pad_token_id)
    sums, counts = sequence_logps(model, batch.pairs)
    assert counts.tolist() == [len(split.chosen[0]), len(split.chosen[1]), len(split.rejected[0]),
                               len(split.rejected[1])]
    assert torch.all(sums < 0)
