"""Hostile raw rows for the four loaders, as hypothesis strategies, and an independent oracle.

Used by ``tests/data/test_data_hostile.py``. Each strategy builds rows in a hub schema (Anthropic/hh-rlhf,
stanfordnlp/SHP, raw openbmb/UltraFeedback, HuggingFaceH4/ultrafeedback_binarized) and mutates most
of them (a key dropped, a value of the wrong type, an empty string, a lone surrogate, an SHP
``labels`` outside {0, 1}, identical responses, mismatched prompts, raw non-UTF-8 bytes, broken JSON
lines, ...); ``write_file`` writes them to a real ``.jsonl`` / ``.jsonl.gz`` / ``.json`` /
``.parquet`` file (blank lines, CRLF endings and a byte order mark thrown in).

The oracle (``ORACLES``) derives from one row what ``load_pairs`` must make of it: a pair, a drop
reason, or an error naming the bad fields. It uses plain ``str`` / ``list`` operations over the hub
schema and no ``p2o.data`` code, so it checks the loaders rather than repeating them.

``hostile(n)`` is the settings profile of every test that uses these strategies: ``n`` examples,
derandomized (the same examples on every run and machine, no example database). The examples a test
draws depend on these strategies and on the test function's own source: changing either changes them.
"""

from __future__ import annotations

import gzip
import json
import math
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st


HUMAN, ASSISTANT = "\n\nHuman:", "\n\nAssistant:"
ROLES = ("user", "assistant", "system")
MISSING = object()


def hostile(max_examples: int):
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,  # the same examples on every run and machine
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
            HealthCheck.filter_too_much,
        ],
    )


def pattern(path: tuple) -> str:
    """``("completions", 3, "response")`` -> ``completions[].response``."""
    out = ""
    for part in path:
        out += "[]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out


# --------------------------------------------------------------------------- text

SPECIAL = ["", " ", "\n", "\t", HUMAN, ASSISTANT, ASSISTANT + " ", "Human:", "\x00", "é", "\u2028",
           "🙂", "\r\n", '"', "\\", "\ufeff", "ok"]  # fmt: skip
TEXT = st.lists(st.one_of(st.text(max_size=8), st.sampled_from(SPECIAL)), max_size=3).map("".join)
WORD = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=8)
IDS = st.sampled_from(["ocwj1k", "h3x9a2q", "0", "é"])
# replies: mostly non-blank, from a small pool often enough for identical and blank pairs to occur
REPLY = st.one_of(st.tuples(WORD, TEXT).map("".join), WORD, st.sampled_from(["same", " ", ""]))
NAN, INF = float("nan"), float("inf")
WRONG = [0, 1, -1, 2.5, NAN, INF, -INF, None, True, False, "", "1", [], ["x"], {}, {"text": "x"},
         [{"role": "user", "content": "x"}], 10**30, 10**400]  # fmt: skip
SURROGATES = ["\ud800", "\udfff", "\udc80"]


def two_replies(draw) -> tuple[str, str]:
    """Two replies; hypothesis likes to draw equal values, so half of the equal draws are told apart."""
    a, b = draw(REPLY), draw(REPLY)
    if a == b and draw(st.booleans()):
        b += " (other)"
    return a, b


def show_value(value) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**6:
        return f"int 10^{len(str(abs(value))) - 1}"
    text = repr(value)
    return text if len(text) <= 30 else f"{type(value).__name__}"


# --------------------------------------------------------------------------- hub-schema rows


@st.composite
def hh_row(draw) -> dict:
    turns = draw(st.lists(st.tuples(TEXT, TEXT), max_size=2))
    prompt = "".join(f"{HUMAN} {h}{ASSISTANT} {a}" for h, a in turns) + f"{HUMAN} {draw(TEXT)}{ASSISTANT}"
    chosen, rejected = two_replies(draw)
    return {"chosen": prompt + " " + chosen, "rejected": prompt + " " + rejected}


