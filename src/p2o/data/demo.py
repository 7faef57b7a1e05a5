"""Synthetic demo data in the RAW hub schemas, so the real parsers run offline on it.

``write_demo_data(out_dir, n_prompts, seed)`` writes three files:

* ``hh.jsonl``: Anthropic/hh-rlhf rows ``{chosen, rejected}`` (whole transcripts; half of the
  dialogues have an earlier Human/Assistant exchange);
* ``shp.jsonl``: stanfordnlp/SHP rows with all 15 hub fields and their types (reddit-style posts,
  a ``domain`` such as ``askculinary_train``, ``labels`` 1 when comment A is preferred);
* ``ultrafeedback.jsonl``: raw openbmb/UltraFeedback rows (``instruction``, four ``completions``
  with ``overall_score``, ``fine-grained_score``, ``annotations``, ...).

The chosen and rejected texts, and the preference planted in them, come from ``p2o.data.demo_text``;
this module arranges them into rows of each hub schema.

Each file has ``n_prompts`` distinct prompts that yield a pair, plus a few rows the parsers must
drop (``DELIBERATE_DROPS``): hh-rlhf one ``prompt_mismatch`` and one ``duplicate``; SHP one
``score_ratio_below_min`` (score ratio 1.5, dropped when ``min_score_ratio`` is 2); UltraFeedback
one ``tie`` and one ``fewer_than_two_completions``. Output is a function of ``(n_prompts, seed)``
only (``random.Random(seed)``, no external word lists).
"""

from __future__ import annotations

import os
import random
import string
from pathlib import Path

from p2o.data.demo_text import (
    HH_CHOSEN,
    HH_OPENERS,
    HH_QUESTIONS,
    HH_REJECTED,
    HH_TOPICS,
    SHP_BODIES,
    SHP_CHOSEN,
    SHP_DOMAINS,
    SHP_REJECTED,
    SHP_TITLES,
    UF_ASPECTS,
    UF_CHOSEN,
    UF_INSTRUCTIONS,
    UF_MODELS,
    UF_PRINCIPLES,
    UF_REJECTED,
    UF_SOURCES,
    UF_TOPICS,
    say,
)
from p2o.io import write_jsonl

# reason -> count of the extra rows each demo file holds beyond its n_prompts good rows
DELIBERATE_DROPS = {
    "hh": {"prompt_mismatch": 1, "duplicate": 1},
    "shp": {"score_ratio_below_min": 1},
    "uf": {"tie": 1, "fewer_than_two_completions": 1},
}

DEMO_FILES = {"hh": "hh.jsonl", "shp": "shp.jsonl", "uf": "ultrafeedback.jsonl"}


def write_demo_data(out_dir: str | os.PathLike, n_prompts: int = 300, seed: int = 0) -> dict[str, Path]:
    """Write ``hh.jsonl``, ``shp.jsonl``, ``ultrafeedback.jsonl``; return ``{"hh"|"shp"|"uf": path}``."""
    if n_prompts < 2:
        raise ValueError(f"n_prompts must be >= 2, got {n_prompts}")
    out_dir = Path(out_dir)
    rng = random.Random(seed)
    paths = {name: out_dir / file for name, file in DEMO_FILES.items()}
    write_jsonl(paths["hh"], _hh_rows(rng, n_prompts))
    write_jsonl(paths["shp"], _shp_rows(rng, n_prompts))
    write_jsonl(paths["uf"], _uf_rows(rng, n_prompts))
    return paths


# --------------------------------------------------------------------------- helpers


def _combos(rng: random.Random, n: int, spare: int, what: str, *axes: tuple) -> list[tuple]:
    """``n + spare`` distinct combinations of one item per axis, in random order."""
    combos = [()]
    for axis in axes:
        combos = [c + (x,) for c in combos for x in axis]
    if n + spare > len(combos):
        raise ValueError(
            f"demo {what}: n_prompts={n} exceeds the {len(combos) - spare} distinct prompts available"
        )
    rng.shuffle(combos)
    return combos[: n + spare]


def _insert(rng: random.Random, rows: list[dict], extra: list[dict]) -> list[dict]:
    """``rows`` with each ``extra`` row inserted at a random position after the first row."""
    rows = list(rows)
    for row in extra:
        rows.insert(rng.randint(1, len(rows)), row)
    return rows


def _hh_rows(rng: random.Random, n: int) -> list[dict]:
    rows = []
    for topic, opener, question in _combos(rng, n, 1, "hh", HH_TOPICS, HH_OPENERS, HH_QUESTIONS):
        prompt = ""
        if opener is not None:
            prompt += f"\n\nHuman: {opener[0].format(t=topic)}\n\nAssistant: {opener[1].format(t=topic)}"
        prompt += f"\n\nHuman: {question.format(t=topic)}\n\nAssistant:"
        rows.append(
            {
                "chosen": prompt + " " + say(rng, HH_CHOSEN, topic),
                "rejected": prompt + " " + say(rng, HH_REJECTED, topic),
            }
        )
    good, spare = rows[:n], rows[n]
    # prompt_mismatch: the rejected transcript continues the dialogue past the shared prompt
    mismatch = {
        "chosen": spare["chosen"],
        "rejected": spare["rejected"] + "\n\nHuman: Why?\n\nAssistant: " + say(rng, HH_REJECTED[:1], ""),
    }
    duplicate = dict(rng.choice(good))
    return _insert(rng, good, [mismatch, duplicate])


