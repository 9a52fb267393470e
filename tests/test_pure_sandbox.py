"""Pure pieces of the sandbox layer: container settings, cgroup parsing, host file access."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandboxd import hostfs
from sandboxd.cgroup import parse_flat_keyed, parse_mountinfo, parse_proc_cgroup
from sandboxd.limits import Limits
from sandboxd.sandbox import SandboxSpec, container_config, job_env

SPEC = SandboxSpec(
    pool="python",
    image="sandboxd/python:latest",
    runner=("/opt/sandboxd/runner/run",),
    env={"PYTHONUNBUFFERED": "1"},
    limits=Limits(memory_mb=256, pids=128, disk_mb=64),
)


def test_container_config_is_locked_down() -> None:
    """The create body has every hardening setting DESIGN.md asks for."""
    cfg = container_config(SPEC, {"sandboxd.managed": "true"})
    hc = cfg["HostConfig"]
    assert hc["NetworkMode"] == "none" and cfg["NetworkDisabled"] is True
    assert hc["ReadonlyRootfs"] is True
    assert hc["CapDrop"] == ["ALL"]
    assert hc["CapAdd"] == ["SETUID", "SETGID"]  # the supervisor's, to switch children
    assert cfg["Cmd"][0] == "/opt/sandboxd/supervisor" and cfg["User"] == "0:0"
    sup = hc["Tmpfs"]["/run/sandboxd"].split(",")
    assert "mode=0700" in sup and "uid=10002" in sup and "noexec" in sup
    assert hc["SecurityOpt"][0] == "no-new-privileges"
    assert hc["SecurityOpt"][1].startswith("seccomp={")  # our profile, not the engine's
    assert hc["Sysctls"]["net.ipv4.tcp_max_tw_buckets"] == "0"
    assert hc["Init"] is True
    assert hc["Memory"] == hc["MemorySwap"] == 256 * 1024 * 1024
    assert hc["PidsLimit"] == 128
    assert hc["NanoCpus"] == 1_000_000_000
    assert "Privileged" not in hc and "Binds" not in hc and "Mounts" not in hc
    ulimits = {u["Name"]: u["Soft"] for u in hc["Ulimits"]}
    assert ulimits["fsize"] == 64 << 20 and "nproc" not in ulimits and "nofile" in ulimits
    for path in ("/work", "/tmp"):
        opts = hc["Tmpfs"][path].split(",")
        assert "size=64m" in opts and "uid=10001" in opts and "nosuid" in opts
    assert cfg["Labels"] == {"sandboxd.managed": "true"}


def test_job_env_holds_only_the_image_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing from the daemon's own environment reaches a job."""
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    env = dict(e.split("=", 1) for e in job_env(SPEC))
    assert set(env) == {"PATH", "HOME", "LANG", "TMPDIR", "PYTHONUNBUFFERED"}


MOUNTINFO_V1 = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
39 31 0:36 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""


def test_parse_mountinfo_maps_controllers_to_mounts() -> None:
    """Co-mounted v1 controllers and the v2 mount are found; name=systemd is no controller."""
    v1, v2 = parse_mountinfo(MOUNTINFO_V1)
    assert v1["cpuacct"] == Path("/sys/fs/cgroup/cpu,cpuacct")
    assert v1["memory"] == Path("/sys/fs/cgroup/memory")
    assert "name=systemd" not in v1 and "systemd" not in v1
    assert v2 == Path("/sys/fs/cgroup/unified")


def test_parse_proc_cgroup_v1_and_v2() -> None:
    """Both the per-controller v1 lines and the v2 line are read."""
    v1, v2 = parse_proc_cgroup("4:memory:/docker/abc\n2:cpu,cpuacct:/docker/abc\n0::/\n")
    assert v1 == {"memory": "/docker/abc", "cpu": "/docker/abc", "cpuacct": "/docker/abc"}
    assert v2 == "/"


def test_parse_flat_keyed_reads_counters() -> None:
    """Counter files parse to ints; non-numeric lines are skipped."""
    text = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\nweird line\n"
    assert parse_flat_keyed(text) == {"oom_kill_disable": 0, "under_oom": 0, "oom_kill": 3}


