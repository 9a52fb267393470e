"""What the benchmarks share: the job, the bare-host baseline, a warm pool in its own
event loop thread, a moto server and `sandboxd serve` children that are always stopped,
and CPU / memory accounting read from /proc and the sandboxes' cgroups.

Nothing here sends traffic anywhere but loopback, and every process it starts is ended
by its pid on the way out (errors, Ctrl-C and SIGTERM included).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parent.parent
# This checkout's sandboxd (a script's sys.path starts at bench/, and the venv's editable
# install may point at another checkout), and the drills' helpers in tests/.
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from daemon_process import (  # noqa: E402
    TWO_FER,
    DaemonProcess,
    daemon_env,
    job_doc,
    make_queues,
)
from sqs_fixtures import boto3_client  # noqa: E402

from sandboxd.cgroup import Cgroup, CgroupError  # noqa: E402
from sandboxd.sqs import EmbeddedSQS  # noqa: E402

__all__ = [
    "TWO_FER",
    "DaemonProcess",
    "boto3_client",
    "daemon_env",
    "job_doc",
    "make_queues",
]

T = TypeVar("T")
DATA_DIR = REPO / "bench" / "data"
WARMUP = 2
CLK_TCK = os.sysconf("SC_CLK_TCK")
# The host's Debian python3 has the image's pytest (7.2); the venv's may be newer.
HOST_PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable


# -- figures -------------------------------------------------------------------------------


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def summary(samples: list[float]) -> tuple[float, float]:
    """(median, p95)."""
    return statistics.median(samples), p95(samples)


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def save_json(path: Path | None, doc: dict[str, Any]) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"date": time.strftime("%Y-%m-%d %H:%M"), "cpus": os.cpu_count(), **doc}
    path.write_text(json.dumps(doc, indent=1) + "\n")
    shown = path.relative_to(REPO) if path.is_relative_to(REPO) else path
    print(f"\n(raw figures written to {shown})")


def stop_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so every `finally` stops what it started."""

    def raise_interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, raise_interrupt)


# -- the job and the bare host -----------------------------------------------------------


def write_two_fer(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)
    for name, text in TWO_FER.items():
        (directory / name).write_text(text)
        (directory / name).chmod(0o644)


def tests_job(job_id: str) -> str:
    """The 1-test pytest job (two-fer) as the wire document."""
    return job_doc(job_id)


class BareHost:
    """`python3 -m pytest -q` of the job's files on the host, no isolation: the floor."""

    def __init__(self, directory: Path) -> None:
        write_two_fer(directory)
        self.argv = [HOST_PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(directory)]
        self.env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}

    def run_once(self) -> float:
        t0 = time.perf_counter()
        proc = subprocess.run(self.argv, capture_output=True, env=self.env, check=False)
        elapsed = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"host pytest failed: {proc.stdout.decode()[-500:]}")
        return elapsed

    def burst(self, n: int, at_once: int) -> float:
        """Seconds for `n` runs, `at_once` of them at a time."""
        t0 = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(max_workers=at_once) as ex:
            list(ex.map(lambda _: self.run_once(), range(n)))
        return time.perf_counter() - t0


# -- a warm pool in its own event loop -------------------------------------------------------