@st.composite
def shp_row(draw) -> dict:
    labels = draw(st.sampled_from([0, 1]))
    low = draw(st.integers(1, 60))
    high = low + draw(st.integers(1, 400))
    preferred, other = ("A", "B") if labels == 1 else ("B", "A")
    created = draw(st.integers(1_300_000_000, 1_700_000_000))
    delay = draw(st.integers(1, 10**6))
    ref_a, ref_b = two_replies(draw)
    return {
        "post_id": draw(IDS),
        "domain": draw(st.sampled_from(["askculinary_train", "askscience_validation", "legaladvice_test"])),
        "upvote_ratio": draw(st.sampled_from([0.5, 0.97, 1.0])),
        "history": draw(TEXT),
        "c_root_id_A": draw(IDS),
        "c_root_id_B": draw(IDS),
        f"created_at_utc_{preferred}": created + delay,  # SHP: the preferred comment is the later one
        f"created_at_utc_{other}": created,
        f"score_{preferred}": high,
        f"score_{other}": low,
        "human_ref_A": ref_a,
        "human_ref_B": ref_b,
        "labels": labels,
        "seconds_difference": float(delay),
        "score_ratio": high / low,
    }


@st.composite
def uf_completion(draw) -> dict:
    return {
        "model": draw(st.sampled_from(["gpt-4", "alpaca-7b", "falcon-40b-instruct"])),
        "principle": "helpfulness",
        "custom_system_prompt": "Be helpful.",
        "response": draw(REPLY),
        "annotations": {
            "helpfulness": {"Rating": draw(st.sampled_from(["1", "3", "5", "N/A"])), "Rationale": "Clear."}
        },
        "critique": draw(st.sampled_from(["", "Too long."])),
        "overall_score": draw(st.sampled_from([1.0, 2.5, 5, 7.5, 10.0])),  # a small set: ties happen
        "fine-grained_score": draw(st.sampled_from([1.25, 3.0, 4.5])),
    }


@st.composite
def uf_row(draw) -> dict:
    completions = draw(st.lists(uf_completion(), min_size=2, max_size=4))  # `uf_count` makes 0 and 1
    return {
        "source": draw(st.sampled_from(["evol_instruct", "sharegpt", "truthful_qa"])),
        "instruction": draw(TEXT),
        "models": [c["model"] for c in completions],
        "completions": completions,
        "correct_answers": draw(st.sampled_from([[], ["yes"]])),
        "incorrect_answers": draw(st.sampled_from([[], ["no", "maybe"]])),
    }


@st.composite
def ufb_row(draw) -> dict:
    turns = []
    if draw(st.booleans()):
        turns.append({"role": "system", "content": draw(TEXT)})
    for _ in range(draw(st.integers(0, 2))):
        turns += [{"role": "user", "content": draw(TEXT)}, {"role": "assistant", "content": draw(TEXT)}]
    turns.append({"role": "user", "content": draw(TEXT)})
    reply_chosen, reply_rejected = two_replies(draw)
    chosen = turns + [{"role": "assistant", "content": reply_chosen}]
    rejected = [dict(m) for m in turns] + [{"role": "assistant", "content": reply_rejected}]
    first_user = next(m["content"] for m in turns if m["role"] == "user")
    return {
        "prompt": first_user,
        "prompt_id": draw(IDS),
        "chosen": json.loads(json.dumps(chosen)),
        "rejected": rejected,
        "messages": json.loads(json.dumps(chosen)),
        "score_chosen": draw(st.sampled_from([6.0, 8.5, 10.0])),
        "score_rejected": draw(st.sampled_from([1.0, 3.0, 5.5])),
    }


BASE = {"hh-rlhf": hh_row, "shp": shp_row, "ultrafeedback": uf_row, "ultrafeedback-binarized": ufb_row}


# --------------------------------------------------------------------------- mutations


def all_paths(obj, prefix: tuple = ()) -> list[tuple]:
    """Every key/index path inside ``obj`` (dicts and lists, depth first)."""
    out = []
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for key, value in items:
        out.append(prefix + (key,))
        out += all_paths(value, prefix + (key,))
    return out


