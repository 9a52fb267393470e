"""The `sandboxd` command line.

Exit codes: 0 all passed, 1 some job did not pass, 2 usage error, 3 internal error.
Every error is one clear line on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TextIO

from sandboxd.terminal import StreamEscaper, escape, escape_line

if TYPE_CHECKING:
    from sandboxd.exercise import LocalFile

EXIT_OK = 0
EXIT_NOT_PASSED = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3


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


# -- sandboxd images --------------------------------------------------------------------


def _cmd_images_build(args: argparse.Namespace) -> int:
    from sandboxd import images

    names = args.languages or images.languages()
    t0 = time.monotonic()

    def progress(line: str) -> None:
        print(line, flush=True)

    try:
        built = asyncio.run(images.ensure(names, progress, force=args.force))
    except images.ImageError as exc:
        raise InternalError(str(exc)) from None
    took = time.monotonic() - t0
    print(f"built: {', '.join(built) if built else 'nothing (all up to date)'} in {took:.1f} s")
    return EXIT_OK


def _cmd_images_list(args: argparse.Namespace) -> int:
    from sandboxd import images

    rows = asyncio.run(images.status())
    print(f"{'IMAGE':<10} {'STATE':<8} TAG")
    for row in rows:
        print(f"{row.name:<10} {row.state:<8} {row.tag}")
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


def _print_summary(results: list[tuple[Path, Any]], raw: bool) -> None:
    """The table after several DIRs: one line each, then how many passed."""
    show = shown(raw)
    print()
    print(f"{'VERDICT':<14} {'TESTS':>7} {'RUN ms':>7}  EXERCISE")
    for directory, result in results:
        passed = sum(1 for t in result.tests if t.status.value == "pass")
        print(
            f"{result.status.value:<14} {passed:>3}/{len(result.tests):<3} "
            f"{result.timing.run_ms:>7}  {show(str(directory))}"
        )
    n_ok = sum(1 for _, r in results if r.status.value == "passed")
    print(f"{n_ok} of {len(results)} passed")


async def _run_jobs(args: argparse.Namespace, jobs: list[tuple[Path, Any]]) -> int:
    import aiodocker

    from sandboxd.catalog import UnknownLanguage, load_spec
    from sandboxd.jobs import RunContext, execute
    from sandboxd.pool import Pool, PoolConfig

    try:
        docker = aiodocker.Docker()
        await docker.version()
    except Exception as exc:
        raise InternalError(
            f"cannot reach the Docker engine ({exc.__class__.__name__}: {exc}); "
            "run `make setup` or start dockerd"
        ) from None
    try:
        languages = sorted({job.pool_key for _, job in jobs})
        specs = {}
        for lang in languages:
            try:
                specs[lang] = await load_spec(docker, lang)
            except UnknownLanguage as exc:
                raise UsageError(str(exc)) from None
        size = max(1, min(args.pool_size, len(jobs)))
        # A spare when jobs outnumber the slots: a sandbox retired after one job (a limit,
        # a hostile leftover) is replaced while the next job runs in the spare.
        spares = 1 if len(jobs) > size else 0
        pool = Pool(
            docker, specs, PoolConfig(size=size, spares=spares),
            host_id=f"cli-{os.uname().nodename}",
        )  # fmt: skip
        await pool.start()
        ctx = RunContext()
        single = len(jobs) == 1
        color = sys.stdout.isatty() and not args.json
        results = []
        try:
            for i, (directory, job) in enumerate(jobs, 1):
                if not single and not args.json:
                    print(f"[{i}/{len(jobs)}] {shown(args.raw)(str(directory))} ...", flush=True)
                live = _LiveOutput(args.raw) if single and not args.json else None
                result = await execute(pool, job, ctx, live)
                results.append((directory, result))
                if args.json:
                    print(result.to_json(), flush=True)
                else:
                    if live is not None:
                        live.close()
                        if result.stdout and not result.stdout.endswith("\n"):
                            print()
                    print(render_result(result, color, args.raw), flush=True)
        finally:
            await pool.close()
        if not single and not args.json:
            _print_summary(results, args.raw)
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
    p.add_argument(
        "--pool-size",
        type=_positive_int,
        default=2,
        metavar="N",
        help="warm sandboxes to keep when running several DIRs (default: 2)",
    )
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("images", help="build or list the sandbox images")
    isub = p.add_subparsers(dest="images_command", required=True, metavar="ACTION")
    b = isub.add_parser(
        "build", help="build the base and language images that are missing or stale"
    )
    b.add_argument("languages", nargs="*", metavar="LANG", help="default: every language")
    b.add_argument("--force", action="store_true", help="rebuild even when up to date")
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
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
    return code
