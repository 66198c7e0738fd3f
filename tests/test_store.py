"""The record store: incremental and idempotent ingests, the replacement rule, atomic snapshots, the batch gate."""

import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from lens.corpus import RECORD_COLUMNS, load_corpus
from lens.errors import BatchCheckError, StoreError
from lens.ingest import export_quarantine, ingest
from lens.settings import PROJECT_ROOT, Settings
from lens.sources import Drop, drops_from_frames, empty_table
from lens.sources.local import LocalSource
from lens.store import Store
from tests.conftest import FIXTURES

LIVEBENCH = sorted((Settings().corpus / "records").glob("livebench-*.csv.gz"))
CONFLICT = "one file gives conflicting values for the same (source, task, dataset, metric, model)"


def _local(*paths: Path) -> list[LocalSource]:
    return [LocalSource(paths)]


def _rows(path: Path) -> int:
    return len(pd.read_csv(path))


class ListSource:
    """A real Source: delivers the drops it was given (what a Hub source does with what it downloaded)."""

    name = "test-list"

    def __init__(self, drops: Iterable[Drop]):
        self.drops = list(drops)

    def fetch(self, seen):
        return [d for d in self.drops if d.revision not in seen]


def _drop(revision: str, records: list[tuple], fetched_at: datetime, **frames) -> Drop:
    frame = pd.DataFrame(records, columns=list(RECORD_COLUMNS)) if records else empty_table("records")
    return Drop("test-list", f"memory://{revision}", revision, fetched_at, records=frame, **frames)


def test_a_snapshot_loads_as_the_same_corpus_as_the_files_it_came_from(slice_dir: Path):
    store = Store()
    report = ingest(_local(slice_dir), store)
    assert report.outcome == "published" and report.failed_files == []
    from_files, from_store = load_corpus(slice_dir), load_corpus(store.current_dir())
    assert from_store.fingerprint == from_files.fingerprint
    assert from_store.summary() == from_files.summary()
    records = store.read("records")
    assert records["revision"].str.len().eq(64).all() and records["origin"].str.endswith(".csv.gz").all()
    assert (records["ingested_in"] == report.snapshot).all() and records["fetched_at"].notna().all()


def test_livebench_releases_arrive_as_nightly_drops_one_by_one_and_repeats_add_nothing(tmp_path: Path):
    store, snapshots, total = Store(), [], 0
    for release in LIVEBENCH:
        report = ingest(_local(release), store)
        total += _rows(release)
        assert report.outcome == "published" and report.counts["records"].added == _rows(release)
        assert store.manifest()["counts"]["records"] == total
        snapshots.append(report.snapshot)
    assert len(LIVEBENCH) == 10 and store.snapshot_ids() == snapshots
    assert [store.parent(s) for s in snapshots] == [None, *snapshots[:-1]]
    first = store.read("records", snapshots[0])  # earlier snapshots stay readable and unchanged
    assert len(first) == _rows(LIVEBENCH[0]) and set(first["ingested_in"]) == {snapshots[0]}

    again = ingest(_local(*LIVEBENCH), store)  # the same files: skipped by content hash, unread
    assert again.outcome == "unchanged" and again.files == () and again.snapshot == snapshots[-1]
    renamed = tmp_path / "renamed.csv.gz"  # the same bytes under another name
    renamed.write_bytes(LIVEBENCH[0].read_bytes())
    rewritten = tmp_path / "rewritten.csv"  # the same rows in new bytes: read, and nothing changes
    pd.read_csv(LIVEBENCH[1]).to_csv(rewritten, index=False)
    repeat = ingest(_local(renamed, rewritten), store)
    assert [f.origin for f in repeat.files] == [str(rewritten)]
    assert repeat.outcome == "unchanged" and repeat.counts["records"].unchanged == _rows(LIVEBENCH[1])
    assert store.snapshot_ids() == snapshots and repeat.files[0].revision in store.seen("local")


def test_a_later_value_replaces_the_current_one_and_the_old_one_moves_to_history(tmp_path: Path):
    store = Store()
    first = ingest(_local(LIVEBENCH[0]), store)
    corrected = pd.read_csv(LIVEBENCH[0]).head(10)
    corrected.loc[0, "value"] += 1.5
    corrected.to_csv(tmp_path / "correction.csv", index=False)
    second = ingest(_local(tmp_path / "correction.csv"), store)
    counts = second.counts["records"]
    assert (counts.updated, counts.unchanged, counts.added) == (1, 9, 0)
    key = corrected.loc[0, ["source", "task", "dataset", "metric", "model"]]
    current = store.read("records").set_index(list(key.index)).loc[tuple(key)]
    assert current["value"] == corrected.loc[0, "value"] and current["ingested_in"] == second.snapshot
    history = store.read("history")
    assert len(history) == 1 and history.loc[0, "replaced_in"] == second.snapshot
    assert history.loc[0, "value"] == pytest.approx(corrected.loc[0, "value"] - 1.5)
    assert history.loc[0, "ingested_in"] == first.snapshot
    assert store.manifest()["counts"]["records"] == _rows(LIVEBENCH[0])


