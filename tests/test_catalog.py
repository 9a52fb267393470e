"""What `load_spec` says when a language has no image: build it, or which languages exist."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiodocker
import pytest

from sandboxd.catalog import UnknownLanguage, load_spec


class _NoImages:
    """An engine that has no image at all, as Docker answers for a missing one."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    @property
    def images(self) -> _NoImages:
        return self

    async def inspect(self, name: str) -> dict[str, Any]:
        self.asked.append(name)
        raise aiodocker.DockerError(404, f"No such image: {name}")


@pytest.fixture
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A checkout with recipes for python and go only."""
    for language in ("python", "go"):
        recipe = tmp_path / "images" / language
        recipe.mkdir(parents=True)
        (recipe / "Dockerfile").write_text("FROM sandboxd/base\n")
        (recipe / "language.json").write_text("{}\n")
    monkeypatch.setenv("SANDBOXD_HOME", str(tmp_path))
    return tmp_path


async def test_a_language_without_a_recipe_lists_the_known_ones(checkout: Path) -> None:
    """No recipe and no image: the error names the languages there are, not a build hint."""
    engine = _NoImages()
    with pytest.raises(UnknownLanguage) as info:
        await load_spec(engine, "ruby")
    assert str(info.value) == "unknown language 'ruby' (known: go, python)"
    assert engine.asked == ["sandboxd/ruby:latest"], "an image of that name is looked for first"


async def test_a_language_with_a_recipe_but_no_image_says_how_to_build_it(checkout: Path) -> None:
    """A recipe and no image: the error says which `sandboxd images build` makes it."""
    with pytest.raises(UnknownLanguage) as info:
        await load_spec(_NoImages(), "go")
    assert str(info.value) == (
        "no image for language 'go' (sandboxd/go:latest); build it with `sandboxd images build go`"
    )


async def test_no_recipes_at_all_says_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where there is no checkout (a daemon host), a missing image lists no language."""
    monkeypatch.setenv("SANDBOXD_HOME", str(tmp_path))
    with pytest.raises(UnknownLanguage, match=r"^unknown language 'python' \(known: none\)$"):
        await load_spec(_NoImages(), "python")