class LoopThread:
    """An asyncio loop in a daemon thread: a warm pool's resets go on in the background
    while the main thread is busy with a blocking baseline."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        if not self.loop.is_running():
            self.loop.close()


class WarmPool:
    """`jobs.execute()` through a warm pool of `slots` (plus `spares`), as `sandboxd run`
    and the daemon use it, in a loop thread of its own. Always closed on the way out."""

    def __init__(self, slots: int, spares: int = 1, host_id: str | None = None) -> None:
        self.slots = slots
        self.spares = spares
        self.host_id = host_id or f"bench-{uuid.uuid4().hex[:8]}"
        self.thread = LoopThread()
        self.pool: Any = None
        self._docker: Any = None

    def __enter__(self) -> WarmPool:
        try:
            self.thread.run(self._start(), timeout=180)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def _start(self) -> None:
        import aiodocker

        from sandboxd.catalog import load_spec
        from sandboxd.pool import Pool, PoolConfig

        self._docker = aiodocker.Docker()
        spec = await load_spec(self._docker, "python")
        config = PoolConfig(size=self.slots, spares=self.spares)
        self.pool = Pool(self._docker, {"python": spec}, config, host_id=self.host_id)
        await self.pool.start()
        if not await self.pool.wait_warm(120):
            raise SystemExit(f"pool did not warm up: {self.pool.last_error('python')}")

    async def _close(self) -> None:
        if self.pool is not None:
            await self.pool.close()
        if self._docker is not None:
            await self._docker.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.thread.run(self._close(), timeout=120)
        self.thread.close()

    async def _execute(self, doc: str) -> Any:
        from sandboxd.jobs import RunContext, execute
        from sandboxd.models import parse_job

        return await execute(self.pool, parse_job(doc), RunContext())

    async def _settled(self, timeout: float) -> None:
        """Until every sandbox is idle again (resets done), or `timeout`."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            stats = self.pool.stats()
            if all(s.idle >= s.target for s in stats):
                return
            await asyncio.sleep(0.005)

    def execute(self, doc: str) -> tuple[float, Any]:
        """Seconds from the job document to its result in hand, and the result."""
        t0 = time.perf_counter()
        result = self.thread.run(self._execute(doc), timeout=120)
        return time.perf_counter() - t0, result

    def settle(self, timeout: float = 10.0) -> None:
        self.thread.run(self._settled(timeout), timeout=timeout + 5)

    async def _burst(self, docs: list[str]) -> list[Any]:
        return list(await asyncio.gather(*(self._execute(d) for d in docs)))

    def burst(self, docs: list[str], timeout: float) -> tuple[float, list[Any]]:
        t0 = time.perf_counter()
        results = self.thread.run(self._burst(docs), timeout=timeout)
        return time.perf_counter() - t0, results


# -- the queue server and the daemon --------------------------------------------------------


