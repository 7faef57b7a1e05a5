"""What a training run cost: optimizer steps, forward and backward passes, tokens and FLOPs.

The original protocol gives P²O and PKTO K optimizer steps per batch and the baselines one, so a
fair comparison has to say what each run spent. ``training_compute`` replays a run's batch
schedule (``p2o.training.schedule.epoch_batches`` is a function of the seed) without touching a
model and counts, per batch of B pairs:

- K forward + backward passes of the policy over the 2B chosen and rejected rows;
- the forwards without gradient that the loss's declared inputs cost (``p2o.training.inputs``): one
  over the B mismatched rows for KTO's z₀, one of the reference model over the 2B rows for TDPO's
  sequential KL.

FLOPs follow Kaplan et al. 2020 ("Scaling Laws for Neural Language Models", §2.1,
https://arxiv.org/abs/2001.08361): a forward costs 2·N per token, N the non-embedding
parameters, plus 2·d·V per token where the LM head is applied (response tokens only here, see
``p2o.model.logps``); a backward costs twice its forward. The attention term 2·n_layer·n_ctx·d is left
out (under 5 % at these lengths). Held-out evaluations during training are not training compute
and are not counted.

Online runs (``p2o.training.online``) cannot replay their work, since the response lengths are
sampled: they count it as they go with ``Compute.add``. Generation is a forward over the prompt and
every sampled token but the last (KV-cached: each token passes the body once) with the LM head at each
sampled token; the proxy reward model and the critic are bodies of the policy's size (both come from
the SFT model) without the LM head, so their tokens count as body tokens with no head tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from p2o.config.methods import MethodSpec
from p2o.model.tokenize import TokenizedSplit
from p2o.training.inputs import step_inputs
from p2o.training.preference import method_inputs
from p2o.training.schedule import epoch_batches


@dataclass
class Compute:
    optimizer_steps: int = 0
    forward_passes: int = 0  # batch forwards of any model, with or without gradient
    backward_passes: int = 0
    forward_tokens: int = 0  # real (unpadded) tokens through the model body
    forward_head_tokens: int = 0  # tokens through the LM head (response tokens)
    backward_tokens: int = 0
    backward_head_tokens: int = 0
    generated_tokens: int = 0  # sampled response tokens (online runs; their forwards are counted above)

    def add(self, tokens: int, head_tokens: int = 0, backward: bool = False) -> None:
        """One forward (and with ``backward`` its backward) over ``tokens`` body tokens, ``head_tokens``
        of them through the LM head."""
        self.forward_passes += 1
        self.forward_tokens += tokens
        self.forward_head_tokens += head_tokens
        if backward:
            self.backward_passes += 1
            self.backward_tokens += tokens
            self.backward_head_tokens += head_tokens

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


def rows_work(split: TokenizedSplit, index: Sequence[int], rows: str) -> tuple[int, int]:
    """(tokens through the body, tokens through the LM head) of one forward over a batch's rows:
    ``pairs`` (the 2B chosen and rejected rows) or ``mismatched`` (the B mismatched rows)."""
    if rows == "pairs":
        return (sum(split.n_tokens(i) for i in index),
                sum(len(split.chosen[i]) + len(split.rejected[i]) for i in index))
    if rows == "mismatched":
        return (sum(len(split.prompt[i]) + len(split.mismatched_response(i)) for i in index),
                sum(len(split.mismatched_response(i)) for i in index))
    raise ValueError(f"unknown rows {rows!r}")


def training_compute(splits: Sequence[TokenizedSplit], batch_size: int, epochs: int, seed: int,
                     method: MethodSpec) -> Compute:
    """Replay the batch schedule of ``train_preference`` and count its work (see the module): K policy
    forward + backward passes over the pairs per batch, plus the extra forwards that the loss's
    declared inputs cost (``StepInput.forwards``)."""
    forwards = [f for s in step_inputs(method_inputs(method)).values() for f in s.forwards]
    c = Compute()
    k = method.inner_steps
    for _, split, index in epoch_batches(splits, batch_size, epochs, seed):
        tokens, head = rows_work(split, index, "pairs")
        c.optimizer_steps += k
        c.forward_passes += k
        c.backward_passes += k
        c.forward_tokens += k * tokens
        c.forward_head_tokens += k * head
        c.backward_tokens += k * tokens
        c.backward_head_tokens += k * head
        for _, rows in forwards:
            extra, extra_head = rows_work(split, index, rows)
            c.forward_passes += 1
            c.forward_tokens += extra
            c.forward_head_tokens += extra_head
    return c


def compute_record(c: Compute, model) -> dict:
    """The counts and the FLOPs estimate, as a training summary records them."""
    body, d_model, vocab = model_size(model)
    return {**asdict(c), "body_params": body, "d_model": d_model, "vocab": vocab, "flops": c.flops(body, d_model, vocab)}
