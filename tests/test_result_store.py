"""The store of sent results that lets a redelivered job get the same answer."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from sandboxd.intake import ResultStore


def _body(job_id: str, status: str = "passed") -> str:
    return json.dumps({"schema": "sandboxd.result/v1", "id": job_id, "status": status})


def test_a_result_survives_a_restart(tmp_path: Path) -> None:
    ResultStore(tmp_path).put("job-1", _body("job-1"))
    again = ResultStore(tmp_path)  # a new daemon process on the same host
    got = again.get("job-1")
    assert got is not None and json.loads(got)["status"] == "passed"
    assert again.get("job-2") is None


def test_memory_is_bounded_and_keeps_the_newest(tmp_path: Path) -> None:
    store = ResultStore(None, max_entries=3)
    for i in range(5):
        store.put(f"j{i}", _body(f"j{i}"))
    assert [store.get(f"j{i}") is not None for i in range(5)] == [False, False, True, True, True]


def test_a_damaged_or_foreign_file_is_not_an_answer(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    store.put("job-1", _body("job-1"))
    (path,) = tmp_path.glob("*.json")
    path.write_text('{"id": "another-job", "status": "failed"}')
    assert ResultStore(tmp_path).get("job-1") is None
    path.write_text('{"id": "job-1", "sta')  # cut short
    assert ResultStore(tmp_path).get("job-1") is None


def test_memory_is_bounded_by_bytes_and_the_disk_still_answers(tmp_path: Path) -> None:
    store = ResultStore(tmp_path, max_memory_bytes=1000)
    big = {f"j{i}": _body(f"j{i}") + " " * 400 for i in range(5)}
    for job_id, body in big.items():
        store.put(job_id, body)
    assert store._memory_bytes <= 1000
    assert all(store.get(job_id) is not None for job_id in big)  # from disk


def test_with_a_directory_memory_keeps_only_the_newest_and_the_disk_the_rest(
    tmp_path: Path,
) -> None:
    store = ResultStore(tmp_path, max_entries=10, max_memory_entries=3)
    for i in range(8):
        store.put(f"j{i}", _body(f"j{i}"))
    assert list(store._memory) == ["j5", "j6", "j7"]  # memory stays flat past its bound
    assert all(store.get(f"j{i}") is not None for i in range(8))  # the older from disk


def test_the_disk_keeps_the_newest_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(random, "random", lambda: 0.0)  # prune on every put
    store = ResultStore(tmp_path, max_entries=3)
    for i in range(6):
        store.put(f"j{i}", _body(f"j{i}"))
        for path in tmp_path.glob("*.json"):  # older files, older mtimes
            os.utime(path, (path.stat().st_mtime - 1, path.stat().st_mtime - 1))
    assert len(list(tmp_path.glob("*.json"))) == 3
    fresh = ResultStore(tmp_path)  # nothing in memory: what the disk kept
    assert [fresh.get(f"j{i}") is not None for i in range(6)] == [False] * 3 + [True] * 3
