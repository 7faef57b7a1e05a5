"""Where the model and the data came from, from ``init_model`` to ``runs.csv`` and the setup table:
a hub model's resolved commit (the hub mocked), a local model's sha256, and the records a training
summary carries into the aggregate and the paper."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from huggingface_hub import HfApi, errors

from p2o.config import ConfigError, ModelConfig
from p2o.io import read_json, write_json
from p2o.model import loading
from p2o.model.loading import SOURCE_FILE, init_base_model, model_source, resolve_model, save_model
from p2o.provenance import file_sha256, tree_sha256
from p2o.report.aggregate import collect_runs
from p2o.report.paper import setup_tex
from p2o.stages import jobs

COMMIT = "fedcba9876543210fedcba9876543210fedcba98"
DATA_COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hub_model(monkeypatch, model, tokenizer):
    """A mocked hub with one model, ``org/gpt`` (branch main = ``COMMIT``); ``from_pretrained`` returns
    the tiny test model and records the revision it was asked for."""
    loads = []

    def model_info(self, repo_id, *, revision=None, **kwargs):
        if repo_id != "org/gpt":
            raise errors.RepositoryNotFoundError.__new__(errors.RepositoryNotFoundError)
        if revision not in (None, "main", COMMIT):
            error = errors.RevisionNotFoundError.__new__(errors.RevisionNotFoundError)
            Exception.__init__(error, "mocked")
            raise error
        return SimpleNamespace(id=repo_id, sha=COMMIT)

    def model_from_pretrained(name, revision=None, **kwargs):
        loads.append(("model", name, revision))
        return model

    def tokenizer_from_pretrained(name, revision=None, **kwargs):
        loads.append(("tokenizer", name, revision))
        return tokenizer

    monkeypatch.setattr(HfApi, "model_info", model_info)
    monkeypatch.setattr(loading.AutoModelForCausalLM, "from_pretrained", model_from_pretrained)
    monkeypatch.setattr(loading.AutoTokenizer, "from_pretrained", tokenizer_from_pretrained)
    return loads


@pytest.mark.parametrize("revision", [None, "main"])
def test_init_model_reads_and_records_the_hub_commit(tmp_path, hub_model, revision):
    out = init_base_model(ModelConfig(name_or_path="org/gpt", revision=revision), tmp_path / "base")
    record = read_json(out / SOURCE_FILE)
    assert record == {"kind": "hub", "source": "org/gpt", "revision": revision, "commit": COMMIT}
    assert hub_model == [("model", "org/gpt", COMMIT), ("tokenizer", "org/gpt", COMMIT)]  # read at the commit
    assert model_source(out) == record


def test_a_model_revision_the_hub_lacks_stops_naming_the_config_key(tmp_path, hub_model):
    with pytest.raises(ConfigError, match=r"config key 'model\.revision'.*no-such-branch"):
        init_base_model(ModelConfig(name_or_path="org/gpt", revision="no-such-branch"), tmp_path / "base")
    assert hub_model == [] and not (tmp_path / "base").exists()


def test_local_and_tiny_models_record_what_they_are(tmp_path, model, tokenizer):
    folder = save_model(model, tokenizer, tmp_path / "mine")
    files = {f.relative_to(folder).as_posix(): f for f in sorted(folder.rglob("*")) if f.is_file()}
    record = resolve_model(ModelConfig(name_or_path=str(folder)))
    assert record == {"kind": "local", "source": str(folder), "sha256": tree_sha256(files)}
    assert resolve_model(ModelConfig(name_or_path="tiny"))["kind"] == "tiny"


def test_runs_csv_and_setup_table_show_the_sources(tmp_path, hub_model):
    """A run's summary records its model's and data's sources (``jobs.sources``); runs.csv and the
    setup table show them with their commit, or the local sha256."""
    base = init_base_model(ModelConfig(name_or_path="org/gpt"), tmp_path / "base")
    local_sha = "ab" * 32
    hub_data = {"kind": "hub", "source": "org/prefs", "revision": None, "commit": DATA_COMMIT}
    local_data = {"kind": "local", "source": "../shared/data/shp.jsonl", "sha256": local_sha}
    manifests = {}
    for name, record in (("hh", hub_data), ("shp", local_data)):
        manifests[name] = {"format": "hh-rlhf", "rows": 10, "dropped": {}, "resolved": record,
                           "splits": {"train": {"n": 8, "sha256": "c" * 64}, "eval": {"n": 2, "sha256": "d" * 64}}}
        write_json(tmp_path / "data" / name / "manifest.json", manifests[name])
    sources = jobs.sources(base, {n: tmp_path / "data" / n / "train.jsonl" for n in manifests})
    assert sources == {"model": read_json(base / SOURCE_FILE), "data": {"hh": hub_data, "shp": local_data}}
    summary = tmp_path / "summary.json"
    write_json(summary, {
        "method": "dpo", "seed": 0, "loss": "dpo", "inner_steps": 1, "hparams": {"beta": 0.1},
        "final": {"steps": 2}, "train": {"batch_size": 8, "lr": 1e-3, "epochs": 1, "warmup_ratio": 0.0,
                                         "max_grad_norm": 1.0},
        "tokenize": {"max_length": 64, "max_prompt_length": 32}, "wall_s": 1.0, "sources": sources})
    runs = collect_runs([summary])
    assert runs.loc[0, "model_source"] == f"org/gpt@{COMMIT}"
    assert json.loads(runs.loc[0, "data_sources"]) == {"hh": f"org/prefs@{DATA_COMMIT}",
                                                       "shp": f"local sha256 {local_sha}"}
    lock = tmp_path / "lock.txt"
    lock.write_text("torch==2.13.0\n")
    tex = setup_tex(runs, manifests, read_json(summary), "org/gpt", ("requirements/lock.txt", file_sha256(lock)))
    rows = {line.split(" & ")[0]: line for line in tex.splitlines() if " & " in line}
    assert f"\\texttt{{org/prefs}} @ \\texttt{{{DATA_COMMIT[:10]}}}" in rows["HH (hh-rlhf)"]
    assert f"local sha256 {local_sha[:10]}\\ldots" in rows["SHP (hh-rlhf)"]
    assert f"\\texttt{{org/gpt}} @ \\texttt{{{COMMIT[:10]}}}" in rows["Model"]
    assert f"sha256 {file_sha256(lock)[:10]}" in rows["Environment"] and "lock.txt" in rows["Environment"]
