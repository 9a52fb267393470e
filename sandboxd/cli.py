"""The `sandboxd` command line.

Exit codes: 0 all passed, 1 some job did not pass, 2 usage error, 3 internal error,
130 interrupted (Ctrl-C).
Every error is one clear line on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import sys
import time
import unicodedata
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, TextIO, TypeVar

from sandboxd.capacity import default_slots
from sandboxd.terminal import StreamEscaper, escape, escape_line

if TYPE_CHECKING:
    import aiodocker

    from sandboxd.exercise import LocalFile

EXIT_OK = 0
EXIT_NOT_PASSED = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130

log = logging.getLogger(__name__)


class UsageError(Exception):
    pass


class InternalError(Exception):
    pass


def _err(message: str) -> None:
    # Always escaped, newlines too: an error is one line, and it may quote a file name.
    print(f"sandboxd: {escape_line(message)}", file=sys.stderr)


def shown(raw: bool) -> Callable[[str], str]:
    """How untrusted text is printed in human mode: escaped, or untouched with --raw."""
    return (lambda text: text) if raw else escape


# -- sandboxd schemas -------------------------------------------------------------------


def _cmd_schemas(args: argparse.Namespace) -> int:
    from sandboxd import schemas

    for path in schemas.write(Path(args.out)):
        print(path)
    return EXIT_OK


async def _engine() -> aiodocker.Docker:
    """A connection to the Docker engine, or InternalError saying how to get one."""
    import aiodocker

    docker = aiodocker.Docker()
    try:
        await docker.version()
    except Exception as exc:
        await docker.close()
        raise InternalError(
            f"cannot reach the Docker engine ({exc.__class__.__name__}: {exc}); "
            "run `make setup` or start dockerd"
        ) from None
    return docker


# -- sandboxd check-image ---------------------------------------------------------------


def _cmd_check_image(args: argparse.Namespace) -> int:
    return asyncio.run(_check_image(args))


async def _check_image(args: argparse.Namespace) -> int:

    from sandboxd.catalog import UnknownLanguage, load_image_spec, load_spec
    from sandboxd.conformance import CaseError, find_cases, run_case
    from sandboxd.images import project_root
    from sandboxd.pool import Pool, PoolConfig

    target: str = args.target
    is_ref = ":" in target or "/" in target or target.startswith("sha256")
    docker = await _engine()
    try:
        try:
            spec = await (load_image_spec(docker, target) if is_ref else load_spec(docker, target))
        except UnknownLanguage as exc:
            raise UsageError(str(exc)) from None
        language = spec.pool
        fixtures = (
            Path(args.fixtures)
            if args.fixtures
            else project_root() / "runners" / language / "fixtures"
        )
        try:
            cases = find_cases(fixtures, language)
        except CaseError as exc:
            raise UsageError(str(exc)) from None
        if not cases:
            raise UsageError(f"no fixture cases in {fixtures}")
        print(
            f"check-image {target}: {language} ({spec.image[:19]}), "
            f"{len(cases)} cases from {fixtures}"
        )
        pool = Pool(
            docker, {language: spec}, PoolConfig(size=1), host_id=f"cli-{os.uname().nodename}"
        )
        conforming = 0
        try:
            await pool.start()
            if not await pool.wait_warm(180):
                raise InternalError(
                    f"no sandbox of {language} started: {pool.last_error(language)}"
                )
            width = max(len(c.name) for c in cases)
            for case in cases:
                run = await run_case(pool, case)
                conforming += run.ok
                mark = "ok" if run.ok else "DIFFERS"
                print(f"  {case.name:<{width}}  {mark:<7}  {run.summary()}  ({run.seconds:.2f} s)")
                if not run.ok:
                    for line in [
                        *run.differences[:10],
                        *([run.message] if run.verdict is not case.verdict else []),
                    ]:
                        print(f"  {'':<{width}}    {escape(line)}")
        finally:
            await _close(pool)
        verdict = "conforms" if conforming == len(cases) else "does NOT conform"
        print(f"{language}: {conforming} of {len(cases)} cases as expected: the image {verdict}")
        return EXIT_OK if conforming == len(cases) else EXIT_NOT_PASSED
    finally:
        await docker.close()


# -- sandboxd images --------------------------------------------------------------------


def _cmd_images_build(args: argparse.Namespace) -> int:
    from sandboxd import images

    names = args.languages or images.languages()
    t0 = time.monotonic()

    def progress(line: str) -> None:
        print(line, flush=True)

    try:
        # `images build LANG --force` rebuilds LANG; the base only when it is stale.
        force_base = not args.languages
        built = asyncio.run(images.ensure(names, progress, force=args.force, force_base=force_base))
    except images.ImageError as exc:
        raise InternalError(str(exc)) from None
    took = time.monotonic() - t0
    print(f"built: {', '.join(built) if built else 'nothing (all up to date)'} in {took:.1f} s")
    return EXIT_OK


def _cmd_images_list(args: argparse.Namespace) -> int:
    from sandboxd import images

    rows = asyncio.run(images.status())
    width = max(len(r.tag) for r in rows)
    print(f"{'IMAGE':<10} {'STATE':<8} {'TAG':<{width}}  {'MODE':<8} VERSIONS")
    for row in rows:
        print(f"{row.name:<10} {row.state:<8} {row.tag:<{width}}  {row.about}".rstrip())
    return EXIT_OK if all(r.state == "current" for r in rows) else EXIT_NOT_PASSED


# -- sandboxd run -----------------------------------------------------------------------


def job_from_dir(
    directory: Path,
    language: str,
    command: str | None = None,
    stdin: str | None = None,
    expected_output: str | None = None,
    limits: dict[str, Any] | None = None,
) -> Any:
    """Build a job from an exercise directory: every file below it, caches skipped, no
    symlink followed out of it (see `sandboxd.exercise`)."""
    from pydantic import ValidationError

    from sandboxd.exercise import ExerciseError, read_exercise
    from sandboxd.models import Job, JobRejected, describe_validation_error

    if not directory.is_dir():
        raise UsageError(f"{directory}: not a directory")
    try:
        local = read_exercise(directory)
    except ExerciseError as exc:
        raise UsageError(str(exc)) from None
    files = [_file_doc(f) for f in local]
    doc: dict[str, Any] = {
        "schema": "sandboxd.job/v1",
        "id": f"{_safe_id(directory.resolve().name)}-{uuid.uuid4().hex[:8]}",
        "language": language,
        "files": files,
        "limits": limits or {},
    }
    if command is not None:
        doc["command"] = command
    if stdin is not None:
        doc["stdin"] = stdin
    if expected_output is not None:
        doc["expected_output"] = expected_output
    try:
        return Job.model_validate(doc)
    except ValidationError as exc:
        raise UsageError(f"{directory}: {describe_validation_error(exc)}") from None
    except JobRejected as exc:  # pragma: no cover - model_validate raises ValidationError
        raise UsageError(f"{directory}: {exc.message}") from None


def _file_doc(local: LocalFile) -> dict[str, Any]:
    """A job's file entry: text as UTF-8 when it decodes, anything else as base64."""
    try:
        return {"path": local.path, "content": local.data.decode("utf-8"), "mode": local.mode}
    except UnicodeDecodeError:
        import base64

        content = base64.b64encode(local.data).decode()
        return {"path": local.path, "content": content, "encoding": "base64", "mode": local.mode}


