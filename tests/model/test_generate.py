"""Sampling from a causal LM (``p2o.model.generate``): seeded, batch-independent, KV-cached decoding that
agrees with a plain full-forward loop, EOS and truncation per row, prompt rendering."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from p2o.model.generate import (
    SamplingParams,
    dialogue_messages,
    encode_prompts,
    generate,
    render_prompt,
    sample_seed,
)
from p2o.model.judge import sample_logps

from tiny_models import PROMPTS

CHAT_TEMPLATE = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}<assistant>{% endif %}")


def tokens(samples):
    return [s.token_ids for s in samples]


def run(model, tokenizer, prompts=PROMPTS, ids=None, **params):
    return generate(model, tokenizer, encode_prompts(tokenizer, prompts, ids), SamplingParams(**params))


def tiny_llama(vocab):
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2,
                                        max_position_embeddings=128)).eval()


def greedy_without_cache(model, prompt: list[int], steps: int) -> list[int]:
    """The oracle: a full forward of the whole sequence at every step, one prompt, no padding."""
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(steps):
            ids.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
    return ids[len(prompt):]


def test_same_seed_same_samples_and_another_seed_others(model, tokenizer):
    a = run(model, tokenizer, max_new_tokens=8, n_samples=2, seed=3)
    b = run(model, tokenizer, max_new_tokens=8, n_samples=2, seed=3)
    assert [s.record() for s in a] == [s.record() for s in b]
    assert [(s.prompt_id, s.sample) for s in a] == [(str(p), k) for p in range(4) for k in range(2)]
    assert tokens(run(model, tokenizer, max_new_tokens=8, n_samples=2, seed=4)) != tokens(a)
    assert a[0].token_ids != a[1].token_ids  # two samples of one prompt differ


def test_samples_do_not_depend_on_batch_size_or_the_other_prompts(model, tokenizer):
    kw = dict(max_new_tokens=10, n_samples=3, temperature=0.8, top_p=0.9, seed=1)
    batched = run(model, tokenizer, batch_size=12, **kw)
    assert tokens(run(model, tokenizer, batch_size=1, **kw)) == tokens(batched)
    alone = run(model, tokenizer, prompts=PROMPTS[2:3], ids=["2"], batch_size=5, **kw)
    assert tokens(alone) == tokens(batched)[6:9]
    assert sample_seed(1, "2", 0) != sample_seed(1, "2", 1) != sample_seed(2, "2", 1)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_left_padded_batched_greedy_equals_one_at_a_time_and_the_uncached_loop(model, tokenizer, arch):
    m = model if arch == "gpt2" else tiny_llama(len(tokenizer))
    batched = run(m, tokenizer, max_new_tokens=12, temperature=0, batch_size=4)
    single = run(m, tokenizer, max_new_tokens=12, temperature=0, batch_size=1)
    assert tokens(batched) == tokens(single)
    enc = encode_prompts(tokenizer, PROMPTS)
    assert len({len(t) for t in enc.token_ids}) == 4  # four prompt lengths: real left padding
    assert tokens(batched) == [greedy_without_cache(m, p, 12) for p in enc.token_ids]
    for a, b in zip(batched, single):
        assert a.logprob == pytest.approx(b.logprob, abs=1e-4)


def test_a_tiny_nucleus_is_greedy(model, tokenizer):
    greedy = run(model, tokenizer, max_new_tokens=8, temperature=0)
    assert tokens(run(model, tokenizer, max_new_tokens=8, temperature=1.0, top_p=1e-6, n_samples=1)) == tokens(greedy)


def test_eos_stops_its_row_and_truncation_is_flagged(model, tokenizer):
    steps = 12
    free = run(model, tokenizer, max_new_tokens=steps, temperature=0)
    assert all(s.truncated and not s.eos and s.n_tokens == steps for s in free)  # random model: no EOS
    stop = free[0].token_ids[3]
    enc = encode_prompts(tokenizer, PROMPTS)
    stopped = generate(model, tokenizer, enc, SamplingParams(max_new_tokens=steps, temperature=0, batch_size=4),
                       stop_ids=[stop])
    for f, s in zip(free, stopped):
        if stop in f.token_ids:
            k = f.token_ids.index(stop)
            assert s.token_ids == f.token_ids[: k + 1] and s.eos and not s.truncated and s.n_tokens == k + 1
        else:
            assert s.token_ids == f.token_ids and s.truncated and not s.eos
    assert stopped[0].eos and stopped[0].n_tokens <= 4
    assert any(s.truncated for s in stopped)  # the others ran on: rows stop one by one


def test_logprob_is_the_models_sequence_logprob(model, tokenizer):
    enc = encode_prompts(tokenizer, PROMPTS)
    samples = generate(model, tokenizer, enc, SamplingParams(max_new_tokens=10, n_samples=2, seed=0))
    scored = sample_logps(model, enc, samples, tokenizer.pad_token_id, batch_size=3)
    assert [s.logprob for s in samples] == pytest.approx(list(scored), abs=1e-4)


def test_prompts_longer_than_the_model_raise(model, tokenizer):
    with pytest.raises(ValueError, match="max_prompt_tokens"):
        run(model, tokenizer, max_new_tokens=120)
    enc = encode_prompts(tokenizer, PROMPTS, max_prompt_tokens=8)
    assert all(len(t) == 8 for t in enc.token_ids)
    assert len(generate(model, tokenizer, enc, SamplingParams(max_new_tokens=120, temperature=0))) == 4


def test_prompt_rendering(tokenizer):
    assert dialogue_messages(PROMPTS[3]) == [
        {"role": "user", "content": "How do I bake bread?"}, {"role": "assistant", "content": "Do you have yeast?"},
        {"role": "user", "content": "Yes."}]
    assert dialogue_messages("plain text") == [{"role": "user", "content": "plain text"}]
    assert render_prompt(PROMPTS[0], tokenizer) == (PROMPTS[0], "dataset")  # no chat template
    assert encode_prompts(tokenizer, PROMPTS).style == "dataset"
    chat = copy.deepcopy(tokenizer)
    chat.chat_template = CHAT_TEMPLATE
    text, style = render_prompt(PROMPTS[3], chat)
    assert style == "chat"
    assert text == "<user>How do I bake bread?\n<assistant>Do you have yeast?\n<user>Yes.\n<assistant>"
    assert render_prompt(PROMPTS[3], chat, style="dataset") == (PROMPTS[3], "dataset")
    with pytest.raises(ValueError, match="no chat template"):
        render_prompt(PROMPTS[0], tokenizer, style="chat")


def test_a_model_that_emits_eos_at_once(tokenizer):
    """A model whose every next token is EOS: one token per row, eos, never truncated, empty text."""
    torch.manual_seed(0)
    m = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_layer=1, n_head=2, n_embd=16, n_positions=64)).eval()
    with torch.no_grad():  # every final hidden state is all ones, and only EOS's (tied) embedding points there
        m.transformer.ln_f.weight.zero_()
        m.transformer.ln_f.bias.fill_(1.0)
        m.transformer.wte.weight[tokenizer.eos_token_id] = 1.0
    samples = run(m, tokenizer, max_new_tokens=5, temperature=0)
    assert all(s.token_ids == [tokenizer.eos_token_id] and s.eos and not s.truncated and s.text == "" for s in samples)
