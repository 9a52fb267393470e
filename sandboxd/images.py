"""Building and finding the sandbox images.

No registry is reachable, so every image is built here: a base root filesystem from
Debian with `debootstrap`, imported with `docker import`, and one image per language
built `FROM` it. Each image carries the content hash of its recipe as a label, so a
build is skipped when an image with the same hash exists.

Building shells out to the `docker` CLI on purpose: it is a set-up tool that runs
rarely, the CLI's own output is the progress a person wants to see, and the daemon's
hot path (aiodocker) does not depend on any of this.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LABEL_IMAGE = "sandboxd.image"
LABEL_HASH = "sandboxd.recipe-hash"
LABEL_CONFIG = "sandboxd.language-config"
# The language's canary: its smallest passing fixture case, run by the daemon at start.
LABEL_CANARY = "sandboxd.canary"
REPO_PREFIX = "sandboxd"
# Bump when the build procedure itself changes in a way the recipe files do not show.
BUILDER_VERSION = "2"
# Documentation beside a recipe: changing it rebuilds nothing.
_DOC_EXCLUDES = frozenset({"README.md"})
# Files under runners/<lang>/ that never go into the image (nor its hash): the golden
# and hostile cases, the bench's host command, docs.
_RUNNER_EXCLUDES = frozenset(
    {"fixtures", "hostile", "bench.json", "README.md", "__pycache__", ".pytest_cache"}
)

Progress = Callable[[str], None]


class ImageError(RuntimeError):
    """An image could not be built or found; the message is one clear line."""


def project_root() -> Path:
    """Where `images/` and `runners/` live: $SANDBOXD_HOME, else the source checkout."""
    env = os.environ.get("SANDBOXD_HOME")
    return Path(env) if env else Path(__file__).resolve().parent.parent


def _files(directory: Path, excludes: frozenset[str] = frozenset()) -> list[Path]:
    out = []
    for path in sorted(directory.rglob("*")):
        rel = path.relative_to(directory)
        if any(part in excludes for part in rel.parts) or not path.is_file():
            continue
        out.append(path)
    return out


def _hash_tree(
    h: Any, directory: Path, prefix: str, excludes: frozenset[str] = frozenset()
) -> None:
    for path in _files(directory, excludes):
        rel = path.relative_to(directory).as_posix()
        h.update(f"{prefix}/{rel}\0{path.stat().st_mode & 0o111:o}\0".encode())
        h.update(path.read_bytes())
        h.update(b"\0")


@dataclass(frozen=True)
class Recipe:
    """What an image is built from, and the hash that names it."""

    name: str  # "base" or a language
    directory: Path
    content_hash: str
    base: Recipe | None = None

    @property
    def tag(self) -> str:
        return f"{REPO_PREFIX}/{self.name}:{self.content_hash[:16]}"

    @property
    def latest(self) -> str:
        return f"{REPO_PREFIX}/{self.name}:latest"


def base_recipe(root: Path | None = None) -> Recipe:
    root = root or project_root()
    directory = root / "images" / "base"
    h = hashlib.sha256(f"builder {BUILDER_VERSION}\0".encode())
    _hash_tree(h, directory, "images/base", _DOC_EXCLUDES)
    return Recipe("base", directory, h.hexdigest())


def languages(root: Path | None = None) -> list[str]:
    root = root or project_root()
    return sorted(
        p.parent.name
        for p in (root / "images").glob("*/Dockerfile")
        if (p.parent / "language.json").exists()
    )


def language_recipe(language: str, root: Path | None = None) -> Recipe:
    root = root or project_root()
    directory = root / "images" / language
    if not (directory / "Dockerfile").exists():
        known = ", ".join(languages(root)) or "none"
        raise ImageError(f"unknown language {language!r} (known: {known})")
    base = base_recipe(root)
    h = hashlib.sha256(f"builder {BUILDER_VERSION}\0base {base.content_hash}\0".encode())
    _hash_tree(h, directory, f"images/{language}")
    runner = root / "runners" / language
    if runner.is_dir():
        _hash_tree(h, runner, f"runners/{language}", _RUNNER_EXCLUDES)
    canary = canary_case_dir(language, root)
    if canary is not None:  # its files are in the image's label
        _hash_tree(h, canary, f"runners/{language}/fixtures/{canary.name}")
    return Recipe(language, directory, h.hexdigest(), base)


def canary_case_dir(language: str, root: Path | None = None) -> Path | None:
    """The language's canary: its smallest passing fixture case (fewest bytes; by name on a
    tie), or None when it has no fixtures."""
    from sandboxd.conformance import CaseError, find_cases

    fixtures = (root or project_root()) / "runners" / language / "fixtures"
    try:
        cases = [c for c in find_cases(fixtures, language) if c.verdict.value == "passed"]
    except CaseError:
        return None
    if not cases:
        return None

    def size(directory: Path) -> int:
        return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())

    return min(cases, key=lambda c: (size(c.directory), c.name)).directory


def canary_label(language: str, root: Path | None = None) -> str | None:
    """The canary label's value: `{"case": name, "job": <job document>}`, or None."""
    from sandboxd.conformance import case_job, load_case

    directory = canary_case_dir(language, root)
    if directory is None:
        return None
    job = case_job(load_case(language, directory))
    doc = {
        "case": directory.name,
        "job": job.model_dump(mode="json", by_alias=True, exclude_none=True),
    }
    return json.dumps(doc, separators=(",", ":"))


