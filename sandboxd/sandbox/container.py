"""What a sandbox's container is: its hardening, its users, its supervisor. Pure.

Every hardening choice is in `container_config`, the body of the Docker create call.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from typing import Any

from sandboxd.limits import Limits

WORK_DIR = "/work"
TMP_DIR = "/tmp"
SHM_DIR = "/dev/shm"
MQUEUE_DIR = "/dev/mqueue"
CONTROL_DIR = "/tmp/.sandboxd"  # the runner's output dir, made for each job
OUT_DIR = f"{CONTROL_DIR}/out"
# The supervisor's own tmpfs: its socket, in a directory only its uid may enter.
SUPERVISOR_DIR = "/run/sandboxd"
SUPERVISOR_SOCKET = "supervisor.sock"
SUPERVISOR = "/opt/sandboxd/supervisor"
SHM_BYTES = 16 * 1024 * 1024
NOFILE = 1024
JOB_UID = 10001  # the job user (`learner` in the base image)
SUPERVISOR_UID = 10002  # the supervisor's and a fork runner's (`sandboxd`)


class RunnerMode(StrEnum):
    """How a language's test runner meets its jobs (`runner_mode` in language.json)."""

    COLD = "cold"  # started for each job, as the job user
    STANDBY = "standby"  # started ahead of each job as the job user; serves one
    FORK = "fork"  # one warm parent (not the job user) for the sandbox; a child per job


@dataclass(frozen=True)
class SandboxSpec:
    """What a pool's containers look like."""

    pool: str  # "python", or "image:<ref>"
    image: str
    runner: tuple[str, ...]
    env: dict[str, str]
    limits: Limits
    uid: int = JOB_UID
    gid: int = JOB_UID
    supervisor_uid: int = SUPERVISOR_UID
    cpus: float = 1.0
    runtime: str | None = None
    runner_mode: RunnerMode = RunnerMode.COLD


@functools.cache
def seccomp_profile() -> str:
    """Our seccomp profile (`sandboxd/seccomp.json`), as the engine's API takes it.

    Our own rather than the engine's default, so what a sandbox may call does not depend
    on which engine runs it: Docker 20.10's default still allows io_uring, whose
    operations a filter cannot see. The profile lists what programs and test frameworks
    use, checks the flags of clone and the family of socket, and denies the rest (EPERM).
    """
    text = resources.files("sandboxd").joinpath("seccomp.json").read_text(encoding="utf-8")
    return json.dumps(json.loads(text), separators=(",", ":"))


def supervisor_command(spec: SandboxSpec) -> list[str]:
    return [
        SUPERVISOR,
        "--socket", f"{SUPERVISOR_DIR}/{SUPERVISOR_SOCKET}",
        "--uid", str(spec.supervisor_uid), "--gid", str(spec.supervisor_uid),
        "--job-uid", str(spec.uid), "--job-gid", str(spec.gid),
    ]  # fmt: skip


def container_config(spec: SandboxSpec, labels: dict[str, str]) -> dict[str, Any]:
    """The Docker create body for a sandbox."""
    lim = spec.limits
    mem = lim.memory_bytes
    owner = f"uid={spec.uid},gid={spec.gid}"
    tmpfs_opts = f"rw,nosuid,nodev,exec,size={lim.disk_mb}m,mode=0700,{owner}"
    sup = spec.supervisor_uid
    host_config: dict[str, Any] = {
        "NetworkMode": "none",
        "ReadonlyRootfs": True,
        "Tmpfs": {
            WORK_DIR: tmpfs_opts,
            TMP_DIR: tmpfs_opts,
            SUPERVISOR_DIR: f"rw,nosuid,nodev,noexec,size=1m,mode=0700,uid={sup},gid={sup}",
        },
        "ShmSize": SHM_BYTES,
        "CapDrop": ["ALL"],
        # The supervisor (and a fork runner) switch children to the job user; nothing
        # else is needed, and the job user never holds them (no-new-privileges, and the
        # supervisor clears every capability of a child before it runs the job).
        "CapAdd": ["SETUID", "SETGID"],
        "SecurityOpt": ["no-new-privileges", f"seccomp={seccomp_profile()}"],
        "Init": True,
        "Memory": mem,
        "MemorySwap": mem,  # no swap: memory+swap equals memory
        "PidsLimit": lim.pids,
        "NanoCpus": int(spec.cpus * 1e9),
        "Ulimits": [
            {"Name": "nofile", "Soft": NOFILE, "Hard": NOFILE},
            {"Name": "fsize", "Soft": lim.disk_mb << 20, "Hard": lim.disk_mb << 20},
            {"Name": "core", "Soft": 0, "Hard": 0},
        ],
        "IpcMode": "private",
        # The IPC and network namespaces live as long as the container, not the job; the
        # reset verifies both are empty. These keep what a job can leave there small:
        # System V shared memory goes with its last user, message queues cannot be made,
        # semaphores are bounded to the classic limits (32,000 in all: the kernel memory
        # they pin is charged to the container), and a closed TCP connection does not
        # linger in TIME_WAIT holding its port for a minute.
        "Sysctls": {
            "kernel.shm_rmid_forced": "1",
            "kernel.msgmni": "0",
            "kernel.sem": "250 32000 32 128",
            "fs.mqueue.queues_max": "0",
            "net.ipv4.tcp_max_tw_buckets": "0",
        },
        "AutoRemove": False,
        "RestartPolicy": {"Name": "no"},
        "LogConfig": {"Type": "none", "Config": {}},
    }
    if spec.runtime:
        host_config["Runtime"] = spec.runtime
    return {
        "Image": spec.image,
        # docker-init is PID 1; the supervisor its child, started as root with the two
        # capabilities above, which becomes its own uid at once.
        "Cmd": supervisor_command(spec),
        "User": "0:0",
        "WorkingDir": "/",
        "Hostname": "sandbox",
        "Env": [f"{k}={v}" for k, v in sorted(spec.env.items())],
        "Labels": labels,
        "NetworkDisabled": True,
        "AttachStdin": False,
        "AttachStdout": False,
        "AttachStderr": False,
        "Tty": False,
        "HostConfig": host_config,
    }


def job_env(spec: SandboxSpec) -> list[str]:
    """The environment of a job's processes: the image's, never the daemon's."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": WORK_DIR,
        "LANG": "C.UTF-8",
        "TMPDIR": TMP_DIR,
        **spec.env,
    }
    return [f"{k}={v}" for k, v in sorted(env.items())]
