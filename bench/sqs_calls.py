"""CPU per SQS call of the daemon's queue client, by transport and by server, in one run.

    transport  lean      sandboxd/sqs_wire.py: SigV4-signed JSON over kept HTTP/1.1 connections
               botocore  the same calls through aioboto3 (SANDBOXD_SQS_CLIENT=botocore)
    server     waitress  the embedded server as sandboxd runs it: moto, connections kept alive
               werkzeug  moto's own server, which closes every connection

For each server and transport, N SendMessage, N ReceiveMessage (one message each) and N
DeleteMessage calls, one at a time, through `QueueClient` as the daemon makes them; the
CPU of this process (one thread: the event loop) per call, measured with
`time.process_time`. R interleaved rounds; the medians are printed, with each transport's
ratio to botocore's on the same server. Bounded: N calls per operation (default 300), R
rounds (default 3); both servers are stopped by pid on the way out.

    python bench/sqs_calls.py [-n 300] [--rounds 3] [--json bench/data/sqs_calls.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from common import moto_server, save_json, stop_on_sigterm, tmpdir

from sandboxd.config import Settings
from sandboxd.sqs import LOOPBACK, QueueClient

OPERATIONS = ("SendMessage", "ReceiveMessage", "DeleteMessage")
TRANSPORTS = ("lean", "botocore")


@contextlib.contextmanager
def werkzeug_server(tmp: Path) -> Iterator[str]:
    """moto's own server (werkzeug's, one connection per request), stopped by pid."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        port = s.getsockname()[1]
    code = "import sys; from moto.server import main; main(sys.argv[1:])"
    log = (tmp / f"werkzeug-{port}.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "-H", LOOPBACK, "-p", str(port)],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        end = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), 0.2):
                break
            if proc.poll() is not None or time.monotonic() > end:
                raise SystemExit(f"moto's server did not start (see {log.name})")
            time.sleep(0.1)
        yield f"http://{LOOPBACK}:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


async def measure(endpoint: str, transport: str, n: int) -> dict[str, float]:
    """CPU ms per call of each operation."""
    settings = Settings(sqs_client=transport)  # type: ignore[call-arg]
    out: dict[str, float] = {}
    async with QueueClient(settings, endpoint_url=endpoint) as queue:
        assert queue.transport == transport
        url = await queue.create_queue(f"bench-{uuid.uuid4().hex[:8]}")
        for _ in range(10):  # warm: connections, caches
            await queue.send(url, "warm")
        for message in await queue.receive(url, max_messages=10, wait_seconds=1):
            await queue.delete(url, message.receipt_handle)
        body = '{"id": "job-1", "status": "passed", "message": "All 1 tests passed."}'
        t0 = time.process_time()
        for _ in range(n):
            await queue.send(url, body)
        out["SendMessage"] = (time.process_time() - t0) * 1000 / n
        handles: list[str] = []
        t0 = time.process_time()
        while len(handles) < n:
            got = await queue.receive(url, max_messages=1, wait_seconds=1)
            handles += [m.receipt_handle for m in got]
        out["ReceiveMessage"] = (time.process_time() - t0) * 1000 / n
        t0 = time.process_time()
        for handle in handles:
            await queue.delete(url, handle)
        out["DeleteMessage"] = (time.process_time() - t0) * 1000 / n
        await queue.delete_queue(url)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=300, help="calls per operation (default 300)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    stop_on_sigterm()
    runs: dict[str, dict[str, list[dict[str, float]]]] = {}
    with tmpdir() as tmp_name:
        tmp = Path(tmp_name)
        with moto_server(tmp) as embedded, werkzeug_server(tmp) as werkzeug:
            servers = {"waitress": embedded.endpoint_url, "werkzeug": werkzeug}
            for r in range(args.rounds):
                print(f"round {r + 1} of {args.rounds}...", flush=True)
                for server, endpoint in servers.items():
                    for transport in TRANSPORTS:
                        got = asyncio.run(measure(endpoint, transport, args.n))
                        runs.setdefault(server, {}).setdefault(transport, []).append(got)
    print(f"\nCPU ms per call of this process (median of {args.rounds} rounds of {args.n}):\n")
    print(f"{'server':<9} {'transport':<9} " + " ".join(f"{op:>15}" for op in OPERATIONS)
          + f" {'per job (3)':>12} {'vs botocore':>12}")  # fmt: skip
    medians: dict[str, dict[str, dict[str, float]]] = {}
    for server, by_transport in runs.items():
        for transport, rounds in by_transport.items():
            medians.setdefault(server, {})[transport] = {
                op: statistics.median(r[op] for r in rounds) for op in OPERATIONS
            }
        base = sum(medians[server]["botocore"].values())
        for transport in TRANSPORTS:
            m = medians[server][transport]
            per_job = sum(m.values())
            print(
                f"{server:<9} {transport:<9} "
                + " ".join(f"{m[op]:>15.2f}" for op in OPERATIONS)
                + f" {per_job:>12.2f} {per_job / base:>11.2f}x"
            )
    save_json(args.json, {"n": args.n, "rounds": runs, "medians": medians})


if __name__ == "__main__":
    main()
