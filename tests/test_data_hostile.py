"""Hostile raw rows for the four loaders (issue 5): property-based tests with hypothesis.

Each example builds rows in a hub schema (Anthropic/hh-rlhf, stanfordnlp/SHP, raw
openbmb/UltraFeedback, HuggingFaceH4/ultrafeedback_binarized), mutates most of them (a key dropped,
a value of the wrong type, an empty string, a lone surrogate, an SHP ``labels`` outside {0, 1},
identical responses, mismatched prompts, raw non-UTF-8 bytes, broken JSON lines, ...), writes them
to a real ``.jsonl`` / ``.jsonl.gz`` / ``.json`` / ``.parquet`` file (blank lines, CRLF endings and a
byte order mark thrown in) and calls ``load_pairs`` on it, as the pipeline does. The property:
``load_pairs`` either

* returns exactly the pairs and drop counts that the independent oracle below derives from the rows
  (plain ``str`` / ``list`` operations over the hub schema, no ``p2o.data`` code), or
* raises ``DataFormatError`` for the first bad row, with the oracle's ``path``, ``row`` (0-based line
  or list index, as ``p2o.data.errors`` counts) and ``field``, all three named in the message.

Any other exception fails the example. Runs are derandomized (reproducible in CI, no example
database); every test counts its examples, and the outcome of every fault case is printed at the end
of the module (``-s`` not needed). ``pytest tests/test_data_hostile.py --hypothesis-show-statistics``
shows hypothesis's own counts.
"""

from __future__ import annotations

import gzip
import json
import math
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from p2o.config import DatasetConfig
from p2o.data import PAIR_COLUMNS, DataFormatError, load_pairs

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


# --------------------------------------------------------------------------- bookkeeping

EXAMPLES: Counter[str] = Counter()  # test -> examples run
CASES: dict[str, Counter[str]] = defaultdict(Counter)  # "format: fault case" -> outcome -> count


class CountsSummary:
    """A plugin registered by this module: prints ``EXAMPLES`` and ``CASES`` in the terminal summary."""

    def pytest_terminal_summary(self, terminalreporter):
        if not EXAMPLES:
            return
        write = terminalreporter.write_line
        write("")
        write("hostile-data examples per test: " + ", ".join(f"{k}={v}" for k, v in EXAMPLES.items()))
        write(f"hostile-data fault cases ({len(CASES)}); outcome counts over every row that was reached:")
        for case in sorted(CASES):
            write(f"  {case}: " + ", ".join(f"{o} x{n}" for o, n in CASES[case].most_common()))


@pytest.fixture(scope="module", autouse=True)
def counts_summary(request):
    manager = request.config.pluginmanager
    if not manager.has_plugin("p2o-hostile-counts"):
        manager.register(CountsSummary(), "p2o-hostile-counts")


def pattern(path: tuple) -> str:
    """``("completions", 3, "response")`` -> ``completions[].response``."""
    out = ""
    for part in path:
        out += "[]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out


def field_pattern(field: str | None) -> str:
    return "-" if field is None else "".join("[]" if c.isdigit() else c for c in field).replace("[[]]", "[]")


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


# --------------------------------------------------------------------------- the property