def _reddit_id(rng: random.Random, length: int, used: set[str]) -> str:
    alphabet = string.ascii_lowercase + string.digits
    while True:
        value = "".join(rng.choice(alphabet) for _ in range(length))
        if value not in used:
            used.add(value)
            return value


def _shp_rows(rng: random.Random, n: int) -> list[dict]:
    pairs = [(d, t) for d, topics in SHP_DOMAINS.items() for t in topics]
    used: set[str] = set()
    rows = []
    combos = _combos(rng, n, 1, "shp", pairs, SHP_TITLES, SHP_BODIES)
    for k, ((domain, topic), title, body) in enumerate(combos):
        low_ratio = k == n  # the spare prompt: a preferred comment with only 1.5x the score
        good = say(rng, SHP_CHOSEN, topic)
        bad = say(rng, SHP_REJECTED, topic)
        score_bad = rng.randint(2, 12) * 2
        ratio = 1.5 if low_ratio else rng.choice((2.0, 2.5, 3.0, 4.0, 5.5, 8.0, 12.0))
        score_good = int(score_bad * ratio)
        created_bad = rng.randint(1_350_000_000, 1_670_000_000)
        created_good = created_bad + rng.randint(60, 3 * 86_400)  # SHP: the preferred comment is later
        label = rng.randint(0, 1)  # 1: A is preferred
        a, b = ("good", "bad") if label == 1 else ("bad", "good")
        side = {
            "good": (good, score_good, created_good),
            "bad": (bad, score_bad, created_bad),
        }
        rows.append(
            {
                "post_id": _reddit_id(rng, 6, used),
                "domain": f"{domain}_train",
                "upvote_ratio": round(rng.uniform(0.6, 1.0), 2),
                "history": f"{title.format(t=topic)} {body}",
                "c_root_id_A": _reddit_id(rng, 7, used),
                "c_root_id_B": _reddit_id(rng, 7, used),
                "created_at_utc_A": side[a][2],
                "created_at_utc_B": side[b][2],
                "score_A": side[a][1],
                "score_B": side[b][1],
                "human_ref_A": side[a][0],
                "human_ref_B": side[b][0],
                "labels": label,
                "seconds_difference": float(created_good - created_bad),
                "score_ratio": score_good / score_bad,
            }
        )
    return _insert(rng, rows[:n], [rows[n]])


def _uf_completion(rng: random.Random, model: str, response: str, quality: int, score: float) -> dict:
    """A raw UltraFeedback completion; ``quality`` 1..5 drives the annotation ratings."""
    ratings = {a: max(1, min(5, quality + rng.choice((-1, 0, 0, 1)))) for a in UF_ASPECTS}
    return {
        "model": model,
        "principle": rng.choice(UF_PRINCIPLES),
        "custom_system_prompt": "You are a helpful assistant. Answer carefully and kindly.",
        "response": response,
        "annotations": {
            a: {"Rating": str(r), "Rationale": f"The text is rated {r} for {a.replace('_', ' ')}."}
            for a, r in ratings.items()
        },
        "critique": "Clear and on topic." if quality >= 4 else "The answer ignores the instruction.",
        "overall_score": score,
        "fine-grained_score": round(sum(ratings.values()) / len(ratings), 2),
    }


def _uf_rows(rng: random.Random, n: int) -> list[dict]:
    rows = []
    for topic, instruction in _combos(rng, n, 2, "ultrafeedback", UF_TOPICS, UF_INSTRUCTIONS):
        models = rng.sample(UF_MODELS, 4)
        best = rng.choice((7.5, 8.0, 8.5, 9.0, 9.5))
        worst = rng.choice((1.5, 2.0, 2.5, 3.0))
        middle = (rng.choice((6.0, 6.5, 7.0)), rng.choice((3.5, 4.0, 5.0)))
        responses = [
            (say(rng, UF_CHOSEN, topic), 5, best),
            (say(rng, UF_REJECTED, topic), 1, worst),
            (say(rng, UF_CHOSEN[:2] + UF_REJECTED[2:], topic), 3, middle[0]),
            (say(rng, UF_REJECTED[:1] + UF_CHOSEN[1:2] + UF_REJECTED[2:], topic), 2, middle[1]),
        ]
        rng.shuffle(responses)
        completions = [
            _uf_completion(rng, m, r, q, s) for m, (r, q, s) in zip(models, responses, strict=True)
        ]
        rows.append(
            {
                "source": rng.choice(UF_SOURCES),
                "instruction": instruction.format(t=topic),
                "models": models,
                "completions": completions,
                "correct_answers": ["None"],
                "incorrect_answers": ["None"],
            }
        )
    good, tie, single = rows[:n], rows[n], rows[n + 1]
    for completion in tie["completions"]:
        completion["overall_score"] = 6.0
    single["models"] = single["models"][:1]
    single["completions"] = single["completions"][:1]
    return _insert(rng, good, [tie, single])
