"""What a training run cost: optimizer steps, forward and backward passes, tokens and FLOPs.

The original protocol gives P²O and PKTO K optimizer steps per batch and the baselines one, so a
fair comparison has to say what each run spent. ``training_compute`` replays a run's batch
schedule (``train.epoch_batches`` is a function of the seed) without touching a model and counts,
per batch of B pairs:

- K forward + backward passes of the policy over the 2B chosen and rejected rows;
- one forward without gradient over the B mismatched rows when the loss needs KTO's z₀;
- ``reference_forwards`` forwards without gradient of the reference model over the 2B rows for
  losses that need its full distribution inside the step (TDPO).

FLOPs follow Kaplan et al. 2020 ("Scaling Laws for Neural Language Models", §2.1,
https://arxiv.org/abs/2001.08361): a forward costs 2·N per token, N the non-embedding
parameters, plus 2·d·V per token where the LM head is applied (response tokens only here, see
``p2o.model.logps``); a backward costs twice its forward. The attention term 2·n_layer·n_ctx·d is left
out (under 5 % at these lengths). Held-out evaluations during training are not training compute
and are not counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from p2o.losses import MethodSpec
from p2o.model.tokenize import TokenizedSplit


@dataclass
class Compute:
    optimizer_steps: int = 0
    forward_passes: int = 0  # batch forwards of any model, with or without gradient
    backward_passes: int = 0
    forward_tokens: int = 0  # real (unpadded) tokens through the model body
    forward_head_tokens: int = 0  # tokens through the LM head (response tokens)
    backward_tokens: int = 0
    backward_head_tokens: int = 0

    def flops(self, body_params: int, d_model: int, vocab: int) -> float:
        forward = 2 * body_params * self.forward_tokens + 2 * d_model * vocab * self.forward_head_tokens
        backward = 2 * (2 * body_params * self.backward_tokens + 2 * d_model * vocab * self.backward_head_tokens)
        return float(forward + backward)


def model_size(model) -> tuple[int, int, int]:
    """(non-embedding parameters, d_model, vocabulary size) of a causal LM."""
    embeddings = {id(p) for p in model.get_input_embeddings().parameters()}
    embeddings |= {id(p) for p in model.get_output_embeddings().parameters()}
    for name, module in model.named_modules():
        if name.endswith(("wpe", "embed_positions")):  # learned position embeddings
            embeddings |= {id(p) for p in module.parameters()}
    body = sum(p.numel() for p in model.parameters() if id(p) not in embeddings)
    return body, model.config.hidden_size, model.config.vocab_size


def training_compute(splits: Sequence[TokenizedSplit], batch_size: int, epochs: int, seed: int,
                     method: MethodSpec, reference_forwards: int = 0) -> Compute:
    """Replay the batch schedule of ``train_preference`` and count its work (see the module)."""
    from p2o.training.loop import epoch_batches

    c = Compute()
    k = method.inner_steps
    for _, split, index in epoch_batches(splits, batch_size, epochs, seed):
        tokens = sum(split.n_tokens(i) for i in index)  # both rows of every pair
        head = sum(len(split.chosen[i]) + len(split.rejected[i]) for i in index)
        c.optimizer_steps += k
        c.forward_passes += k
        c.backward_passes += k
        c.forward_tokens += k * tokens
        c.forward_head_tokens += k * head
        c.backward_tokens += k * tokens
        c.backward_head_tokens += k * head
        if method.needs_kl_rows:
            c.forward_passes += 1
            c.forward_tokens += sum(len(split.prompt[i]) + len(split.kl_response(i)) for i in index)
            c.forward_head_tokens += sum(len(split.kl_response(i)) for i in index)
        c.forward_passes += reference_forwards
        c.forward_tokens += reference_forwards * tokens
        c.forward_head_tokens += reference_forwards * head
    return c


def compute_record(c: Compute, model) -> dict:
    """The counts and the FLOPs estimate, as a training summary records them."""
    body, d_model, vocab = model_size(model)
    return {**asdict(c), "body_params": body, "flops": c.flops(body, d_model, vocab)}
