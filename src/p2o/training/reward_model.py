"""A Bradley–Terry reward model: the SFT model's transformer body with a scalar head.

The reward of a (prompt, response) row is a linear function of the final hidden state at the
row's last real token, which is the response's last token (its EOS when the response fits):
rows are right-padded with explicit ``position_ids`` (``p2o.model.tokenize``), so the token sits at
``attention_mask.sum() − 1`` and what else is in the batch changes nothing. Chosen and rejected
rows go through the body in one (2B, T) forward, as the preference losses do.

Under the Bradley–Terry model (Bradley & Terry 1952) P(y_w ≻ y_l | x) = σ(r(x, y_w) − r(x, y_l)),
and the reward model minimises the negative log-likelihood of the observed preferences,

    L = −mean_i log σ(r(x_i, y_w,i) − r(x_i, y_l,i))

(Ouyang et al. 2022, eq. 1, with one comparison per prompt; TRL's ``RewardTrainer`` without
margin or reward centring). Its held-out accuracy counts a tie as half a win,
mean(1[r_w > r_l] + ½·1[r_w = r_l]), and ``eval_rewards/ties`` gives the share of exact ties, as for
the implicit reward in ``p2o.model.evaluate``, so the two accuracies compare; the training metric
``rewards/accuracies`` keeps the strict r_w > r_l of the policies' TRL-named training metric. The
head starts as N(0, 1/(d + 1)) with no bias, as in Ziegler et al. 2019 (a bias cancels in r_w − r_l).

Training runs on the loop skeleton every trainer shares (``p2o.training.loop``: AdamW with warm-up and
cosine decay, clipping, non-finite steps skipped, resumable checkpoints, tqdm bar plus JSONL records),
so the reward model and DPO trained on the same pairs differ only in the loss and the model.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from p2o.config import OptimConfig, TokenizeConfig
from p2o.io import JsonlLog, atomic_dir, read_json, write_json
from p2o.job_code import entry_of
from p2o.model.evaluate import pair_accuracy as held_out_accuracy, tie_rate
from p2o.model.tokenize import SequenceBatch, TokenizedSplit, batch_indices, collate_pairs, pad_sequences, tokenize_pairs
from p2o.training.fingerprint import Fingerprint
from p2o.training.loop import StepOutput, autocast, train_loop, train_mode
from p2o.training.parallel import micro_batches

HEAD_FILE = "reward_head.pt"
META_FILE = "reward_model.json"


class RewardModel(torch.nn.Module):
    """``backbone`` (a transformers base model, e.g. ``GPT2Model``) and ``head``: d → 1."""

    def __init__(self, backbone, head: torch.nn.Linear | None = None, seed: int = 0):
        super().__init__()
        self.backbone = backbone
        d = backbone.config.hidden_size
        if head is None:
            head = torch.nn.Linear(d, 1, bias=False)
            generator = torch.Generator().manual_seed(seed)
            with torch.no_grad():
                head.weight.copy_(torch.randn(1, d, generator=generator) / math.sqrt(d + 1))
        self.head = head.to(next(backbone.parameters()).device)

    def forward(self, batch: SequenceBatch) -> Tensor:
        """Rewards (N,) of the N rows of a right-padded batch."""
        hidden = self.backbone(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                               position_ids=batch.position_ids, use_cache=False).last_hidden_state
        # hidden: (N, T, d)
        last = batch.attention_mask.sum(-1) - 1  # (N,) the last real token: the response's last
        h = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]  # (N, d)
        return self.head(h.float()).squeeze(-1)

    @classmethod
    def from_causal_lm(cls, path: str | Path, seed: int = 0, device: str = "cpu") -> RewardModel:
        """The body of the causal LM saved at ``path`` (its LM head dropped) and a fresh head."""
        from transformers import AutoModel

        backbone = AutoModel.from_pretrained(path, dtype=torch.float32).to(device)
        return cls(backbone, seed=seed)

    def save(self, out_dir: str | Path, tokenizer=None) -> Path:
        """Body (``save_pretrained``), head and tokenizer in one folder, written atomically."""
        with atomic_dir(out_dir) as tmp:
            self.backbone.save_pretrained(tmp)
            torch.save(self.head.state_dict(), tmp / HEAD_FILE)
            write_json(tmp / META_FILE, {"kind": "bradley_terry_reward_model", "head": "last response token",
                                         "hidden_size": self.head.in_features})
            if tokenizer is not None:
                tokenizer.save_pretrained(tmp)
        return Path(out_dir)

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> RewardModel:
        from transformers import AutoModel

        path = Path(path)
        meta = read_json(path / META_FILE)
        backbone = AutoModel.from_pretrained(path, dtype=torch.float32).to(device)
        head = torch.nn.Linear(meta["hidden_size"], 1, bias=False)
        head.load_state_dict(torch.load(path / HEAD_FILE, weights_only=True, map_location="cpu"))
        return cls(backbone, head)


def bradley_terry_loss(chosen: Tensor, rejected: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """−mean log σ(r_w − r_l) over (B,) rewards, and TRL-named metrics (detached)."""
    margin = chosen - rejected
    loss = -F.logsigmoid(margin).mean()
    metrics = {"rewards/chosen": chosen.detach().mean(), "rewards/rejected": rejected.detach().mean(),
               "rewards/margins": margin.detach().mean(),
               "rewards/accuracies": (margin.detach() > 0).float().mean()}  # strict, as in training logs
    return loss, metrics


def pair_accuracy(chosen: Tensor, rejected: Tensor) -> Tensor:
    """Fraction of pairs with r_w > r_l, a tie counting half (``p2o.model.evaluate.pair_accuracy``)."""
    return held_out_accuracy(chosen.detach() - rejected.detach())


def pair_rewards(model: RewardModel, split: TokenizedSplit, index: Sequence[int], pad_id: int,
                 device: str) -> tuple[Tensor, Tensor]:
    """Rewards of the chosen and rejected responses of pairs ``index``: one forward over 2B rows."""
    batch = collate_pairs(split, index, pad_id).to(device)
    rewards = model(batch.pairs)  # (2B,): chosen rows, then rejected rows
    return rewards[: len(index)], rewards[len(index):]


def train_reward_model(model: RewardModel, splits: Sequence[TokenizedSplit], cfg: OptimConfig, seed: int,
                       pad_id: int, log: JsonlLog | None = None, device: str = "cpu",
                       checkpoint: str | Path | None = None, run: Fingerprint | None = None) -> dict:
    """Fit ``model`` to the preferences of ``splits`` (datasets in order within every epoch, as
    in preference training); one optimizer step per batch of pairs. ``run`` holds what the caller read
    (config sections, input file digests): a checkpoint resumes only the same run."""
    torch.manual_seed(seed)
    train_mode(model, cfg)

    def batch_steps(split: TokenizedSplit, index: list[int]) -> Iterator[Iterator[StepOutput]]:
        def micro_steps() -> Iterator[StepOutput]:
            for part in micro_batches(index, cfg.grad_accum):
                with autocast(cfg, device):
                    chosen, rejected = pair_rewards(model, split, part, pad_id, device)  # (b,), (b,)
                loss, metrics = bradley_terry_loss(chosen.float(), rejected.float())
                yield StepOutput(loss, sum(split.n_tokens(i) for i in part), metrics, weight=len(part) / len(index))

        yield micro_steps()

    return train_loop(model, splits, cfg, seed, batch_steps, desc="reward model",
                      run=(run or Fingerprint()).extend({"job": "reward_model"}, code=[entry_of(train_reward_model)]),
                      log=log, checkpoint=checkpoint)


@torch.inference_mode()
def evaluate_reward_model(model: RewardModel, split: TokenizedSplit, pad_id: int, batch_size: int = 16,
                          device: str = "cpu", progress: bool = True) -> dict:
    """Held-out metrics of the reward model on one split, named as ``p2o.model.evaluate``'s."""
    model.eval()
    n = len(split)
    chosen, rejected = torch.zeros(n), torch.zeros(n)
    batches = batch_indices(split, batch_size, group_by_length=False)
    for index in tqdm(batches, desc=f"reward model {split.dataset}", unit="batch", leave=False,
                      disable=not progress):
        c, r = pair_rewards(model, split, index, pad_id, device)
        chosen[index], rejected[index] = c.float().cpu(), r.float().cpu()
    loss, _ = bradley_terry_loss(chosen, rejected)
    return {
        "n_pairs": n,
        "eval_rewards/accuracies": pair_accuracy(chosen, rejected).item(),
        "eval_rewards/ties": tie_rate(chosen - rejected).item(),
        "eval_rewards/margins": (chosen - rejected).mean().item(),
        "eval_rewards/chosen": chosen.mean().item(),
        "eval_rewards/rejected": rejected.mean().item(),
        "eval_loss": loss.item(),
    }