def test_read_capped_refuses_symlinks_and_fifos(tmp_path: Path) -> None:
    """A planted symlink or FIFO is never followed or blocked on."""
    (tmp_path / "out").mkdir()
    secret = tmp_path / "secret"
    secret.write_text("host secret")
    (tmp_path / "out" / "results.json").symlink_to(secret)
    os.mkfifo(tmp_path / "out" / "fifo")
    base = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(hostfs.UnsafePath):
            hostfs.read_capped(base, "out/results.json", 1000)
        with pytest.raises(hostfs.UnsafePath):
            hostfs.read_capped(base, "out/fifo", 1000)
        assert hostfs.read_capped(base, "out/missing.json", 1000) is None
        (tmp_path / "out" / "big").write_bytes(b"x" * 2000)
        with pytest.raises(hostfs.UnsafePath):
            hostfs.read_capped(base, "out/big", 1000)
    finally:
        os.close(base)


def test_read_capped_refuses_a_symlinked_directory(tmp_path: Path) -> None:
    """A directory on the path replaced by a symlink is refused too."""
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "results.json").write_text("{}")
    (tmp_path / "out").symlink_to(tmp_path / "real")
    base = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(hostfs.UnsafePath):
            hostfs.read_capped(base, "out/results.json", 1000)
    finally:
        os.close(base)