def check_file(test: str, fmt: str, spec: FileSpec, min_score_ratio: float | None = None) -> str:
    """Write ``spec``, load it, and compare with the oracle; return a one-word outcome."""
    with tempfile.TemporaryDirectory(prefix="p2o-hostile-") as tmp:
        path, kind, indices, read_back = write_file(spec, Path(tmp), fmt)
        ds = DatasetConfig(format=fmt, source=str(path), min_score_ratio=min_score_ratio)
        if read_back is None:  # an unreadable file: one error naming the file, no row
            with pytest.raises(DataFormatError) as info:
                load_pairs("t", ds)
            err = info.value
            assert (err.path, err.row, err.field) == (str(path), None, None)
            assert str(err).startswith(f"{path}: not a readable parquet file"), str(err)
            CASES[f"{fmt}: parquet file pyarrow cannot read back"]["raised (file)"] += 1
            event(f"file kind: {kind}")
            event("outcome: raised")
            EXAMPLES[test] += 1
            return "raised"
        expected = [
            Err(frozenset({None}), item.problem) if isinstance(item, Raw) else ORACLES[fmt](item, ds)
            for item in read_back
        ]
        note(f"file kind {kind}; expected {expected}")
        first_error = next((k for k, e in enumerate(expected) if isinstance(e, Err)), None)
        try:
            frame, report = load_pairs("t", ds)
        except DataFormatError as err:
            outcome = check_error(err, path, indices, expected, first_error)
        else:
            assert first_error is None, f"row {indices[first_error]} should raise: {expected[first_error]}"
            check_pairs(frame, report, fmt, expected)
            outcome = "pairs"
    reached = len(expected) if first_error is None else first_error + 1
    for k in range(reached):
        e = expected[k]
        if isinstance(e, Err):
            result = f"raised ({'/'.join(sorted(field_pattern(f) for f in e.fields))})"
        elif isinstance(e, Drop):
            result = f"dropped {e.reason}"
        else:
            result = "parsed"
        label = spec.labels[k]
        if kind == "parquet" and _canonical(read_back[k]) != _canonical(spec.items[k]):
            label += " [parquet changed it: nulls for missing keys, a column's common type]"
        CASES[f"{fmt}: {label}"][result] += 1
    event(f"file kind: {kind}")
    event(f"outcome: {outcome}")
    EXAMPLES[test] += 1  # counted once the example has passed every check
    return outcome


def _canonical(row: dict) -> str:
    return json.dumps(row, sort_keys=True, default=repr)


def check_error(err: DataFormatError, path: Path, indices: list, expected: list, first_error: int | None) -> str:
    assert first_error is not None, f"unexpected DataFormatError: {err}"
    want = expected[first_error]
    message = str(err)
    assert err.path == str(path) and message.startswith(str(path)), message
    assert err.row == indices[first_error], (message, indices[first_error])
    assert message.startswith(f"{path}, row {err.row} (0-based)"), message
    assert err.field in want.fields, (message, want)
    if err.field is not None:
        assert f"field '{err.field}'" in message, message
    assert want.problem in message, (message, want.problem)
    assert len(message) < 2000, "the message must stay short even for huge values"
    return "raised"


def check_pairs(frame, report: dict, fmt: str, expected: list) -> None:
    assert list(frame.columns) == list(PAIR_COLUMNS)
    want, seen = [], set()
    dropped = dict.fromkeys(DROP_REASONS[fmt] + ["duplicate"], 0)
    for e in expected:
        if isinstance(e, Drop):
            dropped[e.reason] += 1
        elif (e.prompt, e.chosen, e.rejected) in seen:
            dropped["duplicate"] += 1
        else:
            seen.add((e.prompt, e.chosen, e.rejected))
            want.append((e.prompt, e.chosen, e.rejected))
    got = list(zip(frame["prompt"], frame["chosen"], frame["rejected"], strict=True))
    assert got == want
    assert report == {"rows": len(expected), "pairs": len(want), "dropped": dropped}
    assert frame["id"].is_unique and all(i.startswith("t-") for i in frame["id"])
    assert (frame["dataset"] == "t").all()
    for prompt, chosen, rejected in got:
        assert chosen != rejected and chosen.strip() and rejected.strip()  # never an identical/blank pair


FORMATS = ["hh-rlhf", "shp", "ultrafeedback", "ultrafeedback-binarized"]


@hostile(200)
@given(spec=file_spec("hh-rlhf"))
def test_hh_rlhf_hostile_rows(spec):
    check_file("hh-rlhf", "hh-rlhf", spec)


@hostile(200)
@given(spec=file_spec("shp"), min_score_ratio=st.sampled_from([None, None, 2.0]))
def test_shp_hostile_rows(spec, min_score_ratio):
    check_file("shp", "shp", spec, min_score_ratio)


@hostile(200)
@given(spec=file_spec("ultrafeedback"))
def test_ultrafeedback_hostile_rows(spec):
    check_file("ultrafeedback", "ultrafeedback", spec)


