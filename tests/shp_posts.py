"""stanfordnlp/SHP-like raw rows with many pairs per post, in the exact hub schema.

Used by ``tests/data/test_data_clusters.py``. In SHP a row compares two top-level comments of one
Reddit post, and a post with c comments can give up to c(c − 1)/2 rows, so its comments recur across
rows and a post contributes many pairs (the dataset card recommends at most 5 per post).
``shp_rows`` builds such posts: 3 to 12 rows each, every row with the 15 hub fields (``SHP_FIELDS``)
and the hub's types. As in SHP, the preferred comment has the higher score and was written later
(``seconds_difference`` ≥ 0), ``score_ratio`` is the preferred score over the other (≥ 1), and
``labels`` is 1 when A is preferred.
"""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

SHP_FIELDS = {
    "post_id": str, "domain": str, "upvote_ratio": float, "history": str, "c_root_id_A": str,
    "c_root_id_B": str, "created_at_utc_A": int, "created_at_utc_B": int, "score_A": int, "score_B": int,
    "human_ref_A": str, "human_ref_B": str, "labels": int, "seconds_difference": float, "score_ratio": float,
}  # fmt: skip
DOMAINS = ("askculinary_train", "askphysics_train", "askhistorians_train", "legaladvice_train", "explainlikeimfive_train")
TOPICS = ("resting a brisket", "why the sky is blue", "medieval bread prices", "a deposit kept by a landlord",
          "how vaccines train the immune system", "sourdough that will not rise", "tidal locking")


def _reddit_id(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(n))


def shp_rows(n_posts: int, seed: int = 0, min_pairs: int = 3, max_pairs: int = 12) -> list[dict]:
    """Raw rows of ``n_posts`` posts with ``min_pairs`` to ``max_pairs`` comment pairs each, post by post."""
    rng = random.Random(seed)
    rows = []
    for p in range(n_posts):
        n_pairs = rng.randint(min_pairs, max_pairs)
        n_comments = next(c for c in itertools.count(2) if c * (c - 1) // 2 >= n_pairs)
        post_time = 1_500_000_000 + rng.randrange(10**8)
        scores = sorted(rng.sample(range(1, 500), n_comments))  # distinct: every pair has a preference
        # a higher score comes later: the preferred comment was written after the other, as in SHP
        times = sorted(post_time + rng.randrange(60, 86_400) for _ in range(n_comments))
        comments = [{"id": _reddit_id(rng, 7), "time": t, "score": s,
                     "text": f"Comment {k} on post {p}: {rng.choice(TOPICS)} depends on {rng.randint(2, 99)} things."}
                    for k, (t, s) in enumerate(zip(times, scores, strict=True))]
        post_id = _reddit_id(rng, 6)
        domain, upvote_ratio = rng.choice(DOMAINS), round(rng.uniform(0.5, 1.0), 2)
        history = f"Post {p} ({post_id}): can someone explain {rng.choice(TOPICS)}? I have read {p % 7 + 2} answers."
        for lo, hi in rng.sample(list(itertools.combinations(range(n_comments), 2)), n_pairs):
            a, b = (comments[hi], comments[lo]) if rng.random() < 0.5 else (comments[lo], comments[hi])
            preferred, other = (a, b) if a["score"] > b["score"] else (b, a)
            rows.append({
                "post_id": post_id, "domain": domain, "upvote_ratio": upvote_ratio, "history": history,
                "c_root_id_A": a["id"], "c_root_id_B": b["id"],
                "created_at_utc_A": a["time"], "created_at_utc_B": b["time"],
                "score_A": a["score"], "score_B": b["score"],
                "human_ref_A": a["text"], "human_ref_B": b["text"],
                "labels": int(a is preferred),
                "seconds_difference": float(preferred["time"] - other["time"]),
                "score_ratio": preferred["score"] / other["score"],
            })  # fmt: skip
    return rows


def write_shp_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path