def test_empty_dir_copes_with_a_very_deep_tree(tmp_path: Path) -> None:
    """A job can leave thousands of nested directories: emptying must not recurse (a
    RecursionError there once left the sandbox neither reset nor retired), and a link at
    the bottom is removed, not followed."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("keep")
    (tmp_path / "box").mkdir()
    fd = os.open(tmp_path / "box", os.O_RDONLY | os.O_DIRECTORY)
    try:
        for level in range(3000):  # mkdir + descend, as a hostile job would
            os.mkdir("d", dir_fd=fd)
            if level % 500 == 0:
                os.close(os.open("f", os.O_CREAT | os.O_WRONLY, dir_fd=fd))
            new = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = new
        os.symlink(outside, "outside-link", dir_fd=fd)
    finally:
        os.close(fd)
    base = os.open(tmp_path / "box", os.O_RDONLY | os.O_DIRECTORY)
    try:
        hostfs.empty_dir(base, hostfs.RemovalBudget(100_000))
        assert hostfs.is_empty(base)
        assert (outside / "keep").read_text() == "keep"
    finally:
        os.close(base)


@pytest.fixture
def shm_dir() -> Iterator[Path]:
    """A directory on a tmpfs (the host's /dev/shm), where sandboxes' directories live."""
    path = Path(tempfile.mkdtemp(dir="/dev/shm", prefix="sandboxd-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_write_files_and_empty_dir(shm_dir: Path) -> None:
    """Files land at their paths with their modes; emptying removes everything, links too."""
    base = os.open(shm_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        uid, gid = os.getuid(), os.getgid()
        hostfs.write_files(base, [("a/b/c.txt", b"hi", None), ("run.sh", b"#!", 0o755)], uid, gid)
        assert (shm_dir / "a/b/c.txt").read_bytes() == b"hi"
        assert (shm_dir / "run.sh").stat().st_mode & 0o777 == 0o755
        outside = shm_dir.parent / f"{shm_dir.name}-outside"
        outside.mkdir()
        (outside / "keep").write_text("keep")
        (shm_dir / "link").symlink_to(outside)
        os.chmod(shm_dir / "a", 0)
        hostfs.empty_dir(base, hostfs.RemovalBudget(100))
        assert hostfs.is_empty(base)
        assert (outside / "keep").read_text() == "keep"  # the link was removed, not followed
    finally:
        os.close(base)


def test_empty_dir_refuses_a_huge_directory_before_touching_it(shm_dir: Path) -> None:
    """50,000 entries (hard links cost a job nothing): the directory's size alone says
    it holds more than the budget, so nothing is removed and the refusal is immediate."""
    (shm_dir / "f").write_text("")
    for i in range(50_000):
        os.link(shm_dir / "f", shm_dir / f"l{i}")
    base = os.open(shm_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(hostfs.TooMuchToRemove):
            hostfs.empty_dir(base, hostfs.RemovalBudget(2000))
        assert len(os.listdir(base)) == 50_001
    finally:
        os.close(base)


def test_empty_dir_gives_up_past_its_budget_while_working(shm_dir: Path) -> None:
    """Entries spread over subdirectories pass the first size check but are counted as
    they are moved and removed (a directory as ten): past the budget the emptying stops."""
    for d in range(5):
        for f in range(5):
            (shm_dir / f"d{d}").mkdir(exist_ok=True)
            (shm_dir / f"d{d}" / f"f{f}").write_text("")
    base = os.open(shm_dir, os.O_RDONLY | os.O_DIRECTORY)
    budget = hostfs.RemovalBudget(12)
    try:
        with pytest.raises(hostfs.TooMuchToRemove):
            hostfs.empty_dir(base, budget)
        assert budget.left <= 12 - hostfs.RemovalBudget.DIRECTORY_COST  # it had started
        assert os.listdir(base)  # stopped part-way: the sandbox is retired, not cleaned
    finally:
        os.close(base)


def test_a_pinned_process_root_is_never_another_process_root() -> None:
    """Once the sandbox's init is gone, its root cannot be opened any more, even if the
    pid were reused by a host process (whose root is the host's /)."""
    import subprocess

    proc = subprocess.Popen(["sleep", "30"])
    proc_fd = hostfs.open_proc(proc.pid)
    try:
        os.close(hostfs.open_root(proc_fd))  # alive: fine
        proc.kill()
        proc.wait()
        with pytest.raises(OSError):
            hostfs.open_root(proc_fd)
    finally:
        os.close(proc_fd)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_seccomp_profile_denies_by_default_and_never_allows_io_uring() -> None:
    """The profile is a list of what is allowed, EPERM for the rest; io_uring is denied
    by name, clone3 answers ENOSYS (so libc uses clone, whose flags are checked), and no
    rule lets a job create namespaces."""
    import json

    from sandboxd.sandbox import seccomp_profile

    profile = json.loads(seccomp_profile())
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO" and profile["defaultErrnoRet"] == 1
    allowed = {
        name
        for rule in profile["syscalls"]
        if rule["action"] == "SCMP_ACT_ALLOW"
        for name in rule["names"]
    }
    for name in ("io_uring_setup", "io_uring_enter", "io_uring_register", "unshare", "setns",
                 "mount", "bpf", "keyctl", "add_key", "userfaultfd", "clone3"):  # fmt: skip
        assert name not in allowed, name
    (clone,) = [r for r in profile["syscalls"] if r["names"] == ["clone"]]
    assert clone["args"] == [
        {"index": 0, "value": 0x7E020000, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}
    ]
    (clone3,) = [r for r in profile["syscalls"] if r["names"] == ["clone3"]]
    assert (clone3["action"], clone3["errnoRet"]) == ("SCMP_ACT_ERRNO", 38)
    for name in ("read", "write", "openat", "execve", "getrandom", "futex", "rseq", "wait4"):
        assert name in allowed, name


def test_a_request_is_tagged_fields_then_the_data() -> None:
    """The supervisor's request encoding: NUL-terminated tagged fields, an empty one,
    then the raw data; a field may not hold NUL."""
    from sandboxd.sandbox.supervisor import encode_request

    raw = encode_request("exec", ["/bin/sh", "-c", "cat"], ["A=1"], "/work", data=b"in\0put")
    assert raw == b"mexec\0a/bin/sh\0a-c\0acat\0eA=1\0c/work\0\0in\0put"
    with pytest.raises(ValueError):
        encode_request("exec", ["a\0b"])


def test_an_exit_report_is_read_from_its_fields() -> None:
    """`key=value` lines of the supervisor's exit message become an Exit."""
    from sandboxd.sandbox.supervisor import Exit

    end = Exit.parse(b"code=-1\nsignal=9\nutime_us=1500\nstime_us=500\nmaxrss_kb=77\nfinished=0\n")
    assert (end.code, end.signal, end.cpu_us, end.maxrss_kb, end.finished) == (
        None, 9, 2000, 77, False,
    )  # fmt: skip
    assert Exit.parse(b"code=0\nsignal=0\nfinished=1\nrunner_error=\n").code == 0