def test_an_older_value_arriving_later_goes_straight_to_history():
    now = datetime.now(UTC)
    row = ("lb", "Coding", "LCB", "model-a", "score", 50.0, 1)
    store = Store()
    ingest([ListSource([_drop("new", [row], now)])], store)
    older = ingest([ListSource([_drop("old", [(*row[:5], 40.0, 1)], now - timedelta(days=3))])], store)
    assert older.counts["records"].superseded == 1
    assert store.read("records")["value"].tolist() == [50.0]
    assert store.read("history")["value"].tolist() == [40.0]


def test_within_one_ingest_the_latest_fetched_value_wins():
    now = datetime.now(UTC)
    base = ("lb", "Coding", "LCB", "model-a", "score")
    drops = [_drop("b", [(*base, 2.0, 1)], now), _drop("a", [(*base, 1.0, 1)], now - timedelta(hours=1))]
    report = ingest([ListSource(drops)], Store())
    assert report.counts["records"].added == 1 and report.counts["records"].superseded == 1
    assert Store().read("records")["value"].tolist() == [2.0]


def test_frames_with_per_row_provenance_become_one_drop_per_revision():
    rows = pd.read_csv(LIVEBENCH[0]).head(6)
    rows["origin"] = ["https://hub/a"] * 3 + ["https://hub/b"] * 3  # what a Hub source builds: provenance per row
    rows["revision"] = ["sha-a"] * 3 + [None] * 3
    rows["fetched_at"] = "2025-06-01T00:00:00+00:00"
    drops = drops_from_frames("test-list", "https://hub", datetime.now(UTC), records=rows)
    assert [(d.origin, d.rows) for d in drops] == [("https://hub/a", 3), ("https://hub/b", 3)]
    assert drops[0].revision == "sha-a" and drops[1].revision.startswith("sha256:")
    store = Store()
    assert ingest([ListSource(drops)], store).counts["records"].added == 6
    assert (
        ingest([ListSource(drops_from_frames("test-list", "https://hub", datetime.now(UTC), records=rows))]).files == ()
    )
    assert set(store.read("records")["revision"]) == {d.revision for d in drops}


def test_model_metadata_merges_field_by_field_and_keeps_the_old_version():
    now = datetime.now(UTC)

    def models(**fields) -> pd.DataFrame:
        return empty_table("models").reindex([0]).assign(model="org/m-7b", **fields)

    store = Store()
    ingest([ListSource([_drop("m1", [], now, models=models(license="mit", n_parameters="7e9"))])], store)
    ingest([ListSource([_drop("m2", [], now + timedelta(hours=1), models=models(hf_id="org/m-7b"))])], store)
    merged = store.read("models").iloc[0]
    assert (merged["license"], merged["n_parameters"], merged["hf_id"]) == ("mit", 7e9, "org/m-7b")
    assert store.read("models_history")["hf_id"].isna().all() and len(store.read("models_history")) == 1


def test_a_snapshot_staged_but_never_published_leaves_the_previous_one_current():
    store = Store()
    before = ingest(_local(LIVEBENCH[0]), store).snapshot
    with store.writing():  # a fault between writing the snapshot files and publishing them
        staging = store.stage("crashed", {"records": store.read("records").head(3)}, {"parent": before})
        staging.rename(store.snapshots / "crashed")  # even after the rename: the catalog never listed it
    assert store.current() == before and load_corpus(store.root).summary()["records"] == _rows(LIVEBENCH[0])
    after = ingest(_local(LIVEBENCH[1]), store)
    assert after.previous == before and not (store.snapshots / "crashed").exists()
    assert sorted(p.name for p in store.snapshots.iterdir()) == sorted(store.snapshot_ids())


