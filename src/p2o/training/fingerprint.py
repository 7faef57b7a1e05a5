"""What makes two training runs the same run: the fingerprint a checkpoint must match to be resumed.

A run is fixed by three things, each hashed on its own so that a mismatch can say which changed:

    params   every parameter the job reads (config sections, method and hyper-parameters, seed,
             dataset order, total steps), as canonical JSON
    inputs   the sha256 of every file it reads (the starting model's folder, the splits, the
             reference log-probs), streamed in chunks once at job start
    code     the digest of the source it runs: each function or module of p2o it reaches
             (``p2o.job_code``: the stage, the trainer, the loop, the method's loss and what they use)

The fingerprint is the sha256 of the three digests. ``p2o.training.loop.Checkpoint`` resumes only a
checkpoint with the same fingerprint; the job's summary records it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from p2o.job_code import code_digests

CHUNK = 1 << 20


def sha256_json(obj) -> str:
    """sha256 of ``obj``'s canonical JSON (keys sorted)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def input_digests(inputs: Mapping[str, str | Path]) -> dict[str, str]:
    """name -> sha256 of each input file; a folder (a saved model) gives one entry per file under it,
    ``name/relative/path``. Names, not paths, so a moved working folder is still the same run."""
    out = {}
    for name, path in inputs.items():
        path = Path(path)
        if path.is_dir():
            for f in sorted(p for p in path.rglob("*") if p.is_file()):
                out[f"{name}/{f.relative_to(path).as_posix()}"] = file_sha256(f)
        else:
            out[name] = file_sha256(path)
    return out


def flatten(params: Mapping, prefix: str = "") -> dict:
    """Nested dicts as one level of dotted keys: ``{"train": {"lr": 1}} -> {"train.lr": 1}``."""
    out = {}
    for k, v in params.items():
        if isinstance(v, Mapping):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


@dataclass(frozen=True)
class Fingerprint:
    """A run's parameters, input digests and code digests. Callers add what they know with
    ``extend``: the job its config sections, input files and its own code, the trainer its method and
    its loss, the loop its optimizer section, seed and step count."""

    params: Mapping = field(default_factory=dict)
    inputs: Mapping[str, str] = field(default_factory=dict)
    code: Mapping[str, str] = field(default_factory=dict)

    def extend(self, params: Mapping | None = None, inputs: Mapping[str, str] | None = None,
               code: Iterable[str] = ()) -> Fingerprint:
        """This fingerprint with more parameters, input digests and code: ``p2o.job_code`` entries
        (``"p2o.training.loop:train_loop"``), digested here with everything they reach."""
        return Fingerprint({**self.params, **(params or {})}, {**self.inputs, **(inputs or {})},
                           {**self.code, **code_digests(code)})

    def parts(self) -> dict[str, str]:
        return {"params": sha256_json(self.params), "inputs": sha256_json(self.inputs),
                "code": sha256_json(self.code)}

    def sha256(self) -> str:
        return sha256_json(self.parts())

    def record(self, with_params: bool = True) -> dict:
        """The fingerprint, its parts' digests, the input and code digests and (``with_params``) the
        parameters: JSON, for a checkpoint or a summary."""
        out = {"sha256": self.sha256(), "parts": self.parts(), "inputs": dict(self.inputs), "code": dict(self.code)}
        if with_params:
            out["params"] = json.loads(json.dumps(self.params, default=str))
        return out

    def differences(self, other: Mapping | None) -> str:
        """What differs between this run and the ``record`` of another, e.g.
        ``"params changed: train.lr 0.0002 → 0.001"``; empty when they are the same run."""
        if not isinstance(other, Mapping) or "parts" not in other:
            return "written without a run fingerprint"
        if other.get("sha256") == self.sha256():
            return ""
        mine, theirs = self.parts(), other["parts"]
        out = []
        if mine["params"] != theirs.get("params"):
            now, then = flatten(json.loads(json.dumps(self.params, default=str))), flatten(other.get("params", {}))
            keys = [k for k in sorted(now.keys() | then.keys()) if now.get(k, "—") != then.get(k, "—")]
            out.append("params changed: " + _some([f"{k} {then.get(k, '—')} → {now.get(k, '—')}" for k in keys]))
        for part in ("inputs", "code"):
            if mine[part] != theirs.get(part):
                now, then = getattr(self, part), other.get(part, {})
                names = [k for k in sorted(now.keys() | then.keys()) if now.get(k) != then.get(k)]
                out.append(f"{part} changed: " + _some(names))
        return "; ".join(out) or "fingerprint differs"


def _some(items: list[str], n: int = 4) -> str:
    return ", ".join(items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "") if items else "?"
