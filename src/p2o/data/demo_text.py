"""The words of the demo data: topics, prompt templates and the sentence pools of the planted preference.

The preference signal is lexical and content-based, learnable by a tiny GPT-2 trained from scratch:
the chosen response is polite, on-topic and repeats the prompt's topic word; the rejected one is
dismissive and off-topic, in a consistent curt style, of similar length (the signal is not length).
The three datasets use different topics, templates and phrasing.

Each ``*_CHOSEN`` / ``*_REJECTED`` holds three sentence pools (opening, body, closing); ``say`` draws
one sentence from each pool it is given and fills the topic in for ``{t}``. The ``UF_SOURCES``,
``UF_MODELS``, ``UF_PRINCIPLES`` and ``UF_ASPECTS`` fill UltraFeedback's metadata fields.
``p2o.data.demo`` arranges all of it into rows of the raw hub schemas. No external word lists:
every word of the demo data is here.
"""

from __future__ import annotations

import random

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


def say(rng: random.Random, pools: tuple[tuple[str, ...], ...], topic: str) -> str:
    """One sentence from each pool, topic filled in."""
    return " ".join(rng.choice(pool).format(t=topic) for pool in pools)