def test_an_ingest_killed_while_writing_keeps_the_previous_snapshot(
    isolated_home: Path, real_corpus_dir: Path, tmp_path: Path
):
    store = Store()
    before = ingest(_local(LIVEBENCH[0]), store).snapshot
    big = [real_corpus_dir / "records" / name for name in ("timm.csv.gz", "openclip.csv.gz", "benchbench.csv.gz")]
    env = {**os.environ, "MODELLENS_HOME": str(isolated_home), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "lens.cli", "ingest", "--accept-batch-failures", *map(str, big)]
    with (tmp_path / "stderr.txt").open("w") as stderr:
        process = subprocess.Popen(command, env=env, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=stderr)
        staging = None
        while staging is None and process.poll() is None:
            staging = next(store.snapshots.glob(".staging-*"), None)
            time.sleep(0.001)
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert staging is not None, (
        f"the ingest ended before it was caught writing: {(tmp_path / 'stderr.txt').read_text()}"
    )
    assert store.current() == before and store.snapshot_ids() == [before]
    assert load_corpus(store.root).summary()["records"] == _rows(LIVEBENCH[0])
    retried = ingest(_local(*big), store, accept_batch_failures=True)  # the killed files were never marked ingested
    assert retried.counts["records"].added == sum(map(_rows, big)) and not staging.exists()


def test_only_one_writer_at_a_time():
    store = Store()
    with store.writing(), pytest.raises(StoreError, match="another ingest"), Store(store.root).writing():
        pass


def test_quarantined_rows_are_exported_fixed_and_readmitted(tmp_path: Path):
    store = Store()
    bad = pd.read_csv(LIVEBENCH[0], dtype=str).head(20)
    bad.loc[3, "value"] = "n/a"
    bad.to_csv(tmp_path / "drop.csv", index=False)
    first = ingest(_local(tmp_path / "drop.csv"), store)
    assert first.counts["records"].quarantined == 1 and first.counts["records"].added == 19
    [exported] = export_quarantine(tmp_path / "fix", store)
    fixed = pd.read_csv(exported)
    assert fixed.loc[0, "quarantine_reason"] == "value is missing or not a number"
    fixed.loc[0, "value"] = 42.0
    fixed.to_csv(exported, index=False)
    second = ingest(_local(tmp_path / "fix"), store)
    assert (second.counts["records"].added, second.counts["records"].resolved) == (1, 1)
    assert store.status()["quarantined"] == 0 and store.quarantine(include_resolved=True)["resolved_in"].notna().all()


def test_a_value_shift_stops_the_refresh_and_keeps_the_previous_snapshot(tmp_path: Path):
    store = Store()
    before = ingest(_local(*LIVEBENCH[:2]), store).snapshot
    rescaled = pd.read_csv(LIVEBENCH[2]).assign(
        value=lambda f: f["value"] * 100
    )  # percentages turned into basis points
    rescaled.to_csv(tmp_path / "rescaled.csv", index=False)
    with pytest.raises(BatchCheckError, match="shift") as failure:
        ingest(_local(tmp_path / "rescaled.csv"), store)
    revision = hashlib.sha256((tmp_path / "rescaled.csv").read_bytes()).hexdigest()
    assert store.current() == before and revision not in store.seen("local")  # retried on the next run
    assert '"success": false' in failure.value.validation.read_text()
    summary = failure.value.validation.with_suffix(".md").read_text()
    assert re.search(r"BATCH FAILURE: .*shift.*; observed \d", summary)  # the rejected value, for the reviewer
    assert store.last_ingest().outcome == "rejected"
    accepted = ingest(_local(tmp_path / "rescaled.csv"), store, accept_batch_failures=True)
    assert accepted.outcome == "published" and accepted.previous == before


def test_a_drop_mostly_from_a_new_source_stops_the_refresh(real_corpus_dir: Path):
    store = Store()
    before = ingest(_local(*LIVEBENCH[:2]), store).snapshot
    with pytest.raises(BatchCheckError, match="at most half"):
        ingest(_local(real_corpus_dir / "records" / "timm.csv.gz"), store)
    assert store.current() == before


def test_the_public_layout_is_ingested_with_descriptions_and_metadata():
    store = Store()
    report = ingest(_local(FIXTURES / "public_corpus"), store)
    records = report.counts["records"]
    assert (records.rows_in, records.added, records.quarantined) == (12, 9, 3)  # "n/a", and 77 vs 79 for one key
    assert store.quarantine()["reason"].value_counts().to_dict() == {CONFLICT: 2, "value is missing or not a number": 1}
    corpus = load_corpus(store.root)
    squad = corpus.groups[corpus.groups["dataset"] == "squad"].iloc[0]
    assert squad["description"].startswith("Stanford Question Answering Dataset.")
    assert corpus.models.set_index("name").loc["Qwen/Qwen2-7B", "n_parameters"] == pytest.approx(7.6e9)
    assert len(corpus.rejected) == 3
