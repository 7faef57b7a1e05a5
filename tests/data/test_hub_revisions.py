"""Pinned data sources: ``download`` resolves a hub dataset's revision to a commit, reads the rows at
that commit and records it beside the raw file; a local source records its sha256; ``prepare``'s
manifest carries the record. The hub is never reached: ``huggingface_hub`` and ``datasets`` are
monkeypatched."""

from __future__ import annotations

import hashlib
import json
from types import SimpleNamespace

import pytest
from huggingface_hub import HfApi, errors

from p2o.config import ConfigError, DatasetConfig
from p2o.data import prepare_dataset
from p2o.data.sources import resolve_source
from p2o.io import read_json
from p2o.provenance import source_label
from p2o.stages import jobs

COMMIT = "0123456789abcdef0123456789abcdef01234567"
ROWS = [{"chosen": f"\n\nHuman: Question {i} about tea?\n\nAssistant: Answer {i} with {i} details.",
         "rejected": f"\n\nHuman: Question {i} about tea?\n\nAssistant: No."} for i in range(40)]


def hub_error(cls):
    """An instance of a huggingface_hub HTTP error without an HTTP response."""
    error = cls.__new__(cls)
    Exception.__init__(error, "mocked")
    return error


@pytest.fixture
def hub(monkeypatch):
    """A mocked hub with one dataset, ``org/prefs``, whose branch ``main`` and tag ``v1`` are ``COMMIT``;
    records the revision of every lookup and of every ``load_dataset``."""
    import datasets

    calls = {"info": [], "load": []}

    def dataset_info(self, repo_id, *, revision=None, **kwargs):
        calls["info"].append((repo_id, revision))
        if repo_id != "org/prefs":
            raise hub_error(errors.RepositoryNotFoundError)
        if revision not in (None, "main", "v1", COMMIT):
            raise hub_error(errors.RevisionNotFoundError)
        return SimpleNamespace(id=repo_id, sha=COMMIT)

    def load_dataset(path, *, data_dir=None, split=None, revision=None, **kwargs):
        calls["load"].append((path, revision))
        return list(ROWS)

    monkeypatch.setattr(HfApi, "dataset_info", dataset_info)
    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


@pytest.mark.parametrize("revision", [None, "v1", COMMIT])
def test_download_records_the_commit_it_read(tmp_path, hub, revision):
    ds = DatasetConfig(format="hh-rlhf", source="org/prefs", revision=revision)
    raw = tmp_path / "raw" / "hh.jsonl"
    assert jobs.download(ds, raw, key="data.datasets.hh") == len(ROWS)
    record = read_json(tmp_path / "raw" / "hh.source.json")  # jobs.raw_source_path
    assert record["kind"] == "hub" and record["source"] == "org/prefs"
    assert record["revision"] == revision and record["commit"] == COMMIT
    assert hub["info"] == [("org/prefs", revision)]
    assert hub["load"] == [("org/prefs", COMMIT)]  # the rows are read at the recorded commit
    assert source_label(record) == f"org/prefs@{COMMIT}"

    manifest = prepare_dataset("hh", DatasetConfig(format="hh-rlhf", source=str(raw)), 20, 10, "p2o-v1",
                               tmp_path / "data", resolved=record)
    assert manifest["resolved"] == record
    assert read_json(tmp_path / "data" / "manifest.json")["resolved"]["commit"] == COMMIT


def test_prepare_from_the_hub_resolves_and_reads_the_commit(tmp_path, hub):
    """Without a download's record (the p2o command line), prepare resolves the source itself."""
    manifest = prepare_dataset("hh", DatasetConfig(format="hh-rlhf", source="org/prefs", revision="v1"), 20, 10,
                               "p2o-v1", tmp_path)
    assert manifest["revision"] == "v1" and manifest["resolved"]["commit"] == COMMIT
    assert hub["load"] == [("org/prefs", COMMIT)]


def test_a_revision_the_hub_lacks_stops_naming_the_config_key(tmp_path, hub):
    ds = DatasetConfig(format="hh-rlhf", source="org/prefs", revision="no-such-tag")
    with pytest.raises(ConfigError, match=r"config key 'data\.datasets\.hh\.revision'.*no-such-tag"):
        jobs.download(ds, tmp_path / "hh.jsonl", key="data.datasets.hh")
    assert not (tmp_path / "hh.jsonl").exists() and not (tmp_path / "hh.source.json").exists()
    assert hub["load"] == []  # nothing read
    with pytest.raises(ConfigError, match=r"config key 'data\.datasets\.uf\.source'.*org/missing"):
        resolve_source(DatasetConfig(format="ultrafeedback", source="org/missing"), "data.datasets.uf")


def test_offline_only_a_full_commit_resolves(monkeypatch):
    def offline(self, repo_id, **kwargs):
        raise errors.OfflineModeIsEnabled("offline")

    monkeypatch.setattr(HfApi, "dataset_info", offline)
    record = resolve_source(DatasetConfig(format="shp", source="org/prefs", revision=COMMIT), "data.datasets.shp")
    assert record["commit"] == COMMIT
    with pytest.raises(ConfigError, match=r"data\.datasets\.shp\.revision.*offline"):
        resolve_source(DatasetConfig(format="shp", source="org/prefs", revision="main"), "data.datasets.shp")


def test_local_sources_record_their_sha256(tmp_path):
    path = tmp_path / "hh.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    jobs.download(DatasetConfig(format="hh-rlhf", source=str(path)), tmp_path / "raw" / "hh.jsonl")
    record = read_json(tmp_path / "raw" / "hh.source.json")
    assert record == {"kind": "local", "source": str(path), "sha256": digest}
    assert source_label(record) == f"local sha256 {digest}" and source_label(record, 10) == f"local sha256 {digest[:10]}"
    # prepare without a record (the command line) computes the same
    manifest = prepare_dataset("hh", DatasetConfig(format="hh-rlhf", source=str(path)), 20, 10, "p2o-v1",
                               tmp_path / "data")
    assert manifest["resolved"]["sha256"] == digest


def test_a_local_folder_digest_changes_with_any_file(tmp_path):
    folder = tmp_path / "shards"
    folder.mkdir()
    for k in range(2):
        (folder / f"part{k}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS[k::2]))
    ds = DatasetConfig(format="hh-rlhf", source=str(folder))
    before = resolve_source(ds)["sha256"]
    assert resolve_source(ds)["sha256"] == before
    (folder / "part1.jsonl").write_text(json.dumps(ROWS[0]) + "\n")
    assert resolve_source(ds)["sha256"] != before