def parent_of(row, path):
    for part in path[:-1]:
        row = row[part]
    return row


def string_paths(row) -> list[tuple]:
    return [p for p in all_paths(row) if isinstance(parent_of(row, p)[p[-1]], str)]


def m_drop(draw, row):
    path = draw(st.sampled_from(all_paths(row)))
    parent = parent_of(row, path)
    del parent[path[-1]]
    return f"drop {pattern(path)}"


def m_wrong_type(draw, row):
    path = draw(st.sampled_from(all_paths(row)))
    value = draw(st.sampled_from(WRONG))
    parent_of(row, path)[path[-1]] = value
    return f"{pattern(path)} := {show_value(value)}"


def m_empty(draw, row):
    paths = string_paths(row)
    if not paths:
        return "no-op (nothing to mutate)"
    path = draw(st.sampled_from(paths))
    parent_of(row, path)[path[-1]] = draw(st.sampled_from(["", " ", "\n\n", "\t"]))
    return f"blank string {pattern(path)}"


def m_surrogate(draw, row):
    paths = string_paths(row)
    if not paths:
        return "no-op (nothing to mutate)"
    path = draw(st.sampled_from(paths))
    parent = parent_of(row, path)
    text = parent[path[-1]]
    at = draw(st.integers(0, len(text)))
    parent[path[-1]] = text[:at] + draw(st.sampled_from(SURROGATES)) + text[at:]
    return f"lone surrogate in {pattern(path)}"


def m_extra_key(draw, row):
    row[draw(st.sampled_from(["extra", "chosen_score", "Chosen", "id", ""]))] = draw(st.sampled_from(WRONG))
    return "unknown extra key"


def m_deep_nesting(draw, row):
    depth = draw(st.sampled_from([3, 50]))
    value: list = []
    for _ in range(depth):
        value = [value]
    path = draw(st.sampled_from(all_paths(row)))
    parent_of(row, path)[path[-1]] = value
    return f"{pattern(path)} := list nested {depth} deep"


def m_none(draw, row):
    return "none (hub-schema row)"


# hh-rlhf


def hh_identical(draw, row):
    row["rejected"] = row["chosen"]
    return "identical chosen/rejected transcripts"


def hh_prompt_mismatch(draw, row):
    side = draw(st.sampled_from(["chosen", "rejected"]))
    text = row[side]
    at = text.find(HUMAN) + len(HUMAN)
    row[side] = text[:at] + " " + draw(WORD) + text[at:]
    return "different Human turns before the final Assistant turn"


def hh_no_assistant(draw, row):
    side = draw(st.sampled_from(["chosen", "rejected"]))
    row[side] = row[side].replace(ASSISTANT, "\n\nAI:")
    return "a side without an Assistant turn"


def hh_crlf(draw, row):
    side = draw(st.sampled_from(["chosen", "rejected", "both"]))
    for s in ("chosen", "rejected") if side == "both" else (side,):
        row[s] = row[s].replace("\n", "\r\n")
    return f"CRLF inside the transcript ({side})"


def hh_trailing_human(draw, row):
    row["chosen"] += f"{HUMAN} {draw(WORD)}"
    return "chosen transcript ends with a Human turn"


def hh_empty_transcripts(draw, row):
    row[draw(st.sampled_from(["chosen", "rejected"]))] = ""
    return "empty transcript"


# SHP

LABELS = [-1, 2, 0.5, 1.0, 0.0, "1", "0", True, False, None, [1], 10**30]


def shp_labels(draw, row):
    value = draw(st.sampled_from(LABELS))
    row["labels"] = value
    return f"labels := {show_value(value)}"


def shp_flip_labels(draw, row):
    row["labels"] = 1 - row["labels"]
    return "labels flipped (contradicts score_A/score_B)"


def shp_equal_scores(draw, row):
    row["score_A"] = row["score_B"]
    return "score_A == score_B"


