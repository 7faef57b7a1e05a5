"""The words of the demo data, and the planted preference: ``planted_score``.

Both responses of a pair come from the SAME sentence pools (same topic, same mix of tones, similar
length); they differ in one small feature. Each ``*_SENTENCES`` holds three slots (opening, body,
closing) of ``(generic, specific)`` sentence pairs: the specific form gives a concrete detail, a number
in digits ("practice {n} minutes every day" rather than "practice a little every day"). ``compose``
draws one sentence per slot and puts a given number of them in their specific form.

The planted rule is ``planted_score(prompt, response)``: the number of distinct numbers in digits that
the response adds to the prompt (the prompts hold none). In a hh-rlhf or UltraFeedback pair the chosen
response carries exactly one detail more than the rejected one (0 vs 1, 1 vs 2 or 2 vs 3); the SHP
comments of a post carry 0 to 3 details, all different. ``p2o.data.demo`` then flips a share of the
pairs (label noise, default 25 %): a flipped pair is one where the planted score prefers the rejected
response. A tiny GPT-2 has to find the feature among sentences that both sides share, so it learns it
only in part, and the noise caps held-out accuracy against the labels near 1 - flip share.
``planted_score`` can serve as the demo's gold judge of generated text.

``UF_SOURCES``, ``UF_MODELS``, ``UF_PRINCIPLES`` and ``UF_ASPECTS`` fill UltraFeedback's metadata
fields. ``p2o.data.demo`` arranges all of it into rows of the raw hub schemas. No external word lists:
every word of the demo data is here.
"""

from __future__ import annotations

