"""JSON Schemas of the wire contract, generated from the models and published under docs/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from sandboxd.language import LanguageConfig
from sandboxd.models import Event, Job, Result

SCHEMAS: dict[str, type[BaseModel]] = {
    "job.v1.schema.json": Job,
    "result.v1.schema.json": Result,
    "event.v1.schema.json": Event,
    # images/<lang>/language.json, for image authors (docs/adding-a-language.md).
    "language.v1.schema.json": LanguageConfig,
}


def generate() -> dict[str, str]:
    """File name -> schema text, exactly as published."""
    out: dict[str, str] = {}
    for name, model in SCHEMAS.items():
        schema: dict[str, Any] = model.model_json_schema(by_alias=True, mode="validation")
        out[name] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return out


def write(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in generate().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
