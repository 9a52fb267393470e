"""`sandboxd submit`: the reference client — what a web app does, in one command.

Sends a job to the jobs queue through SQS (same configuration as the daemon) and, with
`--wait`, reads its streamed output and its result from a reply queue of its own (created
for the occasion and deleted after), printing them as `sandboxd run` does.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sandboxd.config import Settings
from sandboxd.models import EVENT_SCHEMA, RESULT_SCHEMA, Result, Verdict
from sandboxd.sqs import LOOPBACK, QueueClient, QueueError
from sandboxd.terminal import escape, escape_line


class SubmitError(Exception):
    """The job could not be submitted or its result not read; one line for the user."""


@dataclass
class Submission:
    document: dict[str, Any]  # the job, as sent
    wait: bool = False
    stream: bool = False
    timeout: float = 120.0
    reply_queue: str | None = None  # name or URL; default: a private temporary queue


def endpoint_of(settings: Settings) -> str | None:
    """Where the daemon's queues are: the embedded server's address, or AWS's chain."""
    if settings.sqs == "embedded":
        return f"http://{LOOPBACK}:{settings.embedded_sqs_port}"
    return None


class _Printer:
    """Prints stdout/stderr events in `seq` order, whatever order SQS delivers them in."""

    def __init__(self, out: Callable[[str, str], None]) -> None:
        self.out = out
        self.next_seq = 0
        self.pending: dict[int, dict[str, Any]] = {}
        self.finished = False

    def take(self, event: dict[str, Any]) -> None:
        seq = event.get("seq")
        if not isinstance(seq, int) or seq < self.next_seq:
            return  # a duplicate delivery
        self.pending[seq] = event
        while self.next_seq in self.pending:
            ev = self.pending.pop(self.next_seq)
            self.next_seq += 1
            kind = ev.get("kind")
            data = ev.get("data") or {}
            if kind in ("stdout", "stderr") and isinstance(data, dict):
                self.out(str(kind), str(data.get("text", "")))
            elif kind == "finished":
                self.finished = True


async def submit(
    settings: Settings,
    sub: Submission,
    *,
    on_output: Callable[[str, str], None] | None = None,
    progress: Callable[[str], None] | None = None,
) -> Result | None:
    """Send the job; with `wait`, return its result (None without `wait`)."""
    say = progress or (lambda line: None)
    doc = dict(sub.document)
    job_id = doc.get("id")
    if not isinstance(job_id, str):
        raise SubmitError("the job has no string 'id'")
    async with QueueClient(settings, endpoint_url=endpoint_of(settings)) as queue:
        try:
            jobs_url = await queue.resolve(settings.jobs_queue)
        except QueueError as exc:
            raise SubmitError(
                f"cannot reach the jobs queue: {exc} (is `sandboxd serve` running?)"
            ) from None
        temporary: str | None = None
        reply_url: str | None = None
        try:
            if sub.wait:
                if sub.reply_queue is not None:
                    reply_url = await queue.resolve(sub.reply_queue)
                else:
                    temporary = reply_url = await queue.create_queue(
                        f"sandboxd-reply-{uuid.uuid4().hex[:12]}"
                    )
                doc["reply_to"] = reply_url
                if sub.stream:
                    doc["stream"] = True
            body = json.dumps(doc, ensure_ascii=False)
            message_id = await queue.send(jobs_url, body)
            say(f"sent job {job_id} (message {message_id}) to {jobs_url}")
            if not sub.wait or reply_url is None:
                return None
            return await _await_result(queue, reply_url, job_id, sub.timeout, on_output)
        except QueueError as exc:
            raise SubmitError(str(exc)) from None
        finally:
            if temporary is not None:
                try:
                    await queue.delete_queue(temporary)
                except QueueError as exc:
                    say(f"could not delete the reply queue {temporary}: {exc}")


async def _await_result(
    queue: QueueClient,
    reply_url: str,
    job_id: str,
    timeout: float,
    on_output: Callable[[str, str], None] | None,
) -> Result:
    printer = _Printer(on_output or (lambda stream, text: None))
    end = time.monotonic() + timeout
    result: Result | None = None
    while True:
        left = end - time.monotonic()
        if left <= 0:
            if result is not None:
                return result  # some output events never came; the result did
            raise SubmitError(f"no result for job {job_id} within {timeout:g} s")
        wait = max(0, min(20, int(left)))
        for message in await queue.receive(reply_url, max_messages=10, wait_seconds=wait):
            await queue.delete(reply_url, message.receipt_handle)
            try:
                doc = json.loads(message.body)
            except ValueError:
                continue
            if not isinstance(doc, dict) or doc.get("id") != job_id:
                continue  # someone else's answer on a shared reply queue
            if doc.get("schema") == EVENT_SCHEMA:
                printer.take(doc)
            elif doc.get("schema") == RESULT_SCHEMA:
                result = Result.model_validate(doc)
        if result is not None:
            # Events travel as separate messages; give stragglers a moment, no more.
            if printer.next_seq == 0 or printer.finished or time.monotonic() > end:
                return result
            if result.status is Verdict.REJECTED:
                return result
            end = min(end, time.monotonic() + 2)


def print_output(stream: str, text: str) -> None:
    target = sys.stderr if stream == "stderr" else sys.stdout
    target.write(text)
    target.flush()


def print_escaped(stream: str, text: str) -> None:
    """The learner's output with every control sequence shown, not obeyed. Events carry
    text the daemon already decoded, so no character is split across two of them."""
    print_output(stream, escape(text))


def run_submit(settings: Settings, sub: Submission, *, raw: bool = False) -> Result | None:
    """Synchronous entry for the CLI; `raw` prints the streamed output untouched."""
    return asyncio.run(
        submit(
            settings,
            sub,
            on_output=print_output if raw else print_escaped,
            # Our own lines, but they quote the job's id and queue URLs: one line, escaped.
            progress=lambda line: print(escape_line(line), file=sys.stderr, flush=True),
        )
    )