def shp_swap_sides(draw, row):
    for a, b in (("human_ref_A", "human_ref_B"), ("score_A", "score_B"), ("created_at_utc_A", "created_at_utc_B")):
        row[a], row[b] = row[b], row[a]
    row["labels"] = 1 - row["labels"]
    return "A and B swapped consistently (same pair)"


def shp_identical(draw, row):
    row["human_ref_B"] = row["human_ref_A"]
    return "identical human_ref_A/human_ref_B"


def shp_no_scores(draw, row):
    del row["score_A"], row["score_B"]
    return "score_A and score_B absent"


def shp_score_ratio(draw, row):
    value = draw(st.sampled_from([NAN, INF, -INF, "2.0", None, True, 0.5, 1.999, 2, 2.0, 10**400]))
    row["score_ratio"] = value
    return f"score_ratio := {show_value(value)}"


def shp_score_type(draw, row):
    key = draw(st.sampled_from(["score_A", "score_B"]))
    value = draw(st.sampled_from([float(row[key]), str(row[key]), None, True, NAN]))
    row[key] = value
    return f"{key} := {show_value(value) if isinstance(value, float) else type(value).__name__}"


# UltraFeedback (raw)


def uf_count(draw, row):
    n = draw(st.sampled_from([0, 1]))
    row["completions"] = row["completions"][:n]
    return f"{n} completion(s)"


def uf_tie(draw, row):
    score = draw(st.sampled_from([3, 3.0, 7.5]))
    for c in row["completions"]:
        if isinstance(c, dict):
            c["overall_score"] = score
    return "all overall_score equal (tie)"


def uf_same_response(draw, row):
    text = draw(REPLY)
    for c in row["completions"]:
        c["response"] = text
    return "every completion has the same response"


def uf_score(draw, row):
    if not row["completions"]:
        return "no-op (nothing to mutate)"
    i = draw(st.integers(0, len(row["completions"]) - 1))
    value = draw(st.sampled_from(["7", None, NAN, INF, True, [7.0], {"score": 7}, 10**400, 7, -3.5]))
    row["completions"][i]["overall_score"] = value
    return f"completions[].overall_score := {show_value(value)}"


def uf_not_object(draw, row):
    if not row["completions"]:
        return "no-op (nothing to mutate)"
    i = draw(st.integers(0, len(row["completions"]) - 1))
    value = draw(st.sampled_from(["a response", 3, None, [], ["response"]]))
    row["completions"][i] = value
    return f"completions[] := {show_value(value)}"


# ultrafeedback_binarized


def ufb_message(draw, row) -> tuple[str, int]:
    side = draw(st.sampled_from(["chosen", "rejected"]))
    return side, draw(st.integers(0, len(row[side]) - 1))


def ufb_role(draw, row):
    side, i = ufb_message(draw, row)
    value = draw(st.sampled_from(["bot", "", "User", "ASSISTANT", "human", None, 3, "system", "user"]))
    row[side][i]["role"] = value
    return f"{side}[].role := {show_value(value)}"


def ufb_content(draw, row):
    side, i = ufb_message(draw, row)
    value = draw(st.sampled_from([None, 3, [{"type": "text", "text": "x"}], {"text": "x"}, NAN]))
    row[side][i]["content"] = value
    return f"{side}[].content := {show_value(value)}"


def ufb_not_object(draw, row):
    side, i = ufb_message(draw, row)
    value = draw(st.sampled_from(["hello", None, ["user", "hello"], 0]))
    row[side][i] = value
    return f"{side}[] := {show_value(value)}"


def ufb_last_turn(draw, row):
    side = draw(st.sampled_from(["chosen", "rejected"]))
    row[side] = row[side][: draw(st.integers(0, len(row[side]) - 1))]
    return f"{side} cut before its final assistant turn"


def ufb_prefix_mismatch(draw, row):
    users = [i for i, m in enumerate(row["rejected"]) if m["role"] == "user"]
    i = draw(st.sampled_from(users))
    row["rejected"][i]["content"] += draw(WORD)
    return "rejected user turn differs from chosen"


