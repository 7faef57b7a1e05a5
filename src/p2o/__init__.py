"""p2o: offline preference optimisation of language models (DPO, IPO, KTO, P2O, PKTO).

The library behind the p2o Snakemake workflow. Every module is usable on its own:

    p2o.data      raw hub rows -> table of pairs, deterministic splits, demo data
    p2o.model.tokenize  pairs -> token ids (prompt tokens never enter a loss), padding-safe batches
    p2o.model.logps     one forward for chosen + rejected -> per-sequence log-probs
    p2o.losses    the losses as pure functions of per-sequence log-prob tensors, by name
    p2o.model.loading    causal LMs by hub id, local path, the tiny offline GPT-2 or SmolLM2 (GGUF)
    p2o.training.loop     SFT (the reference model) and preference training
    p2o.model.evaluate  reward accuracy, margins and exact token-mean KL on held-out splits
"""

__version__ = "0.1.0"
