"""The HTTP API's OpenAPI document, generated from the app; published as docs/openapi.json."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from sandboxd import __version__
from sandboxd.api import ApiState, create_app
from sandboxd.events import EventHub
from sandboxd.metrics import Metrics

DEFAULT_PATH = Path("docs/openapi.json")


async def _never_ready() -> tuple[bool, list[str]]:
    return False, ["documentation only"]


def render() -> str:
    """The document exactly as published: sorted keys, two-space indent, trailing newline."""
    state = ApiState(
        metrics=Metrics(process_metrics=False),
        hub=EventHub(),
        readiness=_never_ready,
        pools=list,
        version=__version__,
    )
    document = create_app(state).openapi()
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def write(path: Path = DEFAULT_PATH) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(), encoding="utf-8")
    return path


if __name__ == "__main__":
    print(write(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_PATH))
