"""Serves a reference app the way ``opengroup serve`` serves the server: uvicorn with
uvloop and the server's HTTP protocol, and with several workers under the server's
supervisor (a listening socket per worker), so that a ratio to a ceiling compares
apps and not process models or HTTP layers.

    python -m bench.serve_app bench.ceiling_app:fixed_json --port 8000 --workers 2
"""

from __future__ import annotations

import argparse

import uvicorn

from opengroup.transport import workers
from opengroup.transport.http1 import OneWriteHttpProtocol


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.serve_app")
    parser.add_argument("app", help="module:attribute of an ASGI app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    config = uvicorn.Config(
        args.app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http=OneWriteHttpProtocol,
        access_log=False,
        log_level="warning",
    )
    raise SystemExit(workers.serve(config, args.workers))


if __name__ == "__main__":
    main()
