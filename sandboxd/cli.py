"""The `sandboxd` command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_OK = 0
EXIT_NOT_PASSED = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3


def _cmd_schemas(args: argparse.Namespace) -> int:
    from sandboxd import schemas

    for path in schemas.write(Path(args.out)):
        print(path)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sandboxd",
        description="Run learners' code against an exercise's tests in a locked-down container.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("schemas", help="write the wire contract's JSON Schemas")
    p.add_argument("--out", default="docs/schemas", help="directory (default: docs/schemas)")
    p.set_defaults(func=_cmd_schemas)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        print("sandboxd: interrupted", file=sys.stderr)
        return 130
    return code