def ufb_prompt_column(draw, row):
    row["prompt"] = row["prompt"] + draw(WORD)
    return "prompt column differs from the conversation"


def ufb_identical(draw, row):
    row["rejected"][-1]["content"] = row["chosen"][-1]["content"]
    return "identical final assistant replies"


def ufb_extra_turns(draw, row):
    side = draw(st.sampled_from(["chosen", "rejected"]))
    row[side].append({"role": draw(st.sampled_from(ROLES)), "content": draw(TEXT)})
    return f"extra turn after {side}'s reply"


GENERIC = [m_none, m_drop, m_wrong_type, m_empty, m_surrogate, m_extra_key, m_deep_nesting]
SPECIFIC = {
    "hh-rlhf": [
        hh_identical, hh_prompt_mismatch, hh_no_assistant, hh_crlf, hh_trailing_human, hh_empty_transcripts,
    ],
    "shp": [
        shp_labels, shp_flip_labels, shp_equal_scores, shp_swap_sides, shp_identical, shp_no_scores,
        shp_score_ratio, shp_score_type,
    ],
    "ultrafeedback": [uf_count, uf_tie, uf_same_response, uf_score, uf_not_object],
    "ultrafeedback-binarized": [
        ufb_role, ufb_content, ufb_not_object, ufb_last_turn, ufb_prefix_mismatch, ufb_prompt_column,
        ufb_identical, ufb_extra_turns,
    ],
}


@dataclass
class Raw:
    """A line of raw bytes instead of a JSON row (``.jsonl`` only) and what its error must say."""

    data: bytes
    label: str
    problem: str


@st.composite
def raw_line(draw, fmt: str) -> Raw:
    kind = draw(st.sampled_from(["utf8", "truncated", "not_object", "huge_int", "deep", "garbage"]))
    good = json.dumps(draw(BASE[fmt]()), ensure_ascii=draw(st.booleans())).encode()
    if kind == "utf8":
        return Raw(insert_bad_bytes(draw, good), "raw line: invalid UTF-8 bytes", "not valid UTF-8")
    if kind == "truncated":  # cut at a character boundary, so the line stays valid UTF-8
        text = good.decode("utf-8")
        cut = text[: draw(st.integers(1, len(text) - 1))].encode("utf-8")
        return Raw(cut, "raw line: truncated JSON", "not valid JSON")
    if kind == "not_object":
        value = draw(st.sampled_from(["[1, 2]", '"text"', "3", "null", "true", "[{}]", "NaN", "-Infinity"]))
        return Raw(value.encode(), f"raw line: JSON {value}", "expected a JSON object")
    if kind == "huge_int":
        return Raw(b'{"labels": ' + b"9" * 5000 + b"}", "raw line: 5000-digit integer", "not valid JSON")
    if kind == "deep":
        depth = 100_000
        return Raw(b'{"x": ' + b"[" * depth + b"]" * depth + b"}", "raw line: list nested 100000 deep",
                   "nested too deeply")  # fmt: skip
    value = draw(st.sampled_from([b"{'chosen': 'x'}", b"nan", b"{]", b"chosen,rejected", b"\x00\x01"]))
    return Raw(value, "raw line: not JSON", "not valid JSON")


BAD_BYTES = [b"\xff\xfe", b"\xff", b"\xfe", b"\xc3", b"\x80", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80",
             b"\xc0\xaf", b"\xe2\x82"]  # fmt: skip


def insert_bad_bytes(draw, line: bytes) -> bytes:
    """``line`` with invalid UTF-8 inserted at a character boundary (so it stays invalid)."""
    text = line.decode("utf-8")
    at = len(text[: draw(st.integers(0, len(text)))].encode("utf-8"))
    bad = draw(st.one_of(st.sampled_from(BAD_BYTES), st.binary(min_size=1, max_size=4)))
    bad = bad.replace(b"\n", b"\xff").replace(b"\r", b"\xff")
    try:
        bad.decode("utf-8")
        bad += b"\xff"  # a valid sequence: make it invalid
    except UnicodeDecodeError:
        pass
    return line[:at] + bad + line[at:]