class RewardModelJudge:
    """A saved ``RewardModel`` as a gold judge of texts (``p2o.model.judge.Judge``): a (prompt, completion)
    is tokenised as ``tokenize_pairs`` tokenises a training pair's (prompt, response), the prompt's last
    ``tokenize.max_prompt_length`` tokens and the completion + EOS cut to ``tokenize.max_length``, so the
    judge reads generated text as it read the pairs it learnt from."""

    def __init__(self, path: str | Path, tokenize: TokenizeConfig, device: str = "cpu", batch_size: int = 16):
        from p2o.model.loading import load_tokenizer

        self.name, self.tokenize, self.device, self.batch_size = str(path), tokenize, device, batch_size
        self.tokenizer = load_tokenizer(path)
        self.model = RewardModel.load(path, device).eval()
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else self.tokenizer.eos_token_id

    @torch.inference_mode()
    def score(self, prompts: Sequence[str], completions: Sequence[str]) -> np.ndarray:
        """One reward per (prompt, completion), float64 (N,)."""
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
        rows = tokenize_pairs(self.tokenizer, "judge", [str(i) for i in range(len(prompts))], prompts, completions,
                              completions, self.tokenize)
        order = sorted(range(len(rows)), key=lambda i: len(rows.prompt[i]) + len(rows.chosen[i]))  # little padding
        scores = np.zeros(len(rows), dtype=np.float64)
        for start in range(0, len(order), self.batch_size):
            index = order[start: start + self.batch_size]
            batch = pad_sequences([rows.prompt[i] for i in index], [rows.chosen[i] for i in index], self.pad_id)
            scores[index] = self.model(batch.to(self.device)).double().cpu().numpy()
        return scores
