"""The canary: before a daemon takes jobs, each language's smallest passing fixture runs
through its pool. A language whose canary does not pass is not ready: `/readyz` and
`/v1/pools` say why, and its jobs are treated as for a missing image (retried, then
`internal_error`), while the other languages serve.

The case travels in the image (label `sandboxd.canary`, written at build time from
`runners/<lang>/fixtures/`, see `images.canary_label`), so a host needs no checkout.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import Any

from pydantic import ValidationError

from sandboxd.images import LABEL_CANARY
from sandboxd.jobs import RunContext, execute
from sandboxd.models import Job, Verdict
from sandboxd.pool import Pool

log = logging.getLogger(__name__)

CANARY_SECONDS = 60.0


def canary_from_labels(labels: dict[str, str], language: str, host: str) -> tuple[str, Job] | None:
    """(case name, the job to run) from an image's labels; None when it has no canary.
    ValueError when the label is there but unreadable."""
    raw = labels.get(LABEL_CANARY)
    if raw is None:
        return None
    try:
        doc: Any = json.loads(raw)
        case = str(doc["case"])
        job = Job.model_validate(doc["job"])
    except (ValueError, KeyError, TypeError, ValidationError) as exc:
        raise ValueError(f"its {LABEL_CANARY} label is unreadable: {exc}") from None
    job_id = f"canary-{language}-{host}-{uuid.uuid4().hex[:8]}"[:128]
    return case, job.model_copy(update={"id": job_id, "language": language, "image": None})


async def run_canary(
    pool: Pool, language: str, labels: dict[str, str], ctx: RunContext,
    seconds: float = CANARY_SECONDS,
) -> str | None:  # fmt: skip
    """Why `language` must not serve (its canary did not pass), or None."""
    try:
        found = canary_from_labels(labels, language, ctx.host)
    except ValueError as exc:
        return f"canary: {exc}"
    if found is None:
        log.warning("language %s: its image has no canary (built without fixtures)", language)
        return None
    case, job = found
    try:
        result = await asyncio.wait_for(execute(pool, job, ctx), seconds)
    except TimeoutError:
        return f"canary {case}: no verdict in {seconds:g} s"
    if result.status is not Verdict.PASSED:
        return f"canary {case}: {result.status.value}, not passed: {result.message}"
    log.info("language %s: canary %s passed in %d ms", language, case, result.timing.total_ms)
    return None
