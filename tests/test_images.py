"""Image recipes: content hashes decide what is rebuilt."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sandboxd import images

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "images", tmp_path / "images")
    shutil.copytree(ROOT / "runners", tmp_path / "runners")
    return tmp_path


def test_hash_is_stable(tree: Path) -> None:
    """The same recipe files give the same hash (so a second build is skipped)."""
    assert images.language_recipe("python", tree) == images.language_recipe("python", tree)
    assert images.language_recipe("python", tree).content_hash == (
        images.language_recipe("python", ROOT).content_hash
    )


def test_runner_change_changes_only_the_language_hash(tree: Path) -> None:
    """Editing the runner rebuilds the language image, not the base."""
    before_base = images.base_recipe(tree).content_hash
    before = images.language_recipe("python", tree).content_hash
    (tree / "runners" / "python" / "run").write_text("#!/bin/sh\n# changed\n")
    assert images.base_recipe(tree).content_hash == before_base
    assert images.language_recipe("python", tree).content_hash != before


def test_fixture_change_does_not_rebuild(tree: Path) -> None:
    """Golden fixtures are not part of the image, so changing them rebuilds nothing."""
    before = images.language_recipe("python", tree).content_hash
    (tree / "runners" / "python" / "fixtures" / "extra.txt").write_text("x")
    assert images.language_recipe("python", tree).content_hash == before


def test_base_change_propagates(tree: Path) -> None:
    """A change to the base recipe changes every language image's hash too."""
    before = images.language_recipe("python", tree).content_hash
    recipe = tree / "images" / "base" / "recipe.json"
    recipe.write_text(recipe.read_text().replace("minbase", "buildd"))
    assert images.language_recipe("python", tree).content_hash != before


def test_unknown_language_is_a_clear_error(tree: Path) -> None:
    """Asking for a language with no image recipe names the ones that exist."""
    known = images.languages(tree)
    assert "python" in known
    with pytest.raises(images.ImageError, match=f"known: {', '.join(known)}"):
        images.language_recipe("cobol", tree)


async def test_built_images_are_current() -> None:
    """After `make test`'s image step, `images list` reports every image current."""
    rows = await images.status()
    assert {r.name for r in rows} >= {"base", "python"}
    assert all(r.state == "current" for r in rows), rows


@pytest.mark.docker
async def test_latest_taken_by_an_older_build_is_pointed_back_without_a_rebuild() -> None:
    """Building an older checkout moves `:latest` (what pools run) while the newer hash
    tag stays; the next `images build` must put `:latest` back, not trust the hash tag
    alone and leave pools on the old runner."""
    recipe = images.language_recipe("python")
    base = images.base_recipe()
    progress: list[str] = []
    await images._run(["docker", "tag", base.tag, recipe.latest], progress.append, "test")
    try:
        assert not await images.latest_is_current(recipe)
        assert {r.name: r.state for r in await images.status()}["python"] == "stale"
        assert await images.ensure(["python"], progress.append) == []
        assert await images.latest_is_current(recipe)
        assert any("pointed back" in line for line in progress), progress
    finally:
        await images._run(["docker", "tag", recipe.tag, recipe.latest], progress.append, "test")


async def test_forcing_one_language_rebuilds_it_and_not_the_base() -> None:
    """`images build python --force` must not repeat the debootstrap (a minute and more):
    the base is rebuilt only when stale or when everything is forced."""
    progress: list[str] = []
    built = await images.ensure(["python"], progress.append, force=True, force_base=False)
    assert built == ["python"]
    assert not any(line.startswith("[base] debootstrap") for line in progress)
    assert await images.latest_is_current(images.language_recipe("python"))
