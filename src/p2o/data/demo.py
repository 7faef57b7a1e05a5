"""Synthetic demo data in the RAW hub schemas, so the real parsers run offline on it.

``write_demo_data(out_dir, n_prompts, seed, flip_share)`` writes three files:

* ``hh.jsonl``: Anthropic/hh-rlhf rows ``{chosen, rejected}`` (whole transcripts; half of the
  dialogues have an earlier Human/Assistant exchange);
* ``shp.jsonl``: stanfordnlp/SHP rows with all 15 hub fields and their types (reddit-style posts,
  a ``domain`` such as ``askculinary_train``, ``labels`` 1 when comment A is preferred);
* ``ultrafeedback.jsonl``: raw openbmb/UltraFeedback rows (``instruction``, four ``completions``
  with ``overall_score``, ``fine-grained_score``, ``annotations``, ...).

The texts and the preference planted in them (``planted_score``: the chosen response adds one more
concrete detail) come from ``p2o.data.demo_text``; this module arranges them into rows of each hub
schema and adds label noise: a share ``flip_share`` (default ``FLIP_SHARE``, 25 % as in AlpacaFarm and
Coste et al. 2023) of the pairs of each file are flipped, so that their label contradicts the planted
score. hh-rlhf and UltraFeedback flip exactly ``round(flip_share * n_prompts)`` pairs, drawn by a
generator of their own so that the texts do not depend on ``flip_share``; SHP, whose comments share
posts, permutes which comment gets which reddit score so that the flipped share of its pairs stays
within a pair of ``flip_share``.

Each file has ``n_prompts`` distinct prompts, plus a few rows the parsers must drop
(``DELIBERATE_DROPS``): hh-rlhf one ``prompt_mismatch`` and one ``duplicate``; SHP one
``score_ratio_below_min`` (a post with one pair of score ratio 1.5, dropped when ``min_score_ratio``
is 2); UltraFeedback one ``tie`` and one ``fewer_than_two_completions``. A hh-rlhf or UltraFeedback
prompt yields one pair; an SHP post pairs 3 or 4 top-level comments, every pair of them (3 or 6 rows
with the same ``post_id``; about 4.5 ``n_prompts`` pairs in all). Output is a function of
``(n_prompts, seed, flip_share)`` only (``random.Random``, no external word lists).
"""

from __future__ import annotations

import itertools
import os
import random
import string
from pathlib import Path

from p2o.data.demo_text import (
    HH_OPENERS,
    HH_QUESTIONS,
    HH_SENTENCES,
    HH_TOPICS,
    SHP_BODIES,
    SHP_DOMAINS,
    SHP_SENTENCES,
    SHP_TITLES,
    UF_ASPECTS,
    UF_INSTRUCTIONS,
    UF_MODELS,
    UF_PRINCIPLES,
    UF_SENTENCES,
    UF_SOURCES,
    UF_TOPICS,
    compose,
)
from p2o.io import write_jsonl

# reason -> count of the extra rows each demo file holds beyond its n_prompts good rows
DELIBERATE_DROPS = {
    "hh": {"prompt_mismatch": 1, "duplicate": 1},
    "shp": {"score_ratio_below_min": 1},
    "uf": {"tie": 1, "fewer_than_two_completions": 1},
}

DEMO_FILES = {"hh": "hh.jsonl", "shp": "shp.jsonl", "uf": "ultrafeedback.jsonl"}


FLIP_SHARE = 0.25  # label noise: share of pairs whose label contradicts planted_score (AlpacaFarm's 25 %)


def write_demo_data(
    out_dir: str | os.PathLike, n_prompts: int = 300, seed: int = 0, flip_share: float = FLIP_SHARE
) -> dict[str, Path]:
    """Write ``hh.jsonl``, ``shp.jsonl``, ``ultrafeedback.jsonl``; return ``{"hh"|"shp"|"uf": path}``."""
    if n_prompts < 2:
        raise ValueError(f"n_prompts must be >= 2, got {n_prompts}")
    if not 0.0 <= flip_share <= 1.0:
        raise ValueError(f"flip_share must be in [0, 1], got {flip_share}")
    out_dir = Path(out_dir)
    rng = random.Random(seed)
    paths = {name: out_dir / file for name, file in DEMO_FILES.items()}
    write_jsonl(paths["hh"], _hh_rows(rng, n_prompts, _flips(seed, "hh", n_prompts, flip_share)))
    write_jsonl(paths["shp"], _shp_rows(rng, n_prompts, random.Random(f"{seed}:shp:flips"), flip_share))
    write_jsonl(paths["uf"], _uf_rows(rng, n_prompts, _flips(seed, "uf", n_prompts, flip_share)))
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


def _flips(seed: int, name: str, n: int, share: float) -> set[int]:
    """The indices of the ``round(share * n)`` flipped pairs among ``n``, drawn apart from the texts.

    A generator of its own, so the texts do not depend on ``share``: data with noise is the data
    without it, some pairs swapped.
    """
    return set(random.Random(f"{seed}:{name}:flips").sample(range(n), round(share * n)))


