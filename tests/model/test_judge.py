"""Gold judges of generated text (``p2o.model.judge``): a reward model read from a folder, offline, scores
as its own forward does; the planted judge is ``planted_score``; KL terms from completion log-probs."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from transformers import GPT2Config, GPT2ForSequenceClassification

from p2o.data.demo_text import HH_SENTENCES, compose, planted_score
from p2o.model.generate import SamplingParams, encode_prompts, generate
from p2o.model.judge import PlantedJudge, RewardModelJudge, completion_logps, make_judge, sample_logps
from p2o.model.loading import train_bpe_tokenizer
from p2o.model.tokenize import pad_sequences
from p2o.model.logps import sequence_logps
from p2o.report.winrate import kl_estimates

from tiny_models import CHOSEN, PROMPTS, REJECTED

CHAT_TEMPLATE = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}<assistant>{% endif %}")
COMPLETIONS = CHOSEN[:2] + REJECTED[2:]


@pytest.fixture(scope="module")
def reward_model_dir(tmp_path_factory):
    """A tiny randomly initialised GPT-2 reward model and its tokenizer, saved as a hub folder would be."""
    tok = train_bpe_tokenizer(PROMPTS + CHOSEN + REJECTED, vocab_size=350)
    torch.manual_seed(0)
    rm = GPT2ForSequenceClassification(GPT2Config(vocab_size=len(tok), n_layer=1, n_head=2, n_embd=32,
                                                  n_positions=128, num_labels=1, pad_token_id=tok.pad_token_id))
    out = tmp_path_factory.mktemp("rm")
    rm.save_pretrained(out / "plain")
    tok.save_pretrained(out / "plain")
    tok.chat_template = CHAT_TEMPLATE
    rm.save_pretrained(out / "chat")
    tok.save_pretrained(out / "chat")
    return out


def direct_scores(judge: RewardModelJudge, texts=None, pairs=None) -> list[float]:
    """The reward model's own forward, one unpadded row at a time."""
    rows = [judge.tokenizer(t, add_special_tokens=False) for t in texts] if texts is not None else \
        [judge.tokenizer(*p) for p in pairs]
    with torch.no_grad():
        return [judge.model(input_ids=torch.tensor([r["input_ids"]])).logits[0, 0].item() for r in rows]


def test_reward_model_judge_scores_as_a_direct_forward(reward_model_dir):
    judge = make_judge(str(reward_model_dir / "plain"), batch_size=3, input_format="concat")
    assert isinstance(judge, RewardModelJudge)
    scores = judge.score(PROMPTS, COMPLETIONS)
    texts = [p + c for p, c in zip(PROMPTS, COMPLETIONS)]
    assert scores.dtype == np.float64 and scores.shape == (4,)
    assert scores == pytest.approx(direct_scores(judge, texts=texts), abs=1e-5)
    assert len(set(np.round(scores, 6))) == 4  # four different rows, four different rewards


def test_reward_model_judge_formats(reward_model_dir):
    pair = RewardModelJudge(reward_model_dir / "plain", batch_size=4)
    assert pair.input_format == "pair"  # no chat template
    questions = ["What is the capital of France?", PROMPTS[1].split("Human: ")[1].split("\n\nAssistant:")[0],
                 "hi", PROMPTS[3].strip()]  # a one-turn prompt gives its question, a dialogue itself
    expected = direct_scores(pair, pairs=[(q, c.strip()) for q, c in zip(questions, COMPLETIONS)])
    assert pair.score(PROMPTS, COMPLETIONS) == pytest.approx(expected, abs=1e-5)

    chat = RewardModelJudge(reward_model_dir / "chat", batch_size=2)
    assert chat.input_format == "chat"
    text = chat.tokenizer.decode(chat.encode(PROMPTS[3], " Buy some.")["input_ids"])
    assert text == "<user>How do I bake bread?\n<assistant>Do you have yeast?\n<user>Yes.\n<assistant>Buy some.\n"
    texts = [chat.tokenizer.decode(chat.encode(p, c)["input_ids"]) for p, c in zip(PROMPTS, COMPLETIONS)]
    assert chat.score(PROMPTS, COMPLETIONS) == pytest.approx(direct_scores(chat, texts=texts), abs=1e-5)


def test_reward_model_judge_keeps_the_completion_when_cutting(reward_model_dir):
    judge = RewardModelJudge(reward_model_dir / "plain", input_format="concat", max_length=6)
    ids = judge.encode(PROMPTS[1], COMPLETIONS[1])["input_ids"]
    full = judge.tokenizer(PROMPTS[1] + COMPLETIONS[1])["input_ids"]
    assert ids == full[-6:]


def test_planted_judge_is_planted_score():
    rng = random.Random(0)
    prompts = ["\n\nHuman: How much time should I spend on tea each week?\n\nAssistant:"] * 4 + \
        ["\n\nHuman: I have 3 cats and 12 plants.\n\nAssistant:"] * 2
    completions = [compose(rng, HH_SENTENCES, "tea", k) for k in range(4)] + \
        [" You have 3 cats and 12 plants.", " Feed the 3 cats 2 times a day, water the plants 2 times a week."]
    judge = make_judge("planted")
    assert isinstance(judge, PlantedJudge)
    scores = judge.score(prompts, completions)
    assert list(scores) == [planted_score(p, c) for p, c in zip(prompts, completions)]
    assert list(scores) == [0, 1, 2, 3, 0, 1]  # numbers in the prompt or repeated earn nothing
    with pytest.raises(ValueError, match="completions"):
        judge.score(prompts, completions[:3])


def test_completion_logps_are_sequence_logps(model, tokenizer):
    prompt_ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in PROMPTS]
    completion_ids = [tokenizer(c, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for c in CHOSEN]
    ours = completion_logps(model, prompt_ids, completion_ids, tokenizer.pad_token_id, batch_size=3)
    with torch.no_grad():
        for i in range(4):
            one = pad_sequences([prompt_ids[i]], [completion_ids[i]], tokenizer.pad_token_id)
            assert ours[i] == pytest.approx(sequence_logps(model, one)[0].item(), abs=1e-4)


def test_kl_of_a_model_against_itself_is_zero(model, tokenizer):
    enc = encode_prompts(tokenizer, PROMPTS)
    samples = generate(model, tokenizer, enc, SamplingParams(max_new_tokens=8, n_samples=2))
    logp = sample_logps(model, enc, samples, tokenizer.pad_token_id)
    ref = sample_logps(model, enc, samples, tokenizer.pad_token_id)
    assert kl_estimates(logp, ref) == {"kl_k1": 0.0, "kl_k2": 0.0, "kl_k3": 0.0}