@hostile(200)
@given(spec=file_spec("ultrafeedback-binarized"))
def test_ultrafeedback_binarized_hostile_rows(spec):
    check_file("ultrafeedback-binarized", "ultrafeedback-binarized", spec)


# --------------------------------------------------------------------------- raw bytes and corrupt files


@st.composite
def valid_rows(draw, fmt: str) -> list[dict]:
    return draw(st.lists(BASE[fmt](), min_size=1, max_size=4))


@hostile(150)
@given(
    fmt=st.sampled_from(FORMATS),
    data=st.data(),
    kind=st.sampled_from(["jsonl", "jsonl.gz", "json"]),
    bom=st.booleans(),
)
def test_non_utf8_bytes_name_file_and_line(fmt, data, kind, bom):
    """Raw invalid UTF-8 (``b"\\xff\\xfe"`` and others) inside one row of hub-schema rows."""
    rows = data.draw(valid_rows(fmt))
    bad_row = data.draw(st.integers(0, len(rows) - 1))
    lines = [json.dumps(r, ensure_ascii=data.draw(st.booleans())).encode() for r in rows]
    lines[bad_row] = data.draw(st.builds(lambda d: insert_bad_bytes(d, lines[bad_row]), st.just(data.draw)))
    with tempfile.TemporaryDirectory(prefix="p2o-hostile-") as tmp:
        path = Path(tmp) / f"raw.{kind}"
        if kind == "json":  # "[" on line 1, row k on line k + 2
            body = b"[\n" + b",\n".join(lines) + b"\n]\n"
        else:
            body = b"".join(line + b"\n" for line in lines)
        body = (b"\xef\xbb\xbf" if bom else b"") + body
        path.write_bytes(gzip.compress(body) if kind == "jsonl.gz" else body)
        with pytest.raises(DataFormatError) as info:
            load_pairs("t", DatasetConfig(format=fmt, source=str(path)))
    err, message = info.value, str(info.value)
    assert err.path == str(path) and err.field is None, message
    assert "not valid UTF-8 (byte 0x" in message, message
    if kind == "json":
        assert err.row is None and f"at line {bad_row + 2}, column " in message, message
    else:
        assert err.row == bad_row and message.startswith(f"{path}, row {bad_row} (0-based): not valid UTF-8")
    CASES[f"any format: invalid UTF-8 bytes in a {kind} file"]["raised (-)"] += 1
    event(f"file kind: {kind}")
    EXAMPLES["non-utf8"] += 1


@hostile(100)
@given(
    fmt=st.sampled_from(FORMATS),
    data=st.data(),
    mode=st.sampled_from(["truncate", "flip byte"]),
)
def test_corrupt_gzip_is_a_data_format_error(fmt, data, mode):
    """A ``.jsonl.gz`` cut short or with one byte changed: ``DataFormatError``, or the very same pairs."""
    rows = data.draw(valid_rows(fmt))
    packed = gzip.compress(b"".join(json.dumps(r).encode() + b"\n" for r in rows), mtime=0)
    at = data.draw(st.integers(0, len(packed) - 1))
    if mode == "truncate":
        broken = packed[:at]
    else:
        broken = packed[:at] + bytes([packed[at] ^ data.draw(st.integers(1, 255))]) + packed[at + 1 :]
    with tempfile.TemporaryDirectory(prefix="p2o-hostile-") as tmp:
        good, bad = Path(tmp) / "good.jsonl.gz", Path(tmp) / "bad.jsonl.gz"
        good.write_bytes(packed)
        bad.write_bytes(broken)
        want = load_pairs("t", DatasetConfig(format=fmt, source=str(good)))
        try:
            got = load_pairs("t", DatasetConfig(format=fmt, source=str(bad)))
        except DataFormatError as err:
            assert err.path == str(bad) and str(err).startswith(str(bad)), str(err)
            outcome = "raised (-)" if err.field is None else "raised (field)"
            if err.field is not None:  # a changed byte inside a value: named like any bad row
                assert err.row is not None and f"field '{err.field}'" in str(err)
        else:
            # an intact stream (a flipped header flag bit the reader ignores), or nothing left (cut at 0)
            assert got[0].equals(want[0]) or (at == 0 and got[1]["rows"] == 0), (got, want)
            outcome = "same pairs" if got[0].equals(want[0]) else "empty"
    CASES[f"any format: gzip stream, {mode}"][outcome] += 1
    event(f"outcome: {outcome}")
    EXAMPLES["corrupt-gzip"] += 1


