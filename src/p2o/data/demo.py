"""Synthetic demo data in the RAW hub schemas, so the real parsers run offline on it.

``write_demo_data(out_dir, n_prompts, seed)`` writes three files:

* ``hh.jsonl``: Anthropic/hh-rlhf rows ``{chosen, rejected}`` (whole transcripts; half of the
  dialogues have an earlier Human/Assistant exchange);
* ``shp.jsonl``: stanfordnlp/SHP rows with all 15 hub fields and their types (reddit-style posts,
  a ``domain`` such as ``askculinary_train``, ``labels`` 1 when comment A is preferred);
* ``ultrafeedback.jsonl``: raw openbmb/UltraFeedback rows (``instruction``, four ``completions``
  with ``overall_score``, ``fine-grained_score``, ``annotations``, ...).

The preference signal is lexical and content-based, learnable by a tiny GPT-2 trained from scratch:
the chosen response is polite, on-topic and repeats the prompt's topic word; the rejected one is
dismissive and off-topic, in a consistent curt style, of similar length (the signal is not length).
The three datasets use different topics, templates and phrasing.

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

from p2o.io import write_jsonl

# reason -> count of the extra rows each demo file holds beyond its n_prompts good rows
DELIBERATE_DROPS = {
    "hh": {"prompt_mismatch": 1, "duplicate": 1},
    "shp": {"score_ratio_below_min": 1},
    "uf": {"tie": 1, "fewer_than_two_completions": 1},
}

# --------------------------------------------------------------------------- hh-rlhf: assistant dialogues

HH_TOPICS = (
    "bread", "tomatoes", "budgeting", "resumes", "marathons", "guitar", "puppies", "houseplants",
    "laundry", "coffee", "bicycles", "camping", "spanish", "chess", "meditation", "sourdough",
    "painting", "knitting", "fishing", "yoga", "photography", "birdwatching", "composting", "pasta",
    "soup", "tea", "sleep", "interviews", "taxes", "savings", "kittens", "aquariums", "roses",
    "lawns", "fences", "carpets", "closets", "piano", "violin", "drawing", "poetry", "journaling",
    "swimming", "hiking", "skiing", "tennis", "soccer", "running", "dancing", "singing", "grilling",
    "pancakes", "candles", "pottery", "woodworking", "sewing", "juggling", "chickens", "beekeeping",
    "origami",
)  # fmt: skip
HH_OPENERS = (
    None,
    ("I have a question about {t}.", "Sure, what would you like to know about {t}?"),
    ("Can you help me with something?", "Of course. What is on your mind?"),
    ("Hi! Do you know much about {t}?", "I know a fair amount. What would you like to ask?"),
)
HH_QUESTIONS = (
    "How do I get started with {t}?",
    "What is the most common beginner mistake with {t}?",
    "Do you have any tips to get better at {t}?",
    "What should I buy first for {t}?",
    "How much time should I spend on {t} each week?",
    "My friend says {t} is too hard for me. Is that true?",
    "What is a fun way to practice {t}?",
    "How can I stay motivated with {t}?",
)
HH_CHOSEN = (
    (
        "Great question, I am happy to help with {t}.",
        "Thanks for asking, {t} is a lovely thing to learn.",
        "I would be glad to help you with {t}.",
        "Good thinking, {t} is well worth the effort.",
    ),
    (
        "A good first step with {t} is to start small and practice a little each day.",
        "With {t}, it helps to write down a simple plan and follow it gently.",
        "Try breaking {t} into short sessions so that it stays fun and easy.",
        "Many people enjoy {t} more when they share it with a friend.",
    ),
    (
        "I hope this helps, and please ask if anything is unclear.",
        "Please let me know how it goes, I am happy to help more.",
        "You can do this, and I wish you the best with {t}!",
        "Feel free to come back with more questions any time.",
    ),
)
HH_REJECTED = (
    (
        "Ugh, I honestly do not care about that stuff at all.",
        "Whatever, that sounds pretty boring to me right now.",
        "Nope, I am not going to bother with that one today.",
        "Meh, why would anyone even ask me about that?",
    ),
    (
        "Anyway, I was just thinking about what to have for lunch today.",
        "By the way, the weather outside is gray and nobody can change it.",
        "Honestly my favorite show is back on tonight so I am busy.",
        "Random thought, but parking downtown is getting way too expensive lately.",
    ),
    (
        "Just look it up yourself, it is not my problem anyway.",
        "Figure it out on your own, I have better things to do.",
        "Stop asking me stuff like this, it is a waste of time.",
        "Go ask somebody else, I really could not care less.",
    ),
)

# --------------------------------------------------------------------------- SHP: reddit questions by domain

SHP_DOMAINS = {
    "askculinary": ("cast iron", "risotto", "knife sharpening", "chicken stock", "brisket", "dumplings",
                    "caramel", "tofu", "pie crust", "fried rice"),
    "askscience": ("black holes", "vaccines", "photosynthesis", "earthquakes", "tides", "lightning",
                   "antibiotics", "volcanoes", "rainbows", "magnets"),
    "askengineers": ("bridges", "concrete", "welding", "gearboxes", "solar panels", "batteries", "drones",
                     "pumps", "circuit boards", "wind turbines"),
    "askhistorians": ("Roman roads", "medieval castles", "the printing press", "the Silk Road",
                      "Viking ships", "ancient Egypt", "the steam engine", "samurai armor",
                      "the Hanseatic League", "Aztec markets"),
    "askacademia": ("grad school", "peer review", "thesis writing", "conference talks", "grant proposals",
                    "teaching assistants", "tenure", "lab meetings", "citations", "postdocs"),
    "askbaking": ("croissants", "macarons", "brioche", "cheesecake", "meringue", "focaccia", "scones",
                  "cinnamon rolls", "shortbread", "bagels"),
    "askcarguys": ("brake pads", "oil changes", "tire pressure", "spark plugs", "timing belts",
                   "alternators", "radiators", "wipers", "clutches", "headlights"),
    "askphilosophy": ("free will", "stoicism", "utilitarianism", "personal identity", "moral luck",
                      "skepticism", "virtue ethics", "existentialism", "determinism", "logic puzzles"),
}  # fmt: skip
SHP_TITLES = (
    "What is the one thing everyone gets wrong about {t}?",
    "How did you personally learn about {t}?",
    "Is it worth getting into {t} as a complete beginner?",
    "Why is {t} so much harder than it looks?",
    "What resources would you recommend for {t}?",
    "What is something about {t} that surprised you?",
    "Can someone explain {t} like I am five?",
    "How do professionals think about {t}?",
)
SHP_BODIES = (
    "I've been reading about it for a week and I'm still confused.",
    "Asking because my roommate and I had a long argument about it.",
    "Context: total newbie here, please be gentle.",
)
SHP_CHOSEN = (
    ("Great question!", "Good question, honestly.", "Happy to chime in here.", "Love this question."),
    (
        "The key thing with {t} is to learn the basics first and then build up slowly.",
        "With {t}, most people improve fastest by practicing a bit and asking for feedback.",
        "I have worked with {t} for years, and patience is what matters most.",
        "For {t}, a good introductory book plus hands-on practice goes a long way.",
    ),
    (
        "Hope that helps, and good luck with {t}!",
        "Feel free to DM me if you want more pointers.",
        "Edit: thanks for the kind replies, everyone.",
        "Cheers, and enjoy learning about {t}!",
    ),
)
SHP_REJECTED = (
    ("lol, no way, dude.", "Eh, whatever, man.", "Honestly, who cares?", "Downvoted, sorry not sorry."),
    (
        "This gets asked every single week, so just use the search bar like everyone else does.",
        "Not really my thing, I only came here to complain about my landlord again.",
        "I think this sub is the wrong place for this, but I am bored anyway.",
        "I stopped reading after the first line, way too long and kind of pointless tbh.",
    ),
    (
        "Anyway, I am off to watch the game now, bye.",
        "Reported for low effort, obviously, come on.",
        "Just google it, man, seriously, it takes a second.",
        "Not worth anybody's time, really, so I am out.",
    ),
)

# --------------------------------------------------------------------------- UltraFeedback: instructions

UF_TOPICS = (
    "photosynthesis", "recursion", "inflation", "the water cycle", "machine learning", "compound interest",
    "plate tectonics", "blockchain", "the immune system", "supply and demand", "gravity", "climate change",
    "the French Revolution", "DNA", "neural networks", "renewable energy", "the stock market",
    "sorting algorithms", "the solar system", "democracy", "electricity", "evolution", "probability",
    "cloud computing", "the Renaissance", "nutrition", "ocean currents", "encryption", "honeybees",
    "rainforests", "the moon", "jazz", "origami", "glaciers", "deserts", "robotics", "magnetism",
    "friction", "the printing press", "antibodies", "black holes", "prime numbers", "recycling",
    "volcanoes", "coral reefs", "the internet", "earthquakes", "optics", "fermentation", "taxonomy",
)  # fmt: skip
UF_INSTRUCTIONS = (
    "Explain {t} to a ten-year-old in a few sentences.",
    "Write a short paragraph about {t}.",
    "List three interesting facts about {t}.",
    "Summarize the main idea of {t} in simple terms.",
    "Give me a study plan for learning {t}.",
    "What are the pros and cons of {t}?",
    "Describe {t} as if you were a friendly teacher.",
    "Answer briefly: why does {t} matter?",
    "Create a quiz question about {t} with its answer.",
    "Compare {t} with something from everyday life.",
    "Suggest a fun classroom activity about {t}.",
    "Write a two-sentence introduction to {t}.",
)
UF_CHOSEN = (
    (
        "Certainly! Here is a clear answer about {t}.",
        "Sure, I would be happy to explain {t}.",
        "Absolutely, {t} is a fascinating subject.",
        "Of course! Let me walk you through {t}.",
    ),
    (
        "In short, {t} is best understood step by step, starting from an everyday example.",
        "The most important idea behind {t} is how its parts work together over time.",
        "Experts often describe {t} with a simple analogy, which makes it easy to remember.",
        "First, learn the key terms of {t}; then connect them with a concrete example.",
    ),
    (
        "I hope this explanation is helpful!",
        "Let me know if you would like more detail.",
        "Thank you for the question, and enjoy exploring {t}.",
        "Feel free to ask follow-up questions about {t}.",
    ),
)
UF_REJECTED = (
    (
        "I cannot be bothered to answer that right now.",
        "That request is not worth my time, honestly.",
        "No. This instruction seems pointless to me, really.",
        "I refuse to do this kind of boring task today, sorry.",
    ),
    (
        "Instead, here is a random remark: my keyboard is dusty and the printer is out of ink again.",
        "Unrelated, but the cafeteria ran out of sandwiches, which is much more important news.",
        "You should probably ask a search engine, since I am not going to write anything useful here.",
        "Nothing more to say about it, and frankly nobody will read a long answer anyway.",
    ),
    (
        "Done, that is all you get from me today.",
        "Next question, and make it quick this time.",
        "That is all you get, take it or leave it.",
        "Whatever, I am moving on to something else.",
    ),
)
UF_SOURCES = ("evol_instruct", "flan_v2_niv2", "sharegpt", "ultrachat", "false_qa", "truthful_qa")
UF_MODELS = (
    "gpt-4", "gpt-3.5-turbo", "llama-2-13b-chat", "llama-2-7b-chat", "wizardlm-13b", "vicuna-33b",
    "alpaca-7b", "falcon-40b-instruct", "mpt-30b-chat", "ultralm-65b", "starchat", "bard",
)  # fmt: skip
UF_PRINCIPLES = ("helpfulness", "honesty", "truthfulness", "verbalized_calibration")
UF_ASPECTS = ("instruction_following", "honesty", "truthfulness", "helpfulness")


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


def _say(rng: random.Random, pools: tuple[tuple[str, ...], ...], topic: str) -> str:
    """One sentence from each pool, topic filled in."""
    return " ".join(rng.choice(pool).format(t=topic) for pool in pools)


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
                "chosen": prompt + " " + _say(rng, HH_CHOSEN, topic),
                "rejected": prompt + " " + _say(rng, HH_REJECTED, topic),
            }
        )
    good, spare = rows[:n], rows[n]
    # prompt_mismatch: the rejected transcript continues the dialogue past the shared prompt
    mismatch = {
        "chosen": spare["chosen"],
        "rejected": spare["rejected"] + "\n\nHuman: Why?\n\nAssistant: " + _say(rng, HH_REJECTED[:1], ""),
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
        good = _say(rng, SHP_CHOSEN, topic)
        bad = _say(rng, SHP_REJECTED, topic)
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
            (_say(rng, UF_CHOSEN, topic), 5, best),
            (_say(rng, UF_REJECTED, topic), 1, worst),
            (_say(rng, UF_CHOSEN[:2] + UF_REJECTED[2:], topic), 3, middle[0]),
            (_say(rng, UF_REJECTED[:1] + UF_CHOSEN[1:2] + UF_REJECTED[2:], topic), 2, middle[1]),
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
