"""The embedded SQS server's process: moto's SQS served on loopback.

    python -m sandboxd.embedded_sqs_server -H 127.0.0.1 -p 9324

Served by waitress when it is installed (the `embedded` extra): connections are kept
alive, as real SQS keeps them, so a client does not pay a TCP connection per call, and a
fixed pool of threads answers instead of a new thread per connection. Long polls hold a
thread each for up to 20 s, hence the generous pool. Without waitress, moto's own server
(werkzeug's development server, one connection per request). Either way the per-request
access log is off: a daemon long-polling all day would fill it; errors are still logged.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

THREADS = 64


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="embedded_sqs_server")
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args(argv)
    os.environ.setdefault("MOTO_PORT", str(args.port))  # moto builds queue URLs with it
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    try:
        import waitress
    except ImportError:
        from moto.server import main as moto_main

        moto_main(["-H", args.host, "-p", str(args.port)])
        return
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "task queue depth" notes
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    waitress.serve(
        app,
        host=args.host,
        port=args.port,
        threads=THREADS,
        connection_limit=1000,
        channel_timeout=120,  # idle kept connections closed after this
        ident="sandboxd-embedded-sqs",
        _quiet=True,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