def test_unreadable_files_name_the_file(tmp_path):
    bad_parquet = tmp_path / "x.parquet"
    bad_parquet.write_bytes(b"PAR1 not really")
    not_gzip = tmp_path / "x.jsonl.gz"
    not_gzip.write_bytes(b'{"chosen": "not compressed"}\n')
    bad_json = tmp_path / "x.json"
    bad_json.write_bytes(b'[\n{"chosen": "\xff"}\n]')
    cases = [
        (bad_parquet, None, "not a readable parquet file"),
        (not_gzip, 0, "corrupt or truncated gzip stream (BadGzipFile"),
        (bad_json, None, "not valid UTF-8 (byte 0xff at line 2, column 13)"),
    ]
    for path, row, problem in cases:
        with pytest.raises(DataFormatError) as info:
            load_pairs("t", DatasetConfig(format="hh-rlhf", source=str(path)))
        assert (info.value.path, info.value.row, info.value.field) == (str(path), row, None)
        assert problem in str(info.value), str(info.value)


def test_nesting_at_the_recursion_limit_never_escapes(tmp_path):
    """A required field holding a list nested just below/above the interpreter's recursion limit:
    the JSON decoder and the error message (``repr``) both recurse; either way a DataFormatError."""
    limit = sys.getrecursionlimit()
    path = tmp_path / "deep.jsonl"
    for depth in [*range(limit - 120, limit + 20, 7), 10 * limit]:
        path.write_text('{"chosen": ' + "[" * depth + "]" * depth + ', "rejected": ""}\n')
        with pytest.raises(DataFormatError) as info:
            load_pairs("t", DatasetConfig(format="hh-rlhf", source=str(path)))
        assert info.value.row == 0 and info.value.field in (None, "chosen"), str(info.value)


def test_nul_inside_texts_never_merges_distinct_pairs(tmp_path):
    """``prompt\\0chosen\\0rejected`` is ambiguous when a text holds a NUL: these two different pairs
    used to share an id, and the second was dropped as a duplicate."""
    prompt = "\n\nHuman: q\n\nAssistant:"
    rows = [
        {"chosen": prompt + " x\x00 y", "rejected": prompt + " z"},
        {"chosen": prompt + " x", "rejected": prompt + " y\x00 z"},
        {"chosen": prompt + " x", "rejected": prompt + " y\x00 z"},  # a true duplicate
    ]
    path = tmp_path / "nul.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    frame, report = load_pairs("t", DatasetConfig(format="hh-rlhf", source=str(path)))
    assert list(zip(frame["chosen"], frame["rejected"], strict=True)) == [(" x\x00 y", " z"), (" x", " y\x00 z")]
    assert frame["id"].is_unique and report["dropped"]["duplicate"] == 1


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


@hostile(30)
@given(fmt=st.sampled_from(FORMATS), data=st.data())
def test_very_long_rows_load_quickly(fmt, data):
    """Rows with 100k-character strings or thousands of turns are parsed (or rejected as usual) in
    well under a second; tokenisation truncates them later."""
    labels, rows = zip(*data.draw(st.lists(long_row(fmt), min_size=1, max_size=3)), strict=True)
    spec = FileSpec(kind=data.draw(st.sampled_from(["jsonl", "jsonl.gz", "json", "parquet"])), items=list(rows),
                    labels=list(labels), blanks=[0] * len(rows), blank_text="", eol=b"\n", bom=False,
                    ensure_ascii=False)  # fmt: skip
    start = time.perf_counter()
    check_file("long-rows", fmt, spec)
    assert time.perf_counter() - start < 20, "a few long rows must not take long"
