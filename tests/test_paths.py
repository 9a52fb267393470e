from __future__ import annotations

import posixpath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandboxd.paths import PathError, normalise_path


@pytest.mark.parametrize(
    ("given_path", "expected"),
    [
        ("main.py", "main.py"),
        ("./src//pkg/./mod.py", "src/pkg/mod.py"),
        ("tests/test_x.py", "tests/test_x.py"),
        ("ünïcode/файл.py", "ünïcode/файл.py"),
    ],
)
def test_accepts_and_normalises_relative_paths(given_path: str, expected: str) -> None:
    """Relative paths come back in normal form."""
    assert normalise_path(given_path) == expected


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "/etc/passwd",
        "../x",
        "a/../../x",
        "a/..",
        "a\\b",
        "a\x00b",
        "a\nb",
        ".",
        "./",
        "a/",
        "x/" * 40 + "f",
        "a" * 256,
        "q" * 2000,
    ],
)
def test_refuses_unsafe_paths(bad: str) -> None:
    """Absolute, escaping, control-char, directory-only and oversize paths are refused."""
    with pytest.raises(PathError):
        normalise_path(bad)


@given(st.text(max_size=80))
def test_accepted_paths_stay_inside_the_work_dir(path: str) -> None:
    """Whatever is accepted resolves to a location strictly inside the work directory."""
    try:
        norm = normalise_path(path)
    except PathError:
        return
    joined = posixpath.normpath(posixpath.join("/work", norm))
    assert joined.startswith("/work/")
    assert joined == "/work/" + norm
    assert normalise_path(norm) == norm  # idempotent
