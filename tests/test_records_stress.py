"""Concurrency stress of the records: owners and recoverers on one data dir agree with the database."""

from __future__ import annotations

from pathlib import Path

from stress_harness import run_stress


def test_owners_and_recoverers_at_once_agree_with_the_database(tmp_path: Path) -> None:
    out = run_stress(tmp_path / "stress-data", workers=3, tasks_each=20, recoverers=2, seconds=8)
    assert not out.failed_workers, out.failed_workers
    assert not out.lost_records, out.lost_records
    assert not out.wrong_states, out.wrong_states