@contextlib.contextmanager
def moto_server(tmp: Path) -> Iterator[EmbeddedSQS]:
    """A moto SQS server on a free loopback port, stopped (by its pid) on the way out."""
    server = EmbeddedSQS(port=0, log_path=tmp / f"moto-{uuid.uuid4().hex[:6]}.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


class InstrumentedDaemon(DaemonProcess):
    """`sandboxd serve` as DaemonProcess starts it, through bench/profiled_serve.py: its
    SQS calls are counted by operation (`sqs_calls()`); with `profile` set it runs under
    cProfile, its statistics written there when it stops."""

    def __init__(
        self,
        env: dict[str, str],
        log_path: Path,
        profile: Path | None = None,
        checkout: Path | None = None,
    ):
        super().__init__(env, log_path)
        self.profile = profile
        self.checkout = checkout  # another checkout's sandboxd (an A/B baseline)
        self.calls_path = log_path.with_suffix(".calls.json")

    def start(self) -> InstrumentedDaemon:
        import weakref

        from daemon_process import _end

        argv = [sys.executable, str(REPO / "bench" / "profiled_serve.py"), str(self.calls_path)]
        if self.profile is not None:
            argv.append(str(self.profile))
        env = dict(self.env)
        if self.checkout is not None:
            env["BENCH_CHECKOUT"] = str(self.checkout)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                argv,
                env=env,
                cwd=self.checkout or REPO,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._finalizer = weakref.finalize(self, _end, self.proc)
        return self

    def sqs_calls(self) -> dict[str, int]:
        """The SQS calls the daemon made so far, by operation."""
        with contextlib.suppress(FileNotFoundError):
            self.calls_path.unlink()
        self.signal(signal.SIGUSR1)
        end = time.monotonic() + 5
        while time.monotonic() < end:
            with contextlib.suppress(FileNotFoundError, ValueError):
                got: dict[str, int] = json.loads(self.calls_path.read_text())
                return got
            time.sleep(0.01)
        raise RuntimeError("the daemon did not write its SQS call counts")


@dataclass
class Served:
    """A running `sandboxd serve` child on its own queues."""

    daemon: InstrumentedDaemon
    queues: dict[str, str]
    host_id: str


@contextlib.contextmanager
def serve(
    client: Any,
    endpoint: str,
    tmp: Path,
    slots: int,
    profile: Path | None = None,
    checkout: Path | None = None,
    **extra: str,
) -> Iterator[Served]:
    """`sandboxd serve` (SANDBOXD_SQS=aws at `endpoint`) with `slots` python job slots,
    ready; stopped (SIGTERM, then SIGKILL, by pid) on the way out. With `checkout`, that
    checkout's sandboxd runs (see `baseline_checkout`)."""
    suffix = uuid.uuid4().hex[:8]
    queues = make_queues(client, suffix)
    settings = {
        "SANDBOXD_POOL_SIZES": f"python={slots}",
        "SANDBOXD_VISIBILITY_TIMEOUT": "60",
        "SANDBOXD_HEARTBEAT_SECONDS": "20",
        "SANDBOXD_WAIT_TIME_SECONDS": "10",
        **extra,
    }
    env = daemon_env(endpoint, suffix, tmp / f"state-{suffix}", **settings)
    daemon = InstrumentedDaemon(env, tmp / f"daemon-{suffix}.log", profile, checkout).start()
    try:
        daemon.wait_ready()
        yield Served(daemon, queues, env["SANDBOXD_HOST_ID"])
    finally:
        daemon.stop()
        for url in queues.values():
            with contextlib.suppress(Exception):
                client.delete_queue(QueueUrl=url)


@contextlib.contextmanager
def baseline_checkout(rev: str) -> Iterator[Path]:
    """The tree of commit `rev` of this repository, extracted into a temporary directory
    (git archive: no worktree, nothing in the repository changes), for an A/B run of the
    daemon; removed on the way out."""
    with tempfile.TemporaryDirectory(prefix="sandboxd-baseline-") as where:
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", "--format=tar", rev, "sandboxd"],
            capture_output=True,
            check=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", where], input=archive, check=True)
        yield Path(where)


def send_batch(client: Any, queue: str, docs: list[tuple[str, str]]) -> None:
    """Send (id, body) pairs, ten to a call."""
    for start in range(0, len(docs), 10):
        entries = [
            {"Id": str(k), "MessageBody": body}
            for k, (_, body) in enumerate(docs[start : start + 10])
        ]
        got = client.send_message_batch(QueueUrl=queue, Entries=entries)
        if got.get("Failed"):
            raise SystemExit(f"send_message_batch failed: {got['Failed']}")


def receive_results(client: Any, queue: str, wait: int = 1) -> list[tuple[dict[str, Any], float]]:
    """Up to ten results, deleted in one call; each with the time it was received."""
    got = client.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=wait)
    now = time.perf_counter()
    messages = got.get("Messages", [])
    if messages:
        client.delete_message_batch(
            QueueUrl=queue,
            Entries=[
                {"Id": str(k), "ReceiptHandle": m["ReceiptHandle"]} for k, m in enumerate(messages)
            ],
        )
    return [(json.loads(m["Body"]), now) for m in messages]


# -- CPU and memory accounting --------------------------------------------------------------


def _stat_fields(pid: int, of_process: int | None = None) -> list[str] | None:
    where = f"/proc/{pid}/stat" if of_process is None else f"/proc/{of_process}/task/{pid}/stat"
    try:
        text = Path(where).read_text()
    except OSError:
        return None
    # comm may hold spaces and parentheses: split after the last ')'.
    return text.rsplit(")", 1)[1].split()


