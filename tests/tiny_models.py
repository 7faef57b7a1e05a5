"""Tiny models and splits shared by the model, loss and training tests (module-scoped fixtures).

``tokenizer``/``model``/``split_of``: four hand-written pairs, a 2-layer model (log-prob tests).
``setup``: a 1-layer model, two 4-pair datasets and their reference log-probs (training tests);
``workdir``: the same on disk, for the stages.
"""

from __future__ import annotations

import pytest

from p2o.config import ModelConfig, TinyModelConfig, TokenizeConfig
from p2o.model.loading import build_tiny_model, train_bpe_tokenizer
from p2o.model.reference import compute_reference_logps
from p2o.model.tokenize import tokenize_pairs

PROMPTS = [
    "\n\nHuman: What is the capital of France?\n\nAssistant:",
    "\n\nHuman: Can you help me write a short poem about the sea and the wind at night?\n\nAssistant:",
    "\n\nHuman: hi\n\nAssistant:",
    "\n\nHuman: How do I bake bread?\n\nAssistant: Do you have yeast?\n\nHuman: Yes.\n\nAssistant:",
]
CHOSEN = [" Paris.", " The sea sings softly, the wind replies, and stars keep watch in quiet skies.",
          " Hello! How can I help you today?", " Mix flour, water, salt and yeast, knead, let it rise, then bake."]
REJECTED = [" I do not know.", " No.", " Go away and stop asking me things, I am busy with other work.",
            " Buy some."]


@pytest.fixture(scope="module")
def tokenizer():
    return train_bpe_tokenizer(PROMPTS + CHOSEN + REJECTED, vocab_size=400)


@pytest.fixture(scope="module")
def model(tokenizer):
    cfg = ModelConfig(tiny=TinyModelConfig(n_layer=2, n_head=2, n_embd=32, n_positions=128))
    return build_tiny_model(cfg, tokenizer, seed=0).eval()


def split_of(tokenizer, cfg=TokenizeConfig(max_length=128, max_prompt_length=64)):
    ids = [f"p{i}" for i in range(len(PROMPTS))]
    return tokenize_pairs(tokenizer, "hh", ids, PROMPTS, CHOSEN, REJECTED, cfg)


TOPICS = ["tea", "bread", "rain", "maps", "bees", "jazz", "kites", "moss"]


@pytest.fixture(scope="module")
def setup():
    prompts = [f"\n\nHuman: Tell me about {t}.\n\nAssistant:" for t in TOPICS]
    chosen = [f" {t.capitalize()} is lovely; here is a clear answer about {t}." for t in TOPICS]
    rejected = [" No." for _ in TOPICS]
    tok = train_bpe_tokenizer(prompts + chosen + rejected, vocab_size=300)
    model = build_tiny_model(ModelConfig(tiny=TinyModelConfig(n_layer=1, n_head=2, n_embd=32, n_positions=64)),
                             tok, seed=0)
    splits = [tokenize_pairs(tok, name, [f"{name}{i}" for i in range(4)], prompts[k::2], chosen[k::2],
                             rejected[k::2], TokenizeConfig(64, 32)) for k, name in enumerate(["hh", "shp"])]
    refs = {s.dataset: compute_reference_logps(model, s, TokenizeConfig(64, 32), tok.pad_token_id) for s in splits}
    return tok, model, splits, refs


@pytest.fixture
def workdir(setup, tmp_path):
    """``setup`` on disk, for the stages that read files: an SFT model folder, its two splits as prepared
    splits and their reference log-probs."""
    import pandas as pd

    from p2o.io import write_jsonl
    from p2o.model.loading import save_model
    from p2o.stages import jobs

    tok, model, splits, _ = setup
    save_model(model, tok, tmp_path / "sft")
    for s in splits:
        rows = pd.DataFrame({"id": s.ids, "dataset": s.dataset, "prompt": [tok.decode(p) for p in s.prompt],
                             "chosen": [tok.decode(c) for c in s.chosen],
                             "rejected": [tok.decode(r) for r in s.rejected]})
        write_jsonl(tmp_path / "data" / f"{s.dataset}.jsonl", rows.to_dict("records"))
        jobs.reference(tmp_path / "sft", tmp_path / "data" / f"{s.dataset}.jsonl", s.dataset, TokenizeConfig(64, 32),
                       4, tmp_path / "reference" / f"{s.dataset}.pt")
    return tmp_path
