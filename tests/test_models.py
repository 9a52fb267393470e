from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandboxd.models import (
    MAX_FILE_BYTES,
    FileSpec,
    Job,
    JobRejected,
    Result,
    Verdict,
    parse_job,
)


def job_doc(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schema": "sandboxd.job/v1",
        "id": "job-1",
        "language": "python",
        "files": [{"path": "two_fer.py", "content": "def f():\n    return 1\n"}],
    }
    doc.update(overrides)
    return doc


def test_valid_job_parses() -> None:
    """A well-formed job becomes a Job with defaults filled in."""
    job = parse_job(json.dumps(job_doc()))
    assert job.id == "job-1"
    assert job.pool_key == "python"
    assert job.files[0].data() == b"def f():\n    return 1\n"
    assert job.stream is False


def test_base64_files_decode() -> None:
    """base64 content is decoded to the exact bytes, including invalid UTF-8."""
    raw = b"\xff\xfe\x00binary"
    doc = job_doc(
        files=[
            {
                "path": "b.bin",
                "content": base64.b64encode(raw).decode(),
                "encoding": "base64",
                "mode": 0o755,
            }
        ]
    )
    spec = parse_job(json.dumps(doc)).files[0]
    assert spec.data() == raw
    assert spec.size() == len(raw)
    assert spec.mode == 0o755


@pytest.mark.parametrize(
    ("doc", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1,2]", "not a JSON object"),
        (json.dumps({"id": "x"}).encode(), "missing 'schema'"),
        (json.dumps(job_doc(schema="sandboxd.job/v2")).encode(), "unsupported schema"),
        (json.dumps(job_doc(language=None)).encode(), "exactly one of"),
        (json.dumps(job_doc(image="x")).encode(), "exactly one of"),
        (json.dumps(job_doc(files=[{"path": "../etc/passwd", "content": ""}])).encode(), "'..'"),
        (json.dumps(job_doc(files=[{"path": "/abs", "content": ""}])).encode(), "absolute"),
        (
            json.dumps(
                job_doc(files=[{"path": "a", "content": ""}, {"path": "./a", "content": ""}])
            ).encode(),
            "given twice",
        ),
        (
            json.dumps(
                job_doc(files=[{"path": "a", "content": ""}, {"path": "a/b", "content": ""}])
            ).encode(),
            "lies below",
        ),
        (
            json.dumps(
                job_doc(files=[{"path": "a", "content": "!!", "encoding": "base64"}])
            ).encode(),
            "not valid base64",
        ),
        (json.dumps(job_doc(limits={"memory_mb": -1})).encode(), "limits.memory_mb"),
        (json.dumps(job_doc(stdin="x")).encode(), "need a 'command'"),
        (json.dumps(job_doc(surprise=1)).encode(), "surprise"),
        (json.dumps(job_doc(id="has space")).encode(), "printable"),
        (json.dumps(job_doc(id="x" * 129)).encode(), "id"),
    ],
)
def test_bad_jobs_are_rejected_with_a_reason(doc: bytes, fragment: str) -> None:
    """Each kind of malformed job is refused with a message naming the problem."""
    with pytest.raises(JobRejected) as info:
        parse_job(doc)
    assert fragment in info.value.message


def test_rejection_keeps_the_id_and_reply_to_when_readable() -> None:
    """A rejected job's id and reply address are kept so the rejection can be answered."""
    with pytest.raises(JobRejected) as info:
        parse_job(json.dumps(job_doc(files="nope", reply_to="http://127.0.0.1/q")))
    assert info.value.job_id == "job-1"
    assert info.value.reply_to == "http://127.0.0.1/q"


def test_oversize_file_is_rejected() -> None:
    """A file over the per-file size limit is refused."""
    with pytest.raises(JobRejected, match="limit"):
        parse_job(
            json.dumps(job_doc(files=[{"path": "big", "content": "x" * (MAX_FILE_BYTES + 1)}]))
        )


@given(st.binary(max_size=300))
def test_base64_size_matches_decoded_length(raw: bytes) -> None:
    """The size computed without decoding equals the decoded length."""
    spec = FileSpec(path="f", content=base64.b64encode(raw).decode(), encoding="base64")
    assert spec.size() == len(raw) == len(spec.data())


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(json_values)
def test_arbitrary_json_never_escapes_as_another_exception(value: Any) -> None:
    """Any JSON value either parses to a Job or raises JobRejected, never anything else."""
    try:
        parse_job(json.dumps(value))
    except JobRejected as exc:
        assert exc.message


@given(json_values)
def test_metadata_round_trips_untouched(meta: Any) -> None:
    """Opaque metadata is echoed back exactly."""
    job = parse_job(json.dumps(job_doc(metadata=meta)))
    result = Result(id=job.id, status=Verdict.PASSED, metadata=job.metadata)
    assert json.loads(result.to_json())["metadata"] == meta


def test_result_serialises_with_schema_field() -> None:
    """Results carry their schema under the wire name 'schema'."""
    doc = json.loads(Result(id="a", status=Verdict.TIMEOUT).to_json())
    assert doc["schema"] == "sandboxd.result/v1"
    assert doc["status"] == "timeout"


def test_job_model_is_the_parse_target() -> None:
    """Job can be built directly by code (the CLI does) with the same validation."""
    with pytest.raises(ValueError):
        Job(id="x", files=[])


def test_a_lone_surrogate_escape_is_rejected_with_the_id() -> None:
    """JSON may escape half a surrogate pair; such text could never be sent back."""
    body = '{"schema": "sandboxd.job/v1", "id": "j-1", "language": "python", "metadata": "\\ud800"}'
    with pytest.raises(JobRejected) as info:
        parse_job(body)
    assert info.value.job_id == "j-1"
    assert "not valid Unicode" in info.value.message