import random
import re

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
HH_SENTENCES = (
    (  # opening
        ("Sure, I can help you with {t}.", "Sure, I did {t} for {n} years."),
        ("Good question, {t} is worth learning.", "Good question, {t} takes {n} weeks to learn."),
        ("Okay, here is my honest take on {t}.", "Okay, here are my {n} tips on {t}."),
        ("Honestly, {t} is easier than it looks.", "Honestly, {t} gets easier after {n} tries."),
    ),
    (  # body
        ("Start small and practice a little every day.", "Start small and practice {n} minutes every day."),
        (
            "Write down a simple plan and then stick to it.",
            "Write down a plan with {n} goals and stick to it.",
        ),
        (
            "Keep the sessions short so that it stays fun.",
            "Keep sessions to {n} minutes so that it stays fun.",
        ),
        ("Find a friend or two who enjoy it as well.", "Find {n} friends who enjoy it as well."),
    ),
    (  # closing
        ("Let me know how it goes for you.", "Let me know how it goes in {n} days."),
        ("Most people see progress fairly soon.", "Most people see progress within {n} weeks."),
        ("Do not worry about mistakes at first.", "Expect about {n} mistakes at first."),
        ("Come back any time with more questions.", "Come back in {n} days with more questions."),
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
SHP_SENTENCES = (
    (  # opening
        ("Great question, honestly.", "Great question, I asked it {n} years ago."),
        ("Eh, this comes up a lot here.", "Eh, this comes up {n} times a week here."),
        ("Happy to chime in on this one.", "Happy to chime in, {n} years in the field."),
        ("lol, I wondered the same thing.", "lol, I wondered that for {n} years."),
    ),
    (  # body
        (
            "The key with {t} is to learn the basics first and build up slowly.",
            "The key with {t} is to spend {n} weeks on the basics and build up.",
        ),
        (
            "With {t}, most people improve fastest by practicing and asking for feedback.",
            "With {t}, most people improve fastest after about {n} practice sessions.",
        ),
        (
            "I have worked with {t} for a long time, and patience is what matters most.",
            "I have worked with {t} for {n} years, and patience is what matters most.",
        ),
        (
            "For {t}, a good introductory book plus hands-on practice goes a long way.",
            "For {t}, read {n} chapters of a good book and then practice hands-on.",
        ),
    ),
    (  # closing
        ("Hope that helps, and good luck!", "Hope that helps, it took me {n} tries."),
        ("Feel free to DM me for more pointers.", "Feel free to DM me, I have {n} more pointers."),
        ("Edit: thanks for the kind replies, everyone.", "Edit: thanks for the {n} kind replies, everyone."),
        ("Anyway, just google the rest, man.", "Anyway, google the other {n} steps, man."),
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
UF_SENTENCES = (
    (  # opening
        ("Certainly! Here is a clear answer about {t}.", "Certainly! Here are {n} clear points about {t}."),
        ("Sure, I would be happy to explain {t}.", "Sure, I can explain {t} in {n} short steps."),
        (
            "Absolutely, {t} is a fascinating subject.",
            "Absolutely, {t} has fascinated people for {n} centuries.",
        ),
        ("Of course! Let me walk you through {t}.", "Of course! Let me walk you through {t} in {n} parts."),
    ),
    (  # body
        (
            "In short, {t} is best understood step by step, starting from an everyday example.",
            "In short, {t} is best understood in {n} steps, starting from an everyday example.",
        ),
        (
            "The most important idea behind {t} is how its parts work together over time.",
            "The most important idea behind {t} is how its {n} main parts work together.",
        ),
        (
            "Experts often describe {t} with a simple analogy, which makes it easy to remember.",
            "Experts often describe {t} with {n} simple analogies, which make it easy to remember.",
        ),
        (
            "First, learn the key terms of {t}; then connect them with a concrete example.",
            "First, learn the {n} key terms of {t}; then connect them with a concrete example.",
        ),
    ),
    (  # closing
        ("I hope this explanation is helpful!", "I hope these {n} points are helpful!"),
        ("Let me know if you would like more detail.", "Let me know if you would like {n} more examples."),
        (
            "Thank you for the question, and enjoy exploring {t}.",
            "Thank you, and spend {n} minutes a day on {t}.",
        ),
        ("That is about all there is to say, really.", "That is about all, it fits in {n} lines really."),
    ),
)
UF_SOURCES = ("evol_instruct", "flan_v2_niv2", "sharegpt", "ultrachat", "false_qa", "truthful_qa")
UF_MODELS = (
    "gpt-4", "gpt-3.5-turbo", "llama-2-13b-chat", "llama-2-7b-chat", "wizardlm-13b", "vicuna-33b",
    "alpaca-7b", "falcon-40b-instruct", "mpt-30b-chat", "ultralm-65b", "starchat", "bard",
)  # fmt: skip
UF_PRINCIPLES = ("helpfulness", "honesty", "truthfulness", "verbalized_calibration")
UF_ASPECTS = ("instruction_following", "honesty", "truthfulness", "helpfulness")


NUMBERS = (2, 3, 4, 5, 6, 7, 8, 10, 12, 15, 20, 25, 30, 40, 45, 60)  # the concrete details: {n}
_NUMBER = re.compile(r"\d+")


def planted_score(prompt: str, response: str) -> float:
    """The demo's planted preference: the number of concrete details ``response`` adds to ``prompt``.

    A concrete detail is a number written in digits ("practice 15 minutes every day"); the score counts
    the distinct ones in ``response`` that ``prompt`` does not already contain, so repeating a number or
    copying one from the prompt earns nothing. Every pair of the demo data differs by at least one
    detail, and its label follows this score except on the deliberately flipped pairs (label noise).
    """
    return float(len(set(_NUMBER.findall(response)) - set(_NUMBER.findall(prompt))))


def compose(rng: random.Random, sentences: tuple, topic: str, details: int) -> str:
    """One sentence from each slot of ``sentences``, ``details`` of them in their specific form.

    The slots that carry a detail and the (distinct) numbers are drawn with ``rng``, so
    ``planted_score`` of the result is exactly ``details``.
    """
    if not 0 <= details <= len(sentences):
        raise ValueError(f"details must be in 0..{len(sentences)}, got {details}")
    specific = set(rng.sample(range(len(sentences)), details))
    numbers = iter(rng.sample(NUMBERS, details))
    parts = []
    for slot, pool in enumerate(sentences):
        generic, detailed = rng.choice(pool)
        parts.append(
            detailed.format(t=topic, n=next(numbers)) if slot in specific else generic.format(t=topic)
        )
    return " ".join(parts)
