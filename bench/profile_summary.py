"""Summarise a py-spy speedscope profile: where the samples went.

    python -m bench.profile_summary profile.speedscope.json [--top 25] [--keep-idle]

Prints, over all threads' samples together: the share of samples by package
(self time: the innermost frame's file), the functions with the most self time,
and the functions with the most total time (on the stack at all, once per sample).

py-spy's own idle detection misses threads parked in ``Condition.wait`` (the
thread pool's idle workers, and workers woken but waiting for the GIL), so
samples whose innermost frame is one of :data:`IDLE_LEAVES`, or a pool's worker
waiting in its own frame for work, are dropped unless ``--keep-idle``. A sample
whose innermost frame is ``Runner.run`` is the event loop inside uvloop's C
code: socket I/O and HTTP parsing, but also its idle ``epoll_wait``; py-spy
cannot tell them apart without ``--native``.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

IDLE_LEAVES = frozenset({"Condition.wait", "Event.wait", "Connection._recv", "select", "poll"})
_SITE = re.compile(r"(?:site|dist)-packages/([^/]+)")


def is_idle_leaf(frame: dict[str, Any]) -> bool:
    """Whether a sample whose innermost frame is ``frame`` is a thread waiting: one of
    IDLE_LEAVES, or a thread pool's worker in its own frame (blocked in the C ``get``
    of its work queue; the work it runs is in deeper frames)."""
    if frame["name"] in IDLE_LEAVES:
        return True
    return frame["name"] == "_worker" and frame.get("file", "").endswith("futures/thread.py")


def package_of(path: str) -> str:
    """A short name for the code a frame is in: a package, the server's layer, or stdlib."""
    if "/opengroup/" in path:
        return "opengroup/" + path.split("/opengroup/", 1)[1].split("/", 1)[0]
    found = _SITE.search(path)
    if found:
        return found.group(1).split(".")[0].removesuffix(".py")
    if path.startswith("<") or not path:
        return path or "?"
    return "stdlib:" + Path(path).stem


def summarise(
    data: dict[str, Any], keep_idle: bool = False
) -> tuple[float, float, Counter[str], Counter[str], Counter[str]]:
    """(kept weight, dropped idle weight, self by package, self by function, total by function)."""
    frames = data["shared"]["frames"]
    idle = {i for i, f in enumerate(frames) if is_idle_leaf(f)}
    names = [f"{f['name']} ({Path(f.get('file', '?')).name}:{f.get('line', '?')})" for f in frames]
    packages = [package_of(f.get("file", "")) for f in frames]
    total = dropped = 0.0
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    by_package: Counter[str] = Counter()
    for profile in data["profiles"]:
        weights = profile.get("weights") or [1] * len(profile["samples"])
        for stack, weight in zip(profile["samples"], weights, strict=True):
            if not stack:
                continue
            if stack[-1] in idle and not keep_idle:
                dropped += weight
                continue
            total += weight
            self_time[names[stack[-1]]] += weight
            by_package[packages[stack[-1]]] += weight
            for name in {names[i] for i in stack}:
                inclusive[name] += weight
    return total, dropped, by_package, self_time, inclusive


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.profile_summary")
    p.add_argument("profile", type=Path)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--keep-idle", action="store_true", help="keep samples parked in a wait")
    args = p.parse_args(argv)
    data = json.loads(args.profile.read_text())
    total, dropped, by_package, self_time, inclusive = summarise(data, args.keep_idle)
    if not total:
        raise SystemExit("no samples")
    print(
        f"{total:.2f} thread-seconds of samples over {len(data['profiles'])} threads "
        f"({dropped:.2f} more dropped as idle waits)\n\nself time by package:"
    )
    for name, n in by_package.most_common(args.top):
        print(f"  {100 * n / total:5.1f}%  {name}")
    print("\nself time by function:")
    for name, n in self_time.most_common(args.top):
        print(f"  {100 * n / total:5.1f}%  {name}")
    print("\ntotal time by function (on the stack):")
    for name, n in inclusive.most_common(args.top):
        print(f"  {100 * n / total:5.1f}%  {name}")


if __name__ == "__main__":
    main()