@st.composite
def row_item(draw, fmt: str, raw_lines: bool):
    """``(label, row or Raw)``: a hub-schema row with at most one fault, or a raw bad line."""
    if raw_lines and draw(st.integers(0, 9)) == 0:
        raw = draw(raw_line(fmt))
        return raw.label, raw
    row = draw(BASE[fmt]())
    mutate = draw(st.sampled_from(GENERIC + SPECIFIC[fmt]))
    label = mutate(draw, row)
    return label, row


@dataclass
class FileSpec:
    kind: str  # jsonl | jsonl.gz | json | parquet
    items: list  # rows (dict) or Raw lines
    labels: list[str]
    blanks: list[int]  # blank lines before each item (jsonl)
    blank_text: str
    eol: bytes
    bom: bool
    ensure_ascii: bool


@st.composite
def file_spec(draw, fmt: str, max_rows: int = 4, raw_lines: bool = True) -> FileSpec:
    pairs = draw(st.lists(row_item(fmt, raw_lines), min_size=1, max_size=max_rows))
    items = [item for _, item in pairs]
    kinds = ["jsonl", "jsonl.gz"] + ([] if any(isinstance(i, Raw) for i in items) else ["json", "parquet"])
    return FileSpec(
        kind=draw(st.sampled_from(kinds)),
        items=items,
        labels=[label for label, _ in pairs],
        blanks=draw(st.lists(st.sampled_from([0, 0, 0, 1, 2]), min_size=len(items), max_size=len(items))),
        blank_text=draw(st.sampled_from(["", " ", "\t"])),
        eol=draw(st.sampled_from([b"\n", b"\r\n"])),
        bom=draw(st.booleans()),
        ensure_ascii=draw(st.booleans()),
    )


# --------------------------------------------------------------------------- writing files


def dumps(row: dict, ensure_ascii: bool) -> bytes:
    try:
        return json.dumps(row, ensure_ascii=ensure_ascii).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: only the \\u escape can carry it
        return json.dumps(row, ensure_ascii=True).encode("utf-8")


def write_file(spec: FileSpec, folder: Path, fmt: str) -> tuple[Path, str, list[int], list]:
    """Write the file; return ``(path, kind written, row index of each item, each item as read back)``."""
    kind = spec.kind
    if kind == "parquet":
        path = folder / f"raw-{fmt}.parquet"
        try:
            pq.write_table(pa.Table.from_pylist(spec.items), path)
        except (pa.ArrowException, OverflowError, TypeError, ValueError):  # not representable: fall back
            path.unlink(missing_ok=True)
            kind = "jsonl"
        else:
            try:
                read_back = pq.read_table(path).to_pylist()
            except OSError:  # written, but pyarrow cannot read it back (schema nested too deep)
                return path, kind, [], None
            return path, kind, list(range(len(spec.items))), read_back
    if kind == "json":
        path = folder / f"raw-{fmt}.json"
        body = b"[\n" + b",\n".join(dumps(r, spec.ensure_ascii) for r in spec.items) + b"\n]\n"
        path.write_bytes((b"\xef\xbb\xbf" if spec.bom else b"") + body)
        return path, kind, list(range(len(spec.items))), spec.items
    parts = [b"\xef\xbb\xbf"] if spec.bom else []
    indices, line = [], 0
    for item, blanks in zip(spec.items, spec.blanks, strict=True):
        for _ in range(blanks):
            parts.append(spec.blank_text.encode() + spec.eol)
            line += 1
        parts.append((item.data if isinstance(item, Raw) else dumps(item, spec.ensure_ascii)) + spec.eol)
        indices.append(line)
        line += 1
    data = b"".join(parts)
    path = folder / f"raw-{fmt}.{kind}"
    path.write_bytes(gzip.compress(data, mtime=0) if kind == "jsonl.gz" else data)
    return path, kind, indices, spec.items


# --------------------------------------------------------------------------- the oracle


