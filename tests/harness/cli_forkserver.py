"""A process that has the `opengroup` command imported and forks a child per command.

Run as `python cli_forkserver.py SOCKET_PATH` by harness/server.py (`run_cli`). Starting
Python and importing the server package costs about a second of CPU on a slow machine,
and the suite runs a few thousand admin commands, so this process pays for the imports
once and forks a fresh child for each command. The child is the command as an operator
runs it: `python -m opengroup ARGS` executed anew (runpy), with its own argv,
environment, working directory, stdin (/dev/null), stdout, stderr and exit status.

One request per connection on the Unix socket: a JSON line {"args", "env", "cwd",
"stdout", "stderr"} (the last two: files the child writes). The child answers its pid,
then its exit status, each on a line. The server exits when its stdin closes (the test
process ended), so none outlives the run.
"""

from __future__ import annotations

import json
import os
import runpy
import selectors
import signal
import socket
import sys
import traceback

sys.path.pop(0)  # this file's folder: the harness's modules must not shadow any others

import opengroup.cli.main  # noqa: F401 - imported once, for every child

STDIN = 0


def exit_status(code: object) -> int:
    """The status Python exits with for SystemExit(code)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def run_command(conn: socket.socket) -> None:
    """In the forked child: run one command as `python -m opengroup` would, then exit."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    request = json.loads(conn.makefile("rb").readline())
    conn.sendall(f"{os.getpid()}\n".encode())
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    for fd, path, mode in (
        (0, os.devnull, os.O_RDONLY),
        (1, request["stdout"], os.O_WRONLY),
        (2, request["stderr"], os.O_WRONLY),
    ):
        target = os.open(path, mode)
        os.dup2(target, fd)
        os.close(target)
    sys.argv = ["opengroup", *request["args"]]
    status = 0
    try:
        runpy.run_module("opengroup", run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        status = exit_status(exc.code)
    except BaseException:
        traceback.print_exc()
        status = 1
    sys.stdout.flush()
    sys.stderr.flush()
    conn.sendall(f"{status}\n".encode())
    os._exit(status)


def serve(socket_path: str) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)
    listener.listen(64)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    events = selectors.DefaultSelector()
    events.register(listener, selectors.EVENT_READ)
    events.register(STDIN, selectors.EVENT_READ)
    print("ready", flush=True)
    while True:
        for key, _ in events.select():
            if key.fileobj == STDIN:
                if not os.read(STDIN, 4096):
                    return  # the test process is gone
                continue
            conn, _ = listener.accept()
            if os.fork() == 0:
                events.close()
                listener.close()
                try:
                    run_command(conn)
                finally:
                    os._exit(1)
            conn.close()


if __name__ == "__main__":
    serve(sys.argv[1])