def language_config(language: str, root: Path | None = None) -> dict[str, Any]:
    """`images/<language>/language.json`, checked (ImageError saying what is wrong), as
    the JSON object the image's label carries."""
    from sandboxd.language import LanguageConfigError, parse_config

    root = root or project_root()
    path = root / "images" / language / "language.json"
    try:
        config = parse_config(path.read_bytes(), str(path.relative_to(root)))
    except OSError as exc:
        raise ImageError(f"cannot read {path}: {exc.strerror}") from None
    except LanguageConfigError as exc:
        raise ImageError(str(exc)) from None
    if config.language != language:
        raise ImageError(f"{path}: says language {config.language!r}, in images/{language}/")
    data: dict[str, Any] = config.model_dump(mode="json", exclude_none=True)
    return data


async def _run(
    argv: Sequence[str],
    progress: Progress,
    prefix: str,
    stdin: int | None = None,
    env: dict[str, str] | None = None,
) -> str:
    """Run a command, passing each output line to `progress`; return the last lines."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=stdin if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )
    assert proc.stdout is not None
    tail: list[str] = []
    async for raw in proc.stdout:
        line = raw.decode("utf-8", "replace").rstrip()
        if line:
            progress(f"[{prefix}] {line}")
            tail = [*tail[-19:], line]
    code = await proc.wait()
    if code != 0:
        last = tail[-1] if tail else "(no output)"
        raise ImageError(f"{argv[0]} failed for {prefix} (exit {code}): {last}")
    return "\n".join(tail)


async def image_labels(ref: str) -> dict[str, str] | None:
    """The labels of a local image, or None when it does not exist."""
    proc = await asyncio.create_subprocess_exec(
        "docker", "image", "inspect", "--format", "{{json .Config.Labels}}", ref,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        return None
    labels = json.loads(out.decode() or "null")
    return dict(labels) if isinstance(labels, dict) else {}


async def is_current(recipe: Recipe) -> bool:
    """Whether the image of this exact recipe exists (under its hash tag)."""
    labels = await image_labels(recipe.tag)
    return labels is not None and labels.get(LABEL_HASH) == recipe.content_hash


async def latest_is_current(recipe: Recipe) -> bool:
    """Whether `:latest` — what pools run — is this recipe's image. Building an older
    checkout re-points `:latest` while the newer hash tag stays, so both are checked."""
    labels = await image_labels(recipe.latest)
    return labels is not None and labels.get(LABEL_HASH) == recipe.content_hash


async def _up_to_date(recipe: Recipe, progress: Progress) -> bool:
    """True when nothing needs building; re-points `:latest` at the current build if an
    older one had taken it."""
    if not await is_current(recipe):
        return False
    if not await latest_is_current(recipe):
        await _run(["docker", "tag", recipe.tag, recipe.latest], progress, recipe.name)
        progress(f"[{recipe.name}] {recipe.latest} pointed back at {recipe.tag}")
    progress(f"[{recipe.name}] up to date ({recipe.tag})")
    return True


async def build_base(recipe: Recipe, progress: Progress) -> None:
    if os.geteuid() != 0:
        raise ImageError("building the base image runs debootstrap, which needs root")
    if shutil.which("debootstrap") is None:
        raise ImageError("debootstrap is not installed (apt-get install debootstrap)")
    spec = json.loads((recipe.directory / "recipe.json").read_text(encoding="utf-8"))
    user = spec["user"]
    with tempfile.TemporaryDirectory(prefix="sandboxd-rootfs-") as tmp:
        rootfs = Path(tmp) / "root"
        argv = ["debootstrap", f"--variant={spec['variant']}"]
        if spec.get("include"):
            argv.append("--include=" + ",".join(spec["include"]))
        argv += [spec["suite"], str(rootfs), spec["mirror"]]
        progress(f"[base] debootstrap {spec['suite']} ({spec['variant']}) from {spec['mirror']}")
        await _run(argv, progress, "base")
        # The job user: never root; its home is the work dir so tools that want a home
        # write into the job's own tmpfs.
        await _run(
            ["chroot", str(rootfs), "useradd", "--uid", str(user["uid"]), "--user-group",
             "--no-create-home", "--home-dir", user["home"], "--shell", "/bin/sh", user["name"]],
            progress, "base",
        )  # fmt: skip
        # The supervisor's own user (and a fork runner's): not the job user, no login.
        supervisor = spec["supervisor"]
        await _run(
            ["chroot", str(rootfs), "useradd", "--uid", str(supervisor["uid"]),
             "--user-group", "--system", "--no-create-home", "--home-dir", "/nonexistent",
             "--shell", "/usr/sbin/nologin", supervisor["name"]],
            progress, "base",
        )  # fmt: skip
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (rootfs / junk).glob("*"):
                if entry.is_file():
                    entry.unlink()
        rootfs_tag = f"{REPO_PREFIX}/base-rootfs:{recipe.content_hash[:16]}"
        progress(f"[base] importing root filesystem as {rootfs_tag}")
        read_fd, write_fd = os.pipe()
        try:
            tar = await asyncio.create_subprocess_exec(
                "tar", "--numeric-owner", "-C", str(rootfs), "-c", ".", stdout=write_fd
            )
        finally:
            os.close(write_fd)
        try:
            await _run(
                ["docker", "import", "--change", 'CMD ["/bin/sh"]', "-", rootfs_tag],
                progress, "base", stdin=read_fd,
            )  # fmt: skip
        finally:
            os.close(read_fd)
        if await tar.wait() != 0:
            raise ImageError("tar of the base root filesystem failed")
    # Then the supervisor, compiled in a throwaway stage of that root filesystem.
    await _run(
        ["docker", "build", "--network", "host", "--pull=false", "--force-rm",
         "--build-arg", f"BASE_ROOTFS={rootfs_tag}",
         "--label", f"{LABEL_IMAGE}=base",
         "--label", f"{LABEL_HASH}={recipe.content_hash}",
         "-t", recipe.tag, "-t", recipe.latest, str(recipe.directory)],
        progress, "base", env={"DOCKER_BUILDKIT": "0"},
    )  # fmt: skip


async def build_language(recipe: Recipe, progress: Progress) -> None:
    assert recipe.base is not None
    config = language_config(recipe.name, recipe.directory.parent.parent)
    root = recipe.directory.parent.parent
    canary_doc = canary_label(recipe.name, root)
    canary = ["--label", f"{LABEL_CANARY}={canary_doc}"] if canary_doc is not None else []
    with tempfile.TemporaryDirectory(prefix=f"sandboxd-ctx-{recipe.name}-") as tmp:
        ctx = Path(tmp)
        shutil.copytree(recipe.directory, ctx, dirs_exist_ok=True)
        runner = root / "runners" / recipe.name
        if runner.is_dir():
            shutil.copytree(
                runner, ctx / "runner", ignore=shutil.ignore_patterns(*_RUNNER_EXCLUDES)
            )
        else:
            (ctx / "runner").mkdir()
        await _run(
            ["docker", "build", "--network", "host", "--pull=false", "--force-rm",
             "--build-arg", f"BASE_IMAGE={recipe.base.tag}",
             "--label", f"{LABEL_IMAGE}={recipe.name}",
             "--label", f"{LABEL_HASH}={recipe.content_hash}",
             "--label", f"{LABEL_CONFIG}={json.dumps(config, separators=(',', ':'))}",
             *canary,
             "-t", recipe.tag, "-t", recipe.latest, str(ctx)],
            progress, recipe.name, env={"DOCKER_BUILDKIT": "0"},
        )  # fmt: skip


async def ensure(
    names: Sequence[str], progress: Progress, force: bool = False, force_base: bool | None = None
) -> list[str]:
    """Build the base and the named language images where missing or stale; `force`
    rebuilds the named ones anyway, and the base too unless `force_base` is False (a
    language's rebuild need not repeat the debootstrap).

    Returns the names actually built.
    """
    built: list[str] = []
    base = base_recipe()
    if (force and force_base is not False) or not await _up_to_date(base, progress):
        t0 = time.monotonic()
        await build_base(base, progress)
        progress(f"[base] built in {time.monotonic() - t0:.1f} s")
        built.append("base")
    for name in names:
        recipe = language_recipe(name)
        if force or not await _up_to_date(recipe, progress):
            t0 = time.monotonic()
            await build_language(recipe, progress)
            progress(f"[{name}] built in {time.monotonic() - t0:.1f} s")
            built.append(name)
    return built


@dataclass(frozen=True)
class ImageStatus:
    name: str
    tag: str
    state: str  # "current", "stale" (an older build exists) or "missing"
    about: str = ""  # for a language: its runner mode and the versions it ships


async def status() -> list[ImageStatus]:
    out = []
    recipes = [base_recipe()] + [language_recipe(lang) for lang in languages()]
    for recipe in recipes:
        if await is_current(recipe) and await latest_is_current(recipe):
            state = "current"
        else:
            latest = await image_labels(recipe.latest)
            state = "stale" if latest is not None else "missing"
        about = ""
        if recipe.base is not None:
            try:
                config = language_config(recipe.name)
            except ImageError as exc:
                about = f"language.json: {exc}"
            else:
                versions = " ".join(f"{k} {v}" for k, v in config.get("versions", {}).items())
                about = f"{config.get('runner_mode', 'cold'):<8} {versions}".rstrip()
        out.append(ImageStatus(recipe.name, recipe.tag, state, about))
    return out