@dataclass(frozen=True)
class Err:
    fields: frozenset  # every field that is wrong (the loader reports the first it checks); {None}: the line
    problem: str = ""


@dataclass(frozen=True)
class Drop:
    reason: str


@dataclass(frozen=True)
class Pair:
    prompt: str
    chosen: str
    rejected: str


def is_text(value) -> bool:
    """A string that can be written as UTF-8 (no lone surrogates)."""
    return isinstance(value, str) and not any(0xD800 <= ord(c) <= 0xDFFF for c in value)


def is_number(value) -> bool:
    """A finite int or float, not a bool."""
    if type(value) is int:
        try:
            return math.isfinite(float(value))
        except OverflowError:
            return False
    return type(value) is float and math.isfinite(value)


def responses(prompt: str, chosen: str, rejected: str):
    if chosen.strip() == "" or rejected.strip() == "":
        return Drop("empty_response")
    if chosen == rejected:
        return Drop("identical_responses")
    return Pair(prompt, chosen, rejected)


def oracle_hh(row: dict, ds) -> Err | Drop | Pair:
    bad = {k for k in ("chosen", "rejected") if not is_text(row.get(k, MISSING))}
    if bad:
        return Err(frozenset(bad))
    c_head, c_sep, c_tail = row["chosen"].rpartition(ASSISTANT)
    r_head, r_sep, r_tail = row["rejected"].rpartition(ASSISTANT)
    if not (c_sep and r_sep):
        return Drop("no_assistant_turn")
    if c_head != r_head:
        return Drop("prompt_mismatch")
    return responses(c_head + ASSISTANT, c_tail, r_tail)


def oracle_shp(row: dict, ds) -> Err | Drop | Pair:
    bad = {k for k in ("history", "human_ref_A", "human_ref_B") if not is_text(row.get(k, MISSING))}
    labels = row.get("labels", MISSING)
    if type(labels) is not int or labels not in (0, 1):
        bad.add("labels")
    if not is_number(row.get("score_ratio", MISSING)):
        bad.add("score_ratio")
    scores = {side: row.get(f"score_{side}") for side in "AB"}
    bad |= {f"score_{side}" for side, s in scores.items() if s is not None and type(s) is not int}
    if "labels" not in bad and all(type(s) is int for s in scores.values()):
        winner, loser = ("A", "B") if labels == 1 else ("B", "A")
        if not scores[winner] > scores[loser]:
            bad.add("labels")
    if bad:
        return Err(frozenset(bad))
    if ds.min_score_ratio is not None and row["score_ratio"] < ds.min_score_ratio:
        return Drop("score_ratio_below_min")
    winner, loser = ("human_ref_A", "human_ref_B") if labels == 1 else ("human_ref_B", "human_ref_A")
    return responses(f"{HUMAN} {row['history']}{ASSISTANT}", " " + row[winner], " " + row[loser])


def oracle_uf(row: dict, ds) -> Err | Drop | Pair:
    bad = set() if is_text(row.get("instruction", MISSING)) else {"instruction"}
    completions = row.get("completions", MISSING)
    if type(completions) is not list:
        bad.add("completions")
        completions = []
    for i, c in enumerate(completions):
        if not isinstance(c, dict):
            bad.add(f"completions[{i}]")
            continue
        if not is_text(c.get("response", MISSING)):
            bad.add(f"completions[{i}].response")
        if not is_number(c.get("overall_score", MISSING)):
            bad.add(f"completions[{i}].overall_score")
    if bad:
        return Err(frozenset(bad))
    if len(completions) < 2:
        return Drop("fewer_than_two_completions")
    best = min(range(len(completions)), key=lambda i: (-completions[i]["overall_score"], i))  # first highest
    worst = min(range(len(completions)), key=lambda i: (completions[i]["overall_score"], i))  # first lowest
    if completions[best]["overall_score"] == completions[worst]["overall_score"]:
        return Drop("tie")
    prompt = f"{HUMAN} {row['instruction']}{ASSISTANT}"
    return responses(prompt, " " + completions[best]["response"], " " + completions[worst]["response"])