def _hh_rows(rng: random.Random, n: int, flips: set[int]) -> list[dict]:
    rows = []
    combos = _combos(rng, n, 1, "hh", HH_TOPICS, HH_OPENERS, HH_QUESTIONS)
    for k, (topic, opener, question) in enumerate(combos):
        prompt = ""
        if opener is not None:
            prompt += f"\n\nHuman: {opener[0].format(t=topic)}\n\nAssistant: {opener[1].format(t=topic)}"
        prompt += f"\n\nHuman: {question.format(t=topic)}\n\nAssistant:"
        details = rng.randint(0, len(HH_SENTENCES) - 1)  # the rejected response's; chosen: one more
        better = compose(rng, HH_SENTENCES, topic, details + 1)
        worse = compose(rng, HH_SENTENCES, topic, details)
        if k in flips:
            better, worse = worse, better
        rows.append({"chosen": prompt + " " + better, "rejected": prompt + " " + worse})
    good, spare = rows[:n], rows[n]
    # prompt_mismatch: the rejected transcript continues the dialogue past the shared prompt
    mismatch = {
        "chosen": spare["chosen"],
        "rejected": spare["rejected"]
        + "\n\nHuman: Why?\n\nAssistant: "
        + compose(rng, HH_SENTENCES, "it", 0),
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


def _inversions(order: tuple[int, ...]) -> int:
    return sum(a > b for i, a in enumerate(order) for b in order[i + 1 :])


def _shp_rows(rng: random.Random, n: int, flip_rng: random.Random, flip_share: float) -> list[dict]:
    """SHP pairs the top-level comments of a post: here 3 or 4 comments a post, every pair of them.

    Comment scores grow by a factor of at least 2 from one comment to the next (so every pair passes
    ``min_score_ratio`` 2), and so do their times (the preferred comment is the later one, as in SHP).
    Comment ``i`` in score order carries ``details[order[i]]`` concrete details; a pair is flipped when
    ``order`` inverts it. ``order`` is drawn per post, its number of inversions chosen so that the
    flipped share of all pairs so far stays at ``round(flip_share * pairs)``.
    """
    domain_topics = [(d, t) for d, topics in SHP_DOMAINS.items() for t in topics]
    used: set[str] = set()
    posts, n_pairs, n_flipped = [], 0, 0
    combos = _combos(rng, n, 1, "shp", domain_topics, SHP_TITLES, SHP_BODIES)
    for k, ((domain, topic), title, body) in enumerate(combos):
        spare = k == n  # the spare post: one pair, the preferred comment with only 1.5x the score
        m = 2 if spare else rng.choice((3, 4))
        details = sorted(rng.sample(range(len(SHP_SENTENCES) + 1), m))
        texts = [compose(rng, SHP_SENTENCES, topic, d) for d in details]  # by planted score
        scores = [rng.randint(2, 12) * 2]
        for _ in range(m - 1):
            scores.append(int(scores[-1] * (1.5 if spare else rng.choice((2.0, 2.5, 3.0, 4.0)))))
        created = [rng.randint(1_350_000_000, 1_670_000_000)]
        for _ in range(m - 1):
            created.append(created[-1] + rng.randint(60, 86_400))
        orders = sorted(itertools.permutations(range(m)))
        if not spare:
            pairs = m * (m - 1) // 2
            want = round(flip_share * (n_pairs + pairs)) - n_flipped
            want = min(max(want, 0), pairs)
            orders = [o for o in orders if _inversions(o) == want]
            n_pairs, n_flipped = n_pairs + pairs, n_flipped + want
        order = flip_rng.choice(orders) if not spare else tuple(range(m))
        comments = [
            {
                "id": _reddit_id(rng, 7, used),
                "text": texts[order[i]],
                "score": scores[i],
                "created": created[i],
            }
            for i in range(m)
        ]
        post = {
            "post_id": _reddit_id(rng, 6, used),
            "domain": f"{domain}_train",
            "upvote_ratio": round(rng.uniform(0.6, 1.0), 2),
            "history": f"{title.format(t=topic)} {body}",
        }
        rows = []
        for lo, hi in itertools.combinations(range(m), 2):  # comments[hi] has the higher score
            label = rng.randint(0, 1)  # 1: A is preferred
            a, b = (comments[hi], comments[lo]) if label == 1 else (comments[lo], comments[hi])
            rows.append(
                post
                | {
                    "c_root_id_A": a["id"],
                    "c_root_id_B": b["id"],
                    "created_at_utc_A": a["created"],
                    "created_at_utc_B": b["created"],
                    "score_A": a["score"],
                    "score_B": b["score"],
                    "human_ref_A": a["text"],
                    "human_ref_B": b["text"],
                    "labels": label,
                    "seconds_difference": float(comments[hi]["created"] - comments[lo]["created"]),
                    "score_ratio": comments[hi]["score"] / comments[lo]["score"],
                }
            )
        posts.append(rows)
    rows = [row for post in posts[:n] for row in post]
    return _insert(rng, rows, posts[n])


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


def _uf_rows(rng: random.Random, n: int, flips: set[int]) -> list[dict]:
    rows = []
    combos = _combos(rng, n, 2, "ultrafeedback", UF_TOPICS, UF_INSTRUCTIONS)
    for k, (topic, instruction) in enumerate(combos):
        models = rng.sample(UF_MODELS, 4)
        best = rng.choice((7.5, 8.0, 8.5, 9.0, 9.5))
        worst = rng.choice((1.5, 2.0, 2.5, 3.0))
        middle = (rng.choice((6.0, 6.5, 7.0)), rng.choice((3.5, 4.0, 5.0)))
        # the best-scored completion carries one detail more than the worst (one fewer when flipped)
        low = rng.randint(0, len(UF_SENTENCES) - 1)
        top, bottom = compose(rng, UF_SENTENCES, topic, low + 1), compose(rng, UF_SENTENCES, topic, low)
        if k in flips:
            top, bottom = bottom, top
        responses = [
            (top, 5, best),
            (bottom, 1, worst),
            (compose(rng, UF_SENTENCES, topic, low + rng.randint(0, 1)), 3, middle[0]),
            (compose(rng, UF_SENTENCES, topic, low + rng.randint(0, 1)), 2, middle[1]),
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