def _safe_id(name: str) -> str:
    cleaned = "".join(ch if (ch.isascii() and ch.isalnum()) or ch in "-_." else "-" for ch in name)
    return cleaned[:64] or "job"


_STATUS_MARK = {"pass": "PASS", "fail": "FAIL", "error": "ERR "}


def render_result(result: Any, color: bool, raw: bool = False) -> str:
    """The human summary of a result: per-test lines, then the verdict and its message.

    Names and messages come from the learner's run, so they are escaped unless `raw`;
    the colour codes are ours and stay.
    """
    show = shown(raw)

    def paint(text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if color else text

    lines = []
    for t in result.tests:
        mark = _STATUS_MARK.get(t.status.value, t.status.value)
        mark = paint(mark, "32" if t.status.value == "pass" else "31")
        lines.append(f"  {mark}  {show(t.name)}")
        if t.status.value != "pass" and t.message:
            # Split on newlines only: a \r is shown as `\r`, or (raw) left to the terminal.
            for msg_line in show(t.message).removesuffix("\n").split("\n")[:6]:
                lines.append(f"          {msg_line}")
    verdict = result.status.value
    colour = "32" if verdict == "passed" else "31"
    timing = result.timing
    lines.append(
        f"{paint(verdict.upper(), '1;' + colour)}: {show(result.message)} "
        f"(run {timing.run_ms} ms, total {timing.total_ms} ms)"
    )
    return "\n".join(lines)


class _LiveOutput:
    """Writes a job's streamed output as it comes: escaped per stream, or raw bytes."""

    def __init__(self, raw: bool) -> None:
        self.raw = raw
        # One decoder per stream: a character split across chunks is split within one.
        self.escapers = {"stdout": StreamEscaper(), "stderr": StreamEscaper()}

    @staticmethod
    def _target(kind: str) -> TextIO:
        return sys.stdout if kind == "stdout" else sys.stderr

    def __call__(self, kind: Literal["stdout", "stderr"], data: bytes) -> None:
        target = self._target(kind)
        if self.raw:
            target.buffer.write(data)
        else:
            target.write(self.escapers[kind].feed(data))
        target.flush()

    def close(self) -> None:
        """Show what an unfinished character left in a decoder."""
        for kind, escaper in self.escapers.items():
            self._target(kind).write(escaper.flush())
            self._target(kind).flush()


def _passed_tests(result: Any) -> int:
    return sum(1 for t in result.tests if t.status.value == "pass")


def _print_summary(results: list[tuple[Path, Any]], raw: bool) -> None:
    """The table after several DIRs: one line each, then how many passed."""
    show = shown(raw)
    print()
    print(f"{'VERDICT':<14} {'TESTS':>7} {'RUN ms':>7}  EXERCISE")
    for directory, result in results:
        print(
            f"{result.status.value:<14} {_passed_tests(result):>3}/{len(result.tests):<3} "
            f"{result.timing.run_ms:>7}  {show(str(directory))}"
        )
    n_ok = sum(1 for _, r in results if r.status.value == "passed")
    print(f"{n_ok} of {len(results)} passed")


# -- several DIRs at once -----------------------------------------------------------------

_J = TypeVar("_J")
_R = TypeVar("_R")


async def _run_parallel(
    jobs: Sequence[_J],
    limit: int,
    run: Callable[[_J, int], Awaitable[_R]],
    failed: Callable[[_J, Exception], _R],
    on_start: Callable[[int], None] | None = None,
    on_done: Callable[[int, _R], None] | None = None,
) -> list[_R]:
    """Run every job with at most `limit` in flight; the results in the order given.

    `run(job, queued_ms)` is told how long the job waited for a slot. A job that raises
    becomes `failed(job, exc)` and the others go on. Cancelled (Ctrl-C), every job in
    flight is cancelled and waited for before the cancellation goes on.
    """
    slots = asyncio.Semaphore(limit)
    t0 = time.monotonic()

    async def one(index: int, job: _J) -> _R:
        async with slots:
            queued_ms = int((time.monotonic() - t0) * 1000)
            if on_start is not None:
                on_start(index)
            try:
                result = await run(job, queued_ms)
            except Exception as exc:  # one job's failure is its own result, not the batch's
                result = failed(job, exc)
            if on_done is not None:
                on_done(index, result)
            return result

    tasks = [asyncio.create_task(one(i, job)) for i, job in enumerate(jobs)]
    if not tasks:
        return []
    try:
        await asyncio.wait(tasks)  # unlike gather, cancelled it leaves the cancelling to us
    finally:
        for task in tasks:
            task.cancel()  # once: a job's cleanup is not cut short by a second one
        await asyncio.gather(*tasks, return_exceptions=True)
    return [task.result() for task in tasks]


class _InOrder(Generic[_R]):
    """Passes results on in the order given, each as soon as those before it are done."""

    def __init__(self, emit: Callable[[_R], None]) -> None:
        self.emit = emit
        self.ready: dict[int, _R] = {}
        self.next = 0

    def done(self, index: int, result: _R) -> None:
        self.ready[index] = result
        while self.next in self.ready:
            self.emit(self.ready.pop(self.next))
            self.next += 1


def _outcome(result: Any) -> Literal["passed", "failed", "errors"]:
    """The progress count a result adds to: `errors` are ours or the input's
    (internal_error, rejected); `failed` is any other verdict but passed."""
    status = result.status.value
    if status == "passed":
        return "passed"
    return "errors" if status in ("internal_error", "rejected") else "failed"


def finished_line(done: int, total: int, name: str, result: Any) -> str:
    """A finished job, one plain line: `[7/20] path/to/dir: failed (3/5 tests, 212 ms)`,
    the run time in ms as in the summary table. `name` is already made safe."""
    tests = f"{_passed_tests(result)}/{len(result.tests)} tests, " if result.tests else ""
    return f"[{done}/{total}] {name}: {result.status.value} ({tests}{result.timing.run_ms} ms)"


def _cells(text: str) -> int:
    """Terminal columns `text` takes: wide (CJK) characters two, combining ones none."""
    return sum(_cell(ch) for ch in text)


def _cell(ch: str) -> int:
    if unicodedata.combining(ch):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def _keep_tail(text: str, cells: int) -> str:
    """`text` in at most `cells` columns, its start cut (the end of a path tells most)."""
    if _cells(text) <= cells:
        return text
    kept: list[str] = []
    used = 1  # the ellipsis
    for ch in reversed(text):
        used += _cell(ch)
        if used > cells:
            break
        kept.append(ch)
    return "…" + "".join(reversed(kept)) if cells > 0 else ""


def _keep_head(text: str, cells: int) -> str:
    kept: list[str] = []
    used = 0
    for ch in text:
        used += _cell(ch)
        if used > cells:
            break
        kept.append(ch)
    return "".join(kept)


def _columns() -> int:
    return shutil.get_terminal_size().columns


class Progress:
    """Where several DIRs stand while they run, on `out`.

    On a TTY one line, rewritten in place (carriage return, clear to the end of the line)
    as jobs start and finish, kept within the terminal's width and cleared at the end.
    Anywhere else (a pipe, a CI log) one plain line per finished job, nothing rewritten.
    `names` are the DIRs as shown, already made safe for the terminal.
    """

    def __init__(
        self, names: list[str], out: TextIO, tty: bool, columns: Callable[[], int] = _columns
    ) -> None:
        self.names = names
        self.out = out
        self.tty = tty
        self.columns = columns
        self.running = 0
        self.done = 0
        self.counts = {"passed": 0, "failed": 0, "errors": 0}
        self.last: str | None = None
        self.drawn = False  # a TTY line is on the screen

    def started(self, index: int) -> None:
        self.running += 1
        if self.tty:
            self._draw()

    def finished(self, index: int, result: Any) -> None:
        self.running -= 1
        self.done += 1
        self.counts[_outcome(result)] += 1
        self.last = f"{self.names[index]} {result.status.value}"
        if self.tty:
            self._draw()
        else:
            total = len(self.names)
            print(finished_line(self.done, total, self.names[index], result), file=self.out)
            self.out.flush()

    def line(self, width: int) -> str:
        """The TTY line, in at most `width` columns."""
        total = len(self.names)
        c = self.counts
        head = (
            f"[{self.done:>{len(str(total))}}/{total}] {self.running} running · "
            f"{c['passed']} passed · {c['failed']} failed · {c['errors']} errors"
        )
        sep = "  — last: "
        room = width - _cells(head) - _cells(sep)
        if self.last is None or room < 12:
            return _keep_head(head, width)
        return head + sep + _keep_tail(self.last, room)

    def _draw(self) -> None:
        # One column short of the width: a line that fills it wraps on some terminals,
        # and the carriage return would then rewrite only the line's second half.
        self.out.write("\r" + self.line(self.columns() - 1) + "\x1b[K")
        self.out.flush()
        self.drawn = True

    def clear(self) -> None:
        if self.drawn:
            self.out.write("\r\x1b[K")
            self.out.flush()
            self.drawn = False


class Interrupted(Exception):
    """Ctrl-C: what was running was cancelled and cleaned up; exit 130."""


def _job_raised(job: Any, exc: Exception, ctx: Any) -> Any:
    """The result of a job whose run raised (a bug of ours): internal_error."""
    from sandboxd.models import Result, Verdict

    log.info("job %s raised", job.id, exc_info=exc)
    return Result(
        id=job.id,
        attempt=ctx.attempt,
        status=Verdict.INTERNAL_ERROR,
        message=f"sandboxd failed running this job: {type(exc).__name__}: {exc}",
        host=ctx.host,
        metadata=job.metadata,
    )


async def _run_in_pool(
    pool: Any, args: argparse.Namespace, jobs: list[tuple[Path, Any]], limit: int
) -> list[tuple[Path, Any]]:
    """Run the jobs, at most `limit` at once, and print what `sandboxd run` prints."""
    from sandboxd.jobs import RunContext, execute

    ctx = RunContext()
    single = len(jobs) == 1
    human = not args.json
    tty = sys.stdout.isatty()
    color = tty and human
    line_of = (lambda text: text) if args.raw else escape_line  # a name on a one-line report
    rewrite = tty and os.environ.get("TERM") != "dumb"  # one that cannot clear a line
    progress = (
        Progress([line_of(str(d)) for d, _ in jobs], sys.stdout, rewrite)
        if human and not single
        else None
    )
    live = _LiveOutput(args.raw) if single and human else None
    in_order = _InOrder[Any](lambda result: print(result.to_json(), flush=True))
    finished = 0

    async def run(job: Any, queued_ms: int) -> Any:
        return await execute(pool, job, ctx, live, queued_ms)

    def on_done(index: int, result: Any) -> None:
        nonlocal finished
        finished += 1
        if progress is not None:
            progress.finished(index, result)
        if args.json:
            in_order.done(index, result)

    try:
        results = await _run_parallel(
            [job for _, job in jobs],
            limit,
            run,
            lambda job, exc: _job_raised(job, exc, ctx),
            on_start=progress.started if progress is not None else None,
            on_done=on_done,
        )
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()  # the cancellation ends here, as an error of its own
        what = (
            ": the job was" if single else f" after {finished} of {len(jobs)} jobs: the rest were"
        )
        raise Interrupted(f"interrupted{what} cancelled, no sandbox left behind") from None
    finally:
        if progress is not None:
            progress.clear()
    if live is not None:
        live.close()
        if results[0].stdout and not results[0].stdout.endswith("\n"):
            print()
    done = [(directory, result) for (directory, _), result in zip(jobs, results, strict=True)]
    if human:
        if progress is not None and not rewrite:
            print()  # after the lines of the finished jobs
        for directory, result in done:
            if not single:
                print(f"=== {shown(args.raw)(str(directory))}")
            print(render_result(result, color, args.raw), flush=True)
        if not single:
            _print_summary(done, args.raw)
    return done


async def _close(pool: Any) -> None:
    """Close the pool even if Ctrl-C cancels us meanwhile (a sandbox must not outlive
    us), then let the cancellation go on."""
    closing = asyncio.ensure_future(pool.close())
    cancelled = False
    while not closing.done():
        try:
            await asyncio.shield(closing)
        except asyncio.CancelledError:
            cancelled = True
    closing.result()
    if cancelled:
        raise asyncio.CancelledError


async def _run_jobs(args: argparse.Namespace, jobs: list[tuple[Path, Any]]) -> int:

    from sandboxd.catalog import UnknownLanguage, load_spec
    from sandboxd.pool import Pool, PoolConfig

    docker = await _engine()
    try:
        languages = sorted({job.pool_key for _, job in jobs})
        specs = {}
        for lang in languages:
            try:
                specs[lang] = await load_spec(docker, lang)
            except UnknownLanguage as exc:
                raise UsageError(str(exc)) from None
        limit = args.jobs
        size = min(limit, len(jobs))
        # A spare when jobs outnumber the slots: a sandbox retired after one job (a limit,
        # a hostile leftover) is replaced while the next job runs in the spare.
        spares = 1 if len(jobs) > size else 0
        pool = Pool(
            docker, specs, PoolConfig(size=size, spares=spares),
            host_id=f"cli-{os.uname().nodename}",
        )  # fmt: skip
        try:
            await pool.start()
            results = await _run_in_pool(pool, args, jobs, limit)
        finally:
            await _close(pool)
        if any(r.status.value == "internal_error" for _, r in results):
            return EXIT_INTERNAL
        return EXIT_OK if all(r.status.value == "passed" for _, r in results) else EXIT_NOT_PASSED
    finally:
        await docker.close()


def _read_text(path: str | None, what: str) -> str | None:
    if path is None:
        return None
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {what} file {path}: {exc}") from None


def _cmd_run(args: argparse.Namespace) -> int:
    limits = {
        k: v
        for k, v in {
            "wall_seconds": args.wall_seconds,
            "cpu_seconds": args.cpu_seconds,
            "memory_mb": args.memory_mb,
            "pids": args.pids,
            "output_bytes": args.output_bytes,
            "disk_mb": args.disk_mb,
        }.items()
        if v is not None
    }
    if args.command is None and (args.stdin or args.expected_output):
        raise UsageError("--stdin and --expected-output need --command")
    stdin = _read_text(args.stdin, "stdin")
    expected = _read_text(args.expected_output, "expected output")
    if args.jobs is None:
        args.jobs = default_slots()
    jobs = [
        (Path(d), job_from_dir(Path(d), args.language, args.command, stdin, expected, limits))
        for d in args.dirs
    ]
    return asyncio.run(_run_jobs(args, jobs))


# -- parser -----------------------------------------------------------------------------


# -- sandboxd serve / submit --------------------------------------------------------------


def _load_settings() -> Any:
    from sandboxd.config import ConfigError, load_settings

    try:
        return load_settings()
    except ConfigError as exc:
        raise UsageError(f"bad configuration: {exc}") from None


def _cmd_serve(args: argparse.Namespace) -> int:
    from sandboxd.daemon import configure_logging, serve

    # Logging first: what loading the settings warns about is then one of the daemon's
    # JSON log lines, not a line in another format ahead of them.
    configure_logging(logging.DEBUG if args.verbose else logging.INFO)
    settings = _load_settings()
    return asyncio.run(serve(settings))


def _cmd_submit(args: argparse.Namespace) -> int:
    import json

    from sandboxd.submit import Submission, SubmitError, run_submit

    settings = _load_settings()
    target = Path(args.target)
    if target.is_dir():
        doc = job_from_dir(target, args.language).model_dump(
            mode="json", by_alias=True, exclude_none=True
        )
    elif target.is_file():
        try:
            doc = json.loads(target.read_text("utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise UsageError(f"{target}: not a JSON job document ({exc})") from None
        if not isinstance(doc, dict):
            raise UsageError(f"{target}: a job document is a JSON object")
    else:
        raise UsageError(f"{target}: no such directory or file")
    wait = args.wait or args.stream or args.json
    sub = Submission(doc, wait=wait, stream=args.stream, timeout=args.timeout,
                     reply_queue=args.reply_queue)  # fmt: skip
    try:
        result = run_submit(settings, sub, raw=args.raw)
    except SubmitError as exc:
        raise InternalError(str(exc)) from None
    if result is None:
        print(shown(args.raw)(str(doc.get("id"))))
        return EXIT_OK
    if args.json:
        print(result.to_json())
    else:
        print(render_result(result, color=sys.stdout.isatty(), raw=args.raw))
    return EXIT_OK if result.status.value == "passed" else EXIT_NOT_PASSED


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


_RAW_HELP = "print output and messages untouched, control characters included (default: escaped)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sandboxd",
        description="Run learners' code against an exercise's tests in a locked-down container.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    sub = parser.add_subparsers(dest="subcommand", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "run",
        help="run exercise directories in sandboxes and show the verdicts",
        description="Run each DIR (solution + tests) in a sandbox, as the fleet would.",
    )
    p.add_argument("dirs", nargs="+", metavar="DIR", help="exercise directory")
    p.add_argument(
        "-j",
        "--jobs",
        type=_positive_int,
        metavar="N",
        help="run up to N DIRs at once (default: one per CPU this process may use, "
        f"{default_slots()} here)",
    )
    # The old name: the pool it sized ran one DIR at a time; now its slots run at once.
    p.add_argument(
        "--pool-size",
        type=_positive_int,
        dest="jobs",
        metavar="N",
        help="deprecated: the old name of -j N",
    )
    p.add_argument("--language", default="python", help="language image (default: python)")
    p.add_argument("--json", action="store_true", help="print only result documents (JSON)")
    p.add_argument("--raw", action="store_true", help=_RAW_HELP)
    p.add_argument("--command", help="run this command instead of the tests (command mode)")
    p.add_argument("--stdin", metavar="FILE", help="command mode: feed FILE to stdin")
    p.add_argument(
        "--expected-output", metavar="FILE", help="command mode: compare stdout with FILE"
    )
    p.add_argument("--wall-seconds", type=_positive_float, metavar="S")
    p.add_argument("--cpu-seconds", type=_positive_float, metavar="S")
    p.add_argument("--memory-mb", type=_positive_int, metavar="M")
    p.add_argument("--pids", type=_positive_int, metavar="N")
    p.add_argument("--output-bytes", type=_positive_int, metavar="B")
    p.add_argument("--disk-mb", type=_positive_int, metavar="M")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("images", help="build or list the sandbox images")
    isub = p.add_subparsers(dest="images_command", required=True, metavar="ACTION")
    b = isub.add_parser(
        "build", help="build the base and language images that are missing or stale"
    )
    b.add_argument("languages", nargs="*", metavar="LANG", help="default: every language")
    b.add_argument(
        "--force", action="store_true",
        help="rebuild even when up to date (the base too when no LANG is named)",
    )  # fmt: skip
    b.set_defaults(func=_cmd_images_build)
    ls = isub.add_parser("list", help="show each image and whether it is current")
    ls.set_defaults(func=_cmd_images_list)

    p = sub.add_parser(
        "serve",
        help="run the daemon: jobs from SQS, results back to SQS, HTTP for operators",
        description="Run the daemon. Configured by SANDBOXD_* environment variables (see README).",
    )
    p.set_defaults(func=_cmd_serve)

    p = sub.add_parser(
        "submit",
        help="send a job through SQS as a web app would, and optionally wait for its result",
        description="Send DIR (an exercise) or JOB.json (a job document) to the jobs queue.",
    )
    p.add_argument("target", metavar="DIR|JOB.json")
    p.add_argument("--language", default="python", help="for a DIR (default: python)")
    p.add_argument("--wait", action="store_true", help="wait for the result and print it")
    p.add_argument("--stream", action="store_true", help="print the output live (implies --wait)")
    p.add_argument("--json", action="store_true", help="print the result document (implies --wait)")
    p.add_argument("--raw", action="store_true", help=_RAW_HELP)
    p.add_argument("--timeout", type=_positive_float, default=120.0, metavar="S",
                   help="give up waiting after S seconds (default: 120)")  # fmt: skip
    p.add_argument("--reply-queue", metavar="NAME|URL",
                   help="read the answer here (default: a temporary queue of its own)")  # fmt: skip
    p.set_defaults(func=_cmd_submit)

    p = sub.add_parser(
        "check-image",
        help="run a language's golden fixtures against its image: does it conform?",
        description=(
            "Run every case of FIXTURES_DIR (default: runners/LANG/fixtures) against the "
            "image, as tests-mode jobs through a warm sandbox, and compare verdict and "
            "results with the case's. Exit 0 only if every case is as expected. "
            "See docs/adding-a-language.md."
        ),
    )
    p.add_argument(
        "target",
        metavar="LANG|IMAGE",
        help="a language (its sandboxd/LANG image) or an image reference",
    )
    p.add_argument("fixtures", nargs="?", metavar="FIXTURES_DIR")
    p.set_defaults(func=_cmd_check_image)

    p = sub.add_parser("schemas", help="write the wire contract's JSON Schemas")
    p.add_argument("--out", default="docs/schemas", help="directory (default: docs/schemas)")
    p.set_defaults(func=_cmd_schemas)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: 2 on usage errors, 0 for --help
        return int(exc.code or 0)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        code: int = args.func(args)
    except UsageError as exc:
        _err(str(exc))
        return EXIT_USAGE
    except InternalError as exc:
        _err(str(exc))
        return EXIT_INTERNAL
    except Interrupted as exc:
        _err(str(exc))
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        _err("interrupted")
        return EXIT_INTERRUPTED
    return code
