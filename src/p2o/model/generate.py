"""Sampling completions from a causal LM: batched, KV-cached, left-padded, seeded per sample.

    prompts = encode_prompts(tokenizer, texts, ids, style="auto", max_prompt_tokens=...)
    samples = generate(model, tokenizer, prompts, SamplingParams(max_new_tokens=64, n_samples=4))

Prompts. ``render_prompt`` turns a prompt as the prepared splits store it (the Anthropic dialogue
``"\\n\\nHuman: …\\n\\nAssistant:"``, ``p2o.data.pairs``) into model input: with ``style="chat"`` the
dialogue's turns go through the tokenizer's chat template (``add_generation_prompt``), with
``"dataset"`` the text is kept as it is, and ``"auto"`` (the default) takes the chat template when the
tokenizer has one. p2o's SFT and preference training read the dialogue text itself, never a chat
template, so for a policy trained here ``"dataset"`` is the form it has seen; ``EncodedPrompts.style``
says which one was used. Prompt tokens are cut from the left (their end is kept), as in
``p2o.model.tokenize``.

Decoding. Each batch holds rows (one prompt, one sample index) of similar prompt length (sorted by
length, then cut into ``batch_size`` rows), left-padded, with ``position_ids`` counting real tokens
only, so a row's positions are those it has alone. The prompt runs once through the model filling a
``DynamicCache``; each later step feeds one token per row. A row stops at the tokenizer's EOS (kept as
its last token and scored: stopping is part of π(y|x), as p2o appends EOS to every training response)
or after ``max_new_tokens`` (``truncated``). Finished rows leave the batch and its cache.

Sampling. ``temperature`` 0 is greedy (argmax, the first of equal logits); otherwise the softmax of
logits / temperature, restricted to the smallest top set of mass ≥ ``top_p`` (nucleus sampling,
Holtzman et al. 2020), is sampled by inverse CDF with uniforms drawn in advance from the row's own
``torch.Generator``, seeded by ``sample_seed(seed, prompt_id, sample)``. The random stream of a
sample therefore depends on neither batch size, batch composition nor which other prompts are
generated. What holds exactly: the same call gives the same samples bit for bit (same machine,
threads and library versions). What holds up to floating point: another batch size or set of prompts
changes the shapes of the matmuls, so logits can move in their last bits, and a token changes only
where a uniform falls within that rounding of a CDF boundary, or two greedy logits tie within it
(not seen in the tests, which compare batched against one-at-a-time runs token for token).

``Sample.logprob`` is log π(y|x) of the sampled tokens under the model itself (untempered, no top-p,
fp32 logits from the last hidden state, as ``p2o.model.logps``): the term a Monte-Carlo KL needs. It
is a log-prob of the sampling distribution only when ``temperature`` is 1 and ``top_p`` 1.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor
from tqdm.auto import tqdm

from p2o.data.pairs import ASSISTANT, HUMAN
from p2o.model.logps import HEAD_ONLY_MODEL_TYPES, fp32_head, precision

STYLES = ("auto", "chat", "dataset")


# --------------------------------------------------------------------------- prompts


def dialogue_messages(prompt: str) -> list[dict[str, str]]:
    """Chat messages of a ``"\\n\\nHuman: …\\n\\nAssistant: …\\n\\nAssistant:"`` prompt (the final empty
    Assistant turn dropped); a text without that form is one user message."""
    marks = sorted([(i, "user", len(HUMAN)) for i in _find_all(prompt, HUMAN)]
                   + [(i, "assistant", len(ASSISTANT)) for i in _find_all(prompt, ASSISTANT)])
    if not marks or marks[0][0] != 0:
        return [{"role": "user", "content": prompt.strip()}]
    messages = []
    for k, (start, role, width) in enumerate(marks):
        end = marks[k + 1][0] if k + 1 < len(marks) else len(prompt)
        messages.append({"role": role, "content": prompt[start + width: end].strip()})
    if messages[-1]["role"] == "assistant" and not messages[-1]["content"]:
        messages.pop()
    return messages


def _find_all(text: str, mark: str) -> list[int]:
    found, i = [], text.find(mark)
    while i >= 0:
        found.append(i)
        i = text.find(mark, i + len(mark))
    return found


def render_prompt(prompt: str, tokenizer, style: str = "auto") -> tuple[str, str]:
    """``(text, style used)``: ``prompt`` through the tokenizer's chat template (``"chat"``) or as it is
    (``"dataset"``); ``"auto"`` is ``"chat"`` when the tokenizer has a chat template."""
    if style not in STYLES:
        raise ValueError(f"prompt style {style!r}: expected one of {STYLES}")
    if style == "auto":
        style = "chat" if getattr(tokenizer, "chat_template", None) else "dataset"
    if style == "dataset":
        return prompt, style
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("prompt style 'chat': the tokenizer has no chat template")
    text = tokenizer.apply_chat_template(dialogue_messages(prompt), tokenize=False, add_generation_prompt=True)
    return text, style


@dataclass(frozen=True)
class EncodedPrompts:
    """Prompts ready to decode: ``ids`` (one per prompt, the seed's key), the rendered ``texts``, their
    ``token_ids`` (cut to ``max_prompt_tokens`` from the left) and the ``style`` used."""

    ids: list[str]
    texts: list[str]
    token_ids: list[list[int]]
    style: str

    def __len__(self) -> int:
        return len(self.ids)


def encode_prompts(tokenizer, prompts: Sequence[str], ids: Sequence[str] | None = None, style: str = "auto",
                   max_prompt_tokens: int | None = None) -> EncodedPrompts:
    """Render and tokenise ``prompts``; ``ids`` default to ``"0"``, ``"1"``, …. A chat template's text
    holds its own special tokens, so none are added here (as for training prompts)."""
    ids = [str(i) for i in range(len(prompts))] if ids is None else [str(i) for i in ids]
    if len(ids) != len(prompts) or len(set(ids)) != len(ids):
        raise ValueError("prompt ids must be unique, one per prompt")
    rendered = [render_prompt(p, tokenizer, style) for p in prompts]
    texts = [t for t, _ in rendered]
    used = rendered[0][1] if rendered else ("dataset" if style == "auto" else style)
    token_ids = tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
    if max_prompt_tokens is not None:
        token_ids = [t[-max_prompt_tokens:] for t in token_ids]
    for i, t in zip(ids, token_ids):
        if not t:
            raise ValueError(f"prompt {i!r} tokenises to nothing")
    return EncodedPrompts(ids, texts, [list(t) for t in token_ids], used)


# --------------------------------------------------------------------------- sampling


@dataclass(frozen=True)
class SamplingParams:
    """How to sample: ``temperature`` 0 is greedy; ``n_samples`` completions per prompt; ``batch_size``
    rows (prompt × sample) decoded together."""

    max_new_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0
    n_samples: int = 1
    seed: int = 0
    batch_size: int = 16

    def __post_init__(self):
        if self.max_new_tokens < 1 or self.n_samples < 1 or self.batch_size < 1:
            raise ValueError("max_new_tokens, n_samples and batch_size must be at least 1")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError("temperature must be >= 0 and top_p in (0, 1]")


@dataclass(frozen=True)
class Sample:
    """One completion: ``token_ids`` include the EOS when the row stopped there (``eos``); ``text`` is
    their decoding without special tokens; ``truncated`` = stopped by ``max_new_tokens`` without EOS;
    ``logprob`` = Σ log π(token) under the generating model, untempered (see the module doc)."""

    prompt_id: str
    sample: int
    text: str
    token_ids: list[int] = field(repr=False)
    n_tokens: int
    eos: bool
    truncated: bool
    logprob: float
    prompt_tokens: int

    def record(self) -> dict:
        """The tidy row: one per sample, the fields above."""
        return asdict(self)


def sample_seed(seed: int, prompt_id: str, sample: int) -> int:
    """A 63-bit seed of the row's generator from (seed, prompt id, sample index) alone."""
    digest = hashlib.sha256(f"{seed}\0{prompt_id}\0{sample}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def model_max_positions(model) -> int | None:
    """The longest sequence the model's position embeddings take (None when it does not say)."""
    cfg = model.config
    return getattr(cfg, "n_positions", None) or getattr(cfg, "max_position_embeddings", None)


@torch.inference_mode()
def generate(model, tokenizer, prompts: EncodedPrompts, params: SamplingParams, device: str = "cpu",
             autocast: str = "none", stop_ids: Sequence[int] | None = None, progress: bool = False) -> list[Sample]:
    """``params.n_samples`` completions of every prompt, ordered by prompt then sample index.

    A row stops at any of ``stop_ids`` (default: the tokenizer's EOS), which then counts as its EOS."""
    limit = model_max_positions(model)
    longest = max((len(t) for t in prompts.token_ids), default=0)
    if limit is not None and longest + params.max_new_tokens > limit:
        raise ValueError(f"a prompt of {longest} tokens plus max_new_tokens={params.max_new_tokens} exceeds the "
                         f"model's {limit} positions; encode with max_prompt_tokens={limit - params.max_new_tokens}")
    eos_id = tokenizer.eos_token_id
    stop_ids = list(stop_ids) if stop_ids is not None else ([] if eos_id is None else [eos_id])
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (eos_id or 0)
    model.eval()
    rows = sorted(((p, s) for p in range(len(prompts)) for s in range(params.n_samples)),
                  key=lambda r: (len(prompts.token_ids[r[0]]), r))
    batches = [rows[i: i + params.batch_size] for i in range(0, len(rows), params.batch_size)]
    out: dict[tuple[int, int], Sample] = {}
    for batch in tqdm(batches, desc="generate", unit="batch", leave=False, disable=not progress):
        seeds = [sample_seed(params.seed, prompts.ids[p], s) for p, s in batch]
        with precision(autocast, device):
            decoded = decode_batch(model, [prompts.token_ids[p] for p, _ in batch], seeds, params, stop_ids,
                                   pad_id, device)
        for (p, s), (tokens, eos, logprob) in zip(batch, decoded):
            text = tokenizer.decode(tokens[:-1] if eos else tokens, skip_special_tokens=True)  # the stop token left out
            out[p, s] = Sample(prompts.ids[p], s, text, tokens, len(tokens), eos, not eos, logprob,
                               len(prompts.token_ids[p]))
    return [out[r] for r in sorted(out)]


def decode_batch(model, prompt_ids: Sequence[list[int]], seeds: Sequence[int], params: SamplingParams,
                 stop_ids: Sequence[int], pad_id: int, device: str = "cpu") -> list[tuple[list[int], bool, float]]:
    """Decode one batch of rows: ``(token ids, stopped at a stop id, Σ log π)`` per row, in input order."""
    n, steps = len(prompt_ids), params.max_new_tokens
    stops = torch.tensor(list(stop_ids), dtype=torch.long)
    width = max(len(p) for p in prompt_ids)
    input_ids = torch.full((n, width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((n, width), dtype=torch.long)
    for i, p in enumerate(prompt_ids):  # left padding
        input_ids[i, width - len(p):] = torch.tensor(p)
        attention_mask[i, width - len(p):] = 1
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    uniforms = None
    if params.temperature > 0:  # (n, steps), each row from its own generator: batching cannot change it
        uniforms = torch.stack([torch.rand(steps, generator=torch.Generator().manual_seed(s), dtype=torch.float64)
                                for s in seeds]).to(device)
    input_ids, attention_mask, position_ids = (t.to(device) for t in (input_ids, attention_mask, position_ids))
    next_position = position_ids[:, -1:] + 1  # (n, 1)
    cache = _new_cache(model)
    tokens = torch.zeros((n, steps), dtype=torch.long)
    logprob = torch.zeros(n, dtype=torch.float64)
    length = torch.full((n,), steps, dtype=torch.long)
    eos = torch.zeros(n, dtype=torch.bool)
    active = torch.arange(n)  # batch row -> input row
    for step in range(steps):
        logits = _next_logits(model, input_ids, attention_mask, position_ids, cache)  # (b, V) fp32
        token = _choose(logits, params, None if uniforms is None else uniforms[:, step])  # (b,)
        token_logp = logits.log_softmax(-1).gather(-1, token.unsqueeze(-1)).squeeze(-1)
        token_cpu = token.cpu()
        tokens[active, step] = token_cpu
        logprob[active] += token_logp.double().cpu()
        done = torch.isin(token_cpu, stops)
        eos[active[done]] = True
        length[active[done]] = step + 1
        keep = (~done).nonzero().squeeze(-1)
        if keep.numel() == 0 or step + 1 == steps:
            break
        attention_mask = torch.cat([attention_mask, attention_mask.new_ones((attention_mask.shape[0], 1))], -1)
        input_ids, position_ids = token.unsqueeze(-1), next_position
        next_position = next_position + 1
        if keep.numel() < active.numel():  # finished rows leave the batch and the cache
            keep_dev = keep.to(device)
            cache.batch_select_indices(keep_dev)
            input_ids, position_ids, next_position, attention_mask = (
                t[keep_dev] for t in (input_ids, position_ids, next_position, attention_mask))
            if uniforms is not None:
                uniforms = uniforms[keep_dev]
            active = active[keep]
    return [(tokens[i, : length[i]].tolist(), bool(eos[i]), float(logprob[i])) for i in range(n)]


def _choose(logits: Tensor, params: SamplingParams, uniform: Tensor | None) -> Tensor:
    """Next token per row: greedy when ``uniform`` is None, else inverse-CDF sampling of the tempered,
    nucleus-restricted softmax at the row's uniform in [0, 1)."""
    if uniform is None:
        return logits.argmax(-1)
    probs = (logits.double() / params.temperature).softmax(-1)  # (b, V)
    order = None
    if params.top_p < 1:
        probs, order = probs.sort(-1, descending=True)
        before = probs.cumsum(-1) - probs  # mass of the more likely tokens
        probs = probs * (before < params.top_p)  # the first token is always kept
    cdf = probs.cumsum(-1)
    index = torch.searchsorted(cdf, (uniform * cdf[:, -1]).unsqueeze(-1), right=True).squeeze(-1)
    last_positive = (torch.arange(cdf.shape[1], device=cdf.device) * (probs > 0)).argmax(-1)
    index = torch.minimum(index, last_positive)  # u·total rounded up to the total: the last possible token
    return index if order is None else order.gather(-1, index.unsqueeze(-1)).squeeze(-1)


def _cache_keyword(model) -> str:
    """transformers renamed the cache argument ``past_key_values`` to ``cache`` (5.x)."""
    return _cache_keyword_of(type(model))


@functools.cache
def _cache_keyword_of(cls) -> str:
    return "cache" if "cache" in inspect.signature(cls.forward).parameters else "past_key_values"


def _new_cache(model):
    from transformers import DynamicCache

    try:
        return DynamicCache(config=model.config)
    except TypeError:
        return DynamicCache()


def _next_logits(model, input_ids: Tensor, attention_mask: Tensor, position_ids: Tensor, cache) -> Tensor:
    """fp32 logits of the next token (b, V), filling ``cache``; the LM head runs on the last position only."""
    kwargs = dict(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=True)
    if model.config.model_type in HEAD_ONLY_MODEL_TYPES:
        base = model.base_model
        hidden = base(**kwargs, **{_cache_keyword(base): cache}).last_hidden_state[:, -1]  # (b, d)
        return fp32_head(model.get_output_embeddings(), hidden)
    return model(**kwargs, **{_cache_keyword(model): cache}, logits_to_keep=1).logits[:, -1].float()