def proc_cpu_s(
    pid: int, children: bool = True, task: int | None = None
) -> tuple[float, int] | None:
    """(CPU seconds of `pid` (utime+stime, and its reaped children's), start time); of
    its thread `task` alone with `task` (and children=False)."""
    f = _stat_fields(pid if task is None else task, pid if task is not None else None)
    if f is None:
        return None
    # Fields after comm: state=0 ... utime=11 stime=12 cutime=13 cstime=14 starttime=19.
    ticks = int(f[11]) + int(f[12])
    if children:
        ticks += int(f[13]) + int(f[14])
    return ticks / CLK_TCK, int(f[19])


def descendants(pid: int) -> set[int]:
    """Live descendants of `pid`."""
    parents: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            f = _stat_fields(int(entry.name))
            if f is not None:
                parents[int(entry.name)] = int(f[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier and p not in found}
        found |= frontier
    return found


def machine_cpu_s() -> float:
    """Busy CPU seconds of the whole machine since boot (/proc/stat, all CPUs)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def own_cpu_s() -> float:
    """CPU seconds of this process, all its threads."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    return me.ru_utime + me.ru_stime


def vm_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


_ENGINE_COMMS = ("dockerd", "containerd")
_SHIM_COMM = "containerd-shim"  # containerd-shim-runc-v2, cut to 15 characters
_ID_RE = re.compile(r"[0-9a-f]{64}")


def engine_processes() -> dict[int, str]:
    """pid -> role of the Docker engine's processes: dockerd, containerd, and every
    containerd shim (`shim:<container id>`)."""
    found: dict[int, str] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        if comm in _ENGINE_COMMS:
            found[pid] = comm
        elif comm.startswith(_SHIM_COMM):
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            cid = ""
            for k, arg in enumerate(argv[:-1]):
                if arg == b"-id":
                    cid = argv[k + 1].decode()
            found[pid] = f"shim:{cid}"
    return found


def docker_cgroup_root() -> tuple[Path, int] | None:
    """The directory holding the containers' CPU cgroups (and the cgroup version), found
    from a running container's init, as sandboxd's own cgroup code finds a sandbox's."""
    out = subprocess.run(
        ["docker", "ps", "-q", "--no-trunc"], capture_output=True, text=True, check=False
    ).stdout.split()
    for cid in out:
        pid = subprocess.run(
            ["docker", "inspect", "-f", "{{.State.Pid}}", cid],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        try:
            cg = Cgroup.of_pid(int(pid))
        except (ValueError, CgroupError):
            continue
        return cg.cpu.parent, cg.version
    return None


def containers_cpu_s(root: Path, version: int) -> dict[str, float]:
    """Container id -> CPU seconds of its cgroup, for every container under `root`."""
    out: dict[str, float] = {}
    for entry in os.scandir(root):
        m = _ID_RE.search(entry.name)
        if m is None or not entry.is_dir():
            continue
        try:
            if version == 1:
                ns = int(Path(entry.path, "cpuacct.usage").read_text())
            else:
                stat = Path(entry.path, "cpu.stat").read_text().split()
                ns = int(stat[stat.index("usage_usec") + 1]) * 1000
        except (OSError, ValueError):
            continue
        out[m.group(0)] = ns / 1e9
    return out


def docker_root() -> Path:
    out = subprocess.run(
        ["docker", "info", "-f", "{{.DockerRootDir}}"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return Path(out or "/var/lib/docker")


class Owners:
    """Which containers are ours (their sandboxd.host label is `host_id`), read from the
    engine's own record of each container on disk, once per container: no API call, so
    it can run inside a measured window, and a container removed since still counts."""

    def __init__(self, host_id: str) -> None:
        self.host_id = host_id
        self.root = docker_root() / "containers"
        self._known: dict[str, bool] = {}

    def ours(self, cid: str) -> bool:
        if cid not in self._known:
            try:
                doc = json.loads((self.root / cid / "config.v2.json").read_text())
                labels = (doc.get("Config") or {}).get("Labels") or {}
                self._known[cid] = labels.get("sandboxd.host") == self.host_id
            except (OSError, ValueError):
                return False  # not yet written (being created): look again next time
        return self._known[cid]


@dataclass
class _Track:
    """The first and last CPU reading of one process (or cgroup) seen during a window."""

    first: float
    last: float
    born_inside: bool

    @property
    def used(self) -> float:
        return self.last - (0.0 if self.born_inside else self.first)


@dataclass
class CpuSplit:
    """CPU seconds used during a window, by part."""

    seconds: float
    daemon: float
    daemon_loop: float  # of which the event loop's thread
    sqs: float
    engine: dict[str, float]  # dockerd, containerd, shims (ours), shims (others)
    sandboxes: float
    foreign_sandboxes: float
    client: float
    machine: float
    foreign_containers: int
    started_ours: int  # our sandboxes whose cgroups appeared inside the window
    samples: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def engine_ours(self) -> float:
        return sum(v for k, v in self.engine.items() if k != "shims (other containers)")

    def per_job_ms(self, jobs: int) -> dict[str, float]:
        ms = 1000.0 / max(1, jobs)
        parts = {
            "daemon (sandboxd serve, children included)": self.daemon * ms,
            "  of which its event loop thread": self.daemon_loop * ms,
            "  of which its other threads (to_thread work)": (self.daemon - self.daemon_loop) * ms,
            "SQS server (moto)": self.sqs * ms,
            **{f"Docker engine: {k}": v * ms for k, v in self.engine.items()},
            "Docker engine (ours: dockerd+containerd+our shims)": self.engine_ours * ms,
            "sandboxes (their cgroups)": self.sandboxes * ms,
            "bench client (boto3, sampling)": self.client * ms,
            "whole machine (/proc/stat)": self.machine * ms,
        }
        if self.foreign_sandboxes:
            parts["other containers' cgroups (not ours)"] = self.foreign_sandboxes * ms
        accounted = (self.daemon + self.sqs + self.engine_ours + self.sandboxes + self.client) * ms
        parts["rest of the machine (unaccounted)"] = self.machine * ms - accounted
        return parts


class CpuMeter:
    """Samples, every `period` seconds in a thread, the CPU of the daemon (and its
    descendants), the SQS server, the Docker engine's processes and every container's
    cgroup, so that processes and containers that come and go inside the window are
    counted too (up to their last sample). `stop()` returns the split. Containers are ours
    by their label (`Owners`), learnt without Docker API calls inside the window."""

    def __init__(self, daemon_pid: int, sqs_pid: int, host_id: str, period: float = 0.2) -> None:
        self.owners = Owners(host_id)
        self.daemon_pid = daemon_pid
        self.sqs_pid = sqs_pid
        self.period = period
        root = docker_cgroup_root()
        if root is None:
            raise SystemExit("cannot find the containers' cgroups (no running container?)")
        self.cg_root, self.cg_version = root
        self._procs: dict[tuple[int, int], tuple[str, _Track]] = {}
        self._cgroups: dict[str, _Track] = {}
        self._cgroups_now: set[str] = set()  # the containers' cgroups at the last sample
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._samples = 0

    def _sample(self, first: bool) -> None:
        targets: dict[int, str] = {self.daemon_pid: "daemon", self.sqs_pid: "sqs"}
        loop_thread = proc_cpu_s(self.daemon_pid, children=False, task=self.daemon_pid)
        if loop_thread is not None:
            key = (-self.daemon_pid, loop_thread[1])  # the event loop's thread alone
            if key in self._procs:
                self._procs[key][1].last = loop_thread[0]
            else:
                track = _Track(loop_thread[0], loop_thread[0], born_inside=not first)
                self._procs[key] = ("daemon-loop", track)
        for pid in descendants(self.daemon_pid):
            targets[pid] = "daemon-child"
        targets.update(engine_processes())
        for pid, role in targets.items():
            got = proc_cpu_s(pid)
            if got is None:
                continue
            cpu, start = got
            readings = [(role, (pid, start), cpu)]
            if role.startswith("shim:"):
                # A shim's reaped children are runc (engine work) and, once the
                # container ends, its init with everything it reaped: the sandbox's
                # whole life, already counted in its cgroup. Kept apart (see stop()).
                own = proc_cpu_s(pid, children=False)
                if own is None:
                    continue
                readings = [
                    (role, (pid, start), own[0]),
                    ("kids" + role, (-pid, start), cpu - own[0]),
                ]
            for name, key, value in readings:
                if key in self._procs:
                    self._procs[key][1].last = value
                else:
                    self._procs[key] = (name, _Track(value, value, born_inside=not first))
        self._cgroups_now = set()
        for cid, cpu in containers_cpu_s(self.cg_root, self.cg_version).items():
            self._cgroups_now.add(cid)
            self.owners.ours(cid)  # learnt while its record exists
            if cid in self._cgroups:
                self._cgroups[cid].last = cpu
            else:
                self._cgroups[cid] = _Track(cpu, cpu, born_inside=not first)
        self._samples += 1

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            self._sample(first=False)

    def start(self) -> CpuMeter:
        self._sample(first=True)
        self._t0 = time.perf_counter()
        self._machine0 = machine_cpu_s()
        self._self0 = resource.getrusage(resource.RUSAGE_SELF)
        self._thread.start()
        return self

    def stop(self) -> CpuSplit:
        machine = machine_cpu_s() - self._machine0
        seconds = time.perf_counter() - self._t0
        me = resource.getrusage(resource.RUSAGE_SELF)
        self._stop.set()
        self._thread.join()
        self._sample(first=False)
        client = (me.ru_utime - self._self0.ru_utime) + (me.ru_stime - self._self0.ru_stime)
        daemon = daemon_loop = sqs = 0.0
        engine = {"dockerd": 0.0, "containerd": 0.0, "shims (our containers)": 0.0}
        other_shims = 0.0
        for role, track in self._procs.values():
            if role in ("daemon", "daemon-child"):
                daemon += track.used
            elif role == "daemon-loop":
                daemon_loop += track.used
            elif role == "sqs":
                sqs += track.used
            elif role.startswith(("shim:", "kidsshim:")):
                cid = role.split(":", 1)[1]
                used = track.used
                if role.startswith("kids"):
                    # Less the life of a container that ended in the window (its init's
                    # CPU, reaped by the shim): what is left is runc's.
                    ended = self._cgroups.get(cid)
                    if ended is not None and cid not in self._cgroups_now:
                        used = max(0.0, used - ended.last)
                if self.owners.ours(cid):
                    engine["shims (our containers)"] += used
                else:
                    other_shims += used
            else:
                engine[role] += track.used
        if other_shims:
            engine["shims (other containers)"] = other_shims
        sandboxes = foreign = 0.0
        foreign_ids = set()
        started = 0
        for cid, track in self._cgroups.items():
            if self.owners.ours(cid):
                sandboxes += track.used
                started += track.born_inside
            elif track.used > 0.01:  # an idle warm runner's few ticks are not work
                foreign += track.used
                foreign_ids.add(cid)
        return CpuSplit(
            seconds=seconds,
            daemon=daemon,
            daemon_loop=daemon_loop,
            sqs=sqs,
            engine=engine,
            sandboxes=sandboxes,
            foreign_sandboxes=foreign,
            client=client,
            machine=machine,
            foreign_containers=len(foreign_ids),
            started_ours=started,
            samples=self._samples,
        )


def tmpdir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="sandboxd-bench-")
