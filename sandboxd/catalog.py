"""Which languages and images this host knows, and the sandbox spec of each.

A language image carries its own defaults (runner command, environment, limits) in
the label `sandboxd.language-config`, written at build time from
`images/<lang>/language.json`, so a daemon needs only the image, not this checkout.
"""

from __future__ import annotations

from typing import Any, Protocol

import aiodocker

from sandboxd.images import LABEL_CONFIG, LABEL_IMAGE, REPO_PREFIX, languages
from sandboxd.language import LanguageConfigError, parse_config
from sandboxd.limits import DEFAULT_MAXIMA, Limits, clamp
from sandboxd.sandbox import SandboxSpec


class UnknownLanguage(LookupError):
    pass


class ImageInspector(Protocol):
    async def inspect(self, name: str) -> dict[str, Any]: ...


class ImageSource(Protocol):
    """What load_spec needs of the engine (aiodocker.Docker is one)."""

    @property
    def images(self) -> ImageInspector: ...


def missing_image_message(language: str, image: str, recipes: list[str]) -> str:
    """Why `language` has no image, and what to do: build it, or pick one that exists. Pure."""
    if language in recipes:
        return (
            f"no image for language {language!r} ({image}); build it with "
            f"`sandboxd images build {language}`"
        )
    return f"unknown language {language!r} (known: {', '.join(recipes) or 'none'})"


def image_for(language: str) -> str:
    return f"{REPO_PREFIX}/{language}:latest"


def spec_from_labels(
    pool: str, image: str, labels: dict[str, str], maxima: Limits = DEFAULT_MAXIMA
) -> SandboxSpec:
    """Build a sandbox spec from an image's labels. Pure."""
    raw = labels.get(LABEL_CONFIG)
    if raw is None:
        raise UnknownLanguage(f"image {image} has no {LABEL_CONFIG} label")
    try:
        config = parse_config(raw, f"image {image}, label {LABEL_CONFIG}")
    except LanguageConfigError as exc:
        raise UnknownLanguage(f"{exc} (rebuild the image with this sandboxd)") from None
    return SandboxSpec(
        pool=pool,
        image=image,
        runner=tuple(config.runner),
        env=dict(config.env),
        limits=clamp(config.limits, maxima=maxima),
        runner_mode=config.runner_mode,
    )


async def load_spec(
    docker: ImageSource, language: str, maxima: Limits = DEFAULT_MAXIMA
) -> SandboxSpec:
    """The spec of `language`'s image, or UnknownLanguage saying how to build it, or, when
    this checkout has no recipe for it either, which languages there are."""
    image = image_for(language)
    try:
        info = await docker.images.inspect(image)
    except aiodocker.DockerError:
        raise UnknownLanguage(missing_image_message(language, image, languages())) from None
    labels = (info.get("Config") or {}).get("Labels") or {}
    if labels.get(LABEL_IMAGE) != language:
        raise UnknownLanguage(f"image {image} is not a sandboxd {language} image")
    spec = spec_from_labels(language, image, labels, maxima)
    # Pin the pool to the exact image id so a rebuild mid-flight cannot mix versions.
    return SandboxSpec(
        pool=spec.pool,
        image=str(info["Id"]),
        runner=spec.runner,
        env=spec.env,
        limits=spec.limits,
        runner_mode=spec.runner_mode,
    )


async def load_image_spec(
    docker: ImageSource, ref: str, maxima: Limits = DEFAULT_MAXIMA
) -> SandboxSpec:
    """The spec of any image carrying a language config (`sandboxd check-image IMAGE`):
    its pool is named by the config's language, pinned to the image's id."""
    try:
        info = await docker.images.inspect(ref)
    except aiodocker.DockerError:
        raise UnknownLanguage(f"no image {ref!r} in the engine (build or load it first)") from None
    labels = (info.get("Config") or {}).get("Labels") or {}
    raw = labels.get(LABEL_CONFIG)
    if raw is None:
        raise UnknownLanguage(
            f"image {ref} has no {LABEL_CONFIG} label: not built from a sandboxd recipe"
        )
    try:
        language = parse_config(raw, f"image {ref}, label {LABEL_CONFIG}").language
    except LanguageConfigError as exc:
        raise UnknownLanguage(str(exc)) from None
    return spec_from_labels(language, str(info["Id"]), labels, maxima)