def oracle_ufb(row: dict, ds) -> Err | Drop | Pair:
    bad = set()
    conversations = {}
    for side in ("chosen", "rejected"):
        messages = row.get(side, MISSING)
        if type(messages) is not list:
            bad.add(side)
            continue
        for i, m in enumerate(messages):
            if not isinstance(m, dict):
                bad.add(f"{side}[{i}]")
                continue
            if not (is_text(m.get("role", MISSING)) and m["role"] in ROLES):
                bad.add(f"{side}[{i}].role")
            if not is_text(m.get("content", MISSING)):
                bad.add(f"{side}[{i}].content")
        conversations[side] = messages
    if bad:
        return Err(frozenset(bad))
    chosen, rejected = conversations["chosen"], conversations["rejected"]
    if not chosen or not rejected or chosen[-1]["role"] != "assistant" or rejected[-1]["role"] != "assistant":
        return Drop("last_turn_not_assistant")
    context = [(m["role"], m["content"]) for m in chosen[:-1]]
    if context != [(m["role"], m["content"]) for m in rejected[:-1]]:
        return Drop("prompt_mismatch")
    prompt = ""
    for k, (role, content) in enumerate(context):
        if role == "system":
            prompt += content if k == 0 else "\n\n" + content
        else:
            prompt += (HUMAN if role == "user" else ASSISTANT) + " " + content
    # the `prompt` column, if any, is not consulted: the pair is built from the two conversations
    return responses(prompt + ASSISTANT, " " + chosen[-1]["content"], " " + rejected[-1]["content"])


ORACLES = {"hh-rlhf": oracle_hh, "shp": oracle_shp, "ultrafeedback": oracle_uf,
           "ultrafeedback-binarized": oracle_ufb}  # fmt: skip
DROP_REASONS = {
    "hh-rlhf": ["no_assistant_turn", "prompt_mismatch", "empty_response", "identical_responses"],
    "shp": ["score_ratio_below_min", "empty_response", "identical_responses"],
    "ultrafeedback": ["fewer_than_two_completions", "tie", "empty_response", "identical_responses"],
    "ultrafeedback-binarized": [
        "last_turn_not_assistant", "prompt_mismatch", "empty_response", "identical_responses",
    ],
}


FORMATS = ["hh-rlhf", "shp", "ultrafeedback", "ultrafeedback-binarized"]


# --------------------------------------------------------------------------- whole files of valid rows


@st.composite
def valid_rows(draw, fmt: str) -> list[dict]:
    return draw(st.lists(BASE[fmt](), min_size=1, max_size=4))


# --------------------------------------------------------------------------- very long rows

LONG = 100_000


@st.composite
def long_row(draw, fmt: str) -> tuple[str, dict]:
    """A hub-schema row with one string of >= 100k characters, or with thousands of turns/completions."""
    row = draw(BASE[fmt]())
    if draw(st.integers(0, 3)) == 0:
        n = 2_000
        if fmt == "hh-rlhf":
            filler = "".join(f"{HUMAN} turn {i}{ASSISTANT} reply {i}" for i in range(n))
            row = {k: filler + v for k, v in row.items()}
        elif fmt == "ultrafeedback":
            row["completions"] = (row["completions"] or [draw(uf_completion())]) * n
        elif fmt == "ultrafeedback-binarized":
            history = [{"role": r, "content": f"turn {i}"} for i in range(n) for r in ("user", "assistant")]
            row["chosen"], row["rejected"] = history + row["chosen"], history + row["rejected"]
        else:
            row["history"] = "\n".join(f"line {i}" for i in range(n * 10))
        return f"{n} turns/completions/lines", row
    path = draw(st.sampled_from(string_paths(row)))
    fragment = draw(st.one_of(WORD, st.sampled_from(SPECIAL[1:])))
    parent = parent_of(row, path)
    parent[path[-1]] = parent[path[-1]] + fragment * (LONG // len(fragment) + 1)
    return f"{LONG:,}+ characters in {pattern(path)}", row
