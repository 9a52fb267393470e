"""Sandboxes: what a sandbox's container is (`container`), the channel to the supervisor
inside it (`supervisor`), one sandbox's life and its jobs (`box`), and what a run leaves
as evidence (`outcome`)."""

from sandboxd.sandbox.box import OutputSink, Sandbox, SandboxError, SandboxInputError
from sandboxd.sandbox.container import (
    RunnerMode,
    SandboxSpec,
    container_config,
    job_env,
    seccomp_profile,
)
from sandboxd.sandbox.outcome import Outcome

__all__ = [
    "Outcome",
    "OutputSink",
    "RunnerMode",
    "Sandbox",
    "SandboxError",
    "SandboxInputError",
    "SandboxSpec",
    "container_config",
    "job_env",
    "seccomp_profile",
]
