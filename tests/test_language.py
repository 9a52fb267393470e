"""language.json: one typed model, unknown fields refused, every recipe's file valid, the
published schema current (sandboxd/language.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sandboxd.catalog import UnknownLanguage, spec_from_labels
from sandboxd.images import LABEL_CONFIG, ImageError, language_config, languages
from sandboxd.language import LanguageConfigError, parse_config
from sandboxd.sandbox import RunnerMode

REPO = Path(__file__).resolve().parent.parent
SCHEMA = REPO / "docs" / "schemas" / "language.v1.schema.json"

GOOD: dict[str, Any] = {
    "language": "ruby",
    "description": "Ruby 3.1 with Minitest",
    "runner": ["/opt/sandboxd/runner/run"],
    "files": {"tests": ["*_test.rb"]},
}


def test_a_minimal_config_gets_the_defaults() -> None:
    config = parse_config(json.dumps(GOOD), "x")
    assert config.runner_mode is RunnerMode.COLD
    assert config.env == {} and config.versions == {} and config.files.solution == []
    assert config.limits.memory_mb is None  # the host's defaults apply


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"runnr": ["/x"]}, "runnr: Extra inputs are not permitted"),
        ({"runner": ["run"]}, "absolute path"),
        ({"runner": []}, "runner"),
        ({"runner_mode": "warm"}, "runner_mode"),
        ({"language": "Ruby"}, "language"),
        ({"limits": {"memory_mb": 1}}, "limits.memory_mb"),
        ({"limits": {"ram": 5}}, "limits.ram"),
        ({"files": {"tests": []}}, "files.tests"),
        ({"env": {"A=B": "c"}}, "environment variable"),
        ({"description": ""}, "description"),
    ],
)
def test_a_bad_config_is_refused_saying_where(change: dict[str, Any], says: str) -> None:
    with pytest.raises(LanguageConfigError, match=r"images/ruby/language\.json") as caught:
        parse_config(json.dumps({**GOOD, **change}), "images/ruby/language.json")
    assert says in str(caught.value)


def test_not_json_is_refused() -> None:
    with pytest.raises(LanguageConfigError, match="not JSON"):
        parse_config("{", "f")


@pytest.mark.parametrize("language", languages())
def test_every_recipes_language_json_is_valid_and_names_its_folder(language: str) -> None:
    data = language_config(language)
    assert data["language"] == language
    assert data["files"]["tests"]


def test_a_language_json_in_the_wrong_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "images" / "ruby").mkdir(parents=True)
    (tmp_path / "images" / "ruby" / "language.json").write_text(
        json.dumps({**GOOD, "language": "php"})
    )
    with pytest.raises(ImageError, match="says language 'php'"):
        language_config("ruby", tmp_path)


def test_the_image_label_round_trips_into_a_sandbox_spec() -> None:
    label = json.dumps(language_config("python"))
    spec = spec_from_labels("python", "img", {LABEL_CONFIG: label})
    assert spec.runner_mode is RunnerMode.FORK and spec.runner == ("/opt/sandboxd/runner/run",)
    assert spec.env["PYTHONUNBUFFERED"] == "1" and spec.limits.memory_mb == 256


def test_an_image_with_an_invalid_label_says_rebuild() -> None:
    with pytest.raises(UnknownLanguage, match="rebuild the image"):
        spec_from_labels("python", "img", {LABEL_CONFIG: json.dumps({"runner": ["/x"]})})


def test_the_published_schema_refuses_unknown_fields() -> None:
    """Published with the wire schemas (tests/test_schemas.py keeps it current)."""
    schema = json.loads(SCHEMA.read_text())
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"language", "description", "runner", "files"}
